"""Validation against published, measured runs (schema: shared/validation/README.md).

Each row becomes a scenario; planner predicts its step time with the one global model and
compares: ``error = predicted / measured - 1``. Summaries (median, mean, max of ``|error|``) are
given per file and per source, and separately for rows that left a field blank (predicted with
planner's defaults, which the row names).

Framework assumptions (not factors; each is a kernel or algorithm choice documented by the
framework, stated once here and in docs/validation.md):

* attention kernel: FlashAttention for llm-foundry (MPT ``attn_impl: flash/triton``), NeMo,
  Megatron-Bridge / Megatron-Core with Transformer Engine (H100 and later), torchtitan (SDPA);
  unfused (Megatron's fused scale-mask-softmax) for Megatron-LM on V100/A100 (2020-22 papers),
  Megatron-DeepSpeed (vTrain, BLOOM, MT-NLG: ``--use-flash-attn`` off by default) and Korthikanti.
* tensor-parallel communication overlapped with GEMMs (``tp_comm_overlap``) for NeMo and
  Megatron-Core on Hopper and later, whose published performance recipes enable it.

Recommendation rows (``measured_samples_per_s``; NVIDIA DeepLearningExamples TF2 DLRM/DCNv2) are
predicted with that framework's documented choices, stated once here (:data:`DLE_TF2`): TF2 + XLA,
AMP for the MLPs (the row's ``precision``) with embeddings stored and exchanged in FP32, NVIDIA
distributed-embeddings' ``memory_balanced`` table placement with column slicing above 10e9 elements,
each rank reading its own tables' ids (no input all-to-all), and the DGX's host memory for tables
offloaded to the CPU. The row's model preset variant follows its ``model_config``: "frequency
threshold N" selects the ``-tN`` cardinalities; "113B params" the T0 ones. Error =
predicted samples/s / measured - 1.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from planner.calibration import DEFAULT, Calibration
from planner.errors import PlannerInputError
from planner.hardware import resolve_cluster
from planner.simulate import make_strategy, simulate_scenario
from planner.transformer.spec import transformer_from_dict

TRANSFORMER_COLUMNS = (
    "id", "source", "model", "num_layers", "hidden_size", "num_heads", "num_kv_heads", "ffn_hidden_size",
    "vocab_size", "seq_len", "mlp", "accelerator", "num_gpus", "gpus_per_node", "inter_node_gbps_per_gpu",
    "tp", "pp", "dp", "micro_batch", "global_batch", "recompute", "precision", "measured_step_time_s",
)  # fmt: skip
"""Columns a transformer validation file must have (others are optional)."""

DEFAULTABLE = (
    "vocab_size", "num_kv_heads", "ffn_hidden_size", "inter_node_gbps_per_gpu", "gpus_per_node", "cp", "ep", "vpp",
    "micro_batch", "recompute", "sequence_parallel", "zero_stage", "dp_overlap", "num_experts", "top_k",
)  # fmt: skip
"""Fields whose blank means "use planner's default"; such rows are summarised apart."""

IGNORED_BLANKS = ("num_experts", "top_k")

GLOBAL_FITTED = (
    "gemm_mamf_fraction",
    "attention_fraction",
    "layer_host_s",
    "hbm_efficiency",
    "nic_efficiency",
    "recsys_step_host_s",
)
"""The calibration constants fitted on the train half (see docs/validation.md); all others are
taken from microbenchmarks."""  # blank there just means a dense model

FLASH_FRAMEWORKS = {"mosaic", "nemo", "torchtitan"}
UNFUSED_FRAMEWORKS = {"megatron-deepspeed", "bloom", "mtnlg", "korthikanti"}


def modern_megatron(framework: str, accelerator: str) -> bool:
    """Megatron-Core with Transformer Engine: NeMo, and Megatron-LM/-Bridge on Hopper and later."""
    fw = framework.strip().lower()
    return fw == "nemo" or (fw == "megatron" and not accelerator.startswith(("a100", "v100")))


def tp_comm_overlap(framework: str, accelerator: str) -> bool:
    """NeMo's and Megatron-Bridge's published performance recipes turn on ``tp_comm_overlap``."""
    return modern_megatron(framework, accelerator)


def attention_kernel(framework: str, accelerator: str) -> str:
    """The attention kernel a framework used (see the module docstring)."""
    fw = framework.strip().lower()
    if fw in FLASH_FRAMEWORKS:
        return "flash"
    if fw in UNFUSED_FRAMEWORKS:
        return "unfused"
    if fw == "megatron":
        return "unfused" if accelerator.startswith(("a100", "v100")) else "flash"
    return "flash"


class RowResult(BaseModel):
    id: str
    source: str
    model: str
    predicted_step_time_s: float | None
    measured_step_time_s: float
    error: float | None
    defaulted: list[str]
    problem: str | None = None
    predicted_samples_per_s: float | None = None  # recommendation rows
    measured_samples_per_s: float | None = None


class Summary(BaseModel):
    rows: int
    median_abs_error: float | None
    mean_abs_error: float | None
    max_abs_error: float | None


class ValidationReport(BaseModel):
    file: str
    calibration: str
    rows: list[RowResult]
    median_abs_error: float | None
    mean_abs_error: float | None
    max_abs_error: float | None
    fully_specified: Summary
    with_defaults: Summary
    by_source: dict[str, Summary]
    failed: int


def summarize(errors: list[float]) -> Summary:
    if not errors:
        return Summary(rows=0, median_abs_error=None, mean_abs_error=None, max_abs_error=None)
    a = [abs(e) for e in errors]
    return Summary(
        rows=len(a),
        median_abs_error=statistics.median(a),
        mean_abs_error=statistics.fmean(a),
        max_abs_error=max(a),
    )


def _num(row: dict[str, str], col: str, line: int, kind: type = int) -> Any:
    text = (row.get(col) or "").strip()
    if text == "":
        return None
    try:
        if kind is int:
            v = float(text)
            if v != int(v):
                raise ValueError
            return int(v)
        return float(text)
    except ValueError:
        rid = row.get("id", "?")
        raise PlannerInputError(
            f"row {line} ({rid}) {col}",
            f"expected {'an integer' if kind is int else 'a number'}, got '{text}'",
        ) from None


def _bool(row: dict[str, str], col: str, line: int) -> bool | None:
    text = (row.get(col) or "").strip().lower()
    if text == "":
        return None
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise PlannerInputError(f"row {line} ({row.get('id', '?')}) {col}", f"expected true or false, got '{text}'")


def source_key(source: str) -> str:
    """A short name for a row's source: its text up to the first comma or semicolon."""
    for sep in (";", ","):
        source = source.split(sep)[0]
    return source.strip()[:60] or "unknown"


