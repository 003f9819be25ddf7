"""Plain-text tables for ``planner search`` and ``planner compare`` (no modelling here)."""

from __future__ import annotations

from collections.abc import Sequence

from planner.search.rank import step_cost
from planner.search.types import CompareResult, CompareRow, RunPlan, SearchResult, Simulated
from planner.uncertainty import band_text


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Left-aligned columns sized to their widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        out.append(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return out


def _cost_cell(r: Simulated) -> str:
    if r.cost.usd_per_step is not None:
        return f"${r.cost.usd_per_step:,.2f}"
    return f"{r.cost.gpu_hours_per_step:.3f}"


def _money(x: float | None) -> str:
    return "-" if x is None else f"${x:,.0f}"


def format_run(run: RunPlan, gpus: int) -> list[str]:
    """The whole-run block: tokens, steps, days, goodput, dollars."""
    g = run.goodput
    lines = [
        f"  {run.tokens:.3g} tokens = {run.steps:,} steps of {run.tokens_per_step:,} tokens on {gpus} GPUs",
        f"  without failures {run.compute_days:,.1f} days; expected {run.wall_days:,.1f} days"
        f" (goodput {g.goodput:.1%}, about {g.expected_failures:,.0f} failures)",
        f"  checkpoint {g.checkpoint_bytes / 1e9:,.0f} GB in {g.checkpoint_write_s:,.0f} s every"
        f" {g.checkpoint_interval_s / 60:,.0f} min of training (Daly; Young {g.young_interval_s / 60:,.0f} min),"
        f" job MTBF {g.mtbf_s / 3600:,.1f} h, restart {g.restart_s / 60:,.1f} min",
    ]
    if run.usd is not None:
        lines.append(
            f"  cost {_money(run.usd)} expected ({_money(run.usd_without_failures)} without failures),"
            f" ${run.usd_per_million_tokens:,.3f} per million tokens; {run.gpu_hours:,.0f} GPU-hours"
        )
    else:
        lines.append(f"  {run.gpu_hours:,.0f} GPU-hours (no price for this hardware; use --instance)")
    lines.append("  assumptions: " + "; ".join(g.assumptions))
    return lines


def format_search(r: SearchResult) -> str:
    """The human report of a search: winner, top-k, Pareto front, alternatives, whole run, drops."""
    priced = any(x.cost.usd_per_step is not None for x in r.results)
    cost_head = "$/step" if priced else "GPU-h/step"
    t = r.timings_s
    counts = "/".join(str(k) for k in r.gpu_counts)
    lines = [
        f"{r.model} on {r.hardware} ({r.accelerator}), global batch {r.global_batch}"
        f" ({r.global_batch * r.seq_len:,} tokens/step), objective {r.objective}",
        f"searched {r.enumerated:,} layouts at {counts} GPUs: {r.evaluated:,} valid and estimated"
        f" ({r.evaluated / max(t['estimate'], 1e-9):,.0f}/s), {r.fits:,} fit in memory, {r.fully_simulated}"
        f" fully simulated; {t['total']:.1f} s"
        + (f" (estimate vs simulation: median error {r.estimate_error:.1%})" if r.estimate_error is not None else ""),
        "",
    ]
    w = r.results[0]
    b = w.breakdown
    lines += [
        f"winner: {w.layout.label} on {w.gpus} GPUs",
        *([f"  step time band{band_text(w.uncertainty)}"] if w.uncertainty else []),
        f"  step {w.step_time_s:.3f} s, MFU {w.mfu:.1%}, {w.tokens_per_s:,.0f} tokens/s,"
        f" memory {w.memory.peak_gib:.1f} of {w.memory.capacity_gib:.0f} GiB, {cost_head} {_cost_cell(w)}",
    ]
    parts = [
        ("compute", b.compute_s), ("  of which recomputation", b.recompute_s), ("tensor-parallel comm", b.tp_comm_s),
        ("data-parallel comm (exposed)", b.dp_comm_exposed_s), ("pipeline comm (exposed)", b.pp_comm_exposed_s),
        ("pipeline bubble", b.bubble_s), ("host overhead", b.host_overhead_s), ("optimizer", b.optimizer_s),
        ("context-parallel comm", b.cp_comm_s), ("expert-parallel comm", b.ep_comm_s),
    ]  # fmt: skip
    for name, v in parts:
        if v > 0 or name == "pipeline bubble":
            lines.append(f"    {name:30s} {v:8.3f} s  {v / w.step_time_s:6.1%}")
    if w.cost.price_source:
        lines.append(f"  price: {w.cost.price_source} ({w.cost.price_date})")
    lines += ["", f"top {len(r.results)}"]
    rows = [
        [str(i + 1), str(x.gpus), x.layout.label, f"{x.step_time_s:.3f}", f"{x.mfu:.1%}", f"{x.memory.peak_gib:.1f}",
         _cost_cell(x), f"{x.estimate_step_time_s:.3f}"]
        for i, x in enumerate(r.results)
    ]  # fmt: skip
    lines += table(["#", "GPUs", "layout", "step s", "MFU", "mem GiB", cost_head, "estimate s"], rows)
    lines += ["", "Pareto front (time against cost: nothing else is both faster and cheaper)"]
    rows = [[str(x.gpus), x.layout.label, f"{x.step_time_s:.3f}", _cost_cell(x), f"{x.mfu:.1%}"] for x in r.pareto]
    lines += table(["GPUs", "layout", "step s", cost_head, "MFU"], rows)
    if len(r.pareto) > 1:
        cheapest = min(r.pareto, key=step_cost)
        fastest = r.pareto[0]
        lines.append(
            f"  cheapest: {cheapest.gpus} GPUs, {step_cost(fastest) / step_cost(cheapest) - 1:.1%} cheaper per step"
            f" and {cheapest.step_time_s / fastest.step_time_s:.2f}x the time of the fastest"
        )
    if r.alternatives:
        lines += ["", f"why the usual alternatives lose (on {r.gpus} GPUs)"]
        rows = [
            [a.name, a.layout, "-" if a.step_time_s is None else f"{a.step_time_s:.3f}",
             "-" if a.slower_by is None else f"{a.slower_by:+.1%}", a.reason]
            for a in r.alternatives
        ]  # fmt: skip
        lines += table(["alternative", "layout", "step s", "vs winner", "why"], rows)
    if r.run is not None:
        lines += ["", "whole run (best layout)"] + format_run(r.run, w.gpus)
    if r.rejected:
        lines += ["", "layouts dropped"]
        lines += [f"  {v:8,}  {k}" for k, v in r.rejected.items()]
    return "\n".join(lines)


def _band_cell(r: CompareRow) -> str:
    """The step time's error band in a compare cell: ' (0.53-0.59)' (planner.uncertainty)."""
    u = r.uncertainty
    return "" if u is None else f" ({u.low_s:.2f}\u2013{u.high_s:.2f})"


def format_compare(c: CompareResult) -> str:
    """One row per instance type, best first, with the price's source and date."""
    lines = [f"{c.model}: {c.tokens:.3g} tokens, sorted by {c.objective} (failures and checkpoints included)", ""]
    asked = [(h, f, w) for h, f, w, v in _CONSTRAINTS if getattr(c, v) is not None]
    rows = []
    for r in c.results:
        if not r.fits or r.run is None:
            rows.append(
                [
                    r.instance,
                    r.accelerator,
                    str(r.gpus or "-"),
                    "does not run: " + (r.reason or "?"),
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
                + [""] * len(asked)
            )
            continue
        run = r.run
        rows.append([
            r.instance, r.accelerator, str(r.gpus), r.layout.label if r.layout else "-", f"{r.step_time_s:.2f}" + _band_cell(r),
            f"{r.mfu:.1%}", f"{run.wall_days:,.1f}", f"{run.goodput.goodput:.1%}", _money(run.usd),
            "-" if r.usd_per_million_tokens is None else f"${r.usd_per_million_tokens:,.3f}",
        ] + [_verdict(getattr(r, flag), word) for _, flag, word in asked])  # fmt: skip
    lines += table(
        ["instance", "accelerator", "GPUs", "best layout", "step s", "MFU", "days", "goodput", "cost", "$/M tokens"]
        + [head for head, _, _ in asked],
        rows,
    )
    lines += _constraint_notes(c)
    lines += ["", "prices"]
    for r in c.results:
        price = "no on-demand price" if r.usd_per_gpu_hour is None else f"${r.usd_per_gpu_hour:.2f}/GPU-hour"
        lines.append(f"  {r.instance}: {price}; {r.price_source} ({r.price_date})")
    first = next((r for r in c.results if r.run is not None), None)
    if first is not None and first.run is not None:
        lines += ["", "assumptions: " + "; ".join(first.run.goodput.assumptions)]
    return "\n".join(lines)


_CONSTRAINTS = (
    ("deadline", "meets_deadline", "late", "deadline_days"),
    ("budget", "within_budget", "over", "budget_usd"),
)
"""(column, CompareRow flag, word for a miss, CompareResult field that asks for it)"""


def _verdict(ok: bool | None, miss: str) -> str:
    return "no price" if ok is None else ("met" if ok else f"MISSED ({miss})")


def _constraint_notes(c: CompareResult) -> list[str]:
    """One line per asked constraint that some answered row misses, so a miss is never silent."""
    answered = [r for r in c.results if r.run is not None]
    notes = []
    if c.deadline_days is not None:
        late = [r.instance for r in answered if r.meets_deadline is False]
        if late:
            notes.append(f"deadline {c.deadline_days:g} days missed by: {', '.join(late)}")
    if c.budget_usd is not None:
        over = [r.instance for r in answered if r.within_budget is False]
        if over:
            notes.append(f"budget {_money(c.budget_usd)} exceeded by: {', '.join(over)}")
    return [""] + notes if notes else []
