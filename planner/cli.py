"""The ``planner`` command line. It holds no modelling: every number comes from the Python API.

A user mistake prints one line on stderr naming the field and the rule, and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from planner.errors import PlannerInputError

FORMULAS = """\
definitions:
  MFU = model FLOPs per step / (step time x GPUs x dense peak FLOP/s of the precision)
  model FLOPs per token = 3 x (2 x matmul parameters incl. LM head + 4 x layers x seq_len x heads x head_dim)
      (heads x head_dim = hidden unless the model sets head_dim; MoE: the experts a token visits)
      (attention over the whole sequence, not halved for causal masking: PaLM / Megatron-LM)
  HFU = as MFU, adding the FLOPs of recomputed forward passes
  step time = wall time of one optimizer step over the global batch
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"planner: error: {message} (see '{self.prog} --help')\n")


def _positive(name: str, kind: type[int] | type[float] = int) -> Callable[[str], float]:
    """An argparse type that accepts only a positive number of ``kind``, naming the flag if not."""
    what = "an integer" if kind is int else "a number"

    def conv(text: str) -> float:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got '{text}'") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(
                f"{name} must be {'a positive integer' if kind is int else '> 0'}, got {text}"
            )
        return v

    conv.__name__ = name
    return conv


def _positive_int(name: str) -> Callable[[str], float]:
    return _positive(name, int)


def _positive_float(name: str) -> Callable[[str], float]:
    return _positive(name, float)