def row_scenario(row: dict[str, str], line: int) -> tuple[Any, Any, Any, list[str]]:
    """(model, cluster, strategy, defaulted fields) of one transformer row."""
    defaulted = [c for c in DEFAULTABLE if c in row and (row[c] or "").strip() == "" and c not in IGNORED_BLANKS]
    defaulted += [c for c in DEFAULTABLE if c not in row and c not in IGNORED_BLANKS]
    mdict: dict[str, Any] = {"name": row.get("model") or row.get("id") or "row"}
    for col in (
        "num_layers",
        "hidden_size",
        "num_heads",
        "num_kv_heads",
        "ffn_hidden_size",
        "vocab_size",
        "seq_len",
        "num_experts",
        "top_k",
    ):
        v = _num(row, col, line)
        if v is not None:
            mdict[col] = v
    mlp = (row.get("mlp") or "").strip()
    if mlp:
        mdict["mlp"] = mlp
    model = transformer_from_dict(mdict, field=f"row {line} ({row.get('id', '?')}) model")
    acc = (row.get("accelerator") or "").strip()
    if not acc:
        raise PlannerInputError(f"row {line} accelerator", "is required")
    cluster = resolve_cluster(
        gpus=_num(row, "num_gpus", line),
        accelerator=acc,
        gpus_per_node=_num(row, "gpus_per_node", line),
        inter_node_gbps_per_gpu=_num(row, "inter_node_gbps_per_gpu", line, float),
    )
    fields: dict[str, Any] = {}
    for col, name in (("tp", "tp"), ("pp", "pp"), ("dp", "dp"), ("cp", "cp"), ("ep", "ep"), ("vpp", "vpp"),
                      ("micro_batch", "micro_batch"), ("global_batch", "global_batch"), ("zero_stage", "zero_stage")):  # fmt: skip
        v = _num(row, col, line)
        if v is not None:
            fields[name] = v
    for col in ("recompute", "precision"):
        v = (row.get(col) or "").strip()
        if v:
            fields[col] = v
    for col in ("sequence_parallel", "dp_overlap"):
        v = _bool(row, col, line)
        if v is not None:
            fields[col] = v
    fields["attention"] = attention_kernel(row.get("framework") or "", acc)
    if (fields.get("tp") or 1) > 1 and tp_comm_overlap(row.get("framework") or "", acc):
        fields["tp_comm_overlap"] = True
    strategy = make_strategy(**fields)
    return model, cluster, strategy, defaulted


