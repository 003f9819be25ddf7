"""The documented framework choices a validation row is predicted with.

These are not factors: each is a kernel or algorithm choice the framework documents. Transformer
rows (``framework`` column) read the one table, planner.transformer.frameworks (its entries, aliases
and sources): the attention kernel (FlashAttention-2 for llm-foundry, torchtitan and the rows without
a documented kernel; cuDNN fused attention for Megatron-Core / NeMo with Transformer Engine on Hopper;
unfused for Megatron-LM on V100/A100 and Megatron-DeepSpeed), tensor-parallel communication overlap
and the distributed optimizer of NeMo's and Megatron-Core's published recipes. A name the table does
not know keeps planner's defaults (FlashAttention-2, no overlap).

Recommendation rows (``measured_samples_per_s``; NVIDIA DeepLearningExamples TF2 DLRM/DCNv2) are
predicted with that framework's documented choices (:data:`DLE_TF2`): TF2 + XLA, AMP for the MLPs
(the row's ``precision``) with embeddings stored and exchanged in FP32, NVIDIA
distributed-embeddings' ``memory_balanced`` table placement with column slicing above 10e9
elements, each rank reading its own tables' ids (no input all-to-all), and the DGX's host memory
(:data:`DGX_HOST_MEMORY_GIB`) for tables offloaded to the CPU.
"""

from __future__ import annotations

from typing import Any

from planner.transformer.frameworks import (
    FRAMEWORK_ALIASES,
    FRAMEWORKS,
    GenChoices,
    canonical,
    gen_choices,
    launcher_choices,
    layer_chunk_vpp,
)

__all__ = ["FRAMEWORK_ALIASES", "canonical"]

_PLANNER_DEFAULT = GenChoices("flash", False, False)


def row_choices(framework: str, accelerator: str) -> GenChoices:
    """The generation-dependent choices of a row's framework on its accelerator (an unknown name:
    planner's defaults)."""
    fw = FRAMEWORKS.get(canonical(framework))
    return _PLANNER_DEFAULT if fw is None else gen_choices(fw, accelerator)


def modern_megatron(framework: str, accelerator: str) -> bool:
    """Megatron-Core with Transformer Engine's published recipes: the distributed optimizer."""
    return row_choices(framework, accelerator).distributed_optimizer


def tp_comm_overlap(framework: str, accelerator: str) -> bool:
    """NeMo's and Megatron-Bridge's published performance recipes turn on ``tp_comm_overlap``."""
    return row_choices(framework, accelerator).tp_comm_overlap


def attention_kernel(framework: str, accelerator: str) -> str:
    """The attention kernel a framework used (planner.transformer.frameworks)."""
    return row_choices(framework, accelerator).attention


def grad_reduce_dtype(framework: str) -> str | None:
    """The data-parallel gradient reduction dtype a row's framework documents (``grad_reduce`` of its
    entry: fp32 for torchtitan and Llama 3's FSDP, the 16-bit param dtype for llm-foundry's PURE mixed
    precision and DeepSpeed), or None (planner's rule, which is Megatron's). Only for a row naming the
    entry itself: an alias borrows its entry's kernel and TP overlap, not this (DeepSeek-V3's HAI-LLM
    is not torchtitan)."""
    fw = FRAMEWORKS.get(framework.strip().lower())
    return None if fw is None else fw.grad_reduce


def memory_choices(framework: str, accelerator: str, tp: int, row: dict[str, Any]) -> dict[str, Any]:
    """The memory-saving choices a framework's published runs made and a row may not state.

    * Megatron-Core with Transformer Engine (NeMo, Megatron-Bridge, Megatron-Core on Hopper) runs
      its published recipes with the distributed optimizer (ZeRO-1 over dp*cp): a ``zero_stage`` of
      0 there is the transcriber's blank (NeMo's 24.07 tables do not print it), and is read as 1.
      The run physically needed it: LLAMA2-13B on 8 H100 with replicated Adam states needs 18 bytes
      x 13e9 = 218 GiB per GPU.
    * Megatron-Core's ``--tp-comm-overlap`` (set for the same rows) requires sequence parallelism
      (megatron/training/arguments.py: "Tensor parallel communication/GEMM overlap can happen only
      when sequence parallelism is enabled"), so those rows run with it; any row that leaves ``sequence_parallel`` blank with ``tp > 1`` is
      predicted with it too (Megatron-Core/NeMo recipes, torchtitan's TP plan with ``SequenceParallel``
      norms, Llama 3's Megatron-style TP all use it)."""
    fields: dict[str, Any] = {}
    fw = framework.strip().lower()
    modern = modern_megatron(fw, accelerator)
    if modern and row.get("zero_stage", 0) == 0:
        fields["zero_stage"] = 1
    if tp > 1 and ("sequence_parallel" not in row or (modern and tp_comm_overlap(fw, accelerator))):
        fields["sequence_parallel"] = True
    return fields


