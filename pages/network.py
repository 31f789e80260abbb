"""Network page (placeholder: being built)."""

import streamlit as st

st.title("Network")
st.info("Coming soon.")
