"""Validation files and their rows (schema: shared/validation/README.md).

A file's schema is found from its columns (:func:`schema_of`): the first entry of :data:`SCHEMAS`
whose measured column the file has. Each schema names its workload family, its required columns,
the measured column and how one row becomes a scenario (:class:`ParsedRow`: spec, cluster,
strategy, and the fields left blank). Every number is checked to be finite; a measurement must
also be positive. A mistake raises one :class:`~planner.errors.PlannerInputError` naming the row
(and, for the measurement, the file) and the column. An accelerator the catalog lacks is not a
mistake in the file: that row alone cannot be simulated (:attr:`ParsedRow.problem`), the rest go on.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from planner.errors import PlannerInputError, unknown_id
from planner.hardware import catalog, resolve_cluster
from planner.registry import family
from planner.transformer.frameworks import FRAMEWORKS, canonical
from planner.validate.frameworks import recsys_choices, transformer_choices

TRANSFORMER_COLUMNS = (
    "id", "source", "model", "num_layers", "hidden_size", "num_heads", "num_kv_heads", "ffn_hidden_size",
    "vocab_size", "seq_len", "mlp", "accelerator", "num_gpus", "gpus_per_node", "inter_node_gbps_per_gpu",
    "tp", "pp", "dp", "micro_batch", "global_batch", "recompute", "precision", "measured_step_time_s",
)  # fmt: skip
"""Columns a transformer validation file must have (others are optional)."""
MEMORY_COLUMNS = tuple(c for c in TRANSFORMER_COLUMNS if c != "measured_step_time_s") + ("measured_peak_gib",)
"""Columns of a measured-memory file (validation/memory.csv): a transformer row's layout and the
published peak memory per GPU, in GiB (its ``quantity`` column says which peak was measured)."""

DEFAULTABLE = (
    "vocab_size", "num_kv_heads", "ffn_hidden_size", "inter_node_gbps_per_gpu", "gpus_per_node", "cp", "ep", "vpp",
    "micro_batch", "recompute", "sequence_parallel", "zero_stage", "dp_overlap", "num_experts", "top_k",
)  # fmt: skip
"""Fields whose blank means "use planner's default"; such rows are summarised apart."""

IGNORED_BLANKS = ("num_experts", "top_k")
"""Blank there just means a dense model."""

RECSYS_COLUMNS = ("id", "source", "model", "accelerator", "num_gpus", "precision", "measured_samples_per_s")
"""Columns a recommendation validation file must have (others are optional)."""

RECSYS_DEFAULTABLE = ("global_batch", "gpus_per_node", "inter_node_gbps_per_gpu")


def _where(row: dict[str, str], line: int, col: str) -> str:
    return f"row {line} ({row.get('id', '?')}) {col}"


def _num(row: dict[str, str], col: str, line: int, kind: type = int) -> Any:
    """The finite number in ``col`` (None when blank); anything else raises naming row and column."""
    text = (row.get(col) or "").strip()
    if text == "":
        return None
    try:
        v = float(text)
        if not math.isfinite(v) or (kind is int and v != int(v)):
            raise ValueError
        return int(v) if kind is int else v
    except ValueError:
        raise PlannerInputError(
            _where(row, line, col), f"expected {'an integer' if kind is int else 'a finite number'}, got '{text}'"
        ) from None


def _bool(row: dict[str, str], col: str, line: int) -> bool | None:
    text = (row.get(col) or "").strip().lower()
    if text == "":
        return None
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise PlannerInputError(_where(row, line, col), f"expected true or false, got '{text}'")


def measured_value(row: dict[str, str], col: str, line: int, file: str = "") -> float:
    """The row's measurement in ``col``: a positive, finite number, or one error naming the file,
    the line and the column (a NaN or an infinity would poison every summary and fit)."""
    text = (row.get(col) or "").strip()
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        where = f"{file}: " if file else ""
        raise PlannerInputError(
            f"{where}{_where(row, line, col)}", f"must be a positive, finite number, got '{text or '(blank)'}'"
        )
    return v


def source_key(source: str) -> str:
    """A short name for a row's source: its text up to the first comma or semicolon."""
    for sep in (";", ","):
        source = source.split(sep)[0]
    return source.strip()[:60] or "unknown"


@dataclass(frozen=True)
class ParsedRow:
    """One row as a scenario: what to simulate, and what the report says about it."""

    spec: Any
    cluster: Any
    strategy: Any
    defaulted: list[str]
    model: str  # the model's name as the report shows it
    per_step: float | None = None  # samples per step when the row measures a throughput
    problem: str | None = None  # why the row cannot be simulated (cluster is then None)


