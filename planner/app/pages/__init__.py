"""One module per page, each with a ``render()`` that ``app.py`` hands to ``st.navigation``."""
