"""Train page (placeholder: being built)."""

import streamlit as st

st.title("Train")
st.info("Coming soon.")
