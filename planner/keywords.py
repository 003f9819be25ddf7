"""Keyword sets that several public functions share, each written once as a ``TypedDict``.

``planner.simulate`` and ``planner.search`` both take the user's hardware choice as keywords;
:class:`HardwareChoice` is that list (names, types, meaning), used as ``**kw: Unpack[HardwareChoice]``
where a function takes nothing else through ``**``, and split out with :func:`take` where it does.
Core: imports no family.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from typing_extensions import TypedDict

from planner.hardware import Cluster


class HardwareChoice(TypedDict, total=False):
    """The hardware as the user names it; :func:`planner.defaults.resolve_hardware` turns it into a
    :class:`Cluster`. Exactly one of ``cluster``, ``instance`` or ``accelerator`` (none: planner's
    default, one priced p5.48xlarge node).

    - ``cluster``: a catalog id, a YAML path or an already resolved :class:`Cluster`.
    - ``instance``: a cloud instance id (``p5.48xlarge``), priced.
    - ``accelerator``: an accelerator id (``a100-sxm-80gb``) on its default node type.
    - ``gpus``: the GPU count (whole nodes past one node; default 8 for an instance or accelerator).
    - ``gpus_per_node``, ``inter_node_gbps_per_gpu``: override the node type's figures (what-if).
    """

    cluster: str | Cluster | None
    instance: str | None
    accelerator: str | None
    gpus: int | None
    gpus_per_node: int | None
    inter_node_gbps_per_gpu: float | None


def keys_of(*kinds: type) -> frozenset[str]:
    """The keyword names of the ``TypedDict`` classes ``kinds``."""
    return frozenset().union(*(k.__required_keys__ | k.__optional_keys__ for k in kinds))  # type: ignore[attr-defined]


def take(fields: dict[str, Any], kind: type) -> dict[str, Any]:
    """Remove the keywords of the ``TypedDict`` ``kind`` from ``fields`` and return them (the rest stay)."""
    return {k: fields.pop(k) for k in keys_of(kind) if k in fields}


def reject_unknown(where: str, fields: Mapping[str, object], *kinds: type) -> None:
    """A ``TypeError`` like Python's own for a keyword of ``fields`` that none of ``kinds`` declares:
    ``**kw: Unpack[...]`` is a promise to type checkers only, so the function checks at run time."""
    allowed = keys_of(*kinds)
    for k in fields:
        if k not in allowed:
            raise TypeError(
                f"{where}() got an unexpected keyword argument '{k}' (it takes {', '.join(sorted(allowed))})"
            )
