"""Compute cost: roofline of FLOPs and bytes with achievable-efficiency curves.

A GEMM takes ``max(FLOPs / (peak * ceiling), bytes / (HBM * eff)) + ramp``, where the ceiling is
the accelerator's measured large-GEMM fraction of dense peak and the ramp a fixed start-up time
that makes small GEMMs less efficient (see :mod:`planner.calibration`). Memory-bound kernels take
their bytes over the achievable HBM bandwidth. Fused attention runs at its kernel's published
benchmark rate on the accelerator (hardware_specs/kernels.yaml via :mod:`planner.costs.kernels`)
times the global ``attention_fraction``. No kernel takes less than the kernel floor.
"""

from __future__ import annotations

from planner.calibration import Calibration
from planner.costs.kernels import attention_figure
from planner.hardware import Accelerator

TILES = ((128, 256), (256, 128))
"""Output tile shapes of large half-precision GEMM kernels (CUTLASS's default 128x256x64 on Ampere
and Hopper; cuBLAS picks the orientation that wastes less)."""

BYTES_PER_ELEMENT = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 2}
"""Activation bytes per element by training precision (FP8 training keeps bf16 activations)."""


class ComputeModel:
    """Durations of compute kernels on one accelerator at one training precision."""

    def __init__(self, acc: Accelerator, calib: Calibration, precision: str) -> None:
        self.acc = acc
        self.calib = calib
        self.precision = precision
        # Attention and non-GEMM math run in 16-bit even under FP8 training (Transformer Engine).
        self.gemm_peak = acc.peak_flops(precision)
        self.gemm_ceiling = self.gemm_peak * self._fraction(precision) * calib.gemm_mamf_fraction
        self._half = "bf16" if precision == "fp8" else precision
        self._attn_rates: dict[str, float] = {}
        self.hbm = acc.memory_bandwidth_gb_s * 1e9 * calib.hbm_efficiency
        self.elem_bytes = BYTES_PER_ELEMENT[precision]

    def _fraction(self, precision: str) -> float:
        frac = self.acc.gemm_peak_fraction
        if precision in frac:
            return frac[precision]  # type: ignore[index]
        alias = {"fp16": "bf16", "bf16": "fp16"}.get(precision)
        if alias and alias in frac:
            return frac[alias]  # type: ignore[index]
        return self.calib.gemm_default_fraction

    def wave_efficiency(self, m: int, n: int, batch: int = 1) -> float:
        """Fraction of the compute units' tile slots doing useful work.

        cuBLAS/CUTLASS split the [m, n] output into tiles (128 x 256 for large half-precision GEMMs);
        tiles run in waves of one per compute unit, so a GEMM of 1.1 waves pays for 2, and a partial
        tile at an edge pays for a whole one. Accelerators without a known unit count get 1.
        """
        cu = self.acc.compute_units
        if not cu:
            return 1.0
        best = 0.0
        for tm, tn in TILES:
            tiles = -(-m // tm) * -(-n // tn) * batch
            waves = -(-tiles // cu)
            best = max(best, (m * n * batch) / (waves * cu * tm * tn))
        return best

    def gemm_s(self, m: int, n: int, k: int, batch: int = 1) -> float:
        """A (batched) GEMM of [m, k] x [k, n]: roofline with wave quantisation, plus start-up ramp."""
        flops = 2.0 * m * n * k * batch
        e = self.elem_bytes if self.precision != "fp8" else 1
        bytes_moved = (m * k + k * n) * e * batch + m * n * self.elem_bytes * batch
        ceiling = self.gemm_ceiling * self.wave_efficiency(m, n, batch)
        t = max(flops / ceiling, bytes_moved / self.hbm) + self.calib.gemm_ramp_s
        if self.precision == "fp8":
            # quantise the activation operand (weights are cast once per step, amortised)
            t += m * k * batch * self.calib.fp8_cast_bytes_per_element / self.hbm
        return max(t, self.calib.kernel_floor_s)

    def attention_flops(self, kernel: str = "flash") -> float:
        """FLOP/s of fused attention ``kernel`` in training: its published benchmark rate on this
        accelerator (hardware_specs/kernels.yaml), or where there is none the default ratio to this
        accelerator's 16-bit GEMM ceiling, times the global benchmark-to-training residual
        (``attention_fraction``)."""
        rate = self._attn_rates.get(kernel)
        if rate is None:
            fig = attention_figure(self.acc.id, kernel)
            if fig.tflops is not None:
                bench = fig.tflops * 1e12
            else:
                half = self._half
                gemm = self.acc.peak_flops(half) * self._fraction(half) * self.calib.gemm_mamf_fraction
                bench = gemm * fig.of_gemm_ceiling
            rate = self._attn_rates[kernel] = bench * self.calib.attention_fraction
        return rate

    def attention_s(self, flops: float, bytes_moved: float, kernel: str = "flash") -> float:
        """A fused attention kernel's forward (FlashAttention-style): FLOPs at that kernel's rate."""
        t = max(flops / self.attention_flops(kernel), bytes_moved / self.hbm) + self.calib.gemm_ramp_s
        return max(t, self.calib.kernel_floor_s)

    def memory_s(self, bytes_moved: float, kernels: int = 1) -> float:
        """Memory-bound kernels moving ``bytes_moved`` in total over ``kernels`` launches."""
        return max(bytes_moved / self.hbm, kernels * self.calib.kernel_floor_s)
