"""Argument helpers every ``planner`` command shares: hardware, layout, energy, calibration and
run-length flags, positive-number parsers, and the conversion of parsed flags to API keywords.

No defaults live here: a flag left out is not passed, and the API fills in its own default
(:func:`planner.defaults.default_hardware`, :func:`planner.search.search.default_min_gpus`, ...).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, NoReturn, get_args

from planner.io import check_output_path
from planner.recsys.frameworks import RECSYS_FRAMEWORK_NAMES
from planner.transformer.frameworks import FRAMEWORK_ALIASES, FRAMEWORK_NAMES

FORMULAS = """\
definitions:
  MFU = model FLOPs per step / (step time x GPUs x dense peak FLOP/s of the precision)
  model FLOPs per token = 3 x (2 x matmul parameters incl. LM head
                               + 4 x layers x seq_len x heads x head_dim)
      (heads x head_dim = hidden unless the model sets head_dim; MoE: the experts a token visits)
      (attention over the whole sequence, not halved for causal masking: PaLM / Megatron-LM)
  HFU = as MFU, adding the FLOPs of recomputed forward passes
  step time = wall time of one optimizer step over the global batch
"""


class Parser(argparse.ArgumentParser):
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


def positive_int(name: str) -> Callable[[str], float]:
    """An argparse type: a positive integer, the error naming ``name``."""
    return _positive(name, int)


def positive_float(name: str) -> Callable[[str], float]:
    """An argparse type: a number > 0, the error naming ``name``."""
    return _positive(name, float)


def at_least_one(name: str) -> Callable[[str], float]:
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
    """The hardware flags; what is left out gets the API's default (planner.defaults.default_hardware)."""
    hw = p.add_argument_group("hardware (name one of --cluster, --instance, --accelerator)")
    hw.add_argument("--cluster", help="catalog cluster id or a cluster YAML file")
    hw.add_argument("--instance", help="cloud instance id (e.g. p5.48xlarge); nodes follow from --gpus")
    hw.add_argument(
        "--accelerator", help="accelerator id on its standard node (default: 8 H100 of a p5.48xlarge instance)"
    )
    hw.add_argument("--gpus", type=positive_int("--gpus"), help="number of accelerators (default 8)")
    hw.add_argument("--gpus-per-node", type=positive_int("--gpus-per-node"), help="override the node's GPU count")
    hw.add_argument(
        "--inter-node-gbps-per-gpu",
        type=positive_float("--inter-node-gbps-per-gpu"),
        help="override scale-out Gb/s per GPU",
    )


def add_strategy_args(p: argparse.ArgumentParser) -> None:
    """The transformer layout and training flags (planner.transformer.strategy holds the defaults)."""
    from planner.transformer.strategy import (
        ATTENTION_CHOICES,
        PRECISION_CHOICES,
        RECOMPUTE_CHOICES,
        SCHEDULE_CHOICES,
        GradReduceDtype,
    )

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
        st.add_argument(flag, type=positive_int(flag), help=help_)
    st.add_argument("--recompute", choices=RECOMPUTE_CHOICES, help="activation recomputation (default none)")
    st.add_argument("--zero", type=int, choices=(0, 1, 2, 3), help="ZeRO stage; 3 = FSDP full shard (default 0)")
    st.add_argument("--sequence-parallel", action="store_true", default=None, help="Megatron sequence parallelism")
    st.add_argument("--precision", choices=PRECISION_CHOICES, help="training precision (default bf16)")
    st.add_argument(
        "--schedule", choices=SCHEDULE_CHOICES, help="pipeline schedule (default 1f1b; interleaved when vpp > 1)"
    )
    st.add_argument(
        "--attention",
        choices=ATTENTION_CHOICES,
        help="attention kernel (default flash = fa2; cudnn is Transformer Engine's fused attention; default: the "
        "--framework's, else flash)",
    )
    add_framework_arg(st)
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
        type=positive_float("--moe-capacity-factor"),
        help="MoE: cap and pad each expert to this x the mean tokens (default: dropless)",
    )
    st.add_argument(
        "--moe-imbalance",
        type=at_least_one("--moe-imbalance"),
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
        type=positive_float("--bucket-mb"),
        help="gradient bucket, millions of parameters (default 40)",
    )
    st.add_argument(
        "--grad-reduce-dtype",
        choices=get_args(GradReduceDtype),
        help="datatype of the data-parallel gradient reduction: fp32, or param (the 16-bit training dtype) "
        "(default: the --framework's documented choice, else planner's rule)",
    )


def add_framework_arg(p: Any) -> None:
    """The ``--framework NAME`` flag (simulate, search, compare: fixed, never searched)."""
    p.add_argument(
        "--framework",
        metavar="NAME",
        help="training framework whose documented choices fill the flags left unset (transformers: "
        f"{', '.join(FRAMEWORK_NAMES)}, or another name of one: {', '.join(FRAMEWORK_ALIASES)}; "
        f"recommendation models: {', '.join(RECSYS_FRAMEWORK_NAMES)}; default planner's generic model)",
    )


