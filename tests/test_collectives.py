"""Collective costs against the closed-form ring (alpha-beta) model."""

from __future__ import annotations

import pytest

from planner.calibration import DEFAULT, Calibration
from planner.costs.collectives import CollectiveModel, Group
from planner.hardware import Cluster, override_node, resolve_cluster

MB = 2**20
SIZES = [1 * MB, 64 * MB, 1024 * MB]


@pytest.fixture(scope="module")
def node8() -> Cluster:
    return resolve_cluster(gpus=8, accelerator="a100-sxm-80gb")


@pytest.fixture(scope="module")
def nodes8() -> Cluster:
    return resolve_cluster(gpus=64, accelerator="a100-sxm-80gb")


def _intra_bw(cluster: Cluster, calib: Calibration = DEFAULT) -> float:
    """Bus bandwidth (B/s) of a ring inside the NVSwitch node."""
    up = cluster.node.scale_up
    assert up.kind == "nvswitch" and not up.in_network_reduction  # A100: ring, no NVLS
    return up.bandwidth_gb_s * 1e9 * calib.ring_efficiency


def _check_latency(cm: CollectiveModel, kind: str, g: Group, hop_s: float) -> float:
    """The alpha term: the same for every message size, at least a kernel launch plus one hop,
    and well under a millisecond. (Its exact shape -- hops per ring step, tree levels -- is the
    cost model's to choose; the bandwidth term is what the closed form pins down.)"""
    lats = {cm.cost(kind, size, g).latency_s for size in SIZES}
    assert len(lats) == 1, lats
    lat = lats.pop()
    assert cm.calib.collective_launch_s + hop_s <= lat < 1e-3
    return lat


@pytest.mark.parametrize("size", SIZES)
def test_all_reduce_ring_in_node(node8: Cluster, size: float) -> None:
    """latency + 2(n-1)/n * S / (NVLink GB/s * ring efficiency)."""
    cm = CollectiveModel(node8, DEFAULT)
    bw = _intra_bw(node8)
    assert node8.node.scale_up.bandwidth_gb_s == 300.0  # NVLink3, per direction
    n = 8
    c = cm.cost("all_reduce", size, Group(8, 1))
    lat = _check_latency(cm, "all_reduce", Group(8, 1), node8.node.scale_up.latency_us * 1e-6)
    assert c.link == "up"
    assert c.latency_s == lat
    assert c.transfer_s == pytest.approx(2 * (n - 1) / n * size / bw, rel=1e-12)
    assert c.total_s == pytest.approx(lat + 2 * (n - 1) / n * size / bw, rel=1e-12)


@pytest.mark.parametrize("kind", ["all_gather", "reduce_scatter"])
@pytest.mark.parametrize("n", [2, 4, 8])
def test_gather_scatter_ring_in_node(node8: Cluster, kind: str, n: int) -> None:
    """latency + (n-1)/n * S / (NVLink GB/s * ring efficiency)."""
    cm = CollectiveModel(node8, DEFAULT)
    bw = _intra_bw(node8)
    lat = _check_latency(cm, kind, Group(n, 1), node8.node.scale_up.latency_us * 1e-6)
    size = 256 * MB
    c = cm.cost(kind, size, Group(n, 1))
    assert c.total_s == pytest.approx(lat + (n - 1) / n * size / bw, rel=1e-12)


def test_all_reduce_is_twice_reduce_scatter_bandwidth(node8: Cluster) -> None:
    cm = CollectiveModel(node8, DEFAULT)
    ar = cm.cost("all_reduce", 512 * MB, Group(8, 1))
    rs = cm.cost("reduce_scatter", 512 * MB, Group(8, 1))
    ag = cm.cost("all_gather", 512 * MB, Group(8, 1))
    assert ar.transfer_s == pytest.approx(rs.transfer_s + ag.transfer_s, rel=1e-12)


def test_latency_dominates_small_messages(node8: Cluster) -> None:
    cm = CollectiveModel(node8, DEFAULT)
    small = cm.cost("all_reduce", 1024, Group(8, 1))
    large = cm.cost("all_reduce", 1024 * MB, Group(8, 1))
    assert small.latency_s > small.transfer_s
    assert large.transfer_s > 100 * large.latency_s


