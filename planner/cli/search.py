"""``planner search``: the best layout of any model (planner.search.dispatch picks the family's search)."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from planner.cli.common import (
    FORMULAS,
    add_calibration_arg,
    add_framework_arg,
    add_hardware_args,
    add_json_arg,
    add_model_arg,
    add_run_args,
    given,
    hardware_kwargs,
    positive_float,
    positive_int,
    print_with_calibration,
    search_kwargs,
)


def run(a: argparse.Namespace) -> int:
    """Search (every default, the fewest GPUs included, is the API's), then print."""
    from planner.search.dispatch import format_any_search, search_any
    from planner.search.types import SearchResult

    r = search_any(
        a.model,
        seq_len=a.seq_len,
        global_batch=a.global_batch,
        min_gpus=a.min_gpus,
        tokens=a.tokens,
        **search_kwargs(a),
        **hardware_kwargs(a),
        **given(a, "objective", "top", "framework"),
    )
    if not isinstance(r, SearchResult):  # the recommendation search's result names no calibration
        print(r.model_dump_json(indent=2) if a.json else format_any_search(r))
        return 0
    print_with_calibration(r, a, format_any_search(r))
    return 0


def add_command(sub: Any) -> None:
    """The ``search`` subcommand."""
    from planner.search.types import OBJECTIVES

    se = sub.add_parser(
        "search",
        help="find the best layout: enumerate, estimate, simulate the finalists, rank",
        description=textwrap.fill(  # the raw formatter keeps the definitions' layout, so wrap this here
            "Enumerate every valid layout (tp, pp, vpp, dp, micro-batch, recomputation, ZeRO, sequence"
            " parallelism), drop what breaks a rule or does not fit, estimate the rest in closed form, fully"
            " simulate the finalists and rank them. Also tries halvings of --gpus down to --min-gpus for the"
            " Pareto front of time against cost.",
            width=100,
        ),
        epilog=FORMULAS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arg(se)
    add_hardware_args(se)
    se.add_argument(
        "--global-batch",
        type=positive_int("--global-batch"),
        help="sequences per step (default ~4M tokens; recommendation models: samples, default the model's)",
    )
    se.add_argument("--seq-len", type=positive_int("--seq-len"), help="sequence length (default: the model's)")
    se.add_argument("--objective", choices=OBJECTIVES, help="rank by step time or cost (default time)")
    se.add_argument("--top", type=positive_int("--top"), help="layouts to list (default 10)")
    se.add_argument(
        "--min-gpus", type=positive_int("--min-gpus"), help="also try halvings down to this (default GPUs/4)"
    )
    se.add_argument("--tokens", type=positive_float("--tokens"), help="tokens of the whole run (default 20 x params)")
    add_framework_arg(se)
    add_json_arg(se)
    add_calibration_arg(se)
    add_run_args(se)
    se.set_defaults(func=run)
