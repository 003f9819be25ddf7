"""Layout search, instance comparison and whole-run goodput.

Stages, one module each (TorchRec planner style): :mod:`~planner.search.enumerate` (every valid
layout), :mod:`~planner.transformer.estimate` (closed-form step time + memory check, to prune),
:mod:`~planner.search.prune` (the finalists), :mod:`~planner.search.evaluate` (full simulation,
over processes, cached), :mod:`~planner.search.rank` (objective and Pareto front),
:mod:`~planner.search.explain` (why the usual alternatives lose), :mod:`~planner.search.goodput`
(failures, checkpoints, Young/Daly) and :mod:`~planner.search.compare` (instance types).
Contracts: :mod:`planner.search.types`.
"""

from planner.search.compare import compare
from planner.search.goodput import GoodputModel
from planner.search.search import NoLayoutFits, Searcher, search
from planner.search.types import CompareResult, SearchResult, SearchSpace

__all__ = [
    "CompareResult",
    "GoodputModel",
    "NoLayoutFits",
    "SearchResult",
    "SearchSpace",
    "Searcher",
    "compare",
    "search",
]