def _at_least_one(name: str) -> Callable[[str], float]:
    """An argparse type for a ratio that cannot be below 1, naming the flag if it is."""

    def conv(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got '{text}'") from None
        if not v >= 1.0:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1 (1 = perfectly balanced), got {text}")
        return v

    conv.__name__ = name
    return conv


def add_hardware_args(p: argparse.ArgumentParser) -> None:
    hw = p.add_argument_group("hardware (name one of --cluster, --instance, --accelerator)")
    hw.add_argument("--cluster", help="catalog cluster id or a cluster YAML file")
    hw.add_argument("--instance", help="cloud instance id (e.g. p5.48xlarge); nodes follow from --gpus")
    hw.add_argument("--accelerator", help="accelerator id on its standard node (default h100-sxm-80gb)")
    hw.add_argument("--gpus", type=_positive_int("--gpus"), help="number of accelerators (default 8)")
    hw.add_argument("--gpus-per-node", type=_positive_int("--gpus-per-node"), help="override the node's GPU count")
    hw.add_argument(
        "--inter-node-gbps-per-gpu",
        type=_positive_float("--inter-node-gbps-per-gpu"),
        help="override scale-out Gb/s per GPU",
    )


def add_strategy_args(p: argparse.ArgumentParser) -> None:
    from planner.transformer.strategy import PRECISION_CHOICES, RECOMPUTE_CHOICES, SCHEDULE_CHOICES

    st = p.add_argument_group("layout and training options")
    for flag, help_ in (
        ("--tp", "tensor-parallel degree (default 1)"),
        ("--pp", "pipeline-parallel degree (default 1)"),
        ("--dp", "data-parallel degree (default GPUs / (tp*pp*cp))"),
        ("--cp", "context-parallel degree (default 1)"),
        ("--ep", "expert-parallel degree (default 1)"),
        ("--vpp", "virtual pipeline stages per rank, interleaved 1F1B (default 1)"),
        ("--micro-batch", "sequences per micro-batch (default 1)"),
        ("--global-batch", "sequences per step (default 4 x pp micro-batches per replica)"),
        ("--seq-len", "sequence length (default: the model's)"),
    ):
        st.add_argument(flag, type=_positive_int(flag), help=help_)
    st.add_argument("--recompute", choices=RECOMPUTE_CHOICES, help="activation recomputation (default none)")
    st.add_argument("--zero", type=int, choices=(0, 1, 2, 3), help="ZeRO stage; 3 = FSDP full shard (default 0)")
    st.add_argument("--sequence-parallel", action="store_true", default=None, help="Megatron sequence parallelism")
    st.add_argument("--precision", choices=PRECISION_CHOICES, help="training precision (default bf16)")
    st.add_argument(
        "--schedule", choices=SCHEDULE_CHOICES, help="pipeline schedule (default 1f1b; interleaved when vpp > 1)"
    )
    st.add_argument("--attention", choices=("flash", "unfused"), help="attention kernel (default flash)")
    st.add_argument(
        "--tp-comm-overlap",
        action="store_true",
        default=None,
        help="overlap tensor-parallel collectives with GEMMs (Transformer Engine userbuffers; needs tp > 1)",
    )
    st.add_argument(
        "--cp-algorithm",
        choices=("ring", "ulysses"),
        help="context parallelism: ring attention or DeepSpeed-Ulysses all-to-all (default ring)",
    )
    st.add_argument(
        "--moe-capacity-factor",
        type=_positive_float("--moe-capacity-factor"),
        help="MoE: cap and pad each expert to this x the mean tokens (default: dropless)",
    )
    st.add_argument(
        "--moe-imbalance",
        type=_at_least_one("--moe-imbalance"),
        help="MoE, dropless, ep > 1: busiest expert-parallel rank's tokens / the mean, >= 1 (default 1)",
    )
    st.add_argument(
        "--moe-shared-expert-overlap",
        action="store_true",
        default=None,
        help="MoE: run the shared experts under the dispatch/combine all-to-all (Megatron-Core)",
    )
    st.add_argument(
        "--no-dp-overlap",
        dest="dp_overlap",
        action="store_false",
        default=None,
        help="reduce gradients after the backward pass",
    )
    st.add_argument(
        "--bucket-mb",
        type=_positive_float("--bucket-mb"),
        help="gradient bucket, millions of parameters (default 40)",
    )


def strategy_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    names = {
        "tp": "tp", "pp": "pp", "dp": "dp", "cp": "cp", "ep": "ep", "vpp": "vpp",
        "micro_batch": "micro_batch", "global_batch": "global_batch", "recompute": "recompute",
        "zero": "zero_stage", "sequence_parallel": "sequence_parallel", "precision": "precision",
        "schedule": "schedule", "attention": "attention", "dp_overlap": "dp_overlap", "bucket_mb": "bucket_mb",
        "cp_algorithm": "cp_algorithm", "moe_capacity_factor": "moe_capacity_factor",
        "moe_imbalance": "moe_imbalance", "moe_shared_expert_overlap": "moe_shared_expert_overlap",
        "tp_comm_overlap": "tp_comm_overlap",
    }  # fmt: skip
    return {dst: getattr(a, src) for src, dst in names.items() if getattr(a, src, None) is not None}


def hardware_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    return {
        "cluster": a.cluster,
        "instance": a.instance,
        "accelerator": a.accelerator,
        "gpus": a.gpus if (a.gpus is not None or a.cluster) else 8,
        "gpus_per_node": a.gpus_per_node,
        "inter_node_gbps_per_gpu": a.inter_node_gbps_per_gpu,
    }


def add_calibration_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--calibration",
        metavar="PROFILE.yaml",
        help="calibration profile (from 'planner calibrate'; default: planner's global calibration)",
    )


def _calibration(a: argparse.Namespace) -> Any:
    """The --calibration profile, or None (planner's default)."""
    from planner.calibration import load_calibration

    path = getattr(a, "calibration", None)
    return load_calibration(path) if path else None


def _calibration_name(a: argparse.Namespace) -> str:
    c = _calibration(a)
    return c.name if c is not None else "default"


def _with_calibration(r: Any, a: argparse.Namespace) -> str:
    """A result's JSON with the calibration's name (search and compare results do not carry it)."""
    d = json.loads(r.model_dump_json())
    d.setdefault("calibration", _calibration_name(a))
    return json.dumps(d, indent=2)


