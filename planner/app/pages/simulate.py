"""Simulate: one training step of a model on some hardware with a layout."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from planner.app import charts
from planner.app.common import (
    PENDING_KEY,
    calibration_option,
    escape_md,
    guarded,
    search_cached,
    show_error,
    simulate_cached,
)
from planner.app.inputs import hardware_input, init_inputs, model_input
from planner.recsys.frameworks import RECSYS_FRAMEWORK_NAMES
from planner.transformer.frameworks import FRAMEWORK_NAMES
from planner.transformer.strategy import PRECISION_CHOICES, RECOMPUTE_CHOICES, SCHEDULE_CHOICES
from planner.units_format import fmt_seconds, fmt_usd

LAYOUT_KEYS: dict[str, Any] = {
    "sim_tp": 1, "sim_pp": 1, "sim_vpp": 1, "sim_cp": 1, "sim_ep": 1, "sim_micro_batch": 1,
    "sim_global_batch": 0, "sim_recompute": "none", "sim_zero_stage": 0, "sim_sequence_parallel": False,
    "sim_precision": "bf16", "sim_schedule": "default", "sim_cp_algorithm": "ring",
    "sim_moe_capacity_factor": 0.0, "sim_moe_imbalance": 1.0, "sim_moe_shared_expert_overlap": False,
    "sim_rs_global_batch": 0, "sim_rs_sharding": "auto", "sim_rs_precision": "default",
    "sim_framework": "none", "sim_rs_framework": "none",
}  # fmt: skip
"""The layout's widgets at the layout the API resolves when given nothing (1 of each, no ZeRO,
no recomputation); 0 means "let planner choose" (global batch) or "dropless" (capacity factor)."""

SHARDING_CHOICES = ("auto", "table", "row", "column", "data")
FILL_KEY = "sim_gb_fill"
"""The global batch the last run used when the user left it to planner: written into the input on
the next run, so changing the layout keeps the batch (and the step stays comparable)."""


def _init_state() -> None:
    init_inputs()
    pending = st.session_state.pop(PENDING_KEY, None)
    for k, v in LAYOUT_KEYS.items():
        st.session_state.setdefault(k, v)
    fill = st.session_state.pop(FILL_KEY, None)
    if fill and not st.session_state.get("sim_global_batch"):
        st.session_state["sim_global_batch"] = fill
    if pending:
        for k, v in pending.items():
            st.session_state[k if k.startswith("in_") else f"sim_{k}"] = v


def _recsys_fields() -> dict[str, Any]:
    sb = st.sidebar
    sb.header("Recommendation model")
    gb = sb.number_input("Global batch (samples; 0: planner's)", min_value=0, step=1024, key="sim_rs_global_batch")
    sharding = sb.selectbox("Embedding sharding", list(SHARDING_CHOICES), key="sim_rs_sharding")
    prec = sb.selectbox("Dense precision", ["default", "fp16", "bf16", "tf32", "fp32"], key="sim_rs_precision",
                        help="default: the API's (planner.recsys.strategy.RecsysStrategy)")  # fmt: skip
    fw = sb.selectbox("Framework", ["none", *RECSYS_FRAMEWORK_NAMES], key="sim_rs_framework",
                      help="documented choices of the training stack (planner/recsys/frameworks.py)")  # fmt: skip
    fields = {"global_batch": int(gb) or None, "sharding": sharding, "precision": None if prec == "default" else prec,
              "framework": None if fw == "none" else fw}  # fmt: skip
    return {k: v for k, v in fields.items() if v}


def _layout_fields() -> dict[str, Any]:
    sb = st.sidebar
    sb.header("Layout")
    c1, c2 = sb.columns(2)
    tp = c1.number_input("tp", min_value=1, step=1, key="sim_tp")
    pp = c2.number_input("pp", min_value=1, step=1, key="sim_pp")
    vpp = c1.number_input("vpp", min_value=1, step=1, key="sim_vpp")
    cp = c2.number_input("cp", min_value=1, step=1, key="sim_cp")
    ep = c1.number_input("ep", min_value=1, step=1, key="sim_ep")
    zero = c2.selectbox("ZeRO stage", [0, 1, 2, 3], key="sim_zero_stage")
    mb = c1.number_input("Micro-batch", min_value=1, step=1, key="sim_micro_batch")
    gb = c2.number_input("Global batch (0: planner's)", min_value=0, step=1, key="sim_global_batch")
    recompute = sb.selectbox("Recomputation", list(RECOMPUTE_CHOICES), key="sim_recompute")
    schedule = sb.selectbox("Pipeline schedule", ["default", *SCHEDULE_CHOICES], key="sim_schedule")
    sp = sb.checkbox("Sequence parallelism", key="sim_sequence_parallel")
    precision = sb.selectbox("Precision", list(PRECISION_CHOICES), key="sim_precision")
    framework = sb.selectbox("Framework", ["none", *FRAMEWORK_NAMES], key="sim_framework",
                             help="fills the choices you leave unset (attention kernel, overlap, optimizer sharding)"
                             " from the framework's documented defaults (planner/transformer/frameworks.py)")  # fmt: skip
    with sb.expander("Experts and long context"):
        cp_algorithm = st.selectbox("Context-parallel algorithm", ["ring", "ulysses"], key="sim_cp_algorithm")
        capacity = st.number_input("MoE capacity factor (0: dropless)", min_value=0.0, step=0.25,
                                   key="sim_moe_capacity_factor")  # fmt: skip
        imbalance = st.number_input("MoE load imbalance (busiest / mean)", min_value=1.0, step=0.1,
                                    key="sim_moe_imbalance")  # fmt: skip
        shared_overlap = st.checkbox("Overlap shared experts with the all-to-all", key="sim_moe_shared_expert_overlap")
    fields: dict[str, Any] = {
        "tp": int(tp), "pp": int(pp), "vpp": int(vpp), "cp": int(cp), "ep": int(ep), "zero_stage": int(zero),
        "micro_batch": int(mb), "global_batch": int(gb) or None, "recompute": recompute,
        "schedule": None if schedule == "default" else schedule, "sequence_parallel": bool(sp),
        "precision": precision, "cp_algorithm": cp_algorithm, "moe_capacity_factor": float(capacity) or None,
        "moe_imbalance": float(imbalance), "moe_shared_expert_overlap": bool(shared_overlap),
        "framework": None if framework == "none" else framework,
    }  # fmt: skip
    # a widget left at its default is not sent: the API's default (or the framework's) applies, as on the CLI
    return {k: v for k, v in fields.items() if v is not None and v != LAYOUT_KEYS.get(f"sim_{k}")}


def _sidebar() -> tuple[str, tuple[str, str], int | None, dict[str, Any], bool]:
    st.sidebar.header("Scenario")
    model = model_input(recsys=True)
    hardware, gpus = hardware_input()
    from planner.app.common import resolve
    from planner.registry import family_of, load_model

    recsys = family_of(load_model(resolve(model))).kind == "recsys"
    fields = _recsys_fields() if recsys else _layout_fields()
    return model, hardware, gpus, fields, recsys


def _compact(v: float | None) -> str:
    """Large rates in k/M so the metric fits its column."""
    if v is None:
        return "—"
    for div, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(v) >= 10 * div:
            x = v / div
            return (f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}") + unit
    return f"{v:,.0f}"


def _metrics(r: dict[str, Any], recsys: bool) -> None:
    """Eight headline figures, four per row, values short enough for a 1,100 px window; greyed
    (and marked) when the layout does not fit in memory."""
    mem, cost = r["memory"], r["cost"]
    box = st.container(key="sim_metrics_oom" if not mem["fits"] else "sim_metrics")
    if not mem["fits"]:
        st.html("<style>.st-key-sim_metrics_oom [data-testid='stMetricValue']{color:#b0b0b0}</style>")
    rate = ("Samples/s", r["samples_per_s"]) if recsys else ("Tokens/s", r["tokens_per_s"])
    unit_cost = (
        ("$/B samples", cost.get("usd_per_billion_samples"))
        if recsys
        else ("$/M tokens", cost.get("usd_per_million_tokens"))
    )
    figures = [
        ("Step time", fmt_seconds(r["step_time_s"])),
        ("Dense MFU" if recsys else "MFU", f"{r['mfu'] * 100:.1f} %"),
        ("HFU", f"{r['hfu'] * 100:.1f} %" if r.get("hfu") is not None else "—"),
        ("TFLOP/s per GPU", f"{r['hardware_tflops_per_gpu']:,.0f}" if r.get("hardware_tflops_per_gpu") else "—"),
        (rate[0], _compact(rate[1])),
        (f"Memory (of {mem['capacity_gib']:.0f} GiB)", f"{mem['peak_gib']:,.1f} GiB"),
        ("$/hour", fmt_usd(cost["usd_per_hour"], small=True)),
        (unit_cost[0], fmt_usd(unit_cost[1], small=True) if unit_cost[1] is not None else "—"),
    ]
    for start in (0, 4):
        cols = box.columns(4)
        for c, (label, value) in zip(cols, figures[start : start + 4], strict=True):
            c.metric(label, value)
    band = r.get("uncertainty")
    if band:
        st.caption(escape_md(
            f"Step time band: {fmt_seconds(band['low_s'])} to {fmt_seconds(band['high_s'])}, the 10th-90th percentile"
            f" of the cross-validated errors of {band['rows']} comparable published runs ({band['group']})."
        ))  # fmt: skip
    if cost["price_source"]:
        st.caption(escape_md(f"Price of {cost['price_date']}; source: {cost['price_source']}"))
    elif cost["usd_per_hour"] is None:
        st.caption("No price for this hardware: pick a priced instance to see costs.")


def _energy(r: dict[str, Any]) -> None:
    e = r.get("energy")
    if e:
        st.caption(
            f"Energy: {e['kwh_per_step']:.4g} kWh/step at the meter (PUE {e['pue']:g}),"
            f" {e['avg_accelerator_power_w']:,.0f} W average per GPU, {e['co2_kg_per_step']:.3g} kg CO2e/step"
            f" at {e['grid_gco2_per_kwh']:g} g/kWh, electricity ${e['energy_usd_per_step']:.3g}/step"
            f" at ${e['usd_per_kwh']:g}/kWh (defaults and sources: planner.energy)."
        )
    else:
        st.caption("Energy: no power figure for this accelerator in the catalog, so no estimate.")


def _layout_distance(lay: dict[str, Any], fields: dict[str, Any]) -> int:
    keys = ("tp", "pp", "vpp", "cp", "ep", "micro_batch", "recompute", "zero_stage", "sequence_parallel")
    return sum(lay.get(k) != fields.get(k, LAYOUT_KEYS[f"sim_{k}"]) for k in keys)


def _nearest_fit(
    model: str, hardware: tuple[str, str], gpus: int | None, fields: dict[str, Any], calib: dict[str, str]
) -> None:
    """Offer the layout that fits and changes fewest knobs, among the search's best on the same inputs."""
    if not st.button("Find the nearest layout that fits", key="sim_fit_btn"):
        return
    opts = {"top": 50, "alternatives": False, "min_gpus": gpus}
    if "global_batch" in fields:
        opts["global_batch"] = fields["global_batch"]
    with st.spinner("Searching layouts that fit..."):
        res = guarded(search_cached, model, hardware, gpus, tuple(sorted({**opts, **calib}.items())))
    if not res or not res["results"]:
        return
    best = min(res["results"], key=lambda s: (_layout_distance(s["layout"], fields), s["step_time_s"]))
    lay = best["layout"]
    st.session_state[PENDING_KEY] = {k: lay[k] for k in ("tp", "pp", "vpp", "cp", "ep", "micro_batch", "recompute",
                                                          "zero_stage", "sequence_parallel", "global_batch")}  # fmt: skip
    st.rerun()