def transformer_choices(
    framework: str, accelerator: str, tp: int, row: dict[str, Any] | None = None, num_layers: int = 0
) -> dict[str, Any]:
    """The strategy fields a transformer row's framework fixes: attention kernel and TP overlap,
    (given the row's parsed ``row`` fields) its :func:`memory_choices`, for a framework that
    interleaves one layer per virtual stage (Llama 3's) the ``vpp`` of a row that leaves it blank,
    and the fields a framework's launcher fixes that the row leaves blank (metaseq: FSDP kept gathered
    from forward to backward, full recomputation with distributed checkpoints, no sequence
    parallelism, one micro-batch a step: planner.transformer.frameworks.launcher_choices)."""
    fields: dict[str, Any] = {"attention": attention_kernel(framework, accelerator)}
    if tp > 1 and tp_comm_overlap(framework, accelerator):
        fields["tp_comm_overlap"] = True
    if (reduce_dtype := grad_reduce_dtype(framework)) is not None:
        fields["grad_reduce_dtype"] = reduce_dtype
    if row is not None:
        fields.update(memory_choices(framework, accelerator, tp, row))
        fw = FRAMEWORKS.get(canonical(framework))
        if fw is not None and fw.layer_chunks and "vpp" not in row and num_layers:
            fields["vpp"] = layer_chunk_vpp(num_layers, row.get("pp") or 1)
        if fw is not None:  # the launcher's own choices (metaseq's OPT-175B) for what the row leaves blank
            dp, pp = row.get("dp") or 1, row.get("pp") or 1
            fields.update(launcher_choices(fw.name, tp, dp, pp, row.get("global_batch"), row))
    return fields


DLE_TF2: dict[str, Any] = {"placement": "memory_balanced"}
"""NVIDIA DeepLearningExamples TF2 DLRM/DCNv2 (see the module docstring): distributed-embeddings'
memory-balanced placement; embeddings FP32 (the presets' dtype); no input all-to-all."""

DGX_HOST_MEMORY_GIB = {"a100-sxm-80gb": 2048.0, "a100-sxm-40gb": 1024.0, "v100-sxm2-32gb": 512.0}
"""System memory of the DGX the DeepLearningExamples ran on (NVIDIA DGX A100 datasheet: 2 TB with
80 GB GPUs, 1 TB with 40 GB; DGX-1 with V100 32GB: 512 GB), for tables offloaded to the CPU."""


def recsys_choices(accelerator: str, framework: str = "") -> dict[str, Any]:
    """The strategy fields of a recommendation row on ``accelerator``: its ``framework`` column (blank:
    tf2-dle, the DeepLearningExamples TF2 rows of recsys.csv), whose documented choices
    planner.recsys.frameworks holds, and the DGX's host memory."""
    from planner.errors import PlannerInputError
    from planner.recsys.frameworks import RECSYS_FRAMEWORK_NAMES

    fw = framework.strip().lower() or "tf2-dle"
    if fw not in RECSYS_FRAMEWORK_NAMES:
        known = ", ".join(RECSYS_FRAMEWORK_NAMES)
        raise PlannerInputError("framework", f"'{fw}' is not a recommendation framework ({known})")
    fields: dict[str, Any] = {"framework": fw, "host_memory_gib": DGX_HOST_MEMORY_GIB.get(accelerator)}
    return dict(DLE_TF2, **fields) if fw == "tf2-dle" else fields