def read_rows(path: str | Path) -> list[dict[str, str]]:
    p = Path(path)
    if not p.exists():
        raise PlannerInputError("file", f"not found: {p}")
    if p.is_dir():
        raise PlannerInputError("file", f"{p} is a folder, not a CSV file")
    try:
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise PlannerInputError("file", f"{p} is not a readable CSV: {e}") from None
    if not rows:
        raise PlannerInputError("file", f"{p} has no data rows")
    cols = set(rows[0])
    if "measured_samples_per_s" in cols:
        missing = [c for c in RECSYS_COLUMNS if c not in cols]
        if missing:
            raise PlannerInputError(
                "file", f"{p} lacks the column(s) {', '.join(missing)} of the recommendation schema"
            )
        return rows
    missing = [c for c in TRANSFORMER_COLUMNS if c not in cols]
    if missing:
        raise PlannerInputError("file", f"{p} lacks the column(s) {', '.join(missing)} of the transformer schema")
    return rows


def build_report(results: list[Any], calib: Calibration, file: str) -> ValidationReport:
    """Summaries of predicted rows: all, fully specified, with defaults, per source."""
    ok = [r for r in results if r.error is not None]
    allsum = summarize([r.error for r in ok])
    by_source: dict[str, list[float]] = {}
    for r in ok:
        by_source.setdefault(r.source, []).append(r.error)
    return ValidationReport(
        file=file,
        calibration=calib.name,
        rows=results,
        median_abs_error=allsum.median_abs_error,
        mean_abs_error=allsum.mean_abs_error,
        max_abs_error=allsum.max_abs_error,
        fully_specified=summarize([r.error for r in ok if not r.defaulted]),
        with_defaults=summarize([r.error for r in ok if r.defaulted]),
        by_source={k: summarize(v) for k, v in sorted(by_source.items())},
        failed=len(results) - len(ok),
    )


def _predict(args: tuple[dict[str, str], int, Calibration]) -> tuple[float | None, str | None, list[str]]:
    """Predict one row: (step time or None, the reason it failed, fields left blank)."""
    row, line, calib = args
    model, cluster, strategy, defaulted = row_scenario(row, line)
    try:
        return simulate_scenario(model, cluster, strategy, calib).step_time_s, None, defaulted
    except PlannerInputError as e:
        return None, str(e), defaulted


def validate_rows(
    rows: list[dict[str, str]], calib: Calibration = DEFAULT, file: str = "", workers: int | None = None
) -> ValidationReport:
    """Predict every row and summarise; ``workers`` > 1 spreads rows over processes (default: CPUs)."""
    measured: list[float] = []
    jobs = []
    for line, row in enumerate(rows, start=2):
        m = _num(row, "measured_step_time_s", line, float)
        if m is None or m <= 0:
            raise PlannerInputError(
                f"row {line} ({row.get('id', '?')}) measured_step_time_s", "must be a positive number"
            )
        measured.append(m)
        row_scenario(row, line)  # parse every row first, so a bad value fails fast with its line
        jobs.append((row, line, calib))
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if workers > 1 and len(jobs) >= 40:
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            preds = list(pool.map(_predict, jobs, chunksize=4))
    else:
        preds = [_predict(j) for j in jobs]
    results = [
        RowResult(
            id=row.get("id", f"row{line}"),
            source=source_key(row.get("source", "")),
            model=row.get("model", ""),
            predicted_step_time_s=pred,
            measured_step_time_s=meas,
            error=None if pred is None else pred / meas - 1.0,
            defaulted=defaulted,
            problem=problem,
        )
        for (row, line, _), meas, (pred, problem, defaulted) in zip(jobs, measured, preds, strict=True)
    ]
    return build_report(results, calib, file)


def validate_file(path: str | Path, calib: Calibration = DEFAULT) -> ValidationReport:
    rows = read_rows(path)
    if "measured_samples_per_s" in rows[0]:
        return validate_recsys_rows(rows, calib, str(path))
    return validate_rows(rows, calib, str(path))


# ------------------------------------------------------------------------ recommendation rows

RECSYS_COLUMNS = ("id", "source", "model", "accelerator", "num_gpus", "precision", "measured_samples_per_s")
"""Columns a recommendation validation file must have (others are optional)."""

