"""Recommendation workloads and the sharding planner's arithmetic, checked by hand."""

from __future__ import annotations

import pytest

from planner.calibration import DEFAULT
from planner.costs.collectives import CollectiveModel
from planner.costs.compute import ComputeModel
from planner.errors import PlannerInputError
from planner.hardware import resolve_cluster
from planner.recsys.estimate import shard_traffic
from planner.recsys.planner import a2a_bytes, plan_sharding
from planner.recsys.run import make_recsys_strategy, topology
from planner.recsys.spec import EmbeddingTable, load_recsys, recsys_from_dict

GIB = 2**30


def small_spec(n_tables: int = 4, dim: int = 64, rows: int = 100_000, pooling: float = 1.0, **kw):
    return recsys_from_dict(
        {
            "name": "small",
            "embedding_dim": dim,
            "cardinalities": [rows] * n_tables,
            "pooling_factors": [pooling] * n_tables,
            "bottom_mlp": [128, dim],
            "top_mlp": [64, 1],
            **kw,
        }
    )


def topo_for(spec, gpus: int, batch: int, acc: str = "h100-sxm-80gb", **strategy):
    cluster = resolve_cluster(gpus=gpus, accelerator=acc)
    s = make_recsys_strategy(global_batch=batch, **strategy)
    comp = ComputeModel(cluster.accelerator, DEFAULT, s.precision)
    return topology(spec, cluster, s, comp, CollectiveModel(cluster, DEFAULT))


def test_preset_sizes_match_the_published_model_sizes():
    # DeepLearningExamples doc/DLRM.md: T15 15.6 GiB / 4.2B, T3 84.9 GiB / 22.8B, T0 421 GiB / 113B
    for name, gib, params in (("dlrm-criteo-1tb-t15", 15.6, 4.2e9), ("dlrm-criteo-1tb-t3", 84.9, 22.8e9),
                              ("dlrm-criteo-1tb-t0", 421, 113e9)):  # fmt: skip
        s = load_recsys(name)
        assert len(s.tables) == 26
        assert s.embedding_bytes / GIB == pytest.approx(gib, rel=0.01)
        assert s.num_params == pytest.approx(params, rel=0.01)
    m = load_recsys("dlrm-dcnv2-mlperf")
    assert max(t.num_rows for t in m.tables) == 40_000_000
    assert sum(t.pooling_factor for t in m.tables) == 214
    assert m.sparse_optimizer == "adagrad" and m.interaction == "dcnv2"
    big = load_recsys("dlrm-industrial-synthetic")
    assert len(big.tables) >= 100 and big.embedding_bytes > 1e12


def test_lookup_bytes_by_hand():
    t = EmbeddingTable(name="t", num_rows=1000, dim=128, pooling_factor=3, dtype="fp32")
    assert t.lookup_bytes(1024) == 1024 * 3 * 128 * 4
    assert t.weight_bytes == 1000 * 128 * 4
    assert t.state_bytes("adagrad") == 1000 * 128 * 4
    assert t.state_bytes("adam") == 2 * 1000 * 128 * 4
    assert t.state_bytes("rowwise_adagrad") == 1000 * 4
    # forward: gather ids x cols x 4 + pooled batch x cols x 4; backward: pooled and per-id fp32
    # gradients, then read+write of weight and Adagrad state for every touched row
    fwd, bwd = shard_traffic(ids=1024 * 3, rows=1000, cols=128, out_rows=1024, elem_bytes=4, optimizer="adagrad")
    assert fwd == 1024 * 3 * 128 * 4 + 1024 * 128 * 4
    assert bwd == 1024 * 128 * 4 + 1024 * 3 * 128 * 4 + 1000 * 128 * (2 * 4 + 2 * 4)


def test_dense_flops_by_hand():
    s = load_recsys("dlrm-criteo-1tb")
    mlp = 2 * (13 * 512 + 512 * 256 + 256 * 128 + 479 * 1024 + 1024 * 1024 + 1024 * 512 + 512 * 256 + 256 * 1)
    assert s.interaction_out_dim == 27 * 26 // 2 + 128
    assert s.dense_flops_per_sample() == pytest.approx(3 * (mlp + 2 * 27**2 * 128))


def test_all_to_all_volume_by_hand():
    spec = small_spec(n_tables=4, dim=64)
    topo = topo_for(spec, gpus=4, batch=4096)
    plan = plan_sharding(spec, topo, "table")
    # one table per rank: each sends its pooled output for the global batch and receives its
    # local batch of all four tables, the same 4096 x 64 x 4 bytes
    assert sorted(len(r.tables) for r in plan.ranks) == [1, 1, 1, 1]
    assert a2a_bytes(plan, spec, topo) == 4096 * 64 * 4
    assert all(r.a2a_send_bytes == 4096 * 64 * 4 for r in plan.ranks)
    rw = plan_sharding(spec, topo, "row")
    # row-wise: every rank reduce-scatters partial sums of every table for the global batch
    assert all(r.rw_bytes == 4 * 4096 * 64 * 4 for r in rw.ranks)
    assert a2a_bytes(rw, spec, topo) == 0


def test_forced_sharding_types():
    spec = small_spec(n_tables=3, dim=128)
    topo = topo_for(spec, gpus=8, batch=8192)
    for choice, kind in (
        ("table", "table_wise"),
        ("row", "row_wise"),
        ("column", "column_wise"),
        ("data", "data_parallel"),
    ):
        plan = plan_sharding(spec, topo, choice)
        assert {o.sharding_type for o in plan.options} == {kind}
    with pytest.raises(PlannerInputError, match="sharding"):
        plan_sharding(spec, topo, "diagonal")


def test_too_large_table_names_it_and_the_sizes():
    spec = recsys_from_dict(
        {
            "name": "huge",
            "embedding_dim": 128,
            "cardinalities": [1000, 3_000_000_000],
            "bottom_mlp": [128],
            "top_mlp": [1],
            "sparse_optimizer": "adagrad",
        }  # fmt: skip
    )
    topo = topo_for(spec, gpus=1, batch=1024, acc="a100-sxm-80gb", host_memory_gib=512)
    with pytest.raises(PlannerInputError) as e:
        plan_sharding(spec, topo)
    msg = str(e.value)
    assert "t1" in msg and "2,861" in msg and "GiB" in msg and "host memory" in msg


def test_host_offload_when_hbm_is_short():
    spec = recsys_from_dict(
        {"name": "big", "embedding_dim": 128, "cardinalities": [200_000_000, 1000], "bottom_mlp": [128], "top_mlp": [1]}
    )
    topo = topo_for(spec, gpus=1, batch=4096, acc="a100-sxm-80gb", host_memory_gib=2048)
    plan = plan_sharding(spec, topo)
    assert any(o.location == "host" for o in plan.options)
    assert plan.ranks[0].hbm_bytes <= topo.hbm_budget_bytes
