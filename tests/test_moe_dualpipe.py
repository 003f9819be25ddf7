"""MoE as DeepSeek-V3 trains it (arXiv:2412.19437): DualPipe's overlap of one micro-batch's
all-to-all with the paired micro-batch's computation on the SMs the communication leaves (sec.
3.2.1-3.2.2), and node-limited routing's one network copy per target node (sec. 2.1.2 / 3.2.2),
checked by hand, against the estimate, and on the validation row of the 2,048-H800 run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from planner.calibration import DEFAULT
from planner.costs.collectives import CollectiveModel, Group
from planner.engine import play
from planner.errors import PlannerInputError
from planner.hardware import resolve_cluster
from planner.registry import family
from planner.transformer.family import FAMILY
from planner.transformer.hf_config import from_hf_config
from planner.transformer.keys import Kind
from planner.transformer.schedules import dualpipe_compute_share, overlapped_pair
from planner.transformer.spec import TransformerSpec, load_model
from planner.validate.rows import row_scenario

# 32 experts of width 512, top-8, each token on experts of at most 2 nodes; one dense layer first
ROUTED = dict(
    num_layers=5, hidden_size=1024, num_heads=16, seq_len=1024, vocab_size=32000,
    ffn_hidden_size=4096, num_experts=32, top_k=8, moe_ffn_hidden_size=512, mlp="swiglu", first_dense_layers=1,
)  # fmt: skip
LIMITED = TransformerSpec(name="node-limited", **ROUTED, moe_max_nodes_per_token=2)
UNLIMITED = TransformerSpec(name="unlimited", **ROUTED)


def test_compute_share_is_112_of_132_sms() -> None:
    assert dualpipe_compute_share(132) == pytest.approx(112 / 132)
    assert dualpipe_compute_share(None) == pytest.approx(112 / 132)  # the H100/H800 part when unknown
    assert dualpipe_compute_share(108) == pytest.approx(88 / 108)  # A100


@pytest.mark.parametrize(
    ("compute", "a2a", "pair"),
    [
        (10.0, 5.0, 10.0 + 5.0 * 20 / 132),  # compute-bound: the all-to-all hidden, its SMs cost 20/132 of it
        (1.0, 10.0, 10.0),  # communication-bound: the computation runs slowed under it
        (112 / 132 * 4.0, 4.0, 4.0),  # the boundary: both ways give the all-to-all's time
    ],
)
def test_overlapped_pair_time_by_hand(compute: float, a2a: float, pair: float) -> None:
    """The pair takes max(all-to-all, compute + 20/132 of the all-to-all), never more than apart."""
    keep, slow = overlapped_pair(compute, a2a, 112 / 132)
    assert compute * (1 + slow) + a2a * keep == pytest.approx(pair)
    assert pair <= compute + a2a
    assert overlapped_pair(compute, 0.0, 112 / 132) == (1.0, 0.0)


def test_node_limited_dispatch_sends_one_copy_per_node_by_hand() -> None:
    """ep 32 over 4 nodes of 8 H100, top-8 limited to 2 nodes: 2 * 3/4 network copies per token
    (instead of 8 * 24/32) and 8 * 7/8 NVLink hops, the two levels pipelined."""
    cluster = resolve_cluster(gpus=32, accelerator="h100-sxm-80gb")
    coll = CollectiveModel(cluster, DEFAULT)
    tokens, token_bytes = 4096, 1024 * 2
    c, sent = coll.node_limited_all_to_all(token_bytes, tokens, 8, 2, Group(32, 1))
    inter = tokens * token_bytes * 2 * 3 / 4
    intra = tokens * token_bytes * 8 * 7 / 8
    expect = max(inter / (coll.nic_bw * DEFAULT.nic_efficiency), intra / (coll.up_bw * coll.up_eff))
    assert c.transfer_s == pytest.approx(expect)
    assert sent == pytest.approx(inter + intra)
    plain = coll.cost("all_to_all", tokens * 8 * token_bytes, Group(32, 1))
    assert c.transfer_s < 0.5 * plain.transfer_s
    # M at least the nodes spanned: every remote node once, still fewer bytes than a copy per expert
    wide, _ = coll.node_limited_all_to_all(token_bytes, tokens, 8, 8, Group(32, 1))
    assert c.transfer_s < wide.transfer_s < plain.transfer_s
    # inside one node the limit changes nothing: a plain all-to-all of the top-k copies
    one, _ = coll.node_limited_all_to_all(token_bytes, tokens, 8, 2, Group(8, 1))
    assert one == coll.cost("all_to_all", tokens * 8 * token_bytes, Group(8, 1))


def _plan(model: TransformerSpec, gpus: int, **layout: object):  # noqa: ANN202 - a StepPlan
    cluster = resolve_cluster(gpus=gpus, accelerator="h100-sxm-80gb")
    s = FAMILY.check(model, FAMILY.make_strategy(**layout), cluster)
    return FAMILY.plan(model, s, cluster, DEFAULT)


LAYOUT = dict(pp=2, ep=32, schedule="dualpipe", global_batch=256)


def test_node_limited_routing_cuts_the_all_to_all() -> None:
    limited, unlimited = (_plan(m, 64, **LAYOUT).layer.forward.seconds_of(Kind.EP_COMM) for m in (LIMITED, UNLIMITED))
    assert 0 < limited < 0.5 * unlimited


def test_estimate_follows_a_communication_bound_dualpipe() -> None:
    """Across 8 nodes the pairs are bound by the all-to-all; the search's estimate replays them as
    the graph does (within 2 %)."""
    for model in (LIMITED, UNLIMITED):
        plan = _plan(model, 64, **LAYOUT)
        est = FAMILY.estimate(plan).step_time_s
        sim = play(FAMILY.build_graph(plan).graph).makespan_s
        assert abs(est / sim - 1) <= 0.02, (model.name, est, sim)


def test_pairs_hide_all_to_all_and_pay_for_its_sms() -> None:
    """A DualPipe step of the node-limited model exposes less all-to-all than 1F1B and its pairs
    carry the SMs' cost as compute."""
    one = _plan(LIMITED, 64, **{**LAYOUT, "schedule": "1f1b"})
    dual = _plan(LIMITED, 64, **LAYOUT)
    g = FAMILY.build_graph(dual).graph
    labels = {seg.label for _, a in g.nodes(data=True) for p, _ in a.get("passes", []) for seg in p.segments}
    assert "SMs given to the paired chunk's all-to-all" in labels
    r1 = FAMILY.result(one, FAMILY.build_graph(one), play(FAMILY.build_graph(one).graph))
    r2 = FAMILY.result(dual, FAMILY.build_graph(dual), play(g))
    assert r2.breakdown.ep_comm_s < 0.5 * r1.breakdown.ep_comm_s


