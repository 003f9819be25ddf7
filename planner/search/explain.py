"""Why the usual alternatives lose: out of memory, a rule, the bubble, exposed communication...

The alternatives are the layouts a practitioner would try first (data parallelism alone, FSDP,
tensor parallelism inside the node, the published layout of the model when there is one) and
one-knob changes of the winner (no interleaving, more or less recomputation, a deeper pipeline,
a larger micro-batch). Each is checked against the rules and memory; those that run are fully
simulated, and the reason given is the breakdown category that grew most against the winner.
"""

from __future__ import annotations

from collections.abc import Callable

from planner.costs.compute import BYTES_PER_ELEMENT
from planner.errors import PlannerInputError
from planner.hardware import Cluster
from planner.search.enumerate import scale_up_island
from planner.search.types import Alternative, Layout, Simulated
from planner.transformer.memory import memory
from planner.transformer.result import Breakdown
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import Strategy, check_layout

PUBLISHED_LAYOUTS: dict[str, tuple[str, dict[str, object]]] = {
    "gpt3-175b": (
        "published: Megatron-LM SC'21 (1024 A100, batch 1536)",
        {
            "tp": 8,
            "pp": 16,
            "vpp": 1,
            "micro_batch": 1,
            "recompute": "full",
            "zero_stage": 0,
            "sequence_parallel": False,
        },
    ),
    "llama3-405b": (
        "published: Llama 3 405B (16K H100, tp 8, pp 16)",
        {
            "tp": 8,
            "pp": 16,
            "vpp": 1,
            "micro_batch": 1,
            "recompute": "none",
            "zero_stage": 1,
            "sequence_parallel": True,
        },
    ),
}
"""Layouts published for a model's training run: Narayanan et al. SC'21, Table 1 / sec. 5.1 (GPT-3
175B); Grattafiori et al. 2024 (arXiv:2407.21783) Table 4 and sec. 3.3.2 (Llama 3 405B: tp 8, pp 16,
no activation checkpointing at 8K tokens; its virtual-stage count is not published: vpp 1)."""


Family = Callable[[Strategy], bool]


def usual_families(model: TransformerSpec, cluster: Cluster) -> list[tuple[str, Family, Strategy]]:
    """Absolute alternatives: (name, which layouts belong, a representative for the rule message).

    The search reports the best member of each family (by the estimate), so "FSDP loses" speaks
    of the best FSDP layout, not of an arbitrary one.
    """
    island = scale_up_island(cluster)
    tp_node = max(t for t in (1, 2, 4, 8, 16, 32, 64, 72) if t <= island and model.num_heads % t == 0)
    return [
        (
            "data parallel only (ZeRO 0-2)",
            lambda s: s.tp == 1 and s.pp == 1 and s.zero_stage in (0, 1, 2),
            Strategy(tp=1, pp=1, zero_stage=1),
        ),
        (
            "FSDP / ZeRO-3",
            lambda s: s.pp == 1 and s.zero_stage == 3 and s.tp == 1,
            Strategy(tp=1, pp=1, zero_stage=3, recompute="full"),
        ),
        (
            "tensor parallel in the node, no pipeline",
            lambda s: s.tp == tp_node and s.pp == 1 and s.zero_stage in (0, 1),
            Strategy(tp=tp_node, pp=1, zero_stage=1, sequence_parallel=tp_node > 1),
        ),
    ]


def usual_alternatives(winner: Strategy, model: TransformerSpec) -> list[tuple[str, Strategy]]:
    """(name, unresolved strategy) for the published layout and one-knob changes of ``winner``."""
    w = winner.model_copy(update={"dp": None, "schedule": None})
    out: list[tuple[str, dict[str, object]]] = []
    if model.name in PUBLISHED_LAYOUTS:
        name, fields = PUBLISHED_LAYOUTS[model.name]
        out.append((name, fields))
    if w.vpp > 1:
        out.append(("winner without interleaving (vpp 1)", {"vpp": 1}))
    if w.recompute != "full":
        out.append(("winner with full recomputation", {"recompute": "full"}))
    if w.recompute != "none":
        out.append(("winner without recomputation", {"recompute": "none"}))
    if w.sequence_parallel:
        out.append(("winner without sequence parallelism", {"sequence_parallel": False}))
    if w.pp * 2 * w.vpp <= model.num_layers:
        out.append(("winner with twice the pipeline stages", {"pp": w.pp * 2}))
    out.append(("winner with twice the micro-batch", {"micro_batch": w.micro_batch * 2}))
    result: list[tuple[str, Strategy]] = []
    seen = {signature(w)}
    for name, upd in out:
        s = w.model_copy(update=upd)
        if signature(s) not in seen:
            seen.add(signature(s))
            result.append((name, s))
    return result


