"""Issue 16: catalog hardware without a NIC figure, non-finite numbers, unbounded work, constraints
that a compare answer misses, the default batch at scale and the pp-1 bubble. Each test fails on
the code before its fix (a crash, a hang, a silent answer or a wrong figure)."""

from __future__ import annotations

import math

import networkx as nx
import pytest

from planner.calibration import DEFAULT
from planner.costs.collectives import CollectiveModel, Group
from planner.energy import make_site
from planner.engine import play
from planner.errors import PlannerInputError
from planner.hardware import catalog, resolve_cluster
from planner.search.compare import compare
from planner.search.format import format_compare
from planner.search.search import TOKENS_PER_STEP_DEFAULT, default_global_batch
from planner.simulate import simulate
from planner.transformer.spec import TransformerSpec, load_model
from planner.transformer.strategy import MAX_GRAPH_TASKS


# ---------------------------------------------------------------- item 1: nodes with no NIC figure
@pytest.mark.parametrize(
    "hw",
    [
        {"accelerator": "tpu-v4", "gpus": 4},
        {"instance": "tpu-v4-8", "gpus": 4},
        {"instance": "Standard_ND40rs_v2", "gpus": 8},
    ],
)
def test_single_node_runs_need_no_nic(hw: dict) -> None:
    r = simulate("gpt3-1.7b", **hw)
    assert r.step_time_s > 0 and math.isfinite(r.step_time_s)


def test_run_across_islands_without_nic_is_one_clear_error() -> None:
    cl = resolve_cluster(gpus=8, instance="Standard_ND40rs_v2")
    assert cl.node.scale_out_gbps_per_gpu == 0
    # the same node type pretending to hold two 4-GPU islands: a cross-island collective needs the NIC
    up = cl.node.scale_up.model_copy(update={"domain_size": 4})
    half = cl.model_copy(update={"node": cl.node.model_copy(update={"gpus_per_node": 4, "scale_up": up})})
    coll = CollectiveModel(half, DEFAULT)
    with pytest.raises(PlannerInputError, match="no usable scale-out network figure"):
        coll.cost("all_reduce", 1e6, Group(8, 1))
    with pytest.raises(PlannerInputError, match="no usable scale-out network figure"):
        coll.cost("p2p", 1e6, Group(2, 4))


def test_one_island_prices_a_phantom_neighbour_on_the_scale_up_link() -> None:
    """pp 1 still asks for the pipeline neighbour's p2p (unused); on one island it is not a NIC hop."""
    coll = CollectiveModel(resolve_cluster(gpus=8, accelerator="h100-sxm-80gb"), DEFAULT)
    assert coll.cost("p2p", 1e6, Group(2, 8)).link == "up"


def test_compare_keeps_the_other_rows_when_one_cannot_run() -> None:
    c = compare("gpt3-1.7b", instances=["Standard_ND40rs_v2", "p5.48xlarge"], gpus=16)
    rows = {r.instance: r for r in c.results}
    assert rows["p5.48xlarge"].fits and rows["p5.48xlarge"].step_time_s > 0
    bad = rows["Standard_ND40rs_v2"]
    assert not bad.fits and "scale-out" in (bad.reason or "")


# ---------------------------------------------------------------- item 3: finite numbers, bounded work
@pytest.mark.parametrize("bw", [math.nan, math.inf, -1.0, 0.0])
def test_non_finite_bandwidth_is_refused_where_it_enters(bw: float) -> None:
    with pytest.raises(PlannerInputError, match="inter_node_gbps_per_gpu"):
        simulate("gpt3-1.7b", accelerator="h100-sxm-80gb", gpus=16, inter_node_gbps_per_gpu=bw)


def test_catalog_figures_must_be_finite() -> None:
    acc = catalog().accelerators["h100-sxm-80gb"]
    with pytest.raises(ValueError, match="finite"):
        type(acc).model_validate({**acc.model_dump(), "memory_bandwidth_gb_s": math.inf})