def test_other_calibration_changes_cost(node8: Cluster) -> None:
    slow = Calibration(name="slow", ring_efficiency=0.4)
    bw = _intra_bw(node8, slow)
    cm = CollectiveModel(node8, slow)
    c = cm.cost("all_reduce", 64 * MB, Group(8, 1))
    assert c.transfer_s == pytest.approx(2 * 7 / 8 * 64 * MB / bw, rel=1e-12)
    assert c.transfer_s == pytest.approx(
        2 * CollectiveModel(node8, DEFAULT).cost("all_reduce", 64 * MB, Group(8, 1)).transfer_s
    )
    launch = Calibration(name="launch", collective_launch_s=1e-4)
    c2 = CollectiveModel(node8, launch).cost("all_reduce", 64 * MB, Group(8, 1))
    c0 = CollectiveModel(node8, DEFAULT).cost("all_reduce", 64 * MB, Group(8, 1))
    assert c2.latency_s - c0.latency_s == pytest.approx(1e-4 - DEFAULT.collective_launch_s, rel=1e-9)


@pytest.mark.parametrize("kind", ["all_reduce", "all_gather", "reduce_scatter"])
@pytest.mark.parametrize("size", SIZES)
def test_one_member_per_node_uses_nic(nodes8: Cluster, kind: str, size: float) -> None:
    """Group(8, stride 8) on 8 DGX A100: one member per node, so the ring runs over one
    200 Gb/s HDR NIC per rank at the NIC efficiency."""
    cm = CollectiveModel(nodes8, DEFAULT)
    node = nodes8.node
    assert node.scale_out_gbps_per_gpu == 200.0
    nic = node.scale_out_gbps_per_gpu * 1e9 / 8 / node.scale_out.oversubscription * DEFAULT.nic_efficiency
    n = 8
    factor = 2 * (n - 1) / n if kind == "all_reduce" else (n - 1) / n
    c = cm.cost(kind, size, Group(8, 8))
    lat = _check_latency(cm, kind, Group(8, 8), node.scale_out.latency_us * 1e-6)
    assert c.link == "out"
    assert c.transfer_s == pytest.approx(factor * size / nic, rel=1e-12)
    assert c.total_s == pytest.approx(lat + factor * size / nic, rel=1e-12)


def test_cross_node_latency_above_in_node(nodes8: Cluster) -> None:
    cm = CollectiveModel(nodes8, DEFAULT)
    assert cm.cost("all_reduce", MB, Group(8, 8)).latency_s > cm.cost("all_reduce", MB, Group(8, 1)).latency_s


def test_cross_node_slower_than_in_node(nodes8: Cluster) -> None:
    cm = CollectiveModel(nodes8, DEFAULT)
    assert cm.cost("all_reduce", 1024 * MB, Group(8, 8)).total_s > cm.cost("all_reduce", 1024 * MB, Group(8, 1)).total_s


def test_multi_node_group_with_members_per_node(nodes8: Cluster) -> None:
    """A 64-rank ring with 8 members per node: 8 NICs per node carry it, so the bus bandwidth is
    min(8 NICs, NVLink) -- the NICs here (8 x 25 GB/s x 0.85 = 170 GB/s < 240 GB/s)."""
    cm = CollectiveModel(nodes8, DEFAULT)
    node = nodes8.node
    nic = node.scale_out_gbps_per_gpu * 1e9 / 8 * DEFAULT.nic_efficiency
    bw = min(8 * nic, node.scale_up.bandwidth_gb_s * 1e9 * DEFAULT.ring_efficiency)
    c = cm.cost("all_reduce", 1024 * MB, Group(64, 1))
    assert c.transfer_s == pytest.approx(2 * 63 / 64 * 1024 * MB / bw, rel=1e-12)


@pytest.mark.parametrize("kind", ["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p", "broadcast"])
def test_single_rank_costs_nothing(nodes8: Cluster, kind: str) -> None:
    c = CollectiveModel(nodes8, DEFAULT).cost(kind, 1024 * MB, Group(1, 1))
    assert c.total_s == 0.0