def signature(s: Strategy) -> tuple:
    return (s.tp, s.pp, s.vpp, s.cp, s.ep, s.micro_batch, s.recompute, s.zero_stage, s.sequence_parallel)


def memory_reason(model: TransformerSpec, cluster: Cluster, s: Strategy) -> str:
    """Why the resolved layout ``s`` does not fit, by the term that overflows: ``out of memory:
    activations of 16 in-flight micro-batches x 8 layers: 63.3 GiB of 82.7 GiB (capacity 80 GiB)``
    (:attr:`planner.transformer.memory.Memory.overflow`)."""
    m = memory(model, s, cluster, BYTES_PER_ELEMENT[s.precision])
    return f"out of memory: {m.overflow}"


def check(model: TransformerSpec, cluster: Cluster, s: Strategy) -> tuple[Strategy | None, str | None]:
    """The resolved strategy, or the rule it breaks."""
    try:
        return check_layout(s, model, cluster), None
    except PlannerInputError as e:
        return None, f"breaks a rule: {e}"


_CATEGORIES = (
    ("bubble_s", "pipeline bubble"),
    ("tp_comm_s", "exposed tensor-parallel communication"),
    ("dp_comm_exposed_s", "exposed data-parallel communication"),
    ("pp_comm_exposed_s", "exposed pipeline communication"),
    ("cp_comm_s", "exposed context-parallel communication"),
    ("ep_comm_s", "expert-parallel all-to-all"),
    ("recompute_s", "recomputation"),
    ("host_overhead_s", "launch-bound layers (host overhead)"),
    ("optimizer_s", "optimizer step"),
)


def loss_reason(alt: Breakdown, win: Breakdown) -> str:
    """The breakdown category that grew most, in words, with the seconds it added."""
    deltas = [(getattr(alt, f) - getattr(win, f), label) for f, label in _CATEGORIES]
    other = (alt.compute_s - alt.recompute_s) - (win.compute_s - win.recompute_s)
    deltas.append((other, "slower kernels (smaller or less efficient GEMMs)"))
    deltas.sort(reverse=True)
    d, label = deltas[0]
    if d <= 0:
        return "no single part is larger; slower overall"
    second = f"; then {deltas[1][1]} +{deltas[1][0]:.2f} s" if deltas[1][0] > 0.1 * d else ""
    return f"{label} +{d:.2f} s{second}"


def explain(winner: Simulated, alts: list[tuple[str, Strategy, Simulated | None, str | None]]) -> list[Alternative]:
    """Alternatives with their reasons: ``alts`` holds (name, strategy, simulation or None, rule/memory)."""
    out = []
    for name, s, sim, why in alts:
        label = Layout.of(s).label if s.dp is not None else _raw_label(s)
        if sim is None:
            out.append(Alternative(name=name, layout=label, reason=why or "not simulated"))
            continue
        if sim.layout.label == winner.layout.label:
            continue  # the one-knob change is the winner itself (it won once simulated): nothing to explain
        slower = sim.step_time_s / winner.step_time_s - 1
        if slower <= 0:
            reason = "as fast as the winner" if slower > -1e-9 else "faster than the winner (the search missed it)"
        else:
            reason = loss_reason(sim.breakdown, winner.breakdown)
        out.append(
            Alternative(
                name=name, layout=sim.layout.label, step_time_s=sim.step_time_s, slower_by=slower, reason=reason
            )
        )
    return out


def _raw_label(s: Strategy) -> str:
    sp = " sp" if s.sequence_parallel else ""
    vpp = f" vpp{s.vpp}" if s.vpp > 1 else ""
    return f"tp{s.tp} pp{s.pp}{vpp} mb{s.micro_batch} rc={s.recompute} z{s.zero_stage}{sp}"
