"""Recommendation workloads (DLRM, DCNv2): embedding tables, dense MLPs, interaction. No hardware.

A :class:`RecsysSpec` is what a recommendation model is made of, in the terms TorchRec and NVIDIA's
DLRM examples use:

* **embedding tables** (:class:`EmbeddingTable`): rows, dimension, pooling factor (the mean number
  of ids one sample looks up in the table: 1 for one-hot, the multi-hot size otherwise), dtype;
* **dense features** through the **bottom MLP**; its last width must equal the embedding
  dimension (the interaction mixes them);
* the **interaction**: ``dot`` (DLRM: pairwise dot products of the ``F = tables + 1`` feature
  vectors, concatenated with the bottom MLP output) or ``dcnv2`` (DCNv2 low-rank cross layers on
  the concatenation of the ``F`` vectors, ``x_{l+1} = x_0 * (U (V^T x_l) + b) + x_l``);
* the **top MLP**, and the optimizers of the sparse (embedding) and dense parts.

Dense model FLOPs per sample (the recsys MFU numerator; embedding lookups are memory traffic, not
FLOPs): forward ``2 x`` (MLP and cross-layer matmul weights) plus the dot interaction's ``F^2 d``
multiply-adds (``2 F^2 d`` FLOPs); training is three times forward.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planner.errors import PlannerInputError, pydantic_message, unknown_id

EmbeddingDtype = Literal["fp32", "fp16", "bf16", "int8"]
SparseOptimizer = Literal["sgd", "adagrad", "rowwise_adagrad", "adam"]
DenseOptimizer = Literal["sgd", "adagrad", "adam"]

DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
"""Bytes per element of an embedding dtype."""

SPARSE_STATE_BYTES_PER_ELEMENT: dict[str, float] = {"sgd": 0.0, "adagrad": 4.0, "rowwise_adagrad": 0.0, "adam": 8.0}
"""Optimizer state per embedding element (fp32): Adagrad one accumulator, Adam two moments;
FBGEMM's row-wise Adagrad keeps one fp32 per row instead (:data:`SPARSE_STATE_BYTES_PER_ROW`)."""

SPARSE_STATE_BYTES_PER_ROW: dict[str, float] = {"sgd": 0.0, "adagrad": 0.0, "rowwise_adagrad": 4.0, "adam": 0.0}

DENSE_STATE_BYTES_PER_PARAM: dict[str, float] = {"sgd": 0.0, "adagrad": 4.0, "adam": 8.0}
"""fp32 optimizer state per dense parameter."""


