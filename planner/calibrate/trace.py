"""Constants from a measured step: a PyTorch profiler (Kineto / Chrome trace) JSON of one training
step on one rank, with the model and layout that produced it.

**Kernel kinds.** GPU kernel events (``ph: "X"``, ``cat: "kernel"``, ``dur`` in microseconds) are
classified by name, first match wins (:func:`kernel_kind`): ``nccl`` (NCCL collectives);
``attention`` (``flash``, ``fmha``, ``attention``: fused attention, checked before GEMMs
because CUTLASS's fmha kernels also say ``cutlass``); ``gemm`` (``gemm``, ``xmma`` as in
``sm80_xmma``/``sm90_xmma``, ``cutlass``, ``cublas``, ``nvjet``, which covers ``ampere_*gemm``);
``other`` (elementwise, norms, softmax, optimizer, copies).

**What is derived, and how** (planner's own cost code gives the model side, for the given model,
layout and pipeline rank; every other constant keeps its default and the report says why):

* ``gemm_mamf_fraction`` = ``W_gemm / (T_gemm - N_gemm * gemm_ramp_s)``: ``T_gemm`` and ``N_gemm``
  are the trace's GEMM kernel seconds and count; ``W_gemm`` is the model's GEMM seconds for this
  rank's step at ``gemm_mamf_fraction = 1`` with no ramp (dense peak x the accelerator's MAMF x
  wave quantisation, as :class:`~planner.costs.compute.ComputeModel` prices them): per micro-batch
  and layer, forward, recomputation and backward (data and weight gradients), plus the LM head on
  the last pipeline stage. This inverts the GEMM formula exactly when the GEMMs are compute-bound.
* ``attention_fraction`` = ``W_attn / (g * (T_attn - N_attn * gemm_ramp_s))`` with ``g`` 1 where the kernel has a
  published figure (hardware_specs/kernels.yaml), else the
  GEMM fraction above (or its default when that is not derived): the model's fused-attention
  seconds at ``attention_fraction = 1`` (its backward is 2.5x its forward) over the trace's.
  Not derived for unfused attention (the model has no fused kernel) or when the trace has none.
* ``layer_host_s``: only when the compute stream (the stream with the most non-NCCL kernel time)
  is idle, outside NCCL kernels, for at least a quarter of its span, and ``pp == 1`` (otherwise
  idle time is pipeline bubble): then the GPU waits on the host, and the span over the step's
  layer passes (forward 1, backward 2, full recomputation 1 per layer and micro-batch) is the host
  time per layer forward. Otherwise it is not measurable from the trace (the GPU never waited).
* ``ring_efficiency`` / ``nic_efficiency``: from NCCL kernels whose events carry the message size
  (Kineto's ``Collective name``, ``In msg nelems``, ``Out msg nelems``, ``Group size``, ``dtype``,
  and ``Process Group Ranks`` when present, else the group is matched to the layout by size,
  tensor-parallel first). For each all-reduce, all-gather or reduce-scatter whose modelled transfer
  time outweighs its latency, :class:`~planner.costs.collectives.CollectiveModel` says which
  efficiency bounds it (scale-up ring or scale-out NIC); the efficiency is the model's transfer
  seconds at efficiency 1 summed over those kernels, divided by their measured seconds less the
  modelled latency. A kernel's duration includes waiting for the slowest peer, so this is a lower
  bound on the fabric's efficiency.
* ``hbm_efficiency``, ``collective_launch_s`` and the rest are not derived: the trace gives no byte
  counts for memory-bound kernels, and a small collective's duration mixes launch, skew and hops.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from planner.calibrate.collectives import comm_efficiencies
from planner.calibration import BOUNDS, DEFAULT, Calibration
from planner.costs.kernels import FUSED_KERNELS, attention_figure
from planner.errors import PlannerInputError

ATTENTION_PATTERNS = ("flash", "fmha", "attention")
GEMM_PATTERNS = ("gemm", "xmma", "cutlass", "cublas", "nvjet")
KINDS = ("gemm", "attention", "nccl", "other")

GEMM_LABELS = ("qkv", "attn-proj", "fc1", "fc2", "expert fc1", "expert fc2", "shared fc1", "shared fc2",
               "QK^T", "AV", "lm-head")  # fmt: skip
"""Labels of the GEMM segments of planner/transformer/layer.py (weight GEMMs, unfused attention's batched
GEMMs, the LM head)."""

ATTENTION_LABELS = ("flash-attention",)

HOST_BOUND_IDLE_FRACTION = 0.25
"""The compute stream must be idle (outside NCCL kernels) this share of its span for host time to be measured."""


def kernel_kind(name: str) -> str:
    """``nccl``, ``attention``, ``gemm`` or ``other`` from a kernel's name (see the module doc)."""
    n = name.lower()
    if "nccl" in n:
        return "nccl"
    if any(p in n for p in ATTENTION_PATTERNS):
        return "attention"
    if any(p in n for p in GEMM_PATTERNS):
        return "gemm"
    return "other"


