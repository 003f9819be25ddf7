"""The recommendation-training frameworks as the documented, discrete choices each one makes.

No factor per framework: each field below switches a physical term of the step (bytes moved, kernels
launched, what overlaps what), and each value is read from the framework's own code or docs:

* **tf2-dle** -- NVIDIA DeepLearningExamples TensorFlow2/Recommendation/DLRM_and_DCNv2 with
  distributed-embeddings (the behaviour planner had before frameworks were an input): table-wise
  ``memory_balanced`` placement, every table model-parallel; one embedding layer (lookup kernel) per
  table; embeddings stored and exchanged in fp32 (doc/DLRM.md: "embeddings stored in FP32"); each rank
  reads its own tables' ids (no id all-to-all); eager TF2 + XLA step dispatch (the fitted host time).
* **sok** -- TF2 + SparseOperationKit (NVIDIA-Merlin/HugeCTR
  ``sparse_operation_kit/documents/tutorials/DLRM_Benchmark/model.py``): all tables fused into one
  ``sok.All2AllDenseEmbedding`` (ids offset by a prefix sum, ``max_vocabulary_size_per_gpu = total /
  num_gpus``): one lookup kernel over rows spread evenly on every GPU (row-wise), the ids exchanged by
  all-to-all before it; the looked-up float32 vectors go back to the samples' ranks by all-to-all
  (one vector per id, not pooled partial sums); eager TF2 (+ XLA) dispatch.
* **hugectr** -- HugeCTR's MLPerf DLRM-DCNv2 recipe (``samples/dlrm/train.py``): ``use_cuda_graph=True``
  (the step is one graph launch), ``train_intra_iteration_overlap`` / ``train_inter_iteration_overlap``
  (embedding communication overlapped with dense work; the next batch's ids prepared during this step),
  ``DenseLayerComputeConfig(async_wgrad=True)`` (weight gradients off the critical path, after the
  embedding-gradient all-to-all is issued), ``use_embedding_collection=True`` (one fused lookup and one
  fused backward + optimizer per GPU), the ``hier_auto`` plan with ``DP_SHARDING_THRESHOLD`` (small tables
  replicated data-parallel, large ones model-parallel); under mixed precision the pooled embeddings and
  their gradients are fp16 (``HugeCTR/src/pybind/model_compile.cpp``: ``emb_type`` / ``wgrad_type`` =
  Half when ``use_mixed_precision``), the tables fp32; so is the dense weight-gradient buffer the
  grouped all-reduce exchanges (``build_networks``: ``GetWgradHalfBufferChannel`` under mixed precision).
  The HugeCTR v3.1 release notes (the MLPerf v1.0 code) list the same: "Holistic CUDA graph - Full
  iteration graph capture", "Generalized embedding and bottom MLP overlap", hybrid embedding.
* **torchrec** -- TorchRec with FBGEMM (``torchrec/distributed/embedding_sharding.py`` groups tables of
  one data type and kernel into one ``SplitTableBatchedEmbeddingBagsCodegen``, FBGEMM's table-batched
  embedding: one forward kernel for the group and a backward that applies the optimizer in the same
  kernel, ``fbgemm_gpu/split_table_batched_embeddings_ops_training.py``); the planner's data-parallel
  option for small tables; ``TrainPipelineSparseDist`` (``torchrec/distributed/train_pipeline/
  train_pipelines.py``) runs the next batch's id all-to-all (input dist) during this step; eager PyTorch
  dispatch; fp32 tables and fp32 communication by default (``EmbeddingBagConfig.data_type`` FP32,
  quantized comms off).

The dot interaction's kernel (planner.recsys.interaction; the strategy's ``interaction_kernel`` overrides
it): tf2-dle custom (``dlrm.py``: ``--interaction`` defaults to ``dot_custom_cuda``, the fused op of
``tensorflow-dot-based-interact``; ``dot_tensorflow`` is ``nn/interaction.py``'s constant-index gather);
sok custom (the README's main table runs ``--custom_interact``; without it ``model.py``'s Keras
``DotInteraction`` selects the triangle by ``tf.boolean_mask``, hence ``mask_gather``); hugectr custom
(``HugeCTR/src/layers/interaction_layer.cu``: ``dotBasedInteractFwd/Bwd`` under mixed precision);
torchrec framework (``torchrec/models/dlrm.py`` ``InteractionArch``: ``torch.bmm``, ``triu_indices``
indexing, ``torch.cat``).

``None`` (no framework given) is planner's generic model: the strategy's own placement and sharding,
the tables' dtypes, per-shard kernels, blocking input distribution for the TorchRec-style planner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from planner.recsys.interaction import InteractionKernel

InputDist = Literal["none", "blocking", "pipelined"]


@dataclass(frozen=True)
class RecsysFramework:
    """The discrete choices of one framework (see the module docstring for their sources)."""

    name: str
    placement: str  # "memory_balanced" (distributed-embeddings) or "torchrec" (planner with data-parallel option)
    sharding: str  # forced sharding type, or "auto"
    fused_embedding: bool  # one lookup kernel + one fused backward/optimizer kernel per rank
    half_comm_with_amp: bool  # pooled embeddings and their gradients on the wire in fp16 under mixed precision
    input_dist: InputDist  # none: ranks read their own ids; blocking: id all-to-all gates the lookup; pipelined
    async_wgrad: bool  # top-MLP / interaction weight gradients after the embedding-gradient all-to-all is issued
    cuda_graph: bool  # the whole step is one CUDA graph launch (host time of one launch)
    unpooled_rw: bool  # row-wise shards send each looked-up vector by all-to-all (not pooled partial sums)
    half_grads_with_amp: bool  # dense and data-parallel-table gradients all-reduced in fp16 under mixed precision
    source: str
    interaction_kernel: InteractionKernel = "custom"  # default dot-interaction kernel (planner.recsys.interaction)
    mask_gather: bool = False  # its framework-op path selects the triangle with tf.boolean_mask (a host sync)


FRAMEWORKS: dict[str, RecsysFramework] = {
    "tf2-dle": RecsysFramework(
        "tf2-dle", "memory_balanced", "auto", False, False, "none", False, False, False, False,
        "NVIDIA/DeepLearningExamples TensorFlow2/Recommendation/DLRM_and_DCNv2 (doc/DLRM.md, main.py; dlrm.py "
        "--interaction default dot_custom_cuda, nn/dense_model.py, nn/interaction.py)",
    ),
    "sok": RecsysFramework(
        "sok", "torchrec", "row", True, False, "blocking", False, False, True, False,
        "NVIDIA-Merlin/HugeCTR sparse_operation_kit/documents/tutorials/DLRM_Benchmark/model.py, README.md",
        mask_gather=True,
    ),
    "hugectr": RecsysFramework(
        "hugectr", "torchrec", "auto", True, True, "pipelined", True, True, False, True,
        "NVIDIA-Merlin/HugeCTR samples/dlrm/train.py; HugeCTR/src/pybind/model_compile.cpp; "
        "HugeCTR/src/layers/interaction_layer.cu",
    ),
    "torchrec": RecsysFramework(
        "torchrec", "torchrec", "auto", True, False, "pipelined", False, False, False, False,
        "pytorch/torchrec distributed/embedding_sharding.py, train_pipeline/train_pipelines.py; "
        "pytorch/FBGEMM fbgemm_gpu/split_table_batched_embeddings_ops_training.py; torchrec/models/dlrm.py",
        interaction_kernel="framework",
    ),
}  # fmt: skip
"""The frameworks by the name ``--framework`` and validate's ``framework`` column take."""

