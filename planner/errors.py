"""The one exception type a user mistake raises.

Every face (CLI, app, API) catches :class:`PlannerInputError` and shows its message as one line:
the CLI prints it on stderr and exits with status 2, the app shows an error box. Anything else
that escapes is a bug in planner, not in the user's input.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PlannerInputError(ValueError):
    """A user mistake: names the field and the rule that it breaks."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


def unknown_id(field: str, value: str, known: Iterable[str]) -> PlannerInputError:
    """Error for an id that is not in a catalog, with the closest known ids as suggestions."""
    known = sorted(known)
    close = difflib.get_close_matches(value, known, n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + ", ".join(close) + "?"
    else:
        hint = "known: " + ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return PlannerInputError(field, f"unknown id '{value}'; {hint}")


def pydantic_message(prefix: str, exc: Exception) -> PlannerInputError:
    """Turn a pydantic ValidationError into one line naming the first offending field."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        errs = errors()
        if errs:
            e = errs[0]
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "__root__")
            field = f"{prefix}.{loc}" if loc else prefix
            msg = e.get("msg", "invalid value")
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
            return PlannerInputError(field, msg + more)
    return PlannerInputError(prefix, str(exc).splitlines()[0])