def test_hf_config_topk_group_is_the_node_limit() -> None:
    from test_hf_config import DEEPSEEK_V3  # the config.json transcribed there

    assert from_hf_config(DEEPSEEK_V3).moe_max_nodes_per_token is None  # no group-limited routing given
    spec = from_hf_config({**DEEPSEEK_V3, "n_group": 8, "topk_group": 4})  # deepseek-ai/DeepSeek-V3 config.json
    assert spec.moe_max_nodes_per_token == 4
    assert from_hf_config({**DEEPSEEK_V3, "n_group": 8, "topk_group": 8}).moe_max_nodes_per_token is None
    assert load_model("deepseek-v3").moe_max_nodes_per_token == 4


DENSE = {
    k: v for k, v in ROUTED.items() if k not in ("num_experts", "top_k", "moe_ffn_hidden_size", "first_dense_layers")
}


def test_node_limit_on_a_dense_model_is_an_error() -> None:
    with pytest.raises(PlannerInputError, match="moe_max_nodes_per_token"):
        family("transformer").load({"name": "dense", **DENSE, "moe_max_nodes_per_token": 2})


def test_famous_deepseek_row_runs_dualpipe_with_node_limited_routing() -> None:
    path = Path(__file__).resolve().parents[1] / "validation" / "famous_runs.csv"
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    i, row = next((i, r) for i, r in enumerate(rows) if r["id"] == "deepseek_v3_2048_h800")
    model, _cluster, strategy, _ = row_scenario(row, i + 2)
    assert (strategy.schedule, model.moe_max_nodes_per_token) == ("dualpipe", 4)
