"""DLRM's dot interaction as the kernels that run it: a documented, discrete choice of the framework.

``custom``: one fused kernel each way (DeepLearningExamples' ``tensorflow-dot-based-interact`` op,
HugeCTR's ``dotBasedInteractFwd/Bwd`` in ``HugeCTR/src/layers/interaction_layer.cu``): it reads the
``[B, F, D]`` features once and writes the ``[B, D + F(F-1)/2]`` top-MLP input once; backward twice that.

``framework``: the framework's own ops, each a kernel pass over HBM (costed from its tensors at the
accelerator's HBM bandwidth x ``hbm_efficiency``; the batched GEMMs by the same roofline, since a
27 x 27 x 128 product per sample is memory-bound):

* forward: a batched GEMM ``x x^T`` ([B, F, D] twice in, [B, F, F] out), the lower triangle selected
  by a gather ([B, F(F-1)/2] out), concatenated with the bottom-MLP output ([B, D + F(F-1)/2]);
* backward: the concat's gradient sliced, the gather's gradient scattered into a zeroed [B, F, F]
  (TF ``UnsortedSegmentSum``, PyTorch ``index_put_`` with accumulate), two batched GEMMs (``G x`` and
  ``G^T x``) and their sum (x is both operands).

With ``mask_gather`` (the TF2 Keras ``DotInteraction`` of HugeCTR's SOK DLRM benchmark,
``sparse_operation_kit/documents/tutorials/DLRM_Benchmark/model.py``, used without ``--custom_interact``)
the triangle is chosen at run time: ``tf.ones_like`` (fp32) / ``tf.linalg.band_part`` / subtract build
a [B, F, F] fp32 mask (three passes), ``tf.boolean_mask`` runs TF's ``Where`` (count pass, then an
int64 coordinate per selected element) and a gather by those coordinates; the features arrive as a
list (``tf.split`` of the looked-up block, re-concatenated inside the layer: one more copy each way).
``Where`` has a data-dependent output shape: TF's GPU kernel counts the true elements into pinned host
memory and allocates its output in an ``EventMgr::ThenExecute`` callback once the stream reaches that
point (``tensorflow/core/kernels/where_op.cc``), so the GPU drains and waits one event poll (TF's
``polling_active_delay_usecs`` default, 10 us, ``gpu_event_mgr.cc``) plus a relaunch (``kernel_floor_s``).
Without it (DeepLearningExamples' ``DotInteractionGather``: ``tf.gather`` by constant indices;
TorchRec's ``InteractionArch``: ``torch.bmm`` + ``triu_indices`` indexing + ``torch.cat``) the
gather's indices are a constant [F(F-1)/2] vector, read from cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from planner.costs.compute import ComputeModel

InteractionKernel = Literal["custom", "framework"]
INTERACTION_KERNELS: tuple[InteractionKernel, ...] = ("custom", "framework")

MASK_BYTES = 4
"""``tf.ones_like(xactions, dtype=tf.float32)``: the band mask is fp32 whatever the dense precision."""

WHERE_INDEX_BYTES = 8
"""TF's ``Where`` writes int64 coordinates, one per selected element."""

EVENT_POLL_S = 10e-6
"""TF's GPU ``EventMgr`` polling interval (``polling_active_delay_usecs`` default 10 us)."""


@dataclass(frozen=True)
class DotShape:
    """The interaction's tensors on one rank: ``batch`` samples of ``features`` vectors of ``dim``."""

    batch: int
    features: int
    dim: int
    out_dim: int  # D + F(F-1)/2: the top-MLP input
    elem_bytes: int  # dense precision
    input_bytes: int = 4  # dtype the looked-up embeddings arrive in (before the cast)

    @property
    def flops(self) -> float:
        """One batched ``x x^T``: 2 B F^2 D."""
        return 2.0 * self.batch * self.features**2 * self.dim

    @property
    def x_bytes(self) -> float:
        return float(self.batch * self.features * self.dim * self.elem_bytes)

    @property
    def square(self) -> float:
        """Elements of the [B, F, F] products."""
        return float(self.batch * self.features**2)

    @property
    def selected(self) -> float:
        """Elements kept: the strict lower triangle, B F(F-1)/2."""
        return float(self.batch * (self.features * (self.features - 1) // 2))


def roofline_s(comp: ComputeModel, flops: float, nbytes: float) -> float:
    """One kernel: FLOPs at the GEMM ceiling or bytes at HBM speed, whichever is longer, plus the ramp."""
    t = max(flops / comp.gemm_ceiling, nbytes / comp.hbm) + comp.calib.gemm_ramp_s
    return max(t, comp.calib.kernel_floor_s)


def custom_dot_s(comp: ComputeModel, x: DotShape) -> tuple[float, float]:
    """(forward, backward) of the fused kernel: features in, top-MLP input out; backward twice that."""
    fwd = roofline_s(comp, x.flops, x.batch * (x.features * x.dim + x.out_dim) * x.elem_bytes)
    return fwd, 2 * fwd


def framework_dot_s(comp: ComputeModel, x: DotShape, mask_gather: bool) -> tuple[float, float]:
    """(forward, backward) of the framework's own ops (module docstring), pass by pass."""
    e, sq, sel = x.elem_bytes, x.square, x.selected
    concat_b = 2.0 * x.batch * x.out_dim * e  # concat with the bottom-MLP output; its gradient's slices
    gemm_s = roofline_s(comp, x.flops, 2 * x.x_bytes + sq * e)  # x x^T
    grad_gemm_s = roofline_s(comp, x.flops, sq * e + 2 * x.x_bytes)  # G x, G^T x
    idx = WHERE_INDEX_BYTES if mask_gather else 0
    fwd_b, fwd_k = sel * (idx + 2 * e) + concat_b, 2  # gather, concat
    bwd_b, bwd_k = concat_b + sq * e + sel * (idx + 2 * e) + 3 * x.x_bytes, 4  # slice, zero + scatter, sum
    sync_s = 0.0
    if mask_gather:
        split_b = 2.0 * x.batch * (x.features - 1) * x.dim * x.input_bytes  # tf.split copy; its concat
        fwd_b += 6 * sq * MASK_BYTES + 2 * sq * MASK_BYTES + sel * WHERE_INDEX_BYTES + split_b  # mask, Where
        fwd_k += 3 + 2 + 1
        bwd_b, bwd_k = bwd_b + split_b, bwd_k + 1
        sync_s = EVENT_POLL_S + comp.calib.kernel_floor_s
    fwd = gemm_s + comp.memory_s(fwd_b, kernels=fwd_k) + sync_s
    bwd = 2 * grad_gemm_s + comp.memory_s(bwd_b, kernels=bwd_k)
    return fwd, bwd


def dot_interaction_s(
    comp: ComputeModel, x: DotShape, kernel: InteractionKernel = "custom", mask_gather: bool = False
) -> tuple[float, float]:
    """(forward, backward) seconds of the dot interaction run by ``kernel``."""
    return framework_dot_s(comp, x, mask_gather) if kernel == "framework" else custom_dot_s(comp, x)
