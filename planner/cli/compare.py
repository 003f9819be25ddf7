"""``planner compare``: instance types side by side, best layout, days and dollars (planner.search.compare)."""

from __future__ import annotations

import argparse
from typing import Any

from planner.cli.common import (
    add_calibration_arg,
    add_framework_arg,
    add_json_arg,
    add_model_arg,
    add_run_args,
    given,
    positive_float,
    positive_int,
    print_with_calibration,
    search_kwargs,
)


def run(a: argparse.Namespace) -> int:
    """Compare the instances (defaults: the API's), then print."""
    from planner.search import compare
    from planner.search.format import format_compare

    instances = [x.strip() for x in a.instances.split(",") if x.strip()]
    r = compare(
        a.model,
        instances=instances,
        gpus=a.gpus,
        tokens=a.tokens,
        deadline_days=a.deadline_days,
        budget_usd=a.budget_usd,
        global_batch=a.global_batch,
        seq_len=a.seq_len,
        **search_kwargs(a),
        **given(a, "max_gpus", "objective", "framework"),
    )
    print_with_calibration(r, a, format_compare(r))
    return 0


def add_command(sub: Any) -> None:
    """The ``compare`` subcommand."""
    from planner.search.types import OBJECTIVES

    co = sub.add_parser(
        "compare",
        help="compare instance types: best layout, days and dollars to train",
        description=(
            "For each instance type, the best layout at --gpus (or the count that meets --deadline-days, or the"
            " fastest within --budget-usd, or the cheapest), with time and cost to train --tokens including"
            " failures and checkpoints."
        ),
    )
    add_model_arg(co)
    co.add_argument("--instances", required=True, help="comma-separated instance ids (planner catalog instances)")
    co.add_argument("--gpus", type=positive_int("--gpus"), help="GPUs on every instance type (default: chosen)")
    co.add_argument("--tokens", type=positive_float("--tokens"), help="tokens to train (default 20 x params)")
    co.add_argument("--deadline-days", type=positive_float("--deadline-days"), help="choose the GPUs that meet this")
    co.add_argument("--budget-usd", type=positive_float("--budget-usd"), help="choose the fastest within this")
    co.add_argument("--max-gpus", type=positive_int("--max-gpus"), help="largest count tried (default 4096)")
    co.add_argument("--objective", choices=OBJECTIVES, help="sort by total cost or time (default cost)")
    co.add_argument(
        "--global-batch", type=positive_int("--global-batch"), help="sequences per step (default ~4M tokens)"
    )
    co.add_argument("--seq-len", type=positive_int("--seq-len"), help="sequence length (default: the model's)")
    add_framework_arg(co)
    add_json_arg(co)
    add_calibration_arg(co)
    add_run_args(co)
    co.set_defaults(func=run)
