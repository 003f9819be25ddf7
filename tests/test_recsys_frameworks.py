"""The recommendation frameworks' documented choices, each checked against a hand computation of the
bytes, kernels or overlap it changes (planner.recsys.frameworks)."""

from __future__ import annotations

import pytest

from planner.calibration import DEFAULT
from planner.cli import main
from planner.costs.collectives import Group
from planner.errors import PlannerInputError
from planner.hardware import resolve_cluster
from planner.recsys.graph import fused_lookup_s
from planner.recsys.run import build_graph, make_recsys_strategy, plan_step, simulate_recsys
from planner.recsys.spec import load_recsys, recsys_from_dict
from planner.validate.frameworks import recsys_choices

H100 = "h100-sxm-80gb"


def spec_of(n_tables: int = 8, dim: int = 64, rows: int = 1000, pooling: float = 1.0):
    return recsys_from_dict(
        {"name": "small", "embedding_dim": dim, "cardinalities": [rows] * n_tables,
         "pooling_factors": [pooling] * n_tables, "bottom_mlp": [128, dim], "top_mlp": [64, 1]}
    )  # fmt: skip


def planned(spec, gpus: int = 8, batch: int = 8192, acc: str = H100, **strategy):
    s = make_recsys_strategy(global_batch=batch, **strategy)
    return plan_step(spec, resolve_cluster(gpus=gpus, accelerator=acc), s, DEFAULT)


def test_framework_fixes_placement_and_sharding_unless_given():
    assert make_recsys_strategy(framework="tf2-dle").placement == "memory_balanced"
    assert make_recsys_strategy(framework="sok").sharding == "row"
    assert make_recsys_strategy(framework="hugectr").placement == "torchrec"
    assert make_recsys_strategy(framework="tf2-dle", placement="torchrec").placement == "torchrec"
    with pytest.raises(PlannerInputError, match="framework"):
        make_recsys_strategy(framework="caffe")


def test_tf2_dle_is_the_generic_model_with_memory_balanced_placement():
    spec = load_recsys("dlrm-criteo-1tb")
    cluster = resolve_cluster(gpus=8, accelerator="a100-sxm-80gb")
    a = simulate_recsys(spec, cluster, make_recsys_strategy(framework="tf2-dle"), DEFAULT)
    b = simulate_recsys(spec, cluster, make_recsys_strategy(placement="memory_balanced"), DEFAULT)
    assert a.step_time_s == pytest.approx(b.step_time_s, rel=1e-12)


def test_fp16_tables_halve_lookup_bytes_and_memory():
    spec = spec_of(n_tables=1, dim=64, rows=1_000_000)
    p32 = planned(spec, gpus=1, batch=4096)
    p16 = planned(spec, gpus=1, batch=4096, embedding_precision="fp16")
    s32, s16 = p32.sharding.options[0].shards[0], p16.sharding.options[0].shards[0]
    # forward: gather 4096 ids x 64 cols + write 4096 pooled rows of 64, at 4 then 2 bytes
    assert s32.fwd_bytes == 2 * 4096 * 64 * 4
    assert s16.fwd_bytes == 2 * 4096 * 64 * 2
    assert p16.spec.embedding_bytes == pytest.approx(p32.spec.embedding_bytes / 2)


def test_fused_lookup_is_one_kernel_per_rank():
    # 64 tiny tables on one GPU: per-table kernels cost at least 64 kernel floors each way;
    # a fused TBE kernel moves the same bytes in one launch
    p = planned(spec_of(n_tables=64, rows=100), gpus=1, batch=64)
    shards = [s for o in p.sharding.options for s in o.shards]
    assert p.sharding.ranks[0].fwd_s == pytest.approx(64 * DEFAULT.kernel_floor_s)
    fwd, bwd = fused_lookup_s(p.sharding, 0, p.comp)
    assert fwd == pytest.approx(max(sum(s.fwd_bytes for s in shards) / p.comp.hbm, DEFAULT.kernel_floor_s))
    assert bwd == pytest.approx(max(sum(s.bwd_bytes for s in shards) / p.comp.hbm, DEFAULT.kernel_floor_s))
    assert fwd < p.sharding.ranks[0].fwd_s / 10


def test_hugectr_sends_half_precision_embeddings_under_amp_only():
    spec = spec_of(n_tables=16, dim=128, rows=100_000)
    amp = planned(spec, framework="hugectr", precision="fp16")
    fp32 = planned(spec, framework="hugectr", precision="fp32")
    assert amp.spec.embedding_comm_dtype == "fp16" and fp32.spec.embedding_comm_dtype is None
    assert planned(spec, framework="torchrec", precision="fp16").spec.embedding_comm_dtype is None


def test_cuda_graph_step_pays_one_launch_of_host_time():
    spec = spec_of()
    host = {
        fw: build_graph(planned(spec, framework=fw)).graph.nodes["HOST"]["duration"] for fw in ("hugectr", "torchrec")
    }
    assert host == {"hugectr": DEFAULT.kernel_floor_s, "torchrec": DEFAULT.recsys_step_host_s}


