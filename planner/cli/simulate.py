"""``planner simulate``: one training step of any model (planner.simulate), as text or JSON."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from planner.cli.common import (
    FORMULAS,
    add_calibration_arg,
    add_energy_args,
    add_hardware_args,
    add_json_arg,
    add_model_arg,
    add_strategy_args,
    calibration,
    energy_kwargs,
    hardware_kwargs,
    model_file,
    refuse_input_as_output,
    strategy_kwargs,
)
from planner.recsys.interaction import INTERACTION_KERNELS


def run(a: argparse.Namespace) -> int:
    """Simulate the step, write the trace if asked (never over the model or profile file), print."""
    from planner.registry import family_of_result
    from planner.simulate import simulate

    refuse_input_as_output("--trace", a.trace, [model_file(a.model), model_file(a.cluster), a.calibration])
    extra = {"sharding": a.sharding} if getattr(a, "sharding", None) else {}
    if getattr(a, "interaction_kernel", None):
        extra["interaction_kernel"] = a.interaction_kernel
    extra.update(energy_kwargs(a))
    r = simulate(
        a.model, seq_len=a.seq_len, calibration=calibration(a), **hardware_kwargs(a), **strategy_kwargs(a), **extra
    )
    if a.trace:
        n = r.write_trace(a.trace)
        if not a.json:
            print(f"trace: {n} events written to {a.trace} (open in https://ui.perfetto.dev)", file=sys.stderr)
    if a.json:
        print(r.model_dump_json(indent=2))
    else:
        print(family_of_result(r).format_text(r))
        print(f"calibration: {r.calibration}")
    return 0


def add_command(sub: Any) -> None:
    """The ``simulate`` subcommand."""
    sim = sub.add_parser(
        "simulate",
        help="predict one training step: time, MFU, memory, cost",
        description="Predict one training step of a model on a cluster with a parallel layout.",
        epilog=FORMULAS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arg(sim)
    add_hardware_args(sim)
    add_strategy_args(sim)
    add_energy_args(sim)
    add_json_arg(sim)
    sim.add_argument("--trace", metavar="FILE", help="write the step timeline as a Chrome/Perfetto trace")
    add_calibration_arg(sim)
    sim.add_argument(
        "--sharding",
        choices=("table", "row", "column", "data", "auto"),
        help="recommendation models: force one embedding sharding type on every table (default auto: planned)",
    )
    sim.add_argument(
        "--interaction-kernel",
        choices=INTERACTION_KERNELS,
        help="recommendation models: the dot interaction as one fused custom op, or as the framework's own "
        "bmm/triu/gather ops (default: the --framework's documented choice, else custom)",
    )
    sim.set_defaults(func=run)