# ------------------------------------------------------------------------------------ commands


def cmd_simulate(a: argparse.Namespace) -> int:
    from planner.registry import family_of_result
    from planner.simulate import simulate

    extra = {"sharding": a.sharding} if getattr(a, "sharding", None) else {}
    extra.update(energy_kwargs(a))
    r = simulate(
        a.model, seq_len=a.seq_len, calibration=_calibration(a), **hardware_kwargs(a), **strategy_kwargs(a), **extra
    )
    if a.trace:
        try:
            n = r.write_trace(a.trace)
        except OSError as e:
            raise PlannerInputError("trace", f"cannot write {a.trace}: {e.strerror}") from None
        if not a.json:
            print(f"trace: {n} events written to {a.trace} (open in https://ui.perfetto.dev)", file=sys.stderr)
    if a.json:
        print(r.model_dump_json(indent=2))
    else:
        print(family_of_result(r).format_text(r))
        print(f"calibration: {r.calibration}")
    return 0


def add_energy_args(p: argparse.ArgumentParser) -> None:
    """Site figures for the energy estimate (planner.energy: model, defaults and their sources)."""
    from planner.energy import DEFAULT_GRID_GCO2_PER_KWH, DEFAULT_PUE, DEFAULT_USD_PER_KWH

    en = p.add_argument_group("energy (kWh, CO2e and electricity cost of the step)")
    en.add_argument(
        "--pue",
        type=float,
        help=f"facility power / IT power, >= 1 (default {DEFAULT_PUE}: Uptime Institute 2023 average; hyperscale ~1.1)",
    )
    en.add_argument(
        "--grid-gco2-per-kwh",
        type=float,
        help=f"grid carbon intensity, gCO2e/kWh (default {DEFAULT_GRID_GCO2_PER_KWH:g}: Ember, world 2022)",
    )
    en.add_argument(
        "--usd-per-kwh",
        type=float,
        help=f"electricity price (default {DEFAULT_USD_PER_KWH}: EIA, US industrial 2023)",
    )
    en.add_argument("--tokens", type=_positive_float("--tokens"), help="tokens of the whole run, for per-run energy")


def energy_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    names = ("pue", "grid_gco2_per_kwh", "usd_per_kwh", "tokens")
    return {k: getattr(a, k) for k in names if getattr(a, k, None) is not None}