def test_pipelined_input_dist_does_not_gate_the_lookup():
    spec = spec_of(n_tables=16, rows=100_000)
    gen = build_graph(planned(spec)).graph
    tr = build_graph(planned(spec, framework="torchrec")).graph
    dle = build_graph(planned(spec, framework="tf2-dle")).graph
    assert gen.has_edge("IN", "EMB_F") and "IN" in tr and not tr.has_edge("IN", "EMB_F") and "IN" not in dle


def test_async_wgrad_moves_weight_gradients_behind_the_gradient_all_to_all():
    spec = load_recsys("dlrm-dcnv2-mlperf")
    kw = {"gpus": 16, "batch": 32768, "precision": "bf16"}
    plain = planned(spec, framework="torchrec", **kw)
    g = build_graph(plain).graph
    h = build_graph(planned(spec, framework="hugectr", **kw)).graph
    dc = build_graph(plain).dense
    wg = h.nodes["WGRAD"]["duration"]
    assert wg == pytest.approx(dc.top_wgrad_s + dc.interaction_wgrad_s) and wg > 0
    assert h.nodes["TOP_B"]["duration"] + h.nodes["INT_B"]["duration"] + wg == pytest.approx(
        g.nodes["TOP_B"]["duration"] + g.nodes["INT_B"]["duration"]
    )
    assert h.has_edge("CAST_B", "A2A_B") and h.has_edge("CAST_B", "WGRAD")


def test_sok_returns_each_looked_up_vector_by_all_to_all():
    spec = spec_of(n_tables=10, dim=64, rows=1_000_000, pooling=3)
    p = planned(spec, gpus=8, batch=8192, framework="sok", precision="fp32")
    rg = build_graph(p)
    assert {o.sharding_type for o in p.sharding.options} == {"row_wise"}
    assert "RS_F" not in rg.graph
    # every rank receives its 1024 samples' 3 ids x 10 tables x 64 fp32 values
    generic = build_graph(planned(spec, gpus=8, batch=8192, sharding="row", precision="fp32"))
    assert "RS_F" in generic.graph
    assert rg.a2a.transfer_s > 0
    want = p.coll.cost("all_to_all", 1024 * 3 * 10 * 64 * 4, Group(8))
    assert rg.a2a.transfer_s == pytest.approx(want.transfer_s)


def test_sok_row_wise_lookup_writes_only_its_own_vectors():
    """SOK's row-wise shard gathers 8192 x 3 / 8 = 3072 ids of one table and writes those vectors
    (no pooled partial sums for all 8192 samples): 3072 x 64 x 4 gathered + the same written."""
    spec = spec_of(n_tables=10, dim=64, rows=1_000_000, pooling=3)
    p = planned(spec, gpus=8, batch=8192, framework="sok", precision="fp32")
    emb_f = build_graph(p).graph.nodes["EMB_F"]["duration"]
    assert emb_f == pytest.approx(max(10 * 2 * 3072 * 64 * 4 / p.comp.hbm, DEFAULT.kernel_floor_s))
    pooled_f, _ = fused_lookup_s(p.sharding, 0, p.comp)  # TorchRec-style partial sums: 8192 rows written
    assert pooled_f == pytest.approx(10 * (3072 + 8192) * 64 * 4 / p.comp.hbm)


def test_validate_reads_the_framework_column():
    assert recsys_choices("a100-sxm-80gb")["framework"] == "tf2-dle"
    assert recsys_choices("a100-sxm-80gb")["placement"] == "memory_balanced"
    assert recsys_choices("a100-sxm-80gb", "SOK") == {"framework": "sok", "host_memory_gib": 2048.0}
    with pytest.raises(PlannerInputError, match="framework"):
        recsys_choices("a100-sxm-80gb", "caffe")


def test_cli_framework_flag(capsys):
    args = ["simulate", "--model", "dlrm-dcnv2-mlperf", "--accelerator", H100, "--gpus", "64",
            "--global-batch", "135168"]  # fmt: skip
    assert main([*args, "--framework", "hugectr"]) == 0
    out = capsys.readouterr().out
    assert "framework hugectr" in out
    assert main([*args, "--framework", "caffe"]) == 2
    err = capsys.readouterr().err
    assert "framework" in err and len(err.strip().splitlines()) == 1


def test_hugectr_all_reduces_half_precision_gradients_under_amp():
    # HugeCTR's grouped all-reduce exchanges the fp16 weight-gradient buffer under mixed precision:
    # the same dense parameters, half the bytes on the wire
    spec = load_recsys("dlrm-dcnv2-mlperf")
    kw = {"gpus": 16, "batch": 32768}
    amp = build_graph(planned(spec, framework="hugectr", precision="bf16", **kw)).graph.nodes["AR_TOP"]
    fp32 = build_graph(planned(spec, framework="hugectr", precision="fp32", **kw)).graph.nodes["AR_TOP"]
    assert amp["transfer"] == pytest.approx(fp32["transfer"] / 2)
