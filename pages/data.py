"""Data page (placeholder: being built)."""

import streamlit as st

st.title("Data")
st.info("Coming soon.")