def _caption(model_name: str, r: dict[str, Any], recsys: bool, gb_given: bool) -> None:
    if recsys:
        counts = ", ".join(f"{n} {k.replace('_', '-')}" for k, n in r["sharding"].get("counts", {}).items())
        st.caption(escape_md(f"{model_name}: embedding sharding {counts}"))
        return
    s, cl = r["scenario"]["strategy"], r["scenario"]["cluster"]
    st.caption(
        escape_md(
            f"{model_name} on {cl['name']}: tp{s['tp']} pp{s['pp']} dp{s['dp']} cp{s['cp']} ep{s['ep']} vpp{s['vpp']},"
            f" micro-batch {s['micro_batch']}, {r['scenario']['micro_batches_per_replica']} micro-batches per replica,"
            f" {s['precision']}, schedule {s['schedule']}"
        )
    )
    seqs = s["global_batch"]
    tokens = seqs * r["scenario"]["model"].get("seq_len", 0)
    how = "as given" if gb_given else "planner's default for this layout, now kept in the input"
    st.info(escape_md(f"Global batch: {seqs:,} sequences ({tokens / 1e6:,.2f} M tokens) per step, {how}."))
    if not gb_given:
        st.session_state[FILL_KEY] = seqs
    gpn = cl.get("gpus_per_node") or 0
    if gpn and s["tp"] * s.get("cp", 1) > gpn:
        st.warning(
            f"tp {s['tp']} x cp {s['cp']} spans {s['tp'] * s['cp'] // gpn} nodes of {gpn} GPUs: its collectives"
            " cross the inter-node network, which is usually much slower than the links inside a node."
        )