@pytest.mark.parametrize("kind", ["all_reduce", "all_gather", "reduce_scatter"])
def test_zero_bytes_cost_nothing(nodes8: Cluster, kind: str) -> None:
    assert CollectiveModel(nodes8, DEFAULT).cost(kind, 0, Group(8, 1)).total_s == 0.0


GROUPS = [Group(2, 1), Group(8, 1), Group(8, 8), Group(4, 16), Group(64, 1), Group(16, 4)]
KINDS = ["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p", "broadcast"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("g", GROUPS, ids=lambda g: f"n{g.size}s{g.stride}")
def test_time_grows_with_bytes(nodes8: Cluster, kind: str, g: Group) -> None:
    cm = CollectiveModel(nodes8, DEFAULT)
    times = [cm.cost(kind, 2.0**k, g).total_s for k in range(0, 36, 3)]
    assert all(b > a for a, b in zip(times[:-1], times[1:], strict=True)), times


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("g", GROUPS, ids=lambda g: f"n{g.size}s{g.stride}")
def test_more_scale_out_bandwidth_never_slower(kind: str, g: Group) -> None:
    base = resolve_cluster(gpus=64, accelerator="a100-sxm-80gb")
    faster = [
        resolve_cluster(gpus=64, accelerator="a100-sxm-80gb", inter_node_gbps_per_gpu=400.0),
        Cluster(
            name="override",
            accelerator=base.accelerator,
            node=override_node(base.node, None, 800.0),
            num_gpus=64,
        ),
    ]
    t0 = CollectiveModel(base, DEFAULT).cost(kind, 256 * MB, g).total_s
    for cl in faster:
        t1 = CollectiveModel(cl, DEFAULT).cost(kind, 256 * MB, g).total_s
        assert t1 <= t0 * (1 + 1e-12)
    if g.stride >= 8 and g.size > 1:  # purely across nodes: strictly faster
        t_fast = CollectiveModel(faster[0], DEFAULT).cost(kind, 256 * MB, g).total_s
        assert t_fast < t0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("g", GROUPS, ids=lambda g: f"n{g.size}s{g.stride}")
def test_more_scale_up_bandwidth_never_slower(kind: str, g: Group) -> None:
    base = resolve_cluster(gpus=64, accelerator="a100-sxm-80gb")
    node = base.node.model_copy(update={"scale_up": base.node.scale_up.model_copy(update={"bandwidth_gb_s": 900.0})})
    fast = base.model_copy(update={"node": node})
    t0 = CollectiveModel(base, DEFAULT).cost(kind, 256 * MB, g).total_s
    t1 = CollectiveModel(fast, DEFAULT).cost(kind, 256 * MB, g).total_s
    assert t1 <= t0 * (1 + 1e-12)
    if g.stride == 1 and g.size <= 8 and g.size > 1:  # inside the node: strictly faster
        assert t1 < t0


def test_override_keeps_per_gpu_bandwidth() -> None:
    base = resolve_cluster(gpus=64, accelerator="a100-sxm-80gb")
    same = override_node(base.node, None, base.node.scale_out_gbps_per_gpu)
    assert same.scale_out_gbps_per_gpu == base.node.scale_out_gbps_per_gpu
    cm0 = CollectiveModel(base, DEFAULT)
    cm1 = CollectiveModel(base.model_copy(update={"node": same}), DEFAULT)
    for g in GROUPS:
        assert cm0.cost("all_reduce", 64 * MB, g).total_s == pytest.approx(cm1.cost("all_reduce", 64 * MB, g).total_s)


def test_p2p_inside_and_across_nodes(nodes8: Cluster) -> None:
    cm = CollectiveModel(nodes8, DEFAULT)
    node = nodes8.node
    size = 32 * MB
    inside = cm.cost("p2p", size, Group(2, 1))
    across = cm.cost("p2p", size, Group(2, 8))
    assert inside.transfer_s == pytest.approx(size / (node.scale_up.bandwidth_gb_s * 1e9 * DEFAULT.p2p_efficiency))
    assert across.transfer_s == pytest.approx(size / (node.scale_out_gbps_per_gpu * 1e9 / 8 * DEFAULT.p2p_efficiency))
    assert across.link == "out" and inside.link == "up"
