"""Every efficiency constant of the cost model, in one place, each with its source.

Peak FLOP/s and bandwidths come from ``hardware_specs`` (per accelerator and per node type).
What fraction of those peaks real kernels reach comes from here: a :class:`Calibration` holds
the global, physically meaningful constants; :data:`DEFAULT` is the one planner uses unless a
user passes another (e.g. one fitted on their own cluster).

Sources (keys as in ../shared/reference/hardware.md):

* GEMM: the best large GEMM reaches a measured fraction of dense peak (S1, "MAMF": A100 86.9 %,
  H100 80.3 %, B200 77.6 % ...); that fraction lives with each accelerator in hardware_specs
  (``gemm_peak_fraction``). Where it is unmeasured, :attr:`Calibration.gemm_default_fraction`
  applies (S1: "for NVIDIA Hopper and Blackwell a large BF16 GEMM reaches about 73-84 %").
  Smaller GEMMs reach less: Calculon's A100 curve (S9) gives 0.95 of its ceiling at >= 128 GFLOP,
  0.9 at 16 GFLOP and 0.6 at 1 GFLOP; a saturating curve ``F / (F + F_half)`` through those points
  has ``F_half`` of about 0.6 GFLOP at A100 speed. We express it as a time, ``gemm_ramp_s``
  (F_half / achievable FLOP/s), so it carries over to faster chips as a fixed start-up cost.
* Memory-bound kernels (norms, activations, dropout, optimizer) move bytes at a fraction of HBM
  bandwidth: :attr:`hbm_efficiency`.
* Fused attention: the published kernel benchmark of each (accelerator, kernel) pair
  (hardware_specs/kernels.yaml: FlashAttention-2 on A100, FlashAttention-2/-3 and cuDNN on H100,
  from arXiv:2307.08691 and arXiv:2407.08608) times :attr:`attention_fraction`, one global residual
  between benchmark and training conditions. It replaced "0.40 x the GEMM ceiling", which traded the
  A100 rows against the Hopper ones (FlashAttention-2 reaches 0.80 of the GEMM ceiling on A100 but
  0.47 on H100). 0.4965 carries the earlier global fit over unchanged on A100, where 139 of the 163
  fused-attention rows are (0.40 x 244.0 = 97.6 TFLOP/s = 0.4965 x 196.6); an accelerator without a
  figure uses 0.8057 of its GEMM ceiling (the A100 ratio), i.e. the earlier 0.40 there too. Not re-fitted.
* Collectives: bus bandwidth reaches a fraction of the link rate at large messages (S2: NCCL ring
  on NVSwitch 78 % (A100) to 82 % (H200) of the unidirectional rate; NVLS up to 107 %;
  EFA/IB all-reduce about 85 % of the NIC rate on p4d, ~74 % per NIC on p6-b200) plus a
  per-collective start-up latency from the node type (hardware_specs) and
  :attr:`collective_launch_s`.

A :class:`Calibration` can also come from a profile file (YAML), fitted on a user's own
measurements with ``planner calibrate`` (:mod:`planner.calibrate`, docs/calibration.md):
:meth:`Calibration.to_yaml` writes one, :func:`load_calibration` reads it back.

Five constants are fitted, globally, on the even-position rows of the three validation files
(``tools/fit_global.py``) and reported on the odd-position rows (docs/validation.md):
:attr:`gemm_mamf_fraction` (0.90), :attr:`attention_fraction` (0.4965, see below), :attr:`layer_host_s` (0.9 ms),
:attr:`hbm_efficiency` (0.80) and :attr:`nic_efficiency` (0.75). Each is a physical quantity with a
plausible range, and each fitted value lies inside it. None is per run, model, source or framework.
A sixth, :attr:`recsys_step_host_s` (2.5 ms), is fitted the same way on recsys.csv's even rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Calibration(BaseModel):
    """The global constants of the cost model. Changing one changes every prediction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "default"

    # ---- compute
    gemm_default_fraction: float = Field(
        default=0.78, gt=0, le=1, description="large-GEMM fraction of dense peak where unmeasured (S1)"
    )
    gemm_mamf_fraction: float = Field(
        default=0.90,
        gt=0,
        le=1,
        description=(
            "fraction of the best-shape GEMM throughput (MAMF, found by searching shapes) that a framework's "
            "GEMMs reach on average after wave quantisation: heuristics, epilogues, clocks under sustained load"
        ),
    )
    gemm_ramp_s: float = Field(
        default=2.2e-6,
        ge=0,
        description="fixed start-up cost of one GEMM (Calculon S9 size curve: F_half 0.6 GFLOP at 271 TFLOP/s)",
    )
    attention_fraction: float = Field(
        default=0.4965,
        gt=0,
        le=1,
        description=(
            "fused attention in training relative to its published kernel benchmark (hardware_specs/kernels.yaml: "
            "FlashAttention-2/-3 and cuDNN best-case figures at head dim 128, long sequences, no mask): the residual "
            "of causal masks at 2-8k tokens, fewer heads per GPU under tensor parallelism and kernels sharing the "
            "GPU; one global number, the same on every accelerator and kernel"
        ),
    )
    hbm_efficiency: float = Field(
        default=0.80,
        gt=0,
        le=1,
        description="fraction of HBM bandwidth memory-bound kernels reach (STREAM-like copy kernels)",
    )
    kernel_floor_s: float = Field(
        default=4e-6, ge=0, description="shortest time one kernel occupies the GPU, launch gap included"
    )
    fp8_cast_bytes_per_element: float = Field(
        default=3.0, ge=0, description="FP8 GEMM input quantisation: read 2 bytes, write 1, per element"
    )

    # ---- communication
    ring_efficiency: float = Field(
        default=0.80,
        gt=0,
        le=1.2,
        description="NCCL ring bus bandwidth / link rate on NVSwitch (S2: 78-82 %)",
    )
    nvls_efficiency: float = Field(
        default=1.0,
        gt=0,
        le=1.2,
        description="all-reduce bus bandwidth / link rate with NVLink SHARP (S2: 107 % H200, 94 % B200)",
    )
    mesh_efficiency: float = Field(
        default=0.70,
        gt=0,
        le=1.2,
        description="point-to-point meshes (xGMI, PCIe, NVLink hybrid cube): S2 MI300X 70 %",
    )
    nic_efficiency: float = Field(
        default=0.75,
        gt=0,
        le=1.2,
        description="scale-out all-reduce bus bandwidth / NIC rate (S2: p4d EFA 85 %)",
    )
    collective_launch_s: float = Field(
        default=6e-6,
        ge=0,
        description="NCCL kernel launch per collective (NVIDIA/nccl#1259: ~6 us H100 NVLS)",
    )
    p2p_efficiency: float = Field(
        default=0.85,
        gt=0,
        le=1.2,
        description="point-to-point send/recv fraction of link rate (S2 p2pBandwidthLatencyTest 83-91 %)",
    )

    comm_sm_slowdown: float = Field(
        default=0.08,
        ge=0,
        le=1,
        description=(
            "compute slowdown while a collective runs under it: NCCL and userbuffers kernels hold SMs "
            "(one per channel; Transformer Engine's userbuffers use up to 16 of H100's 132 SMs, i.e. up to 12 %)"
        ),
    )

    # ---- framework
    recsys_step_host_s: float = Field(
        default=2.5e-3,
        ge=0,
        description=(
            "host time per recommendation-model step that no kernel hides: step dispatch, the input "
            "pipeline's hand-over of the batch, loss and metric bookkeeping (fitted on recsys.csv's even "
            "rows, checked on its odd rows; plausible range 1-5 ms); eager frameworks only: a step captured "
            "as one CUDA graph (HugeCTR) pays one kernel_floor_s instead (planner.recsys.frameworks)"
        ),
    )
    layer_host_s: float = Field(
        default=900e-6,
        ge=0,
        description=(
            "host (CPU) time to issue one transformer layer's forward pass: Python, framework and kernel "
            "launches; backward issues twice as many operations. A pass never runs faster than its host "
            "time (the GPU idles waiting for work)"
        ),
    )

    def constants(self) -> dict[str, float]:
        """Every constant by name (all fields but ``name``)."""
        return {k: v for k, v in self.model_dump().items() if k != "name"}

    def to_yaml(self, path: str | Path | None = None, metadata: dict[str, Any] | None = None) -> str:
        """This calibration as a profile (YAML: ``name``, ``constants``, ``metadata``); written to
        ``path`` when given. :func:`load_calibration` reads it back to an equal :class:`Calibration`."""
        import yaml

        doc: dict[str, Any] = {"name": self.name, "constants": self.constants()}
        if metadata:
            doc["metadata"] = metadata
        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
        if path is not None:
            from planner.io import atomic_write_text

            atomic_write_text(path, text, field="out")
        return text