@pytest.mark.parametrize("field", ["duration", "latency", "transfer"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
def test_engine_refuses_a_bad_time_instead_of_looping(field: str, value: float) -> None:
    g = nx.DiGraph()
    attrs = {"duration": 1.0} if field == "duration" else {"latency": 0.0, "transfer": 1.0, "link": "0/out"}
    attrs[field] = value
    g.add_node("a", stream="s", order=0, kind="compute", label="a", **attrs)
    with pytest.raises(PlannerInputError, match=f"{field} must be a finite"):
        play(g)


def test_engine_simulates_a_nan_bandwidth_cluster_built_in_python_without_hanging() -> None:
    cl = resolve_cluster(gpus=16, accelerator="h100-sxm-80gb")
    out = cl.node.scale_out.model_copy(update={"nic_gbps": math.nan})  # model_copy skips validation
    bad = cl.model_copy(update={"node": cl.node.model_copy(update={"scale_out": out})})
    with pytest.raises(PlannerInputError, match="nan Gb/s"):
        simulate("gpt3-1.7b", cluster=bad)


def test_a_billion_layers_is_refused_before_any_work() -> None:
    with pytest.raises(PlannerInputError, match="num_layers"):
        load_model_dict({"num_layers": 10**9, "hidden_size": 256, "num_heads": 4})


def load_model_dict(data: dict) -> TransformerSpec:
    from planner.transformer.spec import transformer_from_dict

    return transformer_from_dict(data)


def test_graph_size_is_capped_before_building() -> None:
    with pytest.raises(PlannerInputError, match=f"{MAX_GRAPH_TASKS:,}"):
        simulate("gpt3-1.7b", accelerator="h100-sxm-80gb", gpus=8, global_batch=8 * 10**6)


def test_search_with_one_token_sequences_answers() -> None:
    """The default batch was 4M one-token sequences: millions of micro-batches, a search that never
    returned. Now the default stops at 1,024 sequences per GPU (8,192 at least) and the search answers."""
    from planner.search import search
    from planner.search.types import SearchSpace

    space = SearchSpace(pp=(1,), micro_batch=(1, 8), recompute=("none",), zero_stage=(1,), sequence_parallel=(False,))
    r = search("gpt3-1.7b", accelerator="h100-sxm-80gb", gpus=8, seq_len=1, workers=1, space=space, min_gpus=8)
    assert r.results and r.global_batch == 8192


def test_default_batch_of_short_sequences_is_bounded_per_gpu() -> None:
    assert default_global_batch(load_model("gpt3-1.7b", 1), 8) == 8192
    assert default_global_batch(load_model("gpt3-1.7b", 512), 8) == 8192  # 4M tokens: not capped


# ---------------------------------------------------------------- item 7: missed constraints said
def test_compare_flags_missed_budget_and_deadline() -> None:
    c = compare("gpt3-1.7b", instances=["p5.48xlarge"], gpus=8, budget_usd=1, deadline_days=1e-7)
    row = c.results[0]
    assert row.meets_deadline is False and row.within_budget is False
    text = format_compare(c)
    assert "MISSED" in text and "budget $1 exceeded by: p5.48xlarge" in text and "deadline 1e-07 days" in text


def test_compare_flags_are_null_when_not_asked_and_true_when_met() -> None:
    c = compare("gpt3-1.7b", instances=["p5.48xlarge"], gpus=8)
    assert c.results[0].meets_deadline is None and c.results[0].within_budget is None
    c = compare("gpt3-1.7b", instances=["p5.48xlarge"], gpus=8, budget_usd=1e9, deadline_days=1e4)
    assert c.results[0].meets_deadline is True and c.results[0].within_budget is True


def test_compare_honours_budget_with_a_deadline() -> None:
    """With both, the chosen count stays within the budget (it used to be ignored: the fastest won)."""
    free = compare("gpt3-1.7b", instances=["p5.48xlarge"], deadline_days=1e-7, max_gpus=64).results[0]
    assert free.run is not None and free.gpus == 64  # none meets the deadline: the fastest tried
    small = compare("gpt3-1.7b", instances=["p5.48xlarge"], gpus=8).results[0]
    assert small.run is not None and small.run.usd < free.run.usd  # bigger is a little dearer here
    budget = (small.run.usd + free.run.usd) / 2
    both = compare("gpt3-1.7b", instances=["p5.48xlarge"], deadline_days=1e-7, budget_usd=budget, max_gpus=64)
    row = both.results[0]
    assert row.gpus is not None and row.gpus < 64 and row.meets_deadline is False


# ---------------------------------------------------------------- item 8: site and MoE figures
@pytest.mark.parametrize("field", ["pue", "grid_gco2_per_kwh", "usd_per_kwh"])
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_site_figures_must_be_finite(field: str, value: float) -> None:
    with pytest.raises(PlannerInputError, match=f"{field}: must be a finite number"):
        make_site(**{field: value})


@pytest.mark.parametrize(
    "kw", [{"moe_capacity_factor": math.inf}, {"moe_capacity_factor": 1e300}, {"moe_imbalance": math.inf, "ep": 8},
           {"moe_imbalance": 1e300, "ep": 8}]
)  # fmt: skip
def test_moe_extremes_are_clear_errors(kw: dict) -> None:
    with pytest.raises(PlannerInputError, match="moe_"):
        simulate("mixtral-8x7b", accelerator="h100-sxm-80gb", gpus=64, **kw)


# ---------------------------------------------------------------- item 11: default batch, pp-1 bubble
@pytest.mark.parametrize("gpus", [8, 2048, 16384, 24576, 100_000, 131_072])
def test_default_global_batch_is_about_4m_tokens_at_any_scale(gpus: int) -> None:
    model = load_model("gpt3-1.7b")
    tokens = default_global_batch(model, gpus) * model.seq_len
    assert TOKENS_PER_STEP_DEFAULT / 2 <= tokens <= TOKENS_PER_STEP_DEFAULT * 2


def test_default_global_batch_at_100k_gpus_leaves_layouts() -> None:
    gb = default_global_batch(load_model("gpt3-1.7b"), 100_000)
    assert gb % 3125 == 0  # dp = 100,000 / 32 divides it: tp*pp*cp = 32 layouts remain


def test_pp1_has_no_pipeline_bubble_and_the_breakdown_still_sums() -> None:
    r = simulate("gpt3-1.7b", accelerator="h100-sxm-80gb", gpus=8)
    b = r.breakdown
    assert b.bubble_s == 0.0
    parts = b.compute_s + b.exposed_comm_s + b.bubble_s + b.optimizer_s + b.host_overhead_s
    assert parts == pytest.approx(r.step_time_s, rel=1e-9)