def accelerator_problem(row: dict[str, str], line: int) -> str | None:
    """Why the row's accelerator cannot be simulated (not in the catalog), or None when it can.
    A blank accelerator is a mistake in the file and raises."""
    acc = (row.get("accelerator") or "").strip()
    if not acc:
        raise PlannerInputError(f"row {line} accelerator", "is required")
    try:
        catalog().accelerator(acc)
    except PlannerInputError as e:
        return str(e)
    return None


def _cluster(row: dict[str, str], line: int, unknown_ok: bool = False) -> Any:
    """The row's cluster; with ``unknown_ok`` (validate), None when its accelerator is not in the
    catalog (see ParsedRow.problem), else that raises (calibrate needs every row's hardware)."""
    if unknown_ok and accelerator_problem(row, line):
        for col, kind in (("num_gpus", int), ("gpus_per_node", int), ("inter_node_gbps_per_gpu", float)):
            _num(row, col, line, kind)  # a malformed number still refuses the file
        return None
    acc = (row.get("accelerator") or "").strip()
    return resolve_cluster(
        gpus=_num(row, "num_gpus", line),
        accelerator=acc,
        gpus_per_node=_num(row, "gpus_per_node", line),
        inter_node_gbps_per_gpu=_num(row, "inter_node_gbps_per_gpu", line, float),
    )


MODEL_COLUMNS = ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "ffn_hidden_size", "vocab_size",
                 "seq_len", "num_experts", "top_k", "moe_ffn_hidden_size", "shared_experts", "first_dense_layers",
                 "head_dim", "moe_max_nodes_per_token", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim",
                 "v_head_dim")  # fmt: skip
"""Model columns read when present and not blank; each is the TransformerSpec field of that name
(from moe_ffn_hidden_size on optional: fine-grained MoE widths, shared experts, leading dense layers,
a head width other than hidden_size / num_heads, node-limited routing's nodes per token, and
Multi-head Latent Attention's latent ranks and head widths)."""
INT_STRATEGY_COLUMNS = ("tp", "pp", "dp", "cp", "ep", "vpp", "micro_batch", "global_batch", "zero_stage")


def row_scenario(row: dict[str, str], line: int, unknown_ok: bool = False) -> tuple[Any, Any, Any, list[str]]:
    """(model, cluster, strategy, defaulted fields) of one transformer row; with ``unknown_ok`` the
    cluster is None when the row's accelerator is not in the catalog (instead of an error)."""
    defaulted = [c for c in DEFAULTABLE if c in row and (row[c] or "").strip() == "" and c not in IGNORED_BLANKS]
    defaulted += [c for c in DEFAULTABLE if c not in row and c not in IGNORED_BLANKS]
    fam = family("transformer")
    mdict: dict[str, Any] = {"name": row.get("model") or row.get("id") or "row"}
    for col in MODEL_COLUMNS:
        v = _num(row, col, line)
        if v is not None:
            mdict[col] = v
    mlp = (row.get("mlp") or "").strip()
    if mlp:
        mdict["mlp"] = mlp
    try:
        model = fam.load(mdict)
    except PlannerInputError as e:
        raise PlannerInputError(f"row {line} ({row.get('id', '?')}) {e.field}", e.rule) from None
    cluster = _cluster(row, line, unknown_ok)
    fields: dict[str, Any] = {}
    for col in INT_STRATEGY_COLUMNS:
        v = _num(row, col, line)
        if v is not None:
            fields[col] = v
    for col in ("recompute", "precision", "schedule"):  # schedule: optional column (DualPipe rows)
        text = (row.get(col) or "").strip()
        if text:
            fields[col] = text
    for col in ("sequence_parallel", "dp_overlap"):
        b = _bool(row, col, line)
        if b is not None:
            fields[col] = b
    acc = (row.get("accelerator") or "").strip()
    fields.update(transformer_choices(row.get("framework") or "", acc, fields.get("tp") or 1, fields, model.num_layers))
    return model, cluster, fam.make_strategy(**fields), defaulted


def _transformer_row(row: dict[str, str], line: int) -> ParsedRow:
    model, cluster, strategy, defaulted = row_scenario(row, line, unknown_ok=True)
    return ParsedRow(model, cluster, strategy, defaulted, row.get("model", ""), problem=accelerator_problem(row, line))


