"""Collective communication cost: an alpha-beta model per algorithm over a two-level fabric.

A collective over a group of ``n`` ranks moves ``factor(kind, n) * bytes`` through each rank's
busiest link (ring all-reduce ``2(n-1)/n``, all-gather and reduce-scatter ``(n-1)/n`` of the full
buffer, all-to-all ``(n-1)/n``, point-to-point 1). The bus bandwidth that rate is divided by is the
slower of the two levels the group uses:

* inside a scale-up island (NVSwitch node, NVL72 rack): the accelerator's scale-up link times the
  ring (or NVLS, or mesh) efficiency;
* across islands: NCCL's ring crosses each island boundary once per channel and spreads the
  channels over all NICs of the island, so a group with ``k`` members per island gets ``k`` NICs'
  worth of bandwidth (the other ``gpus_per_node / k`` groups of the same kind run at the same time
  on the remaining NICs). All-to-all and point-to-point get one NIC per rank.

The latency term is a kernel launch plus one hop latency per ring step inside the island
(``2(k-1)`` for all-reduce, ``k-1`` for gathers and scatters) and one scale-out latency per level of a
tree across islands (``2 log2 N`` for all-reduce), the shape of NCCL's ring and tree algorithms. Constants: :mod:`planner.calibration`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from planner.calibration import Calibration
from planner.errors import PlannerInputError
from planner.hardware import Cluster

CollectiveKind = Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p", "broadcast"]


@dataclass(frozen=True)
class Group:
    """A communicator: ``size`` ranks placed ``stride`` apart in the global rank order."""

    size: int
    stride: int = 1


@dataclass(frozen=True)
class CommCost:
    """Duration of one collective on a representative rank: fixed latency, then link time."""

    latency_s: float
    transfer_s: float
    link: Literal["up", "out"]

    @property
    def total_s(self) -> float:
        return self.latency_s + self.transfer_s


def sum_costs(a: CommCost, c: CommCost) -> CommCost:
    """Two collectives issued back to back on one stream, as one task (on the link carrying most
    of the bytes)."""
    link = c.link if c.transfer_s > a.transfer_s else a.link
    return CommCost(a.latency_s + c.latency_s, a.transfer_s + c.transfer_s, link)


def ring_factor(kind: str, n: int) -> float:
    """Bytes through each rank's link per byte of buffer, for the ring algorithms."""
    if n <= 1:
        return 0.0
    if kind == "all_reduce":
        return 2.0 * (n - 1) / n
    if kind in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    return 1.0  # p2p, broadcast (pipelined)


