"""The dot interaction's kernel as a discrete choice (planner.recsys.interaction): each path checked
against a hand count of its passes, the frameworks' defaults, and the validation column that says
which kernel a measured run used."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from planner.calibration import DEFAULT
from planner.costs.compute import ComputeModel
from planner.errors import PlannerInputError
from planner.hardware import resolve_cluster
from planner.recsys.graph import build
from planner.recsys.interaction import EVENT_POLL_S, DotShape, custom_dot_s, framework_dot_s
from planner.recsys.run import build_graph, make_recsys_strategy, plan_step
from planner.recsys.spec import load_recsys
from planner.validate.rows import SCHEMAS

A100 = "a100-sxm-80gb"
PUBLIC = Path(__file__).resolve().parents[1] / "validation" / "public_recsys.csv"


def comp(precision: str = "fp16") -> ComputeModel:
    return ComputeModel(resolve_cluster(gpus=1, accelerator=A100).accelerator, DEFAULT, precision)


def test_custom_kernel_reads_features_once_and_writes_the_top_mlp_input_once():
    c = comp()
    x = DotShape(batch=8192, features=27, dim=128, out_dim=479, elem_bytes=2)
    fwd, bwd = custom_dot_s(c, x)
    # 8192 x (27 x 128 + 479) fp16 = 64.5 MB, memory-bound (1.5 GFLOP is ~7 us of tensor-core time)
    assert fwd == pytest.approx(8192 * (27 * 128 + 479) * 2 / c.hbm + DEFAULT.gemm_ramp_s)
    assert bwd == pytest.approx(2 * fwd)


def test_tf_boolean_mask_adds_the_mask_the_where_indices_the_split_and_one_host_sync():
    """Against the static-index gather (DLE's DotInteractionGather, TorchRec), SOK's DotInteraction
    forward also writes/reads a fp32 [B, 27, 27] mask 8 times (ones_like 1, band_part 2, subtract 3,
    Where's count and select 2), writes and reads one int64 index per kept element, copies the 26
    looked-up fp32 vectors once more (tf.split, then concat) and waits one event poll + relaunch."""
    c = comp()
    b = 16384
    x = DotShape(batch=b, features=27, dim=128, out_dim=479, elem_bytes=2, input_bytes=4)
    static_f, static_b = framework_dot_s(c, x, mask_gather=False)
    tf_f, tf_b = framework_dot_s(c, x, mask_gather=True)
    extra_fwd_bytes = 8 * b * 27 * 27 * 4 + 2 * b * 351 * 8 + 2 * b * 26 * 128 * 4
    assert tf_f - static_f == pytest.approx(extra_fwd_bytes / c.hbm + EVENT_POLL_S + DEFAULT.kernel_floor_s)
    # backward: the index read by the scatter and the split's concat
    assert tf_b - static_b == pytest.approx((b * 351 * 8 + 2 * b * 26 * 128 * 4) / c.hbm)


def test_framework_ops_cost_more_than_the_fused_kernel_but_stay_memory_bound():
    c = comp("tf32")
    x = DotShape(batch=8192, features=27, dim=128, out_dim=479, elem_bytes=4)
    custom = sum(custom_dot_s(c, x))
    framework = sum(framework_dot_s(c, x, mask_gather=False))
    # three batched GEMMs each move >= 2 x 8192 x 27 x 128 x 4 B = 226 MB: far more than the fused kernel's 129 MB
    assert framework > 3 * 2 * 8192 * 27 * 128 * 4 / c.hbm > custom
    assert framework < 10 * custom  # no tile-quantised 128 x 256 GEMM for a 27 x 27 output


def test_each_framework_defaults_to_its_documented_kernel_and_a_strategy_overrides_it():
    spec = load_recsys("dlrm-criteo-1tb")
    cluster = resolve_cluster(gpus=8, accelerator=A100)

    def int_f(**kw: object) -> float:
        p = plan_step(spec, cluster, make_recsys_strategy(precision="fp16", **kw), DEFAULT)
        return build_graph(p).graph.nodes["INT_F"]["duration"]

    custom = int_f()
    assert int_f(framework="sok") == int_f(framework="tf2-dle") == int_f(framework="hugectr") == custom
    assert int_f(framework="torchrec") > custom
    assert int_f(framework="torchrec", interaction_kernel="custom") == custom
    assert int_f(framework="sok", interaction_kernel="framework") > int_f(framework="torchrec")
    with pytest.raises(PlannerInputError, match="strategy"):
        make_recsys_strategy(interaction_kernel="cutlass")


def test_dcnv2_ignores_the_dot_kernel_choice():
    spec = load_recsys("dlrm-dcnv2-mlperf")
    p = plan_step(spec, resolve_cluster(gpus=8, accelerator=A100), make_recsys_strategy(framework="torchrec"), DEFAULT)
    g = build_graph(p)
    assert g.dense.interaction_fwd_s == build(p.spec, p.sharding, p.topo, p.comp, p.coll).dense.interaction_fwd_s


def _public_rows() -> dict[str, dict[str, str]]:
    with PUBLIC.open(newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def test_validation_rows_say_which_kernel_ran():
    rows = _public_rows()
    parse = SCHEMAS["recsys"].parse
    t1 = parse(rows["sok_dlrm_a100_t1_fp16"], 3)
    ci = parse(rows["sok_dlrm_a100_ci_fp16"], 7)
    assert (t1.strategy.interaction_kernel, ci.strategy.interaction_kernel) == ("framework", "custom")
    blank = parse({**rows["sok_dlrm_a100_t1_fp16"], "interaction_kernel": ""}, 3)
    assert blank.strategy.interaction_kernel is None  # the framework's default (sok: custom)
    with pytest.raises(PlannerInputError, match="interaction_kernel"):
        parse({**rows["sok_dlrm_a100_t1_fp16"], "interaction_kernel": "fused"}, 3)
