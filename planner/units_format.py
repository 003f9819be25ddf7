"""Numbers and column names as people read them: one place for the app's tables and the CLI.

A column's unit comes from its name (the project names units: ``_s``, ``_days``, ``_gib``, ``usd``,
``mfu``...), so a table of plain results can be shown with readable headers, currency, percentages
and times in the unit that suits their size, without each page repeating the rules.
No family imports: this is core.
"""

from __future__ import annotations

import math
import re
import textwrap
from typing import Literal

Kind = Literal["usd", "usd_small", "percent", "seconds", "days", "gib", "ratio", "count", "number", "text"]

LABELS: dict[str, str] = {
    "gpus": "GPUs",
    "mfu": "MFU",
    "hfu": "HFU",
    "usd": "Run cost ($)",
    "usd_per_million_tokens": "$ per M tokens",
    "usd_per_billion_samples": "$ per B samples",
    "usd_per_gpu_hour": "$ per GPU-hour",
    "usd_per_hour": "$ per hour",
    "usd_per_step": "$ per step",
    "gpu_hours_per_step": "GPU-hours per step",
    "tokens_per_s": "Tokens/s",
    "samples_per_s": "Samples/s",
    "step_time_s": "Step time",
    "wall_days": "Run days",
    "days": "Run days",
    "peak_gib": "Peak memory (GiB)",
    "memory_gib": "Memory (GiB)",
    "capacity_gib": "Capacity (GiB)",
    "slower_by": "Slower by",
    "tflops_per_gpu": "TFLOP/s per GPU",
    "price_date": "Price date",
    "price_source": "Price source",
    "tp": "tp",
    "pp": "pp",
    "dp": "dp",
    "cp": "cp",
    "ep": "ep",
    "vpp": "vpp",
}
"""Headers that the generic rule (drop the unit, spaces for underscores) would not write well."""

_PERCENT = {"mfu", "hfu", "goodput", "slower_by", "dense_mfu", "efficiency"}
_UNIT_SUFFIX = (("_gb_s", "GB/s"), ("_days", "days"), ("_gib", "GiB"), ("_gbps", "Gb/s"), ("_tflops", "TFLOP/s"), ("_w", "W"),
                ("_kwh", "kWh"), ("_s", ""))  # fmt: skip


def column_kind(name: str) -> Kind:
    """What a column named ``name`` holds, by the project's naming of units."""
    n = name.lower().rsplit(".", 1)[-1]
    if n in _PERCENT or n.endswith(("_mfu", "_fraction", "_share")):
        return "percent"
    if n == "usd" or n.startswith("usd_") and not n.startswith(("usd_per_million", "usd_per_billion", "usd_per_gpu")):
        return "usd"
    if n.startswith("usd_per") or n.endswith("_usd"):
        return "usd_small"
    if n.endswith("_days") or n == "days":
        return "days"
    if n.endswith("_s") and not n.endswith(("_per_s", "tflops_s", "_gb_s", "_mb_s")):
        return "seconds"
    if n.endswith("_gib"):
        return "gib"
    if n in ("gpus", "tp", "pp", "dp", "cp", "ep", "vpp", "steps", "micro_batch", "global_batch", "zero_stage"):
        return "count"
    return "number"


def header(name: str) -> str:
    """A readable header for a snake_case column name: ``step_time_s`` -> ``Step time``."""
    if name in LABELS:
        return LABELS[name]
    if "." in name:  # a nested result field (sweep stores): memory.peak_gib
        return header(name.rsplit(".", 1)[1])
    unit = ""
    base = name
    for suffix, u in _UNIT_SUFFIX:
        if base.endswith(suffix) and len(base) > len(suffix):
            base, unit = base[: -len(suffix)], u
            break
    base = re.sub(r"_per_", " per ", base).replace("tflops", "TFLOP/s").replace("_", " ").strip()
    text = base[:1].upper() + base[1:]
    return f"{text} ({unit})" if unit else text


def missing(v: object) -> bool:
    """None or NaN: shown as a dash, never as 'None' or 'nan'."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_seconds(s: float | None) -> str:
    """A duration in the unit that suits it: µs, ms, s, min, h or days."""
    if missing(s):
        return "—"
    assert s is not None
    a = abs(s)
    if a == 0:
        return "0 s"
    if a < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if a < 1:
        return f"{s * 1e3:.3g} ms"
    if a < 120:
        return f"{s:.3g} s"
    if a < 7200:
        return f"{s / 60:.3g} min"
    if a < 2 * 86400:
        return f"{s / 3600:.3g} h"
    return f"{s / 86400:,.1f} days"


def fmt_usd(v: float | None, small: bool = False) -> str:
    """Dollars: whole dollars with thousands separators, cents (or 3 significant digits) when small."""
    if missing(v):
        return "—"
    assert v is not None
    if small or abs(v) < 100:
        return f"${v:,.2f}" if abs(v) >= 1 else f"${v:.3g}"
    return f"${v:,.0f}"


def fmt_percent(v: float | None) -> str:
    """A fraction (0.562) as a percentage (56.2 %)."""
    return "—" if missing(v) else f"{v * 100:.1f} %"  # type: ignore[operator]


def fmt_value(v: object, kind: Kind) -> str:
    """One cell as text in its column's kind (the CLI's tables; the app uses it for columns with gaps)."""
    if missing(v):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if not isinstance(v, (int, float)):
        return str(v)
    if kind == "usd":
        return fmt_usd(v)
    if kind == "usd_small":
        return fmt_usd(v, small=True)
    if kind == "percent":
        return fmt_percent(v)
    if kind == "seconds":
        return fmt_seconds(v)
    if kind == "days":
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    if kind == "gib":
        return f"{v:,.1f}"
    if kind == "count":
        return f"{int(v):,}"
    return f"{v:,.4g}" if isinstance(v, float) else f"{v:,}"


TEXT_WIDTH = 100
"""Columns of the CLI's text output."""


def wrap(line: str, indent: str = " " * 17) -> list[str]:
    """A long line of the CLI's text as lines of at most :data:`TEXT_WIDTH` columns, continued under
    ``indent`` (by default the value column of ``cost   ...``/``energy   ...`` lines)."""
    return textwrap.wrap(line, TEXT_WIDTH, subsequent_indent=indent, break_long_words=False) or [line]