RECSYS_DEFAULTABLE = ("global_batch", "gpus_per_node", "inter_node_gbps_per_gpu")

DLE_TF2: dict[str, Any] = {"placement": "memory_balanced"}
"""NVIDIA DeepLearningExamples TF2 DLRM/DCNv2 (see the module docstring): distributed-embeddings'
memory-balanced placement; embeddings FP32 (the presets' dtype); no input all-to-all."""

DGX_HOST_MEMORY_GIB = {"a100-sxm-80gb": 2048.0, "a100-sxm-40gb": 1024.0, "v100-sxm2-32gb": 512.0}
"""System memory of the DGX the DeepLearningExamples ran on (NVIDIA DGX A100 datasheet: 2 TB with
80 GB GPUs, 1 TB with 40 GB; DGX-1 with V100 32GB: 512 GB), for tables offloaded to the CPU."""


def recsys_row_model(row: dict[str, str], line: int) -> Any:
    """The preset of a recommendation row: its ``model``, in the variant its ``model_config`` names."""
    import re

    from planner.recsys.spec import is_recsys_preset, load_recsys, recsys_preset_names

    base = (row.get("model") or "").strip()
    if not is_recsys_preset(base):
        from planner.errors import unknown_id

        raise unknown_id(f"row {line} ({row.get('id', '?')}) model", base, recsys_preset_names())
    cfg = row.get("model_config") or ""
    m = re.search(r"frequency threshold (\d+)", cfg)
    if m and is_recsys_preset(f"{base}-t{m.group(1)}"):
        return load_recsys(f"{base}-t{m.group(1)}")
    p = re.search(r"(\d+(?:\.\d+)?)\s*B params", cfg)
    if p:
        want = float(p.group(1)) * 1e9
        variants = [n for n in recsys_preset_names() if n.startswith(base + "-t")] or [base]
        return min((load_recsys(n) for n in variants), key=lambda s: abs(s.num_params - want))
    return load_recsys(base)


def validate_recsys_rows(rows: list[dict[str, str]], calib: Calibration = DEFAULT, file: str = "") -> ValidationReport:
    """Predict every recommendation row (samples/s) and summarise as :func:`validate_rows` does."""
    from planner.recsys.run import make_recsys_strategy, simulate_recsys

    results: list[RowResult] = []
    for line, row in enumerate(rows, start=2):
        rid = row.get("id", f"row{line}")
        meas = _num(row, "measured_samples_per_s", line, float)
        if meas is None or meas <= 0:
            raise PlannerInputError(f"row {line} ({rid}) measured_samples_per_s", "must be a positive number")
        defaulted = [c for c in RECSYS_DEFAULTABLE if (row.get(c) or "").strip() == ""]
        if (_num(row, "num_gpus", line) or 1) <= (_num(row, "gpus_per_node", line) or 8):
            defaulted = [c for c in defaulted if c != "inter_node_gbps_per_gpu"]  # one node: no scale-out
        spec = recsys_row_model(row, line)
        acc = (row.get("accelerator") or "").strip()
        cluster = resolve_cluster(
            gpus=_num(row, "num_gpus", line),
            accelerator=acc,
            gpus_per_node=_num(row, "gpus_per_node", line),
            inter_node_gbps_per_gpu=_num(row, "inter_node_gbps_per_gpu", line, float),
        )
        gb = _num(row, "global_batch", line) or spec.default_global_batch
        fields = dict(DLE_TF2, global_batch=gb, precision=(row.get("precision") or "").strip() or None,
                      host_memory_gib=DGX_HOST_MEMORY_GIB.get(acc))  # fmt: skip
        strategy = make_recsys_strategy(**fields)
        pred: float | None = None
        problem: str | None = None
        try:
            pred = simulate_recsys(spec, cluster, strategy, calib).samples_per_s
        except PlannerInputError as e:
            problem = str(e)
        results.append(
            RowResult(
                id=rid,
                source=source_key(row.get("source", "")),
                model=spec.name,
                predicted_step_time_s=None if pred is None else gb / pred,
                measured_step_time_s=gb / meas,
                error=None if pred is None else pred / meas - 1.0,
                defaulted=defaulted,
                problem=problem,
                predicted_samples_per_s=pred,
                measured_samples_per_s=meas,
            )
        )
    return build_report(results, calib, file)


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{x * 100:5.1f}%"