class CollectiveModel:
    """Collective durations on one cluster."""

    def __init__(self, cluster: Cluster, calib: Calibration) -> None:
        self.cluster = cluster
        self.calib = calib
        node = cluster.node
        self.island = max(node.gpus_per_node, node.scale_up.domain_size)
        if node.scale_up.domain_size < node.gpus_per_node:
            self.island = node.gpus_per_node
        self.island = min(self.island, cluster.num_gpus)
        up = node.scale_up
        self.up_bw = up.bandwidth_gb_s * 1e9
        if up.kind in ("nvswitch",):
            self.up_eff = calib.ring_efficiency
        else:
            self.up_eff = calib.mesh_efficiency
        self.nvls = up.in_network_reduction
        out = node.scale_out
        self.nic_bw = node.scale_out_gbps_per_gpu * 1e9 / 8.0 / out.oversubscription
        self.up_lat = up.latency_us * 1e-6
        self.out_lat = out.latency_us * 1e-6
        # One island holds the whole run: no group crosses a NIC (a group that seems to, such as
        # the pipeline neighbour of a one-stage layout, has no second member on another island).
        self.one_island = cluster.num_gpus <= self.island

    def members_per_island(self, g: Group) -> int:
        if self.one_island:
            return g.size
        if g.stride >= self.island:
            return 1
        return max(1, min(g.size, self.island // g.stride))

    def spans_islands(self, g: Group) -> bool:
        return self.members_per_island(g) < g.size

    def cost(self, kind: CollectiveKind, nbytes: float, g: Group) -> CommCost:
        """Time of one collective of ``nbytes`` (the full buffer) over group ``g``."""
        n = g.size
        if n <= 1 or nbytes <= 0:
            return CommCost(0.0, 0.0, "up")
        c = self.calib
        k = self.members_per_island(g)
        if kind == "p2p":
            if g.stride >= self.island and not self.one_island:  # neighbour in another island
                self._need_nic()
                return CommCost(c.collective_launch_s + self.out_lat, nbytes / (self.nic_bw * c.p2p_efficiency), "out")
            return CommCost(c.collective_launch_s + self.up_lat, nbytes / (self.up_bw * c.p2p_efficiency), "up")
        factor = ring_factor(kind, n)
        up_eff = self.up_eff
        if self.nvls and kind == "all_reduce" and k >= 4:
            up_eff = c.nvls_efficiency
        intra_bw = self.up_bw * up_eff
        steps_up = 2 * (k - 1) if kind == "all_reduce" else (k - 1)
        if k == n:  # inside one island: a ring of 2(n-1) steps (n-1 for gathers and scatters)
            return CommCost(c.collective_launch_s + steps_up * self.up_lat, factor * nbytes / intra_bw, "up")
        self._need_nic()
        islands = n // k
        if kind == "all_to_all":
            inter_bytes = nbytes * (n - k) / n
            intra_bytes = nbytes * (k - 1) / n
            t = max(inter_bytes / (self.nic_bw * c.nic_efficiency), intra_bytes / intra_bw)
        else:
            inter_bw = k * self.nic_bw * c.nic_efficiency
            bw = min(inter_bw, intra_bw) if k > 1 else inter_bw
            t = factor * nbytes / bw
        levels = 2.0 * math.ceil(math.log2(islands)) if kind == "all_reduce" else math.ceil(math.log2(islands))
        lat = c.collective_launch_s + steps_up * self.up_lat + levels * self.out_lat
        return CommCost(lat, t, "out")

    def node_limited_all_to_all(
        self, token_bytes: float, tokens: float, top_k: int, max_nodes: int, g: Group
    ) -> tuple[CommCost, float]:
        """An expert-parallel dispatch (or combine) of ``tokens`` tokens of ``token_bytes`` each, every
        token to ``top_k`` experts on at most ``max_nodes`` nodes, as DeepSeek-V3 runs it (arXiv:2412.19437
        sec. 3.2.2, DeepEP's normal kernels): one scale-out copy per target node, to the GPU of the
        same local index there, then forwarded over the scale-up link to the GPUs holding the experts,
        the two levels pipelined. Of the ``min(islands, max_nodes, top_k)`` nodes a token reaches, the
        expected ``(islands - 1) / islands`` are remote; every (token, expert) pair but those landing on
        the receiving GPU itself crosses the scale-up link once. Returns (the cost, bytes this rank
        sends). A group inside one island is a plain all-to-all of the ``top_k`` copies."""
        n = g.size
        if n <= 1 or tokens <= 0:
            return CommCost(0.0, 0.0, "up"), 0.0
        k = self.members_per_island(g)
        islands = n // k
        if islands <= 1:
            nbytes = tokens * top_k * token_bytes
            return self.cost("all_to_all", nbytes, g), nbytes * (n - 1) / n
        self._need_nic()
        c = self.calib
        inter_bytes = tokens * token_bytes * min(islands, max_nodes, top_k) * (islands - 1) / islands
        intra_bytes = tokens * top_k * token_bytes * (k - 1) / k
        t = max(inter_bytes / (self.nic_bw * c.nic_efficiency), intra_bytes / (self.up_bw * self.up_eff))
        lat = c.collective_launch_s + (k - 1) * self.up_lat + math.ceil(math.log2(islands)) * self.out_lat
        return CommCost(lat, t, "out"), inter_bytes + intra_bytes

    def _need_nic(self) -> None:
        """Refuse, in one line, a collective across islands on a node type with no NIC figure."""
        if not 0 < self.nic_bw < math.inf:  # zero (no NIC listed), or not a finite number
            node = self.cluster.node
            raise PlannerInputError(
                "cluster",
                f"node type {node.id} has no usable scale-out network figure (nics_per_node x nic_gbps"
                f" = {node.scale_out_gbps_per_gpu * node.gpus_per_node:g} Gb/s), "
                f"so a {self.cluster.num_gpus}-GPU run across {self.island}-GPU islands cannot be priced",
            )
