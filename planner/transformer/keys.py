"""Typed names for the transformer step graph: what a task is (:class:`Phase`, :class:`Node`) and
what a cost segment or task is accounted as (:class:`Kind`).

Both enums are ``str`` valued, so the engine (which passes ``kind`` through untouched), the
Chrome trace and ``--json`` output read the same strings as before ("compute", "tp_comm", ...).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Kind(StrEnum):
    """The report category of a cost segment or a graph task."""

    COMPUTE = "compute"
    TP_COMM = "tp_comm"
    CP_COMM = "cp_comm"
    EP_COMM = "ep_comm"
    DP_COMM = "dp_comm"
    PP_COMM = "pp_comm"
    OPTIMIZER = "optimizer"
    OVERHEAD = "overhead"


class Phase(StrEnum):
    """What a task of the step graph does (a pass of a stage, or a transfer or step around it)."""

    FORWARD = "F"
    BACKWARD = "B"  # the input-gradient part when a WEIGHT_GRAD follows
    WEIGHT_GRAD = "W"
    RECOMPUTE = "R"  # a pass of recomputed forward work (a :class:`~planner.transformer.layer.Pass` tag)
    SEND_FORWARD = "SF"  # activations to the next stage
    SEND_BACKWARD = "SB"  # gradients to the previous stage
    GRAD_REDUCE = "DP"  # a data-parallel gradient bucket
    GRAD_NORM_SYNC = "SYNC"
    OPTIMIZER = "OPT"
    PARAM_GATHER = "AGP"  # ZeRO-1/2 parameter all-gather after the step
    ROOT_GATHER = "AGR"  # ZeRO-3: embedding and head all-gather, per micro-batch
    LAYER_GATHER_FORWARD = "AGF"
    LAYER_GATHER_BACKWARD = "AGB"
    LAYER_REDUCE_SCATTER = "RS"
    ROOT_REDUCE_SCATTER = "RSR"


class Node(NamedTuple):
    """A task of the step graph. ``index``: the virtual stage of a pass or send (under ZeRO-3 the
    layer), the pipeline rank of a per-rank task; ``micro_batch``: -1 where none; ``part``: the
    per-layer piece of a split backward or weight-gradient pass (-1: the whole pass, or its last
    piece, which the edges of later passes name). A tuple, so the core trace can read the
    micro-batch at position 2."""

    phase: Phase
    index: int = -1
    micro_batch: int = -1
    part: int = -1
