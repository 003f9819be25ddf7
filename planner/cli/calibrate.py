"""``planner calibrate``: fit calibration constants to measured runs or a profiler trace (planner.calibrate)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from planner.cli.common import (
    add_hardware_args,
    add_json_arg,
    add_strategy_args,
    given,
    hardware_kwargs,
    model_file,
    positive_int,
    refuse_input_as_output,
    strategy_kwargs,
)
from planner.errors import PlannerInputError


def _from_trace(a: argparse.Namespace, name: str) -> int:
    """Derive the constants a profiler trace pins down; write the profile; print the report."""
    from planner.calibrate import calibrate_trace, format_trace
    from planner.defaults import resolve_hardware
    from planner.registry import family_of, load_model

    model = load_model(a.model, a.seq_len)
    cluster = resolve_hardware(**hardware_kwargs(a))
    strategy = family_of(model).make_strategy(**strategy_kwargs(a))
    tr = calibrate_trace(a.trace, model, cluster, strategy, name=name, **given(a, "pipeline_rank"))
    tr.calibration().to_yaml(a.out, tr.metadata())
    print(tr.model_dump_json(indent=2) if a.json else format_trace(tr) + f"\n\nprofile written to {a.out}")
    return 0


def run(a: argparse.Namespace) -> int:
    """Fit (from CSV rows or a trace) and write the profile, never over one of the inputs."""
    refuse_input_as_output(
        "--out", a.out, [*a.file, *(a.holdout or ()), a.trace, model_file(a.model), model_file(a.cluster)]
    )
    name = a.name or Path(a.out).stem
    if a.trace:
        if a.file:
            raise PlannerInputError("file", "give either measured runs (CSV) or --trace, not both")
        return _from_trace(a, name)
    if not a.file:
        raise PlannerInputError("file", "give measured runs (CSV in the validation schema) or --trace TRACE.json")
    from planner.calibrate import calibrate_files, format_fit

    rep = calibrate_files(a.file, holdout=a.holdout or (), name=name, **given(a, "grid_points", "rounds", "folds"))
    rep.calibration().to_yaml(a.out, rep.metadata())
    print(rep.model_dump_json(indent=2) if a.json else format_fit(rep) + f"\n\nprofile written to {a.out}")
    return 0


def add_command(sub: Any) -> None:
    """The ``calibrate`` subcommand."""
    ca = sub.add_parser(
        "calibrate",
        help="fit the calibration constants to your own measured runs (or a profiler trace) into a profile",
        description=(
            "Fit the few global constants of planner's calibration (GEMM, attention, HBM, NCCL ring and NIC"
            " efficiencies, collective launch, per-layer host time), each within its physical range, to measured"
            " steps of one accelerator/cluster (CSV in the validation schema), reporting the error before and after"
            " on rows the fit did not see (cross-validation). With --trace, derive what a PyTorch profiler trace"
            " of one step pins down instead. Writes a profile for --calibration. See docs/calibration.md."
        ),
    )
    ca.add_argument("file", nargs="*", help="measured runs: CSV file(s) in the schema of shared/validation/README.md")
    ca.add_argument("--out", required=True, metavar="PROFILE.yaml", help="the profile to write")
    ca.add_argument("--name", help="the profile's name (default: the --out file's stem)")
    add_json_arg(ca, "the report")
    ca.add_argument("--holdout", nargs="+", metavar="CSV", help="report on these rows instead of cross-validating")
    ca.add_argument("--grid-points", type=positive_int("--grid-points"), help="values per constant (default 5)")
    ca.add_argument("--rounds", type=positive_int("--rounds"), help="coordinate-search rounds (default 2)")
    ca.add_argument("--folds", type=positive_int("--folds"), help="cross-validation folds above 10 rows (default 5)")
    tr = ca.add_argument_group("from a profiler trace (--trace and the run's model and layout)")
    tr.add_argument("--trace", metavar="TRACE.json", help="PyTorch profiler (Kineto) trace of one step on one rank")
    tr.add_argument("--model", default="gpt3-1.7b", help="model preset or YAML file of the traced run")
    tr.add_argument("--pipeline-rank", type=int, help="pipeline rank the trace was taken on (default 0)")
    add_hardware_args(ca)
    add_strategy_args(ca)
    ca.set_defaults(func=run)
