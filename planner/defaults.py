"""Defaults every face shares for the parts of a scenario the user may leave out.

Core (imports no family). The CLI, the app and the Python API all resolve the hardware through
:func:`resolve_hardware`, so ``planner simulate`` with no flags, the app's first page and
``planner.simulate()`` answer for the same machine: one priced cloud node, so the first answer a new
user sees includes what a step costs.
"""

from __future__ import annotations

from typing import Any

from planner.hardware import Cluster, resolve_cluster

DEFAULT_INSTANCE = "p5.48xlarge"
"""The hardware when none is named: one AWS node of 8 H100 SXM with an on-demand price, so the
default example's first answer shows what a step costs (every face: CLI, app, API)."""

DEFAULT_GPUS = 8
"""The GPU count on an instance or an accelerator when none is given (one 8-GPU node)."""


def default_hardware(
    *,
    cluster: str | Cluster | None = None,
    instance: str | None = None,
    accelerator: str | None = None,
    gpus: int | None = None,
) -> dict[str, Any]:
    """The user's hardware choice with planner's defaults filled in: no hardware named ->
    :data:`DEFAULT_INSTANCE`; an instance or an accelerator without ``gpus`` ->
    :data:`DEFAULT_GPUS` (a cluster keeps its own count). Keywords for :func:`resolve_cluster`."""
    if not (cluster or instance or accelerator):
        instance = DEFAULT_INSTANCE
    if gpus is None and not cluster:
        gpus = DEFAULT_GPUS
    return {"cluster": cluster, "instance": instance, "accelerator": accelerator, "gpus": gpus}


def resolve_hardware(**choice: Any) -> Cluster:
    """:func:`resolve_cluster` of the keywords ``choice`` (those of :func:`resolve_cluster`) after
    :func:`default_hardware`: how every face resolves the user's, possibly empty, hardware choice."""
    named = {k: choice.pop(k, None) for k in ("cluster", "instance", "accelerator", "gpus")}
    return resolve_cluster(**default_hardware(**named), **choice)