def _memory_row(row: dict[str, str], line: int) -> ParsedRow:
    """A measured-memory row: a transformer row whose strategy also carries the row's framework
    (when planner.transformer.frameworks knows it), on which memory terms depend (the loss's
    logits, per-operator selective checkpointing): planner.transformer.memory."""
    p = _transformer_row(row, line)
    fw = canonical(row.get("framework") or "")
    if fw not in FRAMEWORKS:
        return p
    return replace(p, strategy=p.strategy.model_copy(update={"framework": fw}))


def recsys_row_model(row: dict[str, str], line: int) -> Any:
    """The preset of a recommendation row: its ``model``, in the variant its ``model_config`` names:
    "frequency threshold N" selects the ``-tN`` cardinalities; "113B params" the nearest in size."""
    fam = family("recsys")
    base = (row.get("model") or "").strip()
    if not fam.is_preset(base):
        raise unknown_id(_where(row, line, "model"), base, fam.preset_names())
    cfg = row.get("model_config") or ""
    m = re.search(r"frequency threshold (\d+)", cfg)
    if m and fam.is_preset(f"{base}-t{m.group(1)}"):
        return fam.load(f"{base}-t{m.group(1)}")
    p = re.search(r"(\d+(?:\.\d+)?)\s*B params", cfg)
    if p:
        want = float(p.group(1)) * 1e9
        variants = [n for n in fam.preset_names() if n.startswith(base + "-t")] or [base]
        return min((fam.load(n) for n in variants), key=lambda s: abs(s.num_params - want))
    return fam.load(base)


def _interaction_kernel(row: dict[str, str], line: int) -> str | None:
    """The optional ``interaction_kernel`` column: which dot-interaction kernel the run used (custom:
    one fused op; framework: the framework's own ops); blank: the framework's default."""
    from planner.recsys.interaction import INTERACTION_KERNELS

    text = (row.get("interaction_kernel") or "").strip().lower()
    if text and text not in INTERACTION_KERNELS:
        raise PlannerInputError(_where(row, line, "interaction_kernel"), f"expected custom or framework, got '{text}'")
    return text or None


def _recsys_row(row: dict[str, str], line: int) -> ParsedRow:
    defaulted = [c for c in RECSYS_DEFAULTABLE if (row.get(c) or "").strip() == ""]
    if (_num(row, "num_gpus", line) or 1) <= (_num(row, "gpus_per_node", line) or 8):
        defaulted = [c for c in defaulted if c != "inter_node_gbps_per_gpu"]  # one node: no scale-out
    spec = recsys_row_model(row, line)
    cluster = _cluster(row, line, unknown_ok=True)
    gb = _num(row, "global_batch", line) or spec.default_global_batch
    strategy = family("recsys").make_strategy(
        global_batch=gb,
        precision=(row.get("precision") or "").strip() or None,
        interaction_kernel=_interaction_kernel(row, line),
        **recsys_choices((row.get("accelerator") or "").strip(), row.get("framework") or ""),
    )
    problem = accelerator_problem(row, line)
    return ParsedRow(spec, cluster, strategy, defaulted, spec.name, per_step=float(gb), problem=problem)


@dataclass(frozen=True)
class RowSchema:
    """One kind of validation file: its family, columns, measurement and row parser."""

    kind: str  # the workload family (planner.registry)
    name: str  # as error messages say it
    columns: tuple[str, ...]
    measured: str  # the measured column
    predicted: str  # the result's (dotted) field compared with it: step_time_s, samples_per_s, memory.peak_gib
    parse: Callable[[dict[str, str], int], ParsedRow]


SCHEMAS: dict[str, RowSchema] = {
    "recsys": RowSchema("recsys", "recommendation", RECSYS_COLUMNS, "measured_samples_per_s", "samples_per_s",
                        _recsys_row),
    "transformer": RowSchema("transformer", "transformer", TRANSFORMER_COLUMNS, "measured_step_time_s", "step_time_s",
                             _transformer_row),
    "memory": RowSchema("transformer", "transformer memory", MEMORY_COLUMNS, "measured_peak_gib", "memory.peak_gib",
                        _memory_row),
}  # fmt: skip
"""The schemas by family kind, in the order a file is matched against them (first measured column found)."""


def schema_of(columns: Any) -> RowSchema:
    """The schema of a file with these columns: the first whose measured column it has (else transformer)."""
    cols = set(columns)
    return next((s for s in SCHEMAS.values() if s.measured in cols), SCHEMAS["transformer"])


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a validation CSV, checked to have its schema's columns."""
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
    schema = schema_of(rows[0])
    missing = [c for c in schema.columns if c not in rows[0]]
    if missing:
        raise PlannerInputError("file", f"{p} lacks the column(s) {', '.join(missing)} of the {schema.name} schema")
    return rows
