"""Test-suite settings: hypothesis runs derandomized, so CI reruns the same examples and a green
run stays green; set HYPOTHESIS_PROFILE=explore locally to search with fresh random examples."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("default", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