def render() -> None:
    st.title("Simulate one training step")
    _init_state()
    model, hardware, gpus, fields, recsys = _sidebar()
    gb_given = "global_batch" in fields
    with st.spinner("Simulating..."):
        calib = calibration_option()
        out = guarded(simulate_cached, model, hardware, gpus, tuple(sorted({**fields, **calib}.items())))
    if out is None:
        return
    r = out["result"]
    name = st.session_state["in_model"]
    _caption(name, r, recsys, gb_given)
    mem = r["memory"]
    if not mem["fits"]:
        where = f"rank {mem.get('rank')}" if recsys else f"pipeline rank {mem['pipeline_rank']}"
        show_error(
            f"Does not fit: {mem['peak_gib']:.1f} GiB needed on {where}, {mem['capacity_gib']:.0f} GiB available;"
            " the figures below are for a step that cannot run."
        )
        if not recsys:
            _nearest_fit(model, hardware, gpus, fields, calib)
    _metrics(r, recsys)
    _energy(r)
    st.subheader("Timeline of the step")
    rows = out["gantt"]
    if len(rows) > charts.MAX_GANTT_ROWS:
        st.caption(f"Showing the first {charts.MAX_GANTT_ROWS:,} of {len(rows):,} bars; the trace file has them all.")
    st.altair_chart(charts.gantt_chart(rows), width="stretch")
    left, right = st.columns(2)
    with left:
        st.subheader("Breakdown")
        st.altair_chart(charts.breakdown_chart(charts.breakdown_rows(r["breakdown"], recsys)), width="stretch")
    with right:
        st.subheader("Memory per accelerator")
        parts = charts.RECSYS_MEMORY_PARTS if recsys else charts.MEMORY_PARTS
        st.altair_chart(charts.memory_chart(mem, parts), width="stretch")
    d1, d2, d3 = st.columns([1, 1, 3])
    d1.download_button("Result (JSON)", json.dumps(r, indent=2), file_name="result.json", mime="application/json")
    d2.download_button("Trace (Perfetto)", out["trace"], file_name="trace.json", mime="application/json")
    d3.caption("Open the trace at https://ui.perfetto.dev")