def format_report(rep: ValidationReport, verbose: bool = False) -> str:
    lines = [f"validation of {rep.file} (calibration: {rep.calibration})", ""]
    if verbose:
        lines.append(f"{'id':36s} {'predicted':>10s} {'measured':>10s} {'error':>8s}  defaults")
        for r in rep.rows:
            pred = "failed" if r.predicted_step_time_s is None else f"{r.predicted_step_time_s:10.3f}"
            err = "" if r.error is None else f"{r.error * 100:+7.1f}%"
            extra = ",".join(r.defaulted) if r.defaulted else ""
            if r.problem:
                extra = r.problem
            lines.append(f"{r.id[:36]:36s} {pred:>10s} {r.measured_step_time_s:10.3f} {err:>8s}  {extra}")
        lines.append("")
    lines.append(f"{'':44s} {'rows':>5s} {'median':>7s} {'mean':>7s} {'max':>7s}")

    def row(name: str, s: Summary) -> str:
        return (
            f"{name[:44]:44s} {s.rows:5d} {_pct(s.median_abs_error)} {_pct(s.mean_abs_error)} {_pct(s.max_abs_error)}"
        )

    ok = [r.error for r in rep.rows if r.error is not None]
    lines.append(row("all rows", summarize(ok)))  # type: ignore[arg-type]
    lines.append(row("  fully specified", rep.fully_specified))
    lines.append(row("  with planner defaults for blank fields", rep.with_defaults))
    for src, s in rep.by_source.items():
        lines.append(row("  " + src, s))
    if rep.failed:
        lines.append(f"\n{rep.failed} row(s) could not be simulated (see --verbose)")
    return "\n".join(lines)


OMISSIONS = """\
## What the model leaves out, and where it errs most

- **Framework implementation quality beyond the kernels.** DeepSpeed ZeRO-3 of 2021 (Megatron-LM
  SC'21 Table 2, `megatron_sc21_t2-11..16`) ran its per-parameter collectives far below NCCL ring
  speed: planner, which plays NCCL rings at measured bus bandwidth, predicts those runs 40-80 % too
  fast. No global constant can fix one framework's inefficiency without a per-framework factor,
  which planner refuses to have.
- **Measurements no consistent model can follow (vtrain_multi).** Some rows of that file disagree
  with their neighbours by more than any physical effect planner knows of:
  - `vtrain-multi-0015` and `-0016` do the same work (GPT 3.6B, 64 A100, tp 8, dp 8, 64 sequences
    per replica), as one micro-batch of 64 or two of 32. A larger micro-batch can only make the
    GEMMs bigger; the measured step is 9.84 s against 4.97 s. planner predicts 43 GiB of 80 GiB
    at its peak, so memory pressure (cudaMalloc retries) is not evidently the cause either.
  - `-0046` (tp 4, pp 8, micro-batch 2, 48 micro-batches, a 13 % pipeline bubble) measured
    16.07 s and `-0049` (tp 4, pp 16, micro-batch 2, 96 micro-batches, a 14 % bubble) 14.53 s: the
    same kernels and bubble, with half the gradient all-reduce per GPU in `-0049`, 10 % apart; and
    `-0062` (micro-batch 6, 16 micro-batches, a 30 % bubble) measured the same 16.09 s as `-0046`.
  - The tp 2 rows (`-0050`, `-0075`, `-0080`) are 15-37 % slower than planner predicts while their
    tp 8 neighbours on the same 512 GPUs are within 3 %.

  These rows set the file's maximum error (49 %); the bound of 20 % on it would take a factor per
  row, which planner refuses. Their spread is the data's own noise on that cluster: vTrain, which
  profiles every kernel on the real GPUs, reports 14.7 % mean error on the same file.
- **Stragglers, jitter, data loading, checkpointing, logging**: not modelled; one step is assumed
  to be a steady-state step.
- **Rows with blank fields** are predicted with planner's defaults (e.g. no recomputation where a
  paper did not say): their error says as much about the default as about the model, so they are
  summarised apart.
- **Transcription noise**: published tables disagree with themselves by 1-5 % (see
  shared/validation/README.md); an error under ~3 % is within the data's own noise.
"""


def half_errors(rep: ValidationReport) -> tuple[list[float], list[float]]:
    """Errors of the even-position (train) and odd-position (test) rows of a report."""
    train = [r.error for i, r in enumerate(rep.rows) if r.error is not None and i % 2 == 0]
    test = [r.error for i, r in enumerate(rep.rows) if r.error is not None and i % 2 == 1]
    return train, test  # type: ignore[return-value]


