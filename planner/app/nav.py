"""The app's pages, in one place: ``app.py`` hands them to ``st.navigation`` and a page that sends
the user to another (Plan's "Open in Simulate") switches to it by the same entry."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

PAGES: tuple[tuple[str, str, str], ...] = (
    ("simulate", "Simulate", "simulate"),
    ("plan", "Plan", "plan"),
    ("compare", "Compare instances", "compare"),
    ("sweeps", "Sweeps", "sweeps"),
    ("catalog", "Catalog", "catalog"),
)
"""(module in planner.app.pages, title, url path); the first is the default page."""


def _render(module: str) -> Callable[[], None]:
    import importlib

    return importlib.import_module(f"planner.app.pages.{module}").render


def page(name: str) -> st.Page:
    """The st.Page of ``name`` (a module of planner.app.pages)."""
    for i, (module, title, url) in enumerate(PAGES):
        if module == name:
            return st.Page(_render(module), title=title, url_path=url, default=i == 0)
    raise KeyError(name)


def all_pages() -> list[st.Page]:
    """Every page, in the sidebar's order."""
    return [page(m) for m, _, _ in PAGES]


def go(name: str) -> None:
    """Switch to page ``name``; where the app runs without its navigation (a page tested alone),
    say where to go instead."""
    try:
        st.switch_page(page(name))
    except st.errors.StreamlitAPIException:
        st.success(f"Loaded: open the {dict((m, t) for m, t, _ in PAGES)[name]} page.")