@dataclass(frozen=True)
class Kernel:
    name: str
    kind: str
    start_s: float
    dur_s: float
    stream: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def end_s(self) -> float:
        return self.start_s + self.dur_s


def read_trace(path: str | Path) -> list[Kernel]:
    """The GPU kernels of a Kineto/Chrome trace, sorted by start; a file without any raises one
    :class:`PlannerInputError` on ``trace``."""
    p = Path(path)
    if not p.exists():
        raise PlannerInputError("trace", f"file not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PlannerInputError("trace", f"{p} is not a readable JSON trace: {str(e).splitlines()[0]}") from None
    events = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise PlannerInputError("trace", f"{p} has no traceEvents list (a PyTorch profiler / Chrome trace)")
    out: list[Kernel] = []
    for i, e in enumerate(events):
        if not isinstance(e, dict) or e.get("ph") != "X" or str(e.get("cat", "")).lower() != "kernel":
            continue
        try:
            ts, dur = float(e["ts"]), float(e["dur"])
        except (KeyError, TypeError, ValueError):
            continue
        name = str(e.get("name", ""))
        if not (math.isfinite(ts) and math.isfinite(dur) and dur >= 0):  # would poison every sum it enters
            raise PlannerInputError(
                "trace", f"{p}: kernel event {i} ('{name[:60]}') has ts {e['ts']}, dur {e['dur']}; both must be "
                "finite and the duration not negative (a corrupt or hand-edited trace)",
            )  # fmt: skip
        args = e.get("args") if isinstance(e.get("args"), dict) else {}
        stream = str(args.get("stream", e.get("tid", "")))
        out.append(Kernel(name, kernel_kind(name), ts * 1e-6, dur * 1e-6, stream, args))
    if not out:
        raise PlannerInputError(
            "trace", f"{p} holds no GPU kernel events (ph 'X', cat 'kernel'); profile with CUDA activities on"
        )
    return sorted(out, key=lambda k: k.start_s)


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _overlap(a: float, b: float, spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(b, y) - max(a, x)) for x, y in spans)


class KindSummary(BaseModel):
    kernels: int
    seconds: float


class DerivedConstant(BaseModel):
    name: str
    default: float
    value: float
    derived: bool
    how: str  # the derivation, or why it kept its default


class TraceReport(BaseModel):
    """What a trace gave: kernel time by kind, the compute stream's idle time, the constants."""

    name: str
    trace: str
    scenario: dict[str, Any]
    kinds: dict[str, KindSummary]
    compute_stream: str
    compute_busy_s: float
    compute_idle_s: float  # idle between kernels of the compute stream, outside NCCL kernels
    span_s: float
    constants: list[DerivedConstant]

    def calibration(self) -> Calibration:
        return Calibration(name=self.name, **{c.name: c.value for c in self.constants if c.derived})

    def metadata(self) -> dict[str, Any]:
        return {
            "method": "planner calibrate --trace",
            "source": self.trace,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "accelerator": self.scenario.get("accelerator"),
            "scenario": self.scenario,
            "kernels": {k: {"kernels": v.kernels, "seconds": v.seconds} for k, v in self.kinds.items()},
            "fitted": {c.name: c.value for c in self.constants if c.derived},
            "kept": {c.name: c.how for c in self.constants if not c.derived},
        }


def _base_label(label: str) -> str:
    if label.startswith("recompute "):
        label = label[len("recompute ") :]
    for suf in (" dgrad", " wgrad", " bwd"):
        if label.endswith(suf):
            return label[: -len(suf)]
    return label


