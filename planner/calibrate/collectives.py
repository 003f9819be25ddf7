"""Scale-up and scale-out efficiency from the NCCL kernels of a profiler trace (see
:mod:`planner.calibrate.trace`, whose module doc states the method).

A kernel whose Kineto args carry its message size (``Collective name``, ``In msg nelems``,
``Out msg nelems``, ``dtype``, ``Group size`` and ``Process Group Ranks`` when present) is matched
to a communication group of the layout; for each bandwidth-bound all-reduce, all-gather or
reduce-scatter, :class:`~planner.costs.collectives.CollectiveModel` says which efficiency bounds it,
and the efficiency is the model's transfer seconds at efficiency 1 over the measured seconds less
the modelled latency (a lower bound: a kernel's duration includes waiting for the slowest peer).
"""

from __future__ import annotations

import json
from typing import Any

from planner.calibration import DEFAULT

DTYPE_BYTES = {"float": 4, "float32": 4, "half": 2, "float16": 2, "bfloat16": 2, "double": 8, "float64": 8,
               "int": 4, "int32": 4, "long": 8, "int64": 8, "char": 1, "byte": 1, "uint8": 1, "int8": 1,
               "float8_e4m3fn": 1, "float8_e5m2": 1}  # fmt: skip

COLLECTIVES = {"allreduce": "all_reduce", "all_reduce": "all_reduce", "allgather": "all_gather",
               "all_gather": "all_gather", "_allgather_base": "all_gather", "all_gather_into_tensor": "all_gather",
               "reduce_scatter": "reduce_scatter", "reducescatter": "reduce_scatter",
               "_reduce_scatter_base": "reduce_scatter", "reduce_scatter_tensor": "reduce_scatter"}  # fmt: skip


def _group(args: dict[str, Any], s: Any) -> tuple[Any, str] | None:
    from planner.costs.collectives import Group

    try:
        n = int(args.get("Group size") or 0)
    except (TypeError, ValueError):
        return None
    ranks = args.get("Process Group Ranks")
    if isinstance(ranks, str):
        try:
            ranks = json.loads(ranks)
        except json.JSONDecodeError:
            ranks = None
    if isinstance(ranks, list) and len(ranks) >= 2 and all(isinstance(r, int) for r in ranks):
        return Group(len(ranks), ranks[1] - ranks[0]), "its Process Group Ranks"
    if n <= 1:
        return None
    if n == s.tp:
        return Group(n, 1), "Group size = tp"
    if n == s.data_parallel * s.cp:
        return Group(n, s.tp), "Group size = dp x cp"
    if n == s.cp:
        return Group(n, s.tp), "Group size = cp"
    return None


def _collective(args: dict[str, Any]) -> tuple[str, float] | None:
    """(kind, full-buffer bytes) of an NCCL kernel's args, or None when they do not say."""
    name = str(args.get("Collective name", "")).strip().lower()
    kind = COLLECTIVES.get(name)
    if kind is None:
        return None
    size = DTYPE_BYTES.get(str(args.get("dtype", "")).strip().lower().replace("torch.", ""))
    try:
        n_in = float(args.get("In msg nelems", 0) or 0)
        n_out = float(args.get("Out msg nelems", 0) or 0)
    except (TypeError, ValueError):
        return None
    if size is None:
        return None
    # planner's buffer: all-reduce the buffer; all-gather the gathered output; reduce-scatter the input
    nelems = n_out if kind == "all_gather" else n_in
    if nelems <= 0:
        return None
    return kind, nelems * size


def comm_efficiencies(kernels: list[Any], s: Any, cluster: Any) -> dict[str, tuple[float | None, str]]:
    from planner.costs.collectives import CollectiveModel

    nccl = [k for k in kernels if k.kind == "nccl"]
    if not nccl:
        return {
            n: (None, "not derivable: the trace has no NCCL kernels") for n in ("ring_efficiency", "nic_efficiency")
        }
    sized = 0
    acc: dict[str, list[float]] = {"ring_efficiency": [0.0, 0.0, 0], "nic_efficiency": [0.0, 0.0, 0]}  # type: ignore[dict-item]
    models = {(n, e): CollectiveModel(cluster, DEFAULT.model_copy(update={n: e})) for n in acc for e in (1.0, 0.5)}
    for k in nccl:
        c = _collective(k.args)
        g = _group(k.args, s)
        if c is None or g is None:
            continue
        sized += 1
        kind, nbytes = c
        for n in acc:
            one = models[(n, 1.0)].cost(kind, nbytes, g[0])  # type: ignore[arg-type]
            half = models[(n, 0.5)].cost(kind, nbytes, g[0])  # type: ignore[arg-type]
            if one.transfer_s <= 0 or abs(half.transfer_s / one.transfer_s - 2.0) > 1e-6:
                continue  # another efficiency bounds this collective
            if one.transfer_s < one.latency_s or k.dur_s <= one.latency_s:
                continue  # latency-dominated: its duration says little about bandwidth
            acc[n][0] += one.transfer_s
            acc[n][1] += k.dur_s - one.latency_s
            acc[n][2] += 1
    out: dict[str, tuple[float | None, str]] = {}
    for n, (ideal, meas, count) in acc.items():
        if sized == 0:
            out[n] = (None, f"not derivable: none of the {len(nccl)} NCCL kernels carries its message size "
                            "(Collective name, In/Out msg nelems, dtype, Group size)")  # fmt: skip
        elif count == 0:
            where = "inside a node" if n == "ring_efficiency" else "across nodes"
            out[n] = (
                None,
                f"not derivable: no bandwidth-bound collective {where} among the {sized} sized NCCL kernels",
            )
        else:
            out[n] = (
                ideal / meas,
                f"model transfer seconds at efficiency 1 / measured seconds less latency, over {int(count)} "
                f"bandwidth-bound NCCL kernel(s) ({ideal * 1e3:.3f} / {meas * 1e3:.3f} ms; a lower bound: includes peer skew)",
            )
    return out
