"""How a recommendation model is trained: batch, precision, sharding. (Transformers: planner.transformer.strategy.)"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.recsys.frameworks import RECSYS_FRAMEWORK_NAMES, strategy_defaults
from planner.recsys.interaction import InteractionKernel

RECSYS_STRATEGY_FIELDS = ("global_batch", "precision", "sharding", "placement", "host_memory_gib", "cache_load_factor",
                          "dp_overlap", "framework", "embedding_precision", "interaction_kernel")  # fmt: skip

CACHE_LOAD_FACTOR = 0.2
"""Fraction of a host-resident table's rows cached in HBM, and the hit rate assumed for it (uniform
access: the hit rate equals the cached fraction, a lower bound under skewed real traffic). TorchRec's
default ``cache_load_factor`` is 0.2."""


class RecsysStrategy(BaseModel):
    """Training options of a recommendation model. Dense layers are data-parallel on every device;
    the embedding tables are sharded by the planner (or as ``sharding`` forces)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    global_batch: int | None = Field(default=None, ge=1, description="samples per step; default the model's")
    precision: Literal["fp32", "tf32", "fp16", "bf16"] = Field(default="bf16", description="dense (MLP) precision")
    sharding: Literal["table", "row", "column", "data", "auto"] = "auto"
    placement: Literal["torchrec", "memory_balanced"] = Field(
        default="torchrec",
        description="torchrec: TorchRec-style planner; memory_balanced: NVIDIA distributed-embeddings (DLE TF2)",
    )
    host_memory_gib: float | None = Field(default=None, gt=0, description="host RAM per node; default the node's")
    cache_load_factor: float = Field(default=CACHE_LOAD_FACTOR, ge=0, le=1)
    dp_overlap: bool = Field(default=True, description="overlap the dense all-reduce with the backward pass")
    framework: Literal["tf2-dle", "sok", "hugectr", "torchrec"] | None = Field(
        default=None,
        description="the training framework, whose documented choices (planner.recsys.frameworks) set placement, "
        "sharding, kernels, overlap and host time; default planner's generic model",
    )
    embedding_precision: Literal["fp32", "fp16"] | None = Field(
        default=None, description="dtype the embedding tables are stored in; default the model's"
    )
    interaction_kernel: InteractionKernel | None = Field(
        default=None,
        description="the dot interaction as one fused custom kernel or the framework's own ops "
        "(planner.recsys.interaction); default the framework's (custom for the generic model)",
    )

    @model_validator(mode="before")
    @classmethod
    def _framework_defaults(cls, data: Any) -> Any:
        """A framework's placement and sharding, where the user did not give them."""
        if isinstance(data, dict) and data.get("framework") in RECSYS_FRAMEWORK_NAMES:
            return {**strategy_defaults(data["framework"]), **data}
        return data