def cmd_catalog(a: argparse.Namespace) -> int:
    from planner.hardware import catalog
    from planner.transformer.spec import _preset_data

    cat = catalog()
    tables: dict[str, list[dict[str, Any]]] = {}
    what = a.what
    if what in (None, "accelerators"):
        tables["accelerators"] = [
            {
                "id": x.id,
                "name": x.name,
                "bf16_tflops": x.peak_tflops.get("bf16") or x.peak_tflops.get("fp16"),
                "fp8_tflops": x.peak_tflops.get("fp8"),
                "memory_gib": x.memory_gib,
                "memory_bandwidth_gb_s": x.memory_bandwidth_gb_s,
                "scale_up_gb_s": x.scale_up_gb_s,
            }
            for x in cat.accelerators.values()
        ]
    if what in (None, "instances"):
        tables["instances"] = [
            {
                "id": i.id,
                "provider": i.provider,
                "accelerator": cat.node_types[i.node_type].accelerator,
                "gpus": cat.node_types[i.node_type].gpus_per_node,
                "usd_per_hour": i.usd_per_hour,
                "region": i.region,
                "price_date": i.price_date,
            }
            for i in cat.instances.values()
        ]
    if what in (None, "clusters"):
        tables["clusters"] = []
        for c in cat.clusters.values():
            node = cat.node_type(c.node_type)
            tables["clusters"].append(
                {
                    "id": c.id,
                    "node_type": node.id,
                    "nodes": c.nodes,
                    "gpus": c.nodes * node.gpus_per_node,
                    "description": c.description,
                }
            )
    if what in (None, "models"):
        tables["models"] = []
        from planner.transformer.spec import transformer_from_dict

        for name, d in sorted(_preset_data().items()):
            spec = transformer_from_dict(d)
            tables["models"].append(
                {"id": name, "params_b": round(spec.num_params / 1e9, 2), "layers": spec.num_layers,
                 "hidden": spec.hidden_size, "heads": spec.num_heads, "kv_heads": spec.kv_heads, "seq_len": spec.seq_len}
            )  # fmt: skip
        from planner.recsys.spec import load_recsys, recsys_preset_names

        tables["recsys_models"] = []
        for name in recsys_preset_names():
            rs = load_recsys(name)
            tables["recsys_models"].append(
                {"id": name, "tables": len(rs.tables), "embeddings_gib": round(rs.embedding_bytes / 2**30, 1),
                 "params_b": round(rs.num_params / 1e9, 2)}
            )  # fmt: skip
    if a.json:
        print(json.dumps(tables, indent=2))
        return 0
    for name, rows in tables.items():
        print(f"{name} ({len(rows)})")
        if not rows:
            continue
        cols = list(rows[0])
        widths = {k: max(len(k), *(len(_fmt(r[k])) for r in rows)) for k in cols}
        print("  " + "  ".join(k.ljust(widths[k]) for k in cols))
        for r in rows:
            print("  " + "  ".join(_fmt(r[k]).ljust(widths[k]) for k in cols))
        print()
    return 0


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def cmd_validate(a: argparse.Namespace) -> int:
    from planner.calibration import DEFAULT
    from planner.validate import GLOBAL_FITTED, format_report, markdown_report, validate_file

    calib = _calibration(a)
    reports = [validate_file(f, calib or DEFAULT) for f in a.file]
    if a.markdown:
        cmd = "planner validate " + " ".join(a.file) + f" --markdown {a.markdown}"
        text = markdown_report(reports, cmd, {k: getattr(calib or DEFAULT, k) for k in GLOBAL_FITTED})
        try:
            with open(a.markdown, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise PlannerInputError("markdown", f"cannot write {a.markdown}: {e.strerror}") from None
    if a.json:
        if len(reports) == 1:
            print(reports[0].model_dump_json(indent=2))
        else:
            print(json.dumps({"reports": [r.model_dump() for r in reports]}, indent=2))
    else:
        print("\n\n".join(format_report(r, verbose=a.verbose) for r in reports))
    return 0


# ------------------------------------------------------------------------------------ parser


def _goodput_model(a: argparse.Namespace) -> Any:
    from planner.search.goodput import GoodputModel

    fields = {
        "failures_per_gpu_hour": a.failures_per_gpu_hour,
        "storage_gb_s_per_gpu": a.storage_gb_s_per_gpu,
        "restart_s": a.restart_s,
    }
    return GoodputModel(**{k: v for k, v in fields.items() if v is not None})


def cmd_search(a: argparse.Namespace) -> int:
    from planner.search import search
    from planner.search.format import format_search

    hw = hardware_kwargs(a)
    n = hw["gpus"]
    min_gpus = a.min_gpus if a.min_gpus is not None else max(1, n // 4)
    if min_gpus > n:
        raise PlannerInputError("min_gpus", f"must be at most --gpus {n}, got {min_gpus}")
    from planner.simulate import resolve_model

    if resolve_model(a.model).kind == "recsys":
        from planner.search.recsys import format_recsys_search, search_recsys

        rs = search_recsys(
            a.model, global_batch=a.global_batch, objective=a.objective, top=a.top, min_gpus=min_gpus, **hw
        )
        print(rs.model_dump_json(indent=2) if a.json else format_recsys_search(rs))
        return 0
    r = search(
        a.model,
        seq_len=a.seq_len,
        global_batch=a.global_batch,
        objective=a.objective,
        top=a.top,
        min_gpus=min_gpus,
        tokens=a.tokens,
        goodput=_goodput_model(a),
        workers=a.workers,
        progress=not a.json,
        calibration=_calibration(a),
        **hw,
    )
    print(_with_calibration(r, a) if a.json else format_search(r) + f"\ncalibration: {_calibration_name(a)}")
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
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
        max_gpus=a.max_gpus,
        objective=a.objective,
        global_batch=a.global_batch,
        seq_len=a.seq_len,
        goodput=_goodput_model(a),
        workers=a.workers,
        progress=not a.json,
        calibration=_calibration(a),
    )
    print(_with_calibration(r, a) if a.json else format_compare(r) + f"\ncalibration: {_calibration_name(a)}")
    return 0


def _add_run_args(p: argparse.ArgumentParser) -> None:
    run = p.add_argument_group("whole run: failures and checkpoints")
    run.add_argument(
        "--failures-per-gpu-hour",
        type=_positive_float("--failures-per-gpu-hour"),
        help="interruption rate (default 1.97e-5: Llama 3, 419 in 54 days on 16,384 GPUs)",
    )
    run.add_argument(
        "--storage-gb-s-per-gpu",
        type=_positive_float("--storage-gb-s-per-gpu"),
        help="checkpoint write bandwidth per GPU (default 0.122: Llama 3's 2 TB/s over 16K GPUs)",
    )
    run.add_argument("--restart-s", type=_positive_float("--restart-s"), help="restart time per failure (default 600)")
    p.add_argument(
        "--workers", type=_positive_int("--workers"), help="processes for the full simulations (default: cores)"
    )


def add_search_commands(sub: Any) -> None:
    """The ``search`` and ``compare`` subcommands (planner.search)."""
    from planner.search.types import OBJECTIVES

    se = sub.add_parser(
        "search",
        help="find the best layout: enumerate, estimate, simulate the finalists, rank",
        description=(
            "Enumerate every valid layout (tp, pp, vpp, dp, micro-batch, recomputation, ZeRO, sequence"
            " parallelism), drop what breaks a rule or does not fit, estimate the rest in closed form, fully"
            " simulate the finalists and rank them. Also tries halvings of --gpus down to --min-gpus for the"
            " Pareto front of time against cost."
        ),
        epilog=FORMULAS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    se.add_argument("--model", default="gpt3-1.7b", help="model preset or YAML file (default gpt3-1.7b)")
    add_hardware_args(se)
    se.add_argument(
        "--global-batch", type=_positive_int("--global-batch"), help="sequences per step (default ~4M tokens)"
    )
    se.add_argument("--seq-len", type=_positive_int("--seq-len"), help="sequence length (default: the model's)")
    se.add_argument("--objective", choices=OBJECTIVES, default="time", help="rank by step time or cost (default time)")
    se.add_argument("--top", type=_positive_int("--top"), default=10, help="layouts to list (default 10)")
    se.add_argument(
        "--min-gpus", type=_positive_int("--min-gpus"), help="also try halvings down to this (default GPUs/4)"
    )
    se.add_argument("--tokens", type=_positive_float("--tokens"), help="tokens of the whole run (default 20 x params)")
    se.add_argument("--json", action="store_true", help="print the result as one JSON object")
    add_calibration_arg(se)
    _add_run_args(se)
    se.set_defaults(func=cmd_search)

    co = sub.add_parser(
        "compare",
        help="compare instance types: best layout, days and dollars to train",
        description=(
            "For each instance type, the best layout at --gpus (or the count that meets --deadline-days, or the"
            " fastest within --budget-usd, or the cheapest), with time and cost to train --tokens including"
            " failures and checkpoints."
        ),
    )
    co.add_argument("--model", default="gpt3-1.7b", help="model preset or YAML file (default gpt3-1.7b)")
    co.add_argument("--instances", required=True, help="comma-separated instance ids (planner catalog instances)")
    co.add_argument("--gpus", type=_positive_int("--gpus"), help="GPUs on every instance type (default: chosen)")
    co.add_argument("--tokens", type=_positive_float("--tokens"), help="tokens to train (default 20 x params)")
    co.add_argument("--deadline-days", type=_positive_float("--deadline-days"), help="choose the GPUs that meet this")
    co.add_argument("--budget-usd", type=_positive_float("--budget-usd"), help="choose the fastest within this")
    co.add_argument("--max-gpus", type=_positive_int("--max-gpus"), default=4096, help="largest count tried (4096)")
    co.add_argument("--objective", choices=OBJECTIVES, default="cost", help="sort by total cost or time (default cost)")
    co.add_argument(
        "--global-batch", type=_positive_int("--global-batch"), help="sequences per step (default ~4M tokens)"
    )
    co.add_argument("--seq-len", type=_positive_int("--seq-len"), help="sequence length (default: the model's)")
    co.add_argument("--json", action="store_true", help="print the result as one JSON object")
    add_calibration_arg(co)
    _add_run_args(co)
    co.set_defaults(func=cmd_compare)


def cmd_sweep(a: argparse.Namespace) -> int:
    from planner.sweep import run_sweep

    rep, _ = run_sweep(
        a.spec, out=a.out, workers=a.workers, progress=True, scheduler=a.scheduler, calibration=a.calibration
    )
    where = rep.store + (f", exported to {rep.export}" if rep.export else "")
    print(
        f"sweep: {rep.points} points ({rep.ran} run now, {rep.skipped} already in the store),"
        f" {rep.errors} with an error, {rep.wall_s:.1f} s; results in {where}"
    )
    return 0


def add_sweep_command(sub: Any) -> None:
    """The ``sweep`` subcommand (planner.sweep)."""
    sw = sub.add_parser(
        "sweep",
        help="run a grid of scenarios from a YAML spec into a results store (resumable)",
        description=(
            "Run every point of SPEC.yaml (base: a scenario; axes: input -> list of values; mode: product|zip;"
            " search: true to search the best layout at each point). Each point is committed to a SQLite"
            " store as it finishes, keyed by a hash of its inputs: rerunning the same command resumes."
        ),
    )
    sw.add_argument("spec", help="sweep spec (YAML)")
    sw.add_argument(
        "--out",
        required=True,
        help="results: .db/.sqlite (the store) or .csv/.parquet (exported; the store is OUT.sqlite)",
    )
    sw.add_argument("--workers", type=_positive_int("--workers"), help="local processes (default: cores)")
    sw.add_argument("--scheduler", metavar="ADDRESS", help="run on a Dask distributed cluster (tcp://host:8786)")
    add_calibration_arg(sw)
    sw.set_defaults(func=cmd_sweep)


def cmd_calibrate(a: argparse.Namespace) -> int:
    from pathlib import Path

    name = a.name or Path(a.out).stem
    if a.trace:
        if a.file:
            raise PlannerInputError("file", "give either measured runs (CSV) or --trace, not both")
        from planner.calibrate import calibrate_trace, format_trace
        from planner.hardware import resolve_cluster
        from planner.simulate import make_strategy, resolve_model

        model = resolve_model(a.model, a.seq_len)
        if model.kind != "transformer":
            raise PlannerInputError("model", "calibrate --trace takes a transformer model")
        cluster = resolve_cluster(**{**hardware_kwargs(a), "accelerator": a.accelerator or "h100-sxm-80gb"})
        strategy = make_strategy(**strategy_kwargs(a))
        tr = calibrate_trace(a.trace, model, cluster, strategy, name=name, pipeline_rank=a.pipeline_rank)
        tr.calibration().to_yaml(a.out, tr.metadata())
        print(tr.model_dump_json(indent=2) if a.json else format_trace(tr) + f"\n\nprofile written to {a.out}")
        return 0
    if not a.file:
        raise PlannerInputError("file", "give measured runs (CSV in the validation schema) or --trace TRACE.json")
    from planner.calibrate import calibrate_files, format_fit

    rep = calibrate_files(
        a.file, holdout=a.holdout or (), name=name, grid_points=a.grid_points, rounds=a.rounds, folds=a.folds
    )
    rep.calibration().to_yaml(a.out, rep.metadata())
    print(rep.model_dump_json(indent=2) if a.json else format_fit(rep) + f"\n\nprofile written to {a.out}")
    return 0


def add_calibrate_command(sub: Any) -> None:
    """The ``calibrate`` subcommand (planner.calibrate)."""
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
    ca.add_argument("--json", action="store_true", help="print the report as one JSON object")
    ca.add_argument("--holdout", nargs="+", metavar="CSV", help="report on these rows instead of cross-validating")
    ca.add_argument("--grid-points", type=_positive_int("--grid-points"), default=5, help="values per constant (5)")
    ca.add_argument("--rounds", type=_positive_int("--rounds"), default=2, help="coordinate-search rounds (2)")
    ca.add_argument(
        "--folds", type=_positive_int("--folds"), default=5, help="cross-validation folds above 10 rows (5)"
    )
    tr = ca.add_argument_group("from a profiler trace (--trace and the run's model and layout)")
    tr.add_argument("--trace", metavar="TRACE.json", help="PyTorch profiler (Kineto) trace of one step on one rank")
    tr.add_argument("--model", default="gpt3-1.7b", help="model preset or YAML file of the traced run")
    tr.add_argument("--pipeline-rank", type=int, default=0, help="pipeline rank the trace was taken on (default 0)")
    add_hardware_args(ca)
    add_strategy_args(ca)
    ca.set_defaults(func=cmd_calibrate)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="planner",
        description="Distributed-training simulator and capacity planner.",
        epilog=FORMULAS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    sim = sub.add_parser(
        "simulate",
        help="predict one training step: time, MFU, memory, cost",
        description="Predict one training step of a model on a cluster with a parallel layout.",
        epilog=FORMULAS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("--model", default="gpt3-1.7b", help="model preset or YAML file (default gpt3-1.7b)")
    add_hardware_args(sim)
    add_strategy_args(sim)
    add_energy_args(sim)
    sim.add_argument("--json", action="store_true", help="print the result as one JSON object")
    sim.add_argument("--trace", metavar="FILE", help="write the step timeline as a Chrome/Perfetto trace")
    add_calibration_arg(sim)
    sim.add_argument(
        "--sharding",
        choices=("table", "row", "column", "data", "auto"),
        help="recommendation models: force one embedding sharding type on every table (default auto: planned)",
    )
    sim.set_defaults(func=cmd_simulate)

    cat = sub.add_parser("catalog", help="list accelerators, instances, clusters and models")
    cat.add_argument("what", nargs="?", choices=("accelerators", "instances", "clusters", "models"))
    cat.add_argument("--json", action="store_true")
    cat.set_defaults(func=cmd_catalog)

    val = sub.add_parser("validate", help="predict published runs and report the error")
    val.add_argument("file", nargs="+", help="CSV file(s) in the schema of shared/validation/README.md")
    val.add_argument("--markdown", metavar="OUT", help="also write the validation report (docs/validation.md)")
    val.add_argument("--json", action="store_true")
    val.add_argument("--verbose", "-v", action="store_true", help="print every row")
    add_calibration_arg(val)
    val.set_defaults(func=cmd_validate)
    add_search_commands(sub)
    add_sweep_command(sub)
    add_calibrate_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "func", None):
        parser.print_help()
        return 2
    try:
        return a.func(a)
    except PlannerInputError as e:
        print(f"planner: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("planner: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug in planner, not the user's input: one line, no traceback
        if os.environ.get("PLANNER_DEBUG"):
            raise
        print(
            f"planner: internal error: {type(e).__name__}: {e} (set PLANNER_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
