"""A simulated transformer step as text: layout, step time, breakdown, memory, cost, energy."""

from __future__ import annotations

from typing import Any

from planner.energy import format_energy
from planner.transformer.result import StepResult
from planner.uncertainty import band_text
from planner.units_format import wrap


def _cp_moe_note(st: dict[str, Any]) -> str:
    """The context-parallel algorithm and the MoE options of a layout, when they apply."""
    out = f" ({st.get('cp_algorithm', 'ring')})" if st["cp"] > 1 else ""
    if st.get("ep", 1) > 1:
        out += f"  ep {st['ep']}"
    if st.get("moe_capacity_factor") is not None:
        out += f"  capacity factor {st['moe_capacity_factor']:g}"
    if st.get("moe_imbalance", 1.0) > 1.0:
        out += f"  expert imbalance {st['moe_imbalance']:g}"
    if st.get("moe_shared_expert_overlap"):
        out += "  shared experts under the all-to-all"
    return out


def format_result(r: StepResult) -> str:
    """A transformer step as the CLI prints it (fits 100 columns)."""
    sc = r.scenario
    st = sc["strategy"]
    c = sc["cluster"]
    b = r.breakdown
    m = r.memory
    lines = [
        f"{sc['model']['name']} on {c['num_gpus']} x {c['accelerator']} ({c['nodes']} node(s) of {c['gpus_per_node']})",
        f"layout: tp {st['tp']}  pp {st['pp']}  dp {st['dp']}  cp {st['cp']}{_cp_moe_note(st)}  vpp {st['vpp']}"
        f"  micro-batch {st['micro_batch']}"
        f"  global batch {st['global_batch']} ({sc['micro_batches_per_replica']} micro-batch"
        f"{'' if sc['micro_batches_per_replica'] == 1 else 'es'}/replica)",
        *wrap(
            f"        {st['precision']}, recompute {st['recompute']}, ZeRO {st['zero_stage']}, schedule {st['schedule']},"
            f" sequence parallel {'on' if st['sequence_parallel'] else 'off'}, attention {st['attention']}"
            + (f", framework {st['framework']}" if st.get("framework") else ""),
            indent=" " * 8,
        ),
        "",
        f"step time        {r.step_time_s:10.3f} s" + band_text(r.uncertainty),
        f"MFU / HFU        {r.mfu:10.1%} / {r.hfu:.1%}",
        f"throughput       {r.tokens_per_s:10,.0f} tokens/s   ({r.model_tflops_per_gpu:.0f} model TFLOP/s per GPU)",
        "",
        "breakdown (busiest pipeline rank)",
    ]
    parts = [
        ("compute", b.compute_s), ("  of which recompute", b.recompute_s), ("tensor-parallel comm", b.tp_comm_s),
        ("context-parallel comm", b.cp_comm_s), ("expert-parallel comm", b.ep_comm_s),
        ("data-parallel comm (exposed)", b.dp_comm_exposed_s), ("pipeline comm (exposed)", b.pp_comm_exposed_s),
        ("pipeline bubble", b.bubble_s), ("host overhead (launch-bound)", b.host_overhead_s), ("optimizer", b.optimizer_s),
    ]  # fmt: skip
    for name, v in parts:
        if v > 0 or name in ("compute", "pipeline bubble"):
            lines.append(f"  {name:30s} {v:9.3f} s  {v / r.step_time_s:6.1%}")
    lines += [
        "",
        f"memory per GPU   {m.peak_gib:8.1f} GiB of {m.capacity_gib:.0f} GiB  {'fits' if m.fits else 'DOES NOT FIT'}"
        f"  (pipeline rank {m.pipeline_rank})",
        f"  weights {m.weights_gib:.1f}, gradients {m.gradients_gib:.1f}, optimizer {m.optimizer_gib:.1f},"
        f" activations {m.activations_gib:.1f}, reserved {m.reserved_gib:.1f} GiB",
    ]
    cost = r.cost
    if cost.usd_per_hour is not None:
        lines += [
            "",
            f"cost             ${cost.usd_per_hour:,.2f}/hour, ${cost.usd_per_step:,.4f}/step,"
            f" ${cost.usd_per_million_tokens:,.4f} per million tokens",
            *wrap(f"  price: {cost.price_source} ({cost.price_date})", indent="    "),
        ]
    else:
        lines += [
            "",
            "cost             no price for this hardware (use --instance for a priced cloud instance)",
        ]
    lines += format_energy(r)
    return "\n".join(lines)
