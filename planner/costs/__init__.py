"""Costs: how long a piece of work takes on given hardware. Knows hardware, not workloads."""

from planner.costs.collectives import CollectiveModel, Group
from planner.costs.compute import ComputeModel

__all__ = ["CollectiveModel", "ComputeModel", "Group"]
