"""Modules & enrichment page (placeholder: being built)."""

import streamlit as st

st.title("Modules & enrichment")
st.info("Coming soon.")
