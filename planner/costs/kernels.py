"""Measured fused-attention throughput per accelerator and kernel (``hardware_specs/kernels.yaml``).

The figures are published kernel benchmarks (FlashAttention-2 and -3 papers), each with its source
and date in the YAML file. :func:`attention_figure` finds the one for an accelerator and kernel;
where none exists it says which default applies (:data:`DEFAULT_NOTE`), so a result can name it.
:mod:`planner.costs.compute` turns a figure into seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

FUSED_KERNELS = ("flash", "fa2", "fa3", "cudnn")
"""Attention kernels that run as one fused kernel (the others, ``unfused`` and ``sdpa-math``, run
as GEMMs plus a materialised softmax). ``flash`` is the generic FlashAttention: FlashAttention-2."""

KERNEL_ALIASES = {"flash": "fa2"}


@dataclass(frozen=True)
class AttentionFigure:
    """The forward+backward rate a step sees from one kernel on one accelerator, or the default."""

    tflops: float | None  # time-weighted fwd+bwd rate; None: the default ratio applies
    of_gemm_ceiling: float  # the default's ratio to the accelerator's GEMM ceiling (used when tflops is None)
    basis: str  # which measurement (accelerator/kernel, source) or which default


def combined_tflops(entry: dict[str, Any]) -> float:
    """One step's rate from a kernel entry: the stored forward+backward figure, or the time-weighted
    mean of forward and backward (the backward does 2.5x the forward's FLOPs)."""
    if "fwd_bwd_tflops" in entry:
        return float(entry["fwd_bwd_tflops"])
    return 3.5 / (1.0 / float(entry["fwd_tflops"]) + 2.5 / float(entry["bwd_tflops"]))


def table_path() -> Path:
    """The catalog's kernels.yaml ($PLANNER_SPECS or the shipped copy), else the repository's."""
    from planner.hardware import specs_dir

    p = specs_dir() / "kernels.yaml"
    return p if p.is_file() else Path(__file__).resolve().parents[2] / "hardware_specs" / "kernels.yaml"


@lru_cache(maxsize=4)
def load_table(path: Path | None = None) -> dict[str, Any]:
    """The parsed kernels table: ``{"default": {...}, "by_accelerator": {id: (measured_on, kernels)}}``."""
    from planner.hardware import load_yaml

    raw = load_yaml(path or table_path(), "kernels.yaml") or {}
    by_acc: dict[str, tuple[str, dict[str, Any]]] = {}
    for entry in raw.get("attention", []):
        for acc in [entry["accelerator"], *entry.get("applies_to", [])]:
            by_acc[acc] = (entry["accelerator"], entry["kernels"])
    return {"default": raw.get("default", {"of_gemm_ceiling": 0.8057, "source": "built-in"}), "by_accelerator": by_acc}


DEFAULT_NOTE = "no published {kernel} benchmark for {acc}: {ratio:g} x its GEMM ceiling ({source})"


def attention_figure(accelerator_id: str, kernel: str) -> AttentionFigure:
    """The measured rate of ``kernel`` on ``accelerator_id`` (a same-die variant shares its figure),
    or the default ratio to the GEMM ceiling when there is no measurement."""
    table = load_table()
    k = KERNEL_ALIASES.get(kernel, kernel)
    default = table["default"]
    ratio = float(default["of_gemm_ceiling"])
    found = table["by_accelerator"].get(accelerator_id)
    if found is not None and k in found[1]:
        measured_on, kernels = found
        entry = kernels[k]
        on = measured_on if measured_on == accelerator_id else f"{measured_on}, same die as {accelerator_id}"
        return AttentionFigure(combined_tflops(entry), ratio, f"{k} measured on {on}: {entry['source'].strip()}")
    note = DEFAULT_NOTE.format(kernel=k, acc=accelerator_id, ratio=ratio, source=default["source"])
    return AttentionFigure(None, ratio, note)


def catalog_note(accelerator_id: str) -> str:
    """One line for the catalog listing: the kernels with a published figure, or the default used."""
    table = load_table()
    found = table["by_accelerator"].get(accelerator_id)
    if found is None:
        return f"default: {float(table['default']['of_gemm_ceiling']):g} x GEMM ceiling"
    measured_on, kernels = found
    return ",".join(kernels) + ("" if measured_on == accelerator_id else f" (as {measured_on})")