def model_seconds(model: Any, s: Any, cluster: Any, pipeline_rank: int = 0) -> tuple[float, float, int]:
    """(GEMM seconds, fused-attention seconds, layer passes) of one rank's step as planner prices
    them with ``gemm_mamf_fraction = attention_fraction = 1``, no GEMM ramp and no kernel floor.

    Layer passes count forward 1, backward 2 and full recomputation 1 per layer and micro-batch."""
    from planner.costs.collectives import CollectiveModel
    from planner.costs.compute import ComputeModel
    from planner.transformer.layer import head_costs, layer_costs
    from planner.transformer.sharding import stage_layers

    ideal = DEFAULT.model_copy(
        update={"gemm_mamf_fraction": 1.0, "attention_fraction": 1.0, "gemm_ramp_s": 0.0, "kernel_floor_s": 0.0}
    )
    comp = ComputeModel(cluster.accelerator, ideal, s.precision)
    coll = CollectiveModel(cluster, ideal)
    lc = layer_costs(model, s, comp, coll)
    hc = head_costs(model, s, comp, coll)

    def of(passes: list[Any], labels: tuple[str, ...]) -> float:
        return sum(
            x.seconds for p in passes for x in p.segments if x.kind == "compute" and _base_label(x.label) in labels
        )

    p, v = s.pp, s.vpp
    layers_all = stage_layers(model.num_layers, p * v)
    layers = sum(layers_all[c * p + pipeline_rank] for c in range(v))
    m = s.micro_batches
    per_layer = [lc.forward, lc.recompute, lc.backward]
    gemm = m * layers * of(per_layer, GEMM_LABELS)
    attn = m * layers * of(per_layer, ATTENTION_LABELS)
    if pipeline_rank == p - 1:
        gemm += m * of([hc.head_forward, hc.head_backward], GEMM_LABELS)
    passes = m * layers * (3 + (1 if s.recompute == "full" else 0))
    return gemm, attn, passes


def calibrate_trace(
    path: str | Path,
    model: Any,
    cluster: Any,
    strategy: Any,
    *,
    name: str = "trace",
    pipeline_rank: int = 0,
) -> TraceReport:
    """Derive what a trace pins down (see the module doc) for ``model`` on ``cluster`` with ``strategy``."""
    from planner.transformer.spec import TransformerSpec
    from planner.transformer.strategy import check_layout

    if not isinstance(model, TransformerSpec):  # kernel classes and passes are a transformer's
        raise PlannerInputError("model", "a profiler trace calibrates a transformer model")
    s = check_layout(strategy, model, cluster)
    if not 0 <= pipeline_rank < s.pp:
        raise PlannerInputError("pipeline_rank", f"must be in 0..{s.pp - 1} (pp {s.pp}), got {pipeline_rank}")
    kernels = read_trace(path)
    kinds = {
        k: KindSummary(
            kernels=sum(1 for x in kernels if x.kind == k), seconds=sum(x.dur_s for x in kernels if x.kind == k)
        )
        for k in KINDS
    }
    ramp = DEFAULT.gemm_ramp_s
    w_gemm, w_attn, passes = model_seconds(model, s, cluster, pipeline_rank)
    consts: dict[str, tuple[float | None, str]] = {}
    # ---- GEMM
    t_gemm = kinds["gemm"].seconds - kinds["gemm"].kernels * ramp
    if kinds["gemm"].kernels == 0:
        consts["gemm_mamf_fraction"] = (None, "not derivable: the trace has no GEMM kernels")
    else:
        g = w_gemm / t_gemm if t_gemm > 0 else math.inf
        how = (f"model GEMM seconds at 100 % ({w_gemm * 1e3:.3f} ms) / trace GEMM seconds less "
               f"{kinds['gemm'].kernels} x gemm_ramp_s ({t_gemm * 1e3:.3f} ms)")  # fmt: skip
        consts["gemm_mamf_fraction"] = _checked("gemm_mamf_fraction", g, how)
    g_used = consts["gemm_mamf_fraction"][0] or DEFAULT.gemm_mamf_fraction
    # ---- attention
    t_attn = kinds["attention"].seconds - kinds["attention"].kernels * ramp
    if s.attention not in FUSED_KERNELS or w_attn <= 0:
        consts["attention_fraction"] = (
            None,
            "not derivable: the layout uses unfused attention (no fused kernel in the model)",
        )
    elif kinds["attention"].kernels == 0:
        consts["attention_fraction"] = (None, "not derivable: the trace has no fused attention kernel")
    else:
        # a measured kernel's rate is its benchmark figure; the default scales the GEMM ceiling (with g)
        g_attn = g_used if attention_figure(cluster.accelerator.id, s.attention).tflops is None else 1.0
        a = w_attn / (g_attn * t_attn) if t_attn > 0 else math.inf
        how = (f"model attention seconds at 100 % ({w_attn * 1e3:.3f} ms) / ({g_attn:.4g} x "
               f"trace attention seconds less ramps, {t_attn * 1e3:.3f} ms)")  # fmt: skip
        consts["attention_fraction"] = _checked("attention_fraction", a, how)
    # ---- host time per layer
    by_stream: dict[str, float] = {}
    for k in kernels:
        if k.kind != "nccl":
            by_stream[k.stream] = by_stream.get(k.stream, 0.0) + k.dur_s
    stream = max(by_stream, key=lambda x: by_stream[x]) if by_stream else ""
    comp = [k for k in kernels if k.stream == stream and k.kind != "nccl"]
    nccl_spans = _union([(k.start_s, k.end_s) for k in kernels if k.kind == "nccl"])
    busy_spans = _union([(k.start_s, k.end_s) for k in comp])
    busy = sum(b - a for a, b in busy_spans)
    idle = 0.0
    for (_, e0), (s1, _) in zip(busy_spans, busy_spans[1:], strict=False):
        idle += (s1 - e0) - _overlap(e0, s1, nccl_spans)
    span = (busy_spans[-1][1] - busy_spans[0][0]) if busy_spans else 0.0
    if s.pp > 1:
        consts["layer_host_s"] = (None, "not measurable: with pp > 1 the compute stream's idle time is pipeline bubble")
    elif span <= 0 or idle < HOST_BOUND_IDLE_FRACTION * span:
        share = idle / span if span > 0 else 0.0
        consts["layer_host_s"] = (
            None,
            f"not measurable: the compute stream idles {100 * share:.1f} % of its span outside NCCL "
            f"(under {100 * HOST_BOUND_IDLE_FRACTION:.0f} %): the GPU did not wait on the host",
        )
    else:
        host = span / passes
        consts["layer_host_s"] = _checked(
            "layer_host_s",
            host,
            f"compute-stream span {span * 1e3:.3f} ms (idle {100 * idle / span:.1f} %) / {passes} layer passes",
        )
    # ---- collectives
    for n, (v, how) in comm_efficiencies(kernels, s, cluster).items():
        consts[n] = (v, how) if v is None else _checked(n, v, how)
    for n in ("hbm_efficiency", "collective_launch_s"):
        consts[n] = (None, "not derivable from a trace: " + (
            "memory-bound kernels carry no byte counts" if n == "hbm_efficiency"
            else "a small collective's duration mixes launch, peer skew and hops"))  # fmt: skip
    out = [
        DerivedConstant(
            name=n,
            default=getattr(DEFAULT, n),
            value=v if v is not None else getattr(DEFAULT, n),
            derived=v is not None,
            how=how,
        )  # fmt: skip
        for n, (v, how) in consts.items()
    ]
    scenario = {
        "model": model.name,
        "accelerator": cluster.accelerator.id,
        "num_gpus": cluster.num_gpus,
        "gpus_per_node": cluster.node.gpus_per_node,
        "tp": s.tp, "pp": s.pp, "dp": s.data_parallel, "cp": s.cp, "vpp": s.vpp,
        "micro_batch": s.micro_batch, "global_batch": s.global_batch, "micro_batches": s.micro_batches,
        "recompute": s.recompute, "precision": s.precision, "attention": s.attention,
        "pipeline_rank": pipeline_rank,
    }  # fmt: skip
    return TraceReport(
        name=name,
        trace=str(path),
        scenario=scenario,
        kinds=kinds,
        compute_stream=stream,
        compute_busy_s=busy,
        compute_idle_s=idle,
        span_s=span,
        constants=out,
    )


