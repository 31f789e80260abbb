"""Simulate page (placeholder: being built)."""

import streamlit as st

st.title("Simulate")
st.info("Coming soon.")
