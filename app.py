"""planner's web app: ``streamlit run app.py`` (install with ``pip install -e '.[app]'``)."""

from __future__ import annotations

import streamlit as st

from planner.app.pages import catalog, compare, plan, simulate, sweeps

st.set_page_config(page_title="planner", layout="wide")
page = st.navigation(
    [
        st.Page(simulate.render, title="Simulate", url_path="simulate", default=True),
        st.Page(plan.render, title="Plan", url_path="plan"),
        st.Page(compare.render, title="Compare instances", url_path="compare"),
        st.Page(sweeps.render, title="Sweeps", url_path="sweeps"),
        st.Page(catalog.render, title="Catalog", url_path="catalog"),
    ]
)
page.run()