def _checked(name: str, value: float, how: str) -> tuple[float | None, str]:
    """``value`` when it lies in the constant's physical range (:data:`planner.calibration.BOUNDS`, the
    range a profile must respect), else None and why: a profile never holds what it could not load."""
    b = BOUNDS[name]
    if not (math.isfinite(value) and value > 0 and b.low <= value <= b.high):
        return None, (f"derived {value:.4g} lies outside its physical range [{b.low:g}, {b.high:g}]; kept the default: "
                      f"check the model and layout flags and that the trace covers exactly one step ({how})")  # fmt: skip
    return value, how


def format_trace(rep: TraceReport) -> str:
    """The human-readable report of a trace calibration."""
    lines = [f"calibration: {rep.name}  (from the trace {rep.trace})", "", "kernels by kind:"]
    for k, v in rep.kinds.items():
        lines.append(f"  {k:10s} {v.kernels:7d} kernels {v.seconds * 1e3:12.3f} ms")
    lines.append(
        f"compute stream {rep.compute_stream}: busy {rep.compute_busy_s * 1e3:.3f} ms, idle outside NCCL "
        f"{rep.compute_idle_s * 1e3:.3f} ms, span {rep.span_s * 1e3:.3f} ms"
    )
    lines += ["", f"{'constant':22s} {'default':>10s} {'derived':>10s}  how"]
    for c in rep.constants:
        val = f"{c.value:10.4g}" if c.derived else f"{'(kept)':>10s}"
        lines.append(f"{c.name:22s} {c.default:10.4g} {val}  {c.how}")
    return "\n".join(lines)
