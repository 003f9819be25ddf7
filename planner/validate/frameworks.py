"""The documented framework choices a validation row is predicted with.

These are not factors: each is a kernel or algorithm choice the framework documents, stated once
here (and in docs/validation.md), so a row is simulated as the framework ran it.

Transformer rows (``framework`` column):

* attention kernel: FlashAttention for llm-foundry (MPT ``attn_impl: flash/triton``), NeMo,
  Megatron-Bridge / Megatron-Core with Transformer Engine (H100 and later), torchtitan (SDPA);
  unfused (Megatron's fused scale-mask-softmax) for Megatron-LM on V100/A100 (2020-22 papers),
  Megatron-DeepSpeed (vTrain, BLOOM, MT-NLG: ``--use-flash-attn`` off by default) and Korthikanti.
* tensor-parallel communication overlapped with GEMMs (``tp_comm_overlap``) for NeMo and
  Megatron-Core on Hopper and later, whose published performance recipes enable it.

Recommendation rows (``measured_samples_per_s``; NVIDIA DeepLearningExamples TF2 DLRM/DCNv2) are
predicted with that framework's documented choices (:data:`DLE_TF2`): TF2 + XLA, AMP for the MLPs
(the row's ``precision``) with embeddings stored and exchanged in FP32, NVIDIA
distributed-embeddings' ``memory_balanced`` table placement with column slicing above 10e9
elements, each rank reading its own tables' ids (no input all-to-all), and the DGX's host memory
(:data:`DGX_HOST_MEMORY_GIB`) for tables offloaded to the CPU.
"""

from __future__ import annotations

from typing import Any

FRAMEWORK_ALIASES: dict[str, str] = {
    # Megatron-Core with Transformer Engine is the library NeMo runs on (the "modern Megatron" of
    # modern_megatron below): fused attention, and NeMo's published recipes set tp_comm_overlap.
    "megatron-core": "nemo",
    # OPT-175B (arXiv:2205.01068 Sec. 2.4): "Fully Sharded Data Parallel with Megatron-LM Tensor
    # Parallelism", trained before FlashAttention existed (arXiv:2205.14135, May 2022): Megatron's
    # unfused scale-mask-softmax, as for the other Megatron-era A100 runs.
    "metaseq": "megatron-deepspeed",
    # Llama 3 405B (arXiv:2407.21783 Sec. 3.3) names neither its attention kernel nor a TP/GEMM
    # overlap: planner's defaults (flash attention, no TP overlap), the same as torchtitan's.
    "meta-internal": "torchtitan",
    # DeepSeek-V3's HAI-LLM (arXiv:2412.19437 Sec. 3.2) uses no tensor parallelism, so only the
    # attention kernel matters; the report does not name it: planner's default (flash).
    "hai-llm": "torchtitan",
    # MaxText on TPU (configs at 76bd53b0): XLA-compiled attention; no GPU kernel choice applies,
    # planner's default (flash) as for the other rows without a documented kernel.
    "maxtext": "torchtitan",
}
"""Framework names of the public transformer validation files (validation/README.md) mapped onto the
documented choices of an existing name; a name not listed here is its own. (Recommendation rows' names,
sok among them, are planner.recsys.frameworks' own.)"""


def canonical(framework: str) -> str:
    """The documented framework whose choices ``framework`` uses (lower case; aliases resolved)."""
    fw = framework.strip().lower()
    return FRAMEWORK_ALIASES.get(fw, fw)


FLASH_FRAMEWORKS = {"mosaic", "nemo", "torchtitan"}
"""Frameworks whose published runs used fused (Flash) attention on every accelerator."""
UNFUSED_FRAMEWORKS = {"megatron-deepspeed", "bloom", "mtnlg", "korthikanti"}
"""Frameworks whose published runs used unfused attention (``--use-flash-attn`` off by default)."""


def modern_megatron(framework: str, accelerator: str) -> bool:
    """Megatron-Core with Transformer Engine: NeMo, and Megatron-LM/-Bridge on Hopper and later."""
    fw = canonical(framework)
    return fw == "nemo" or (fw == "megatron" and not accelerator.startswith(("a100", "v100")))


def tp_comm_overlap(framework: str, accelerator: str) -> bool:
    """NeMo's and Megatron-Bridge's published performance recipes turn on ``tp_comm_overlap``."""
    return modern_megatron(framework, accelerator)


def attention_kernel(framework: str, accelerator: str) -> str:
    """The attention kernel a framework used (see the module docstring)."""
    fw = canonical(framework)
    if fw in FLASH_FRAMEWORKS:
        return "flash"
    if fw in UNFUSED_FRAMEWORKS:
        return "unfused"
    if fw == "megatron":
        return "unfused" if accelerator.startswith(("a100", "v100")) else "flash"
    return "flash"


DISTRIBUTED_OPTIMIZER_FRAMEWORKS = {"nemo", "megatron-core"}
"""Frameworks whose published recipes shard the optimizer states (Megatron-Core's distributed
optimizer, ``use_distributed_optimizer=True`` in NeMo's and Megatron-Bridge's performance recipes)."""


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
    modern = modern_megatron(fw, accelerator) or fw in DISTRIBUTED_OPTIMIZER_FRAMEWORKS
    if modern and row.get("zero_stage", 0) == 0:
        fields["zero_stage"] = 1
    if tp > 1 and ("sequence_parallel" not in row or (modern and tp_comm_overlap(fw, accelerator))):
        fields["sequence_parallel"] = True
    return fields


def transformer_choices(framework: str, accelerator: str, tp: int, row: dict[str, Any] | None = None) -> dict[str, Any]:
    """The strategy fields a transformer row's framework fixes: attention kernel and TP overlap,
    and (given the row's parsed ``row`` fields) its :func:`memory_choices`."""
    fields: dict[str, Any] = {"attention": attention_kernel(framework, accelerator)}
    if tp > 1 and tp_comm_overlap(framework, accelerator):
        fields["tp_comm_overlap"] = True
    if row is not None:
        fields.update(memory_choices(framework, accelerator, tp, row))
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
