"""Workloads: what is trained (shapes, parameters, FLOPs), independent of hardware."""

from planner.workloads.transformer import TransformerSpec, load_model, preset_names

__all__ = ["TransformerSpec", "load_model", "preset_names"]
