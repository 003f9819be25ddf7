"""planner's web app: ``streamlit run app.py`` (install with ``pip install -e '.[app]'``)."""

from __future__ import annotations

import streamlit as st

from planner.app.inputs import keep_inputs
from planner.app.nav import all_pages

st.set_page_config(page_title="planner", layout="wide")
keep_inputs()
st.navigation(all_pages()).run()