def strategy_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    """The layout flags the user gave, as the API's strategy keywords."""
    names = {
        "tp": "tp", "pp": "pp", "dp": "dp", "cp": "cp", "ep": "ep", "vpp": "vpp",
        "micro_batch": "micro_batch", "global_batch": "global_batch", "recompute": "recompute",
        "zero": "zero_stage", "sequence_parallel": "sequence_parallel", "precision": "precision",
        "schedule": "schedule", "attention": "attention", "dp_overlap": "dp_overlap", "bucket_mb": "bucket_mb",
        "cp_algorithm": "cp_algorithm", "moe_capacity_factor": "moe_capacity_factor",
        "moe_imbalance": "moe_imbalance", "moe_shared_expert_overlap": "moe_shared_expert_overlap",
        "tp_comm_overlap": "tp_comm_overlap", "framework": "framework", "grad_reduce_dtype": "grad_reduce_dtype",
    }  # fmt: skip
    return {dst: getattr(a, src) for src, dst in names.items() if getattr(a, src, None) is not None}


def hardware_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    """The hardware flags as the API's keywords (None: the API's default)."""
    return {
        "cluster": a.cluster,
        "instance": a.instance,
        "accelerator": a.accelerator,
        "gpus": a.gpus,
        "gpus_per_node": a.gpus_per_node,
        "inter_node_gbps_per_gpu": a.inter_node_gbps_per_gpu,
    }


def add_calibration_arg(p: argparse.ArgumentParser) -> None:
    """The ``--calibration PROFILE.yaml`` flag."""
    p.add_argument(
        "--calibration",
        metavar="PROFILE.yaml",
        help="calibration profile (from 'planner calibrate'; default: planner's global calibration)",
    )


def calibration(a: argparse.Namespace) -> Any:
    """The --calibration profile, or None (planner's default)."""
    from planner.calibration import load_calibration

    path = getattr(a, "calibration", None)
    return load_calibration(path) if path else None


def calibration_name(a: argparse.Namespace) -> str:
    """The name of the --calibration profile, or "default"."""
    c = calibration(a)
    return c.name if c is not None else "default"


def with_calibration(r: Any, a: argparse.Namespace) -> str:
    """A result's JSON with the calibration's name (search and compare results do not carry it)."""
    d = json.loads(r.model_dump_json())
    d.setdefault("calibration", calibration_name(a))
    return json.dumps(d, indent=2)


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
    en.add_argument("--tokens", type=positive_float("--tokens"), help="tokens of the whole run, for per-run energy")


def energy_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    """The energy flags the user gave, as the API's keywords."""
    names = ("pue", "grid_gco2_per_kwh", "usd_per_kwh", "tokens")
    return {k: getattr(a, k) for k in names if getattr(a, k, None) is not None}


def add_run_args(p: argparse.ArgumentParser) -> None:
    """Whole-run flags (failures, checkpoints, restarts) and ``--workers`` of search and compare."""
    run = p.add_argument_group("whole run: failures and checkpoints")
    run.add_argument(
        "--failures-per-gpu-hour",
        type=positive_float("--failures-per-gpu-hour"),
        help="interruption rate (default 1.97e-5: Llama 3, 419 in 54 days on 16,384 GPUs)",
    )
    run.add_argument(
        "--storage-gb-s-per-gpu",
        type=positive_float("--storage-gb-s-per-gpu"),
        help="checkpoint write bandwidth per GPU (default 0.122: Llama 3's 2 TB/s over 16K GPUs)",
    )
    run.add_argument("--restart-s", type=positive_float("--restart-s"), help="restart time per failure (default 600)")
    p.add_argument(
        "--workers", type=positive_int("--workers"), help="processes for the full simulations (default: cores)"
    )


def goodput_model(a: argparse.Namespace) -> Any:
    """The whole-run goodput model from the flags given (planner.search.goodput holds the defaults)."""
    from planner.search.goodput import GoodputModel

    fields = {
        "failures_per_gpu_hour": a.failures_per_gpu_hour,
        "storage_gb_s_per_gpu": a.storage_gb_s_per_gpu,
        "restart_s": a.restart_s,
    }
    return GoodputModel(**{k: v for k, v in fields.items() if v is not None})


def add_json_arg(p: argparse.ArgumentParser, what: str = "the result") -> None:
    """The ``--json`` flag: print one JSON object instead of the text report."""
    p.add_argument("--json", action="store_true", help=f"print {what} as one JSON object")


def add_model_arg(p: argparse.ArgumentParser, help_: str = "model preset or YAML file (default gpt3-1.7b)") -> None:
    """The ``--model`` flag; left out, the API's default model (simulate) or gpt3-1.7b is used."""
    p.add_argument("--model", default="gpt3-1.7b", help=help_)


def refuse_input_as_output(flag: str, out: str | None, inputs: list[str | None]) -> None:
    """Refuse (one line naming ``flag``) an output file that is one of the command's inputs."""
    check_output_path(flag.lstrip("-").replace("-", "_"), out, inputs)


def model_file(ref: str | None) -> str | None:
    """``ref`` when it names a file (a model or cluster YAML the user owns), else None (a catalog id)."""
    from planner.registry import is_file_ref

    return ref if ref and is_file_ref(ref) else None


def given(a: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The flags among ``names`` the user gave, as keywords: the ones left out take the API's default."""
    return {k: getattr(a, k) for k in names if getattr(a, k, None) is not None}


def search_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    """The keywords search and compare share: whole-run model, workers, progress, calibration."""
    return {"goodput": goodput_model(a), "workers": a.workers, "progress": not a.json, "calibration": calibration(a)}


def print_with_calibration(r: Any, a: argparse.Namespace, text: str) -> None:
    """A search or compare result as JSON, or its ``text`` report, each naming the calibration."""
    print(with_calibration(r, a) if a.json else text + f"\ncalibration: {calibration_name(a)}")