def _by_hardware(rep: ValidationReport) -> dict[tuple[str, str], Summary]:
    """Errors of a transformer report's rows grouped by (accelerator, precision) from its file."""
    if not rep.file or not Path(rep.file).exists():
        return {}
    src = {r.get("id", ""): r for r in read_rows(rep.file)}
    groups: dict[tuple[str, str], list[float]] = {}
    for r in rep.rows:
        row = src.get(r.id)
        if r.error is None or row is None or "precision" not in row:
            continue
        key = (row.get("accelerator") or "-", row.get("precision") or "(blank)")
        groups.setdefault(key, []).append(r.error)
    return {k: summarize(v) for k, v in sorted(groups.items())}


def markdown_report(reports: list[ValidationReport], command: str, constants: dict[str, float]) -> str:
    """The docs/validation.md page: error per file and source, hold-out halves, worst rows."""

    def cells(s: Summary) -> str:
        return f"{s.rows} | {_pct(s.median_abs_error).strip()} | {_pct(s.mean_abs_error).strip()} | {_pct(s.max_abs_error).strip()}"

    out = [
        "# Validation against published runs",
        "",
        f"Generated by `{command}` from the data in `../shared/validation/`; do not edit by hand.",
        "Error = predicted / measured - 1; the tables give the median, mean and maximum of |error|.",
        "",
        "## Per file",
        "",
        "| file | rows | median | mean | max | fully specified: rows | median | mean | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rep in reports:
        ok = [r.error for r in rep.rows if r.error is not None]
        name = Path(rep.file).name
        out.append(f"| {name} | {cells(summarize(ok))} | {cells(rep.fully_specified)} |")  # type: ignore[arg-type]
    out += [
        "",
        "## Hold-out: the constants fitted on even rows, reported on odd rows",
        "",
        "The global constants below were chosen on the even-position rows (the transformer ones on the",
        "three transformer files with `tools/fit_global.py`, `recsys_step_host_s` on recsys.csv); the",
        "odd-position rows were not used to choose them.",
        "",
        "| file | train rows | train median | test rows | test median | test mean | test max |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for rep in reports:
        tr, te = half_errors(rep)
        s_tr, s_te = summarize(tr), summarize(te)
        out.append(
            f"| {Path(rep.file).name} | {s_tr.rows} | {_pct(s_tr.median_abs_error).strip()} | {s_te.rows} | "
            f"{_pct(s_te.median_abs_error).strip()} | {_pct(s_te.mean_abs_error).strip()} | {_pct(s_te.max_abs_error).strip()} |"
        )
    out += ["", "Fitted constants (all others are measured figures; see docs/model.md):", ""]
    out += [f"- `{k}` = {v:g}" for k, v in constants.items()]
    out += ["", "## Per source", "", "| file | source | rows | median | mean | max |", "|---|---|---:|---:|---:|---:|"]
    for rep in reports:
        for src, s in rep.by_source.items():
            out.append(f"| {Path(rep.file).name} | {src} | {cells(s)} |")
    out += [
        "",
        "## Per accelerator and precision",
        "",
        "New hardware and number formats are where a model fitted mostly on A100 runs must generalise.",
        "",
        "| file | accelerator | precision | rows | median | mean | max |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for rep in reports:
        for (acc, prec), s in _by_hardware(rep).items():
            out.append(f"| {Path(rep.file).name} | {acc} | {prec} | {cells(s)} |")
    out += ["", "## Rows with blank fields (predicted with planner's defaults)", ""]
    out += ["| file | rows | median | mean | max |", "|---|---:|---:|---:|---:|"]
    for rep in reports:
        out.append(f"| {Path(rep.file).name} | {cells(rep.with_defaults)} |")
    out += [
        "",
        "## The twelve largest errors",
        "",
        "| row | predicted s | measured s | error | blank fields |",
        "|---|---:|---:|---:|---|",
    ]
    rows = [r for rep in reports for r in rep.rows if r.error is not None]
    for r in sorted(rows, key=lambda r: -abs(r.error or 0))[:12]:
        out.append(
            f"| {r.id} | {r.predicted_step_time_s:.3f} | {r.measured_step_time_s:.3f} | {r.error * 100:+.1f}% | {', '.join(r.defaulted)} |"  # type: ignore[operator]
        )
    failed = [r for rep in reports for r in rep.rows if r.error is None]
    if failed:
        out += ["", "## Rows planner could not simulate", ""]
        out += [f"- {r.id}: {r.problem}" for r in failed]
    out += ["", OMISSIONS]
    return "\n".join(out) + "\n"
