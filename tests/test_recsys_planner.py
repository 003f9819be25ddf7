"""The sharding planner never places more on a device than it holds (property test)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from test_recsys_workload import topo_for

from planner.errors import PlannerInputError
from planner.recsys.planner import plan_sharding
from planner.recsys.spec import recsys_from_dict


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.integers(min_value=1, max_value=400_000_000), min_size=1, max_size=30),
    dim=st.sampled_from([16, 64, 128, 256]),
    gpus=st.sampled_from([1, 2, 8, 16]),
    sharding=st.sampled_from(["auto", "table", "row", "column", "data"]),
    placement=st.sampled_from(["torchrec", "memory_balanced"]),
    host=st.sampled_from([None, 256.0]),
    optimizer=st.sampled_from(["sgd", "adagrad", "adam", "rowwise_adagrad"]),
)
def test_never_over_places(rows, dim, gpus, sharding, placement, host, optimizer):
    spec = recsys_from_dict(
        {
            "name": "p",
            "embedding_dim": dim,
            "cardinalities": rows,
            "bottom_mlp": [dim],
            "top_mlp": [1],
            "sparse_optimizer": optimizer,
        }  # fmt: skip
    )
    topo = topo_for(spec, gpus=gpus, batch=1024 * gpus, host_memory_gib=host, placement=placement)
    try:
        plan = plan_sharding(spec, topo, sharding, placement)
    except PlannerInputError as e:
        assert "GiB" in str(e)  # a clear error naming the sizes, never a crash
        return
    for r in plan.ranks:
        assert r.hbm_bytes <= topo.hbm_budget_bytes * (1 + 1e-9)
    per_node: dict[int, float] = {}
    for r in plan.ranks:
        per_node[r.rank // topo.gpus_per_node] = per_node.get(r.rank // topo.gpus_per_node, 0.0) + r.host_bytes
    assert all(v <= topo.host_bytes_per_node * (1 + 1e-9) for v in per_node.values())
    # every shard of every table is placed exactly once
    placed = {(o.table_index, i) for o in plan.options for i, s in enumerate(o.shards) if s.rank is not None}
    assert len(placed) == sum(len(o.shards) for o in plan.options)
    assert sorted(o.table_index for o in plan.options) == list(range(len(rows)))