DEFAULT = Calibration()


@dataclass(frozen=True)
class Bound:
    """The physical range of a constant (``planner calibrate`` searches only inside it, a profile
    must lie inside it), and what kind of measured rows pins it down."""

    low: float
    high: float
    log: bool  # searched on a logarithmic grid
    hint: str  # what kind of rows would pin it down


BOUNDS: dict[str, Bound] = {
    "gemm_mamf_fraction": Bound(0.60, 1.00, False, "rows whose steps are dominated by GEMMs"),
    "attention_fraction": Bound(0.30, 1.00, False, "rows with fused (flash) attention and long sequences"),
    "hbm_efficiency": Bound(0.50, 0.95, False, "rows with many memory-bound kernels (small hidden sizes)"),
    "ring_efficiency": Bound(0.50, 1.00, False, "rows with tensor parallelism inside a node"),
    "nic_efficiency": Bound(0.30, 1.00, False, "rows whose data-parallel or pipeline traffic crosses nodes"),
    "collective_launch_s": Bound(2e-6, 50e-6, True, "rows with many small collectives"),
    "layer_host_s": Bound(0.0, 3e-3, False, "rows with small layers that leave the GPU waiting for the host"),
}
"""The physical range of each constant a profile may set from measurements (docs/calibration.md):
GEMMs below 60 % of MAMF mean a misconfigured library, above 100 % is impossible by definition;
fused attention in training 0.3-1.0 of its published benchmark (kernels.yaml); STREAM-like
kernels 80-93 % of HBM; NCCL rings 78-82 % of the scale-up link (S2); the NIC 74-85 % (lower on
congested fabrics); NCCL launch 2-50 us; host time per layer 0-3 ms. ``planner calibrate`` fits
inside these ranges and profile loading refuses a value outside them: one table for both."""