RECSYS_FRAMEWORK_NAMES = tuple(FRAMEWORKS)

HALF_PRECISIONS = ("fp16", "bf16")
"""Dense precisions that are mixed precision (the framework's AMP / ``use_mixed_precision``)."""


def recsys_framework(name: str | None) -> RecsysFramework | None:
    """The choices of framework ``name`` (None: planner's generic model)."""
    return None if name is None else FRAMEWORKS[name]


def strategy_defaults(name: str | None) -> dict[str, str]:
    """The strategy fields a framework fixes unless the user gives them: placement and sharding."""
    fw = recsys_framework(name)
    return {} if fw is None else {"placement": fw.placement, "sharding": fw.sharding}


def comm_dtype(fw: RecsysFramework | None, precision: str) -> str | None:
    """The dtype of pooled embeddings on the wire the framework uses (None: the model's own)."""
    if fw is not None and fw.half_comm_with_amp and precision in HALF_PRECISIONS:
        return "fp16"
    return None


def input_dist(fw: RecsysFramework | None, placement: str) -> InputDist:
    """How the ids reach the ranks that own the tables (generic model: by the placement)."""
    if fw is not None:
        return fw.input_dist
    return "blocking" if placement == "torchrec" else "none"


@dataclass(frozen=True)
class StepChoices:
    """What the step graph (planner.recsys.graph.build) needs to know of the framework."""

    step_host_s: float  # host time per step no kernel hides
    input_dist: InputDist = "blocking"
    dp_overlap: bool = True  # dense all-reduce overlapped with the backward
    fused: bool = False  # the rank's lookups one kernel, its backward and optimizer another
    async_wgrad: bool = False
    unpooled_rw: bool = False
    grad_wire_bytes: int = 4  # bytes per dense / data-parallel-table gradient element all-reduced
    interaction_kernel: InteractionKernel = "custom"
    mask_gather: bool = False


def interaction_kernel(fw: RecsysFramework | None, kernel: InteractionKernel | None) -> InteractionKernel:
    """The dot-interaction kernel that runs: the one given, else the framework's default (generic: custom)."""
    return kernel or (fw.interaction_kernel if fw is not None else "custom")


def step_choices(
    fw: RecsysFramework | None, placement: str, precision: str, dp_overlap: bool, eager_step_host_s: float,
    kernel_floor_s: float, kernel: InteractionKernel | None = None,
) -> StepChoices:  # fmt: skip
    """The graph's choices for framework ``fw`` (None: the generic model). Host time: one graph launch
    (``kernel_floor_s``) under CUDA graphs, else the eager dispatch (``recsys_step_host_s``); the dot
    interaction by ``kernel`` (None: the framework's default)."""
    ik = interaction_kernel(fw, kernel)
    if fw is None:
        return StepChoices(eager_step_host_s, input_dist(None, placement), dp_overlap, interaction_kernel=ik)
    amp = precision in HALF_PRECISIONS
    return StepChoices(
        step_host_s=kernel_floor_s if fw.cuda_graph else eager_step_host_s,
        input_dist=fw.input_dist,
        dp_overlap=dp_overlap,
        fused=fw.fused_embedding,
        async_wgrad=fw.async_wgrad,
        unpooled_rw=fw.unpooled_rw,
        grad_wire_bytes=2 if fw.half_grads_with_amp and amp else 4,
        interaction_kernel=ik,
        mask_gather=fw.mask_gather,
    )
