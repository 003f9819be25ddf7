"""Validation against published, measured runs (schema: shared/validation/README.md).

Each row becomes a scenario; planner predicts it with the one global model and compares:
``error = predicted / measured - 1``. Summaries (median, mean, max of ``|error|``) are given per
file and per source, and separately for rows that left a field blank (predicted with planner's
defaults, which the row names); each row also carries the memory check (``fits``, ``peak_gib``,
``capacity_gib``), and rows predicted not to fit are counted (every one of them really ran).

The stages, in data-flow order:

* :mod:`planner.validate.rows`: reading a file, its schema (one per workload family, by its
  measured column), row parsing and the checks of every number.
* :mod:`planner.validate.frameworks`: the documented framework choices a row is predicted with
  (attention kernel, tensor-parallel overlap, DeepLearningExamples TF2's placement and host memory).
* :mod:`planner.validate.runner`: predicting the rows through the family contract, in parallel.
* :mod:`planner.validate.report`: summaries, the text the CLI prints, the docs/validation.md page.
"""

from planner.validate.frameworks import DGX_HOST_MEMORY_GIB, DLE_TF2, attention_kernel, tp_comm_overlap
from planner.validate.report import (
    GLOBAL_FITTED,
    RowResult,
    Summary,
    ValidationReport,
    build_report,
    format_report,
    half_errors,
    markdown_report,
    summarize,
)
from planner.validate.rows import (
    DEFAULTABLE,
    RECSYS_COLUMNS,
    SCHEMAS,
    TRANSFORMER_COLUMNS,
    _num,
    read_rows,
    recsys_row_model,
    row_scenario,
    source_key,
)
from planner.validate.runner import Prediction, _predict, predict_row, validate_file, validate_rows

__all__ = [
    "DEFAULTABLE",
    "DGX_HOST_MEMORY_GIB",
    "DLE_TF2",
    "GLOBAL_FITTED",
    "RECSYS_COLUMNS",
    "SCHEMAS",
    "TRANSFORMER_COLUMNS",
    "Prediction",
    "RowResult",
    "Summary",
    "ValidationReport",
    "_num",
    "_predict",
    "attention_kernel",
    "build_report",
    "format_report",
    "half_errors",
    "markdown_report",
    "predict_row",
    "read_rows",
    "recsys_row_model",
    "row_scenario",
    "source_key",
    "summarize",
    "tp_comm_overlap",
    "validate_file",
    "validate_rows",
]
