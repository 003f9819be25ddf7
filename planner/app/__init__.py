"""The Streamlit app (``streamlit run app.py``): pages and the helpers they share.

Everything it shows comes from planner's Python API (simulate, search, compare, sweep, catalog);
this package only lays it out. A :class:`~planner.errors.PlannerInputError` is shown as one
``st.error`` line, never as a traceback.
"""
