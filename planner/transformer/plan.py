"""The plan of one transformer step: the resolved inputs and the cost models they imply.

A plan is made once per (model, checked strategy, cluster, calibration); the graph builder and the
closed-form estimate both read it, so neither works out a group, a message size or a pass again.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.calibration import Calibration
from planner.costs.collectives import CollectiveModel
from planner.costs.compute import ComputeModel
from planner.hardware import Cluster
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import Strategy


@dataclass(frozen=True)
class StepPlan:
    """Everything one step of a transformer is made of, for a checked strategy."""

    model: TransformerSpec
    strategy: Strategy
    cluster: Cluster
    calib: Calibration
    comp: ComputeModel
    coll: CollectiveModel


def make_plan(model: TransformerSpec, strategy: Strategy, cluster: Cluster, calib: Calibration) -> StepPlan:
    """The plan of ``strategy`` (already checked by :func:`~planner.transformer.strategy.check_layout`)."""
    comp = ComputeModel(cluster.accelerator, calib, strategy.precision)
    coll = CollectiveModel(cluster, calib)
    return StepPlan(model, strategy, cluster, calib, comp, coll)
