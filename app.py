"""PerturbODE dashboard (placeholder until the dashboard lands)."""
import streamlit as st

st.set_page_config(page_title="PerturbODE", layout="wide")
st.title("PerturbODE")
st.write("Interpretable neural ODEs for gene regulatory networks from perturbation screens.")
