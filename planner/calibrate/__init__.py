"""Calibration from a user's own measurements (``planner calibrate``; docs/calibration.md).

* :mod:`planner.calibrate.fit`: fit the few global constants of :class:`planner.calibration.Calibration`
  to measured steps (validation-schema CSV rows of one accelerator/cluster), cross-validated.
* :mod:`planner.calibrate.report`: what a fit reports (constants, error before and after) and its text.
* :mod:`planner.calibrate.trace`: derive constants from a PyTorch profiler (Kineto) trace of one
  training step on one rank, by kernel kind; :mod:`planner.calibrate.collectives` the NCCL part.

Every constant lies in its physical range (:data:`planner.calibration.BOUNDS`), which the fit
searches and profile loading enforces.

Both produce a profile (YAML) that :func:`planner.calibration.load_calibration` reads and every
face takes as ``--calibration PROFILE.yaml``.
"""

from planner.calibrate.fit import BOUNDS, FitReport, calibrate_files, calibrate_rows, format_fit
from planner.calibrate.trace import TraceReport, calibrate_trace, format_trace, read_trace

__all__ = [
    "BOUNDS",
    "FitReport",
    "TraceReport",
    "calibrate_files",
    "calibrate_rows",
    "calibrate_trace",
    "format_fit",
    "format_trace",
    "read_trace",
]
