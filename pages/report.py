"""Report page (placeholder: being built)."""

import streamlit as st

st.title("Report")
st.info("Coming soon.")
