"""Simulate: one training step of a model on some hardware with a layout."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from planner.app import charts
from planner.app.common import PENDING_KEY, calibration_option, catalog_ids, fmt, guarded, model_names, simulate_cached
from planner.recsys.spec import is_recsys_preset
from planner.transformer.strategy import PRECISION_CHOICES, RECOMPUTE_CHOICES, SCHEDULE_CHOICES

DEFAULTS: dict[str, Any] = {
    "sim_model": "gpt3-1.7b",
    "sim_hw_kind": "accelerator",
    "sim_accelerator": "h100-sxm-80gb",
    "sim_instance": "p5.48xlarge",
    "sim_gpus": 8,
    "sim_tp": 1,
    "sim_pp": 1,
    "sim_vpp": 1,
    "sim_cp": 1,
    "sim_ep": 1,
    "sim_micro_batch": 1,
    "sim_global_batch": 0,
    "sim_recompute": "none",
    "sim_zero_stage": 0,
    "sim_sequence_parallel": False,
    "sim_precision": "bf16",
    "sim_schedule": "default",
    "sim_cp_algorithm": "ring",
    "sim_moe_capacity_factor": 0.0,
    "sim_moe_imbalance": 1.0,
    "sim_moe_shared_expert_overlap": False,
    "sim_rs_global_batch": 65536,
    "sim_rs_sharding": "auto",
    "sim_rs_precision": "fp16",
}

SHARDING_CHOICES = ("auto", "table", "row", "column", "data")


def _init_state() -> None:
    pending = st.session_state.pop(PENDING_KEY, None)
    for k, v in DEFAULTS.items():
        if k not in st.session_state:
            st.session_state[k] = v
    if pending:
        for k, v in pending.items():
            st.session_state[f"sim_{k}"] = v


def _sidebar() -> tuple[str, tuple[str, str], int, dict[str, Any]]:
    ids = catalog_ids()
    sb = st.sidebar
    sb.header("Scenario")
    models = model_names(recsys=True)
    if st.session_state["sim_model"] not in models:
        models = [st.session_state["sim_model"], *models]
    model = sb.selectbox("Model (preset)", models, key="sim_model")
    kind = sb.radio("Hardware", ["accelerator", "instance"], key="sim_hw_kind", horizontal=True)
    hw = sb.selectbox(kind.capitalize(), ids[kind], key=f"sim_{kind}")
    gpus = sb.number_input("GPUs", min_value=1, step=1, key="sim_gpus")
    if is_recsys_preset(model):
        sb.header("Recommendation model")
        gb = sb.number_input("global batch (samples)", min_value=1, step=1024, key="sim_rs_global_batch")
        sharding = sb.selectbox("Embedding sharding", list(SHARDING_CHOICES), key="sim_rs_sharding")
        prec = sb.selectbox("Dense precision", ["fp16", "bf16", "tf32", "fp32"], key="sim_rs_precision")
        return model, (kind, hw), int(gpus), {"global_batch": int(gb), "sharding": sharding, "precision": prec}
    sb.header("Layout")
    c1, c2 = sb.columns(2)
    tp = c1.number_input("tp", min_value=1, step=1, key="sim_tp")
    pp = c2.number_input("pp", min_value=1, step=1, key="sim_pp")
    vpp = c1.number_input("vpp", min_value=1, step=1, key="sim_vpp")
    cp = c2.number_input("cp", min_value=1, step=1, key="sim_cp")
    ep = c1.number_input("ep", min_value=1, step=1, key="sim_ep")
    zero = c2.selectbox("ZeRO stage", [0, 1, 2, 3], key="sim_zero_stage")
    mb = c1.number_input("micro-batch", min_value=1, step=1, key="sim_micro_batch")
    gb = c2.number_input("global batch (0: default)", min_value=0, step=1, key="sim_global_batch")
    recompute = sb.selectbox("Recomputation", list(RECOMPUTE_CHOICES), key="sim_recompute")
    schedule = sb.selectbox("Pipeline schedule", ["default", *SCHEDULE_CHOICES], key="sim_schedule")
    sp = sb.checkbox("Sequence parallelism", key="sim_sequence_parallel")
    precision = sb.selectbox("Precision", list(PRECISION_CHOICES), key="sim_precision")
    with sb.expander("Experts and long context"):
        cp_algorithm = st.selectbox("Context-parallel algorithm", ["ring", "ulysses"], key="sim_cp_algorithm")
        capacity = st.number_input(
            "MoE capacity factor (0: dropless)", min_value=0.0, step=0.25, key="sim_moe_capacity_factor"
        )
        imbalance = st.number_input(
            "MoE load imbalance (busiest / mean)", min_value=1.0, step=0.1, key="sim_moe_imbalance"
        )
        shared_overlap = st.checkbox("Overlap shared experts with the all-to-all", key="sim_moe_shared_expert_overlap")
    fields: dict[str, Any] = {
        "tp": int(tp),
        "pp": int(pp),
        "vpp": int(vpp),
        "cp": int(cp),
        "ep": int(ep),
        "zero_stage": int(zero),
        "micro_batch": int(mb),
        "global_batch": int(gb) or None,
        "recompute": recompute,
        "schedule": None if schedule == "default" else schedule,
        "sequence_parallel": bool(sp),
        "precision": precision,
        "cp_algorithm": cp_algorithm,
        "moe_capacity_factor": float(capacity) or None,
        "moe_imbalance": float(imbalance),
        "moe_shared_expert_overlap": bool(shared_overlap),
    }
    return model, (kind, hw), int(gpus), {k: v for k, v in fields.items() if v is not None}


def _metrics(r: dict[str, Any]) -> None:
    mem, cost = r["memory"], r["cost"]
    recsys = r.get("kind") == "recsys"
    c = st.columns(6)
    c[0].metric("Step time", fmt(r["step_time_s"], ".4g", " s"))
    c[1].metric("Dense MFU" if recsys else "MFU", fmt(r["mfu"] * 100, ".1f", " %"))
    if recsys:
        c[2].metric("Samples/s", fmt(r["samples_per_s"], ",.0f"))
    else:
        c[2].metric("Tokens/s", fmt(r["tokens_per_s"], ",.0f"))
    c[3].metric("Memory peak / capacity", f"{mem['peak_gib']:.1f} / {mem['capacity_gib']:.0f} GiB")
    c[4].metric("$/hour", fmt(cost["usd_per_hour"], ",.2f"))
    if recsys:
        c[5].metric("$/B samples", fmt(cost["usd_per_billion_samples"], ".4g"))
    else:
        c[5].metric("$/M tokens", fmt(cost["usd_per_million_tokens"], ".4g"))
    if cost["price_source"]:
        st.caption(f"Price: {cost['price_source']} ({cost['price_date']})")
    elif cost["usd_per_hour"] is None:
        st.caption("No price: pick an instance to see costs.")
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


def render() -> None:
    st.title("Simulate one training step")
    _init_state()
    model, hardware, gpus, fields = _sidebar()
    with st.spinner("Simulating..."):
        out = guarded(simulate_cached, model, hardware, gpus, tuple(sorted({**fields, **calibration_option()}.items())))
    if out is None:
        return
    r = out["result"]
    recsys = r.get("kind") == "recsys"
    if recsys:
        counts = ", ".join(f"{n} {k.replace('_', '-')}" for k, n in r["sharding"].get("counts", {}).items())
        st.caption(f"{model} on {gpus} GPUs: embedding sharding {counts or fields['sharding']}")
    else:
        s = r["scenario"]["strategy"]
        st.caption(
            f"{model} on {r['scenario']['cluster']['name']}: tp{s['tp']} pp{s['pp']} dp{s['dp']} cp{s['cp']} "
            f"ep{s['ep']} vpp{s['vpp']}, micro-batch {s['micro_batch']}, global batch {s['global_batch']}, "
            f"{r['scenario']['micro_batches_per_replica']} micro-batches per replica, {s['precision']}"
        )
    _metrics(r)
    mem = r["memory"]
    if not mem["fits"]:
        where = f"rank {mem.get('rank')}" if recsys else f"pipeline rank {mem['pipeline_rank']}"
        st.warning(
            f"Does not fit: {mem['peak_gib']:.1f} GiB needed on {where}, {mem['capacity_gib']:.0f} GiB available."
            " Try more GPUs, another sharding, or (for transformers) more tp/pp, ZeRO or recomputation."
        )
    st.subheader("Timeline of the step")
    rows = out["gantt"]
    if len(rows) > charts.MAX_GANTT_ROWS:
        st.caption(f"Showing the first {charts.MAX_GANTT_ROWS:,} of {len(rows):,} bars; the trace file has them all.")
    st.altair_chart(charts.gantt_chart(rows))
    left, right = st.columns(2)
    with left:
        st.subheader("Breakdown")
        parts = charts.RECSYS_BREAKDOWN_PARTS if recsys else charts.BREAKDOWN_PARTS
        st.altair_chart(charts.breakdown_chart(r["breakdown"], parts))
    with right:
        st.subheader("Memory per accelerator")
        st.altair_chart(charts.memory_chart(mem, charts.RECSYS_MEMORY_PARTS if recsys else charts.MEMORY_PARTS))
    d1, d2 = st.columns(2)
    d1.download_button("Result (JSON)", json.dumps(r, indent=2), file_name="result.json", mime="application/json")
    d2.download_button("Trace (Perfetto)", out["trace"], file_name="trace.json", mime="application/json")
    st.caption("Open the trace at https://ui.perfetto.dev")