class EmbeddingTable(BaseModel):
    """One embedding table (or a group of ``count`` identical tables)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    num_rows: int = Field(gt=0, description="rows (the feature's cardinality)")
    dim: int = Field(gt=0, description="embedding dimension (columns)")
    pooling_factor: float = Field(default=1.0, gt=0, description="mean ids per sample (multi-hot size)")
    dtype: EmbeddingDtype = "fp32"

    @property
    def elem_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def weight_bytes(self) -> float:
        return float(self.num_rows) * self.dim * self.elem_bytes

    def state_bytes(self, optimizer: str) -> float:
        """Sparse optimizer state of the whole table, bytes."""
        return (
            float(self.num_rows) * self.dim * SPARSE_STATE_BYTES_PER_ELEMENT[optimizer]
            + float(self.num_rows) * SPARSE_STATE_BYTES_PER_ROW[optimizer]
        )

    def lookup_bytes(self, batch: int) -> float:
        """Rows gathered for ``batch`` samples: batch x pooling x dim x dtype bytes."""
        return batch * self.pooling_factor * self.dim * self.elem_bytes


class TableGroup(BaseModel):
    """``count`` tables of one shape (a compact way to write hundreds of tables in YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str
    count: int = Field(gt=0)
    num_rows: int = Field(gt=0)
    dim: int = Field(gt=0)
    pooling_factor: float = Field(default=1.0, gt=0)
    dtype: EmbeddingDtype = "fp32"


class RecsysSpec(BaseModel):
    """A DLRM-style recommendation model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["recsys"] = "recsys"
    name: str = "custom-recsys"
    tables: tuple[EmbeddingTable, ...] = ()
    table_groups: tuple[TableGroup, ...] = Field(default=(), description="expanded into tables on load")
    num_dense_features: int = Field(default=13, ge=0)
    bottom_mlp: tuple[int, ...] = Field(min_length=1)
    top_mlp: tuple[int, ...] = Field(min_length=1)
    interaction: Literal["dot", "dcnv2"] = "dot"
    cross_layers: int = Field(default=3, ge=0, description="DCNv2 cross layers")
    cross_rank: int = Field(default=512, gt=0, description="DCNv2 low-rank projection dimension")
    sparse_optimizer: SparseOptimizer = "sgd"
    dense_optimizer: DenseOptimizer = "sgd"
    embedding_comm_dtype: EmbeddingDtype | None = Field(
        default=None, description="dtype of the pooled-embedding all-to-all; default the tables' dtype"
    )
    default_global_batch: int = Field(default=65536, gt=0, description="samples per step when none is given")
    frequency_threshold: int | None = Field(default=None, ge=0, description="Criteo preprocessing, informative")
    source: str = ""

    @model_validator(mode="after")
    def _rules(self) -> RecsysSpec:
        if self.table_groups:
            expanded = list(self.tables)
            for g in self.table_groups:
                for i in range(g.count):
                    expanded.append(
                        EmbeddingTable(
                            name=f"{g.prefix}{i}",
                            num_rows=g.num_rows,
                            dim=g.dim,
                            pooling_factor=g.pooling_factor,
                            dtype=g.dtype,
                        )
                    )
            object.__setattr__(self, "tables", tuple(expanded))
            object.__setattr__(self, "table_groups", ())
        if not self.tables:
            raise ValueError("a recommendation model needs at least one embedding table")
        names = [t.name for t in self.tables]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"table name '{dup}' is used twice")
        if self.interaction == "dot":
            dims = {t.dim for t in self.tables}
            if len(dims) > 1 or self.bottom_mlp[-1] not in dims:
                raise ValueError(
                    f"the dot interaction needs one embedding dim equal to the bottom MLP's last width "
                    f"{self.bottom_mlp[-1]} (tables have {sorted(dims)})"
                )
        if self.top_mlp[-1] != 1:
            raise ValueError(f"top_mlp must end in 1 output (the click logit), got {self.top_mlp[-1]}")
        return self

    # -- shapes --------------------------------------------------------------------------------
    @property
    def num_features(self) -> int:
        """Feature vectors entering the interaction: one per table plus the bottom MLP output."""
        return len(self.tables) + 1

    @property
    def interaction_in_dim(self) -> int:
        """Width of the concatenated feature vector (DCNv2 input)."""
        return self.bottom_mlp[-1] + sum(t.dim for t in self.tables)

    @property
    def interaction_out_dim(self) -> int:
        """Width entering the top MLP."""
        if self.interaction == "dot":
            f = self.num_features
            return f * (f - 1) // 2 + self.bottom_mlp[-1]
        return self.interaction_in_dim

    def bottom_layers(self) -> list[tuple[int, int]]:
        """(in, out) of each bottom MLP layer."""
        dims = [self.num_dense_features, *self.bottom_mlp]
        return list(zip(dims[:-1], dims[1:], strict=True))

    def top_layers(self) -> list[tuple[int, int]]:
        dims = [self.interaction_out_dim, *self.top_mlp]
        return list(zip(dims[:-1], dims[1:], strict=True))

    # -- parameters ----------------------------------------------------------------------------
    @property
    def mlp_params(self) -> int:
        """Bottom and top MLP weights and biases."""
        return sum(i * o + o for i, o in self.bottom_layers() + self.top_layers())

    @property
    def cross_params(self) -> int:
        if self.interaction != "dcnv2":
            return 0
        d = self.interaction_in_dim
        return self.cross_layers * (2 * d * self.cross_rank + d)

    @property
    def dense_params(self) -> int:
        return self.mlp_params + self.cross_params

    @property
    def embedding_params(self) -> int:
        return sum(t.num_rows * t.dim for t in self.tables)

    @property
    def embedding_bytes(self) -> float:
        return sum(t.weight_bytes for t in self.tables)

    @property
    def num_params(self) -> int:
        return self.embedding_params + self.dense_params

    # -- FLOPs ---------------------------------------------------------------------------------
    def interaction_flops_per_sample(self) -> float:
        """Forward FLOPs of the interaction: dot products, or the cross layers' two GEMMs each."""
        if self.interaction == "dot":
            d = self.bottom_mlp[-1]
            return 2.0 * self.num_features**2 * d
        d = self.interaction_in_dim
        return self.cross_layers * 2.0 * (2.0 * d * self.cross_rank)

    def dense_flops_per_sample(self) -> float:
        """Training FLOPs of the dense part per sample (forward x 3), the recsys MFU numerator."""
        mlp = sum(2.0 * i * o for i, o in self.bottom_layers() + self.top_layers())
        return 3.0 * (mlp + self.interaction_flops_per_sample())


# ------------------------------------------------------------------------------------- presets

PRESETS_FILE = Path(__file__).resolve().parent.parent / "presets" / "recsys.yaml"


@functools.lru_cache(maxsize=1)
def _preset_data() -> dict[str, dict[str, Any]]:
    from planner.hardware import load_yaml

    data = load_yaml(PRESETS_FILE, "recsys presets")
    out: dict[str, dict[str, Any]] = {}
    for m in data["models"]:
        d = dict(m)
        out[d["name"]] = d
    return out


def recsys_preset_names() -> list[str]:
    return sorted(_preset_data())


def is_recsys_preset(ref: str) -> bool:
    return ref in _preset_data()


def recsys_from_dict(data: dict[str, Any], field: str = "model") -> RecsysSpec:
    """Validate a recommendation model; the compact ``cardinalities`` / ``pooling_factors`` form
    (one list entry per table, with a shared ``embedding_dim``) is expanded into tables."""
    d = {k: v for k, v in data.items() if not k.startswith("_")}
    cards = d.pop("cardinalities", None)
    pools = d.pop("pooling_factors", None)
    dim = d.pop("embedding_dim", None)
    dtype = d.pop("embedding_dtype", "fp32")
    if cards is not None:
        if dim is None:
            raise PlannerInputError(f"{field}.embedding_dim", "is required with cardinalities")
        if pools is not None and len(pools) != len(cards):
            raise PlannerInputError(
                f"{field}.pooling_factors", f"has {len(pools)} entries for {len(cards)} cardinalities"
            )
        tables = list(d.get("tables", ()))
        for i, rows in enumerate(cards):
            tables.append(
                {
                    "name": f"t{i}",
                    "num_rows": rows,
                    "dim": dim,
                    "pooling_factor": pools[i] if pools else 1.0,
                    "dtype": dtype,
                }
            )
        d["tables"] = tables
    try:
        return RecsysSpec.model_validate(d)
    except ValidationError as e:
        raise pydantic_message(field, e) from None


def load_recsys(ref: str | dict[str, Any]) -> RecsysSpec:
    """A recsys preset by name, or the already-read mapping of a user's YAML file."""
    if isinstance(ref, dict):
        return recsys_from_dict(ref, field=f"model {ref.get('name', '')}".strip())
    presets = _preset_data()
    if ref not in presets:
        raise unknown_id("model", ref, presets)
    return recsys_from_dict(presets[ref], field=f"model {ref}")
