"""The human-readable summary of a recommendation-model step (the CLI's text output; no modelling)."""

from __future__ import annotations

from planner.recsys.result import RecsysStepResult
from planner.uncertainty import band_text
from planner.units_format import wrap


def format_recsys(r: RecsysStepResult) -> str:
    """Throughput, step, breakdown, memory with the tables of the fullest rank, plan and cost."""
    sc = r.scenario
    m, c, st = sc["model"], sc["cluster"], sc["strategy"]
    b = r.breakdown
    mem = r.memory
    counts = ", ".join(f"{v} {k.replace('_', '-')}" for k, v in sorted(r.sharding["counts"].items()))
    lines = [
        *wrap(f"{m['name']} ({m['tables']} tables, {m['embedding_gib']:,.1f} GiB of embeddings, {m['interaction']}"
              f" interaction) on {c['num_gpus']} x {c['accelerator']} ({c['nodes']} node(s) of {c['gpus_per_node']})",
              indent="  "),  # fmt: skip
        f"global batch {st['global_batch']:,} ({st['local_batch']:,} per GPU), dense {st['precision']},"
        f" sparse optimizer {m['sparse_optimizer']}"
        + (f", framework {st['framework']}" if st.get("framework") else ""),
        f"sharding ({r.sharding['placement']}, {r.sharding['forced']}): {counts}",
        "",
        f"throughput       {r.samples_per_s:14,.0f} samples/s",
        f"step time        {r.step_time_s * 1e3:14.2f} ms" + band_text(r.uncertainty, 1e3, "ms"),
        f"dense MFU        {r.mfu:14.1%}   ({r.model_tflops_per_gpu:.1f} dense TFLOP/s per GPU)",
        "",
        f"breakdown (slowest rank {b.slowest_rank})",
    ]
    for name, v in (
        ("embedding lookups + update", b.embedding_s),
        ("all-to-all (exposed)", b.all_to_all_exposed_s),
        ("dense compute", b.dense_compute_s),
        ("all-reduce (exposed)", b.all_reduce_exposed_s),
        ("dense optimizer", b.optimizer_s),
        ("host overhead per step", b.host_s),
        ("idle", b.idle_s),
    ):
        if v > 0 or name.startswith(("embedding", "dense compute")):
            lines.append(f"  {name:30s} {v * 1e3:9.2f} ms  {v / r.step_time_s:6.1%}")
    fullest = next((p for p in mem.per_rank if p["rank"] == mem.rank), None)
    shown = (
        ", ".join(fullest["tables"][:12]) + (" ..." if fullest and len(fullest["tables"]) > 12 else "")
        if fullest
        else ""
    )
    lines += [
        "",
        f"memory per GPU   {mem.peak_gib:8.1f} GiB of {mem.capacity_gib:.0f} GiB  {'fits' if mem.fits else 'DOES NOT FIT'}"
        f"  (rank {mem.rank})",
        f"  embeddings {mem.embeddings_gib:.1f}, dense {mem.dense_gib:.2f}, activations {mem.activations_gib:.1f},"
        f" reserved {mem.reserved_gib:.1f} GiB; host {mem.host_gib_per_node:.1f} GiB per node",
        *wrap(f"  tables on rank {mem.rank}: {shown}", indent="    "),
    ]
    cost = r.cost
    if cost.usd_per_hour is not None:
        lines += [
            "",
            f"cost             ${cost.usd_per_hour:,.2f}/hour, ${cost.usd_per_billion_samples:,.2f} per billion samples",
            *wrap(f"  price: {cost.price_source} ({cost.price_date})", indent="    "),
        ]
    else:
        lines += ["", "cost             no price for this hardware (use --instance for a priced cloud instance)"]
    from planner.energy import format_energy

    lines += format_energy(r)
    return "\n".join(lines)