def check_constants(calib: Calibration, field: str = "calibration.constants") -> None:
    """Refuse a calibration with a non-finite constant or one outside its physical range (:data:`BOUNDS`)."""
    from planner.errors import PlannerInputError

    for k, v in calib.constants().items():
        if not math.isfinite(v):
            raise PlannerInputError(f"{field}.{k}", f"must be a finite number, got {v}")
        b = BOUNDS.get(k)
        if b is not None and not b.low <= v <= b.high:
            raise PlannerInputError(
                f"{field}.{k}", f"{v:g} lies outside its physical range [{b.low:g}, {b.high:g}] (docs/calibration.md)"
            )


PROFILE_KEYS = ("name", "constants", "metadata")
"""Top-level keys of a calibration profile file."""


def load_profile(path: str | Path) -> tuple[Calibration, dict[str, Any]]:
    """A profile file's :class:`Calibration` and its metadata. A mistake (unknown key, value out of
    its range, not a mapping) raises one :class:`~planner.errors.PlannerInputError` naming the field."""
    from planner.errors import PlannerInputError, pydantic_message
    from planner.hardware import load_yaml

    p = Path(path)
    try:
        data = load_yaml(p, "calibration")
    except UnicodeDecodeError as e:
        raise PlannerInputError(
            "calibration", f"{p} is not UTF-8 text (byte {e.start}); save the profile as UTF-8"
        ) from None
    if not isinstance(data, dict):
        raise PlannerInputError("calibration", f"{p} must be a mapping with {', '.join(PROFILE_KEYS)}")
    for k in data:
        if k not in PROFILE_KEYS:
            raise PlannerInputError(
                f"calibration.{k}", f"unknown key in {p}; a profile holds {', '.join(PROFILE_KEYS)}"
            )
    name = data.get("name", p.stem)
    if not isinstance(name, str) or not name.strip():
        raise PlannerInputError("calibration.name", "must be a non-empty text")
    constants = data.get("constants") or {}
    if not isinstance(constants, dict):
        raise PlannerInputError("calibration.constants", "must be a mapping of constant name -> value")
    known = [k for k in Calibration.model_fields if k != "name"]
    for k, v in constants.items():
        if k not in known:
            raise PlannerInputError(
                f"calibration.constants.{k}", f"not a calibration constant; known: {', '.join(known)}"
            )
        if isinstance(v, float) and not math.isfinite(v):
            raise PlannerInputError(f"calibration.constants.{k}", f"must be a finite number, got {v}")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise PlannerInputError("calibration.metadata", "must be a mapping")
    try:
        calib = Calibration(name=name, **constants)
    except ValidationError as e:
        raise pydantic_message("calibration.constants", e) from None
    check_constants(calib)
    return calib, metadata


def load_calibration(path: str | Path) -> Calibration:
    """The :class:`Calibration` of a profile file (see :func:`load_profile`)."""
    return load_profile(path)[0]


def resolve_calibration(calibration: str | Path | Calibration | None) -> Calibration:
    """A calibration from a profile path, a :class:`Calibration`, or ``None`` (:data:`DEFAULT`)."""
    if calibration is None or calibration == "":
        return DEFAULT
    if isinstance(calibration, Calibration):
        return calibration
    return load_calibration(calibration)
