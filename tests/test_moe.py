"""Mixture-of-experts and sequence-parallel features: explicit head_dim, first dense layers, the
DeepSeek-V3 / Qwen3 presets against their published sizes, the all-to-all volumes of expert
parallelism and of DeepSpeed-Ulysses computed by hand, capacity factor and load imbalance, shared-
expert overlap, memory per active expert, and the clear errors of every new option."""

from __future__ import annotations

import pytest

import planner
from planner.calibration import DEFAULT
from planner.cli import main
from planner.costs.collectives import CollectiveModel, Group
from planner.costs.compute import ComputeModel
from planner.errors import PlannerInputError
from planner.hardware import Cluster, resolve_cluster
from planner.simulate import make_strategy
from planner.transformer.estimate import AnalyticalEstimator
from planner.transformer.keys import Node, Phase
from planner.transformer.layer import LayerCosts, Segment, layer_costs
from planner.transformer.memory import layer_activation_bytes, memory
from planner.transformer.sharding import rank_params, rank_params_split, stage_layer_kinds
from planner.transformer.spec import TransformerSpec, load_model
from planner.transformer.strategy import Strategy, check_layout

E = 2  # bytes per bf16 element

# A small MoE model: one dense layer first (ffn 2048), then 3 MoE layers of 8 experts (ffn 512),
# top-2 routing and one shared expert; GQA 16 query heads, 4 KV heads.
TINY = TransformerSpec(
    name="tiny-moe",
    num_layers=4,
    hidden_size=1024,
    num_heads=16,
    num_kv_heads=4,
    ffn_hidden_size=2048,
    vocab_size=32000,
    seq_len=2048,
    mlp="swiglu",
    num_experts=8,
    top_k=2,
    moe_ffn_hidden_size=512,
    shared_experts=1,
    first_dense_layers=1,
)
TINY_DENSE = TransformerSpec(
    name="tiny-dense", num_layers=4, hidden_size=1024, num_heads=16, num_kv_heads=4, ffn_hidden_size=2048,
    vocab_size=32000, seq_len=2048, mlp="swiglu",
)  # fmt: skip


def _cluster(gpus: int) -> Cluster:
    return resolve_cluster(gpus=gpus, accelerator="h100-sxm-80gb")


def _resolved(model: TransformerSpec, gpus: int, **fields: object) -> tuple[Strategy, Cluster]:
    cluster = _cluster(gpus)
    return check_layout(make_strategy(**fields), model, cluster), cluster


def _layer(model: TransformerSpec, gpus: int, moe: bool | None = None, **fields: object) -> LayerCosts:
    s, cluster = _resolved(model, gpus, **fields)
    comp = ComputeModel(cluster.accelerator, DEFAULT, s.precision)
    return layer_costs(model, s, comp, CollectiveModel(cluster, DEFAULT), moe=moe)


def _segments(lc: LayerCosts, label: str) -> list[Segment]:
    return [x for x in lc.forward.segments if x.label.startswith(label)]


# ---------------------------------------------------------------------------- shapes and counts


def test_head_dim_decouples_query_width_from_hidden() -> None:
    """Qwen3-30B-A3B: 32 query heads of 128 = 4096 wide with hidden 2048; 4 KV heads of 128."""
    m = load_model("qwen3-30b-a3b")
    assert (m.head_size, m.q_hidden, m.kv_hidden) == (128, 4096, 512)
    h = 2048
    assert m.attn_params == h * 4096 + 2 * h * 512 + 4096 * h  # q, k, v, output projection
    # attention FLOPs are over heads * head_dim, not hidden
    assert m.attention_flops_per_token(4096) == 4.0 * 48 * 4096 * 4096
    # without head_dim, hidden must split over the heads; with it, it need not
    with pytest.raises(ValueError, match="head_dim"):
        TransformerSpec(num_layers=2, hidden_size=1000, num_heads=16)
    assert TransformerSpec(num_layers=2, hidden_size=1000, num_heads=16, head_dim=64).q_hidden == 1024


# (preset, published total, published active, rel. tolerance on active, source)
PUBLISHED_MOE = [
    # Mixtral of Experts (arXiv:2401.04088): 46.7B, 12.9B active
    ("mixtral-8x7b", 46.7e9, 12.9e9, 0.01),
    # DeepSeek-V3 (arXiv:2412.19437): 671B, 37B active (README_WEIGHTS: 36.6B without the embedding);
    # MLA with its latent projections (187.1M attention weights per layer)
    ("deepseek-v3", 671e9, 37e9, 0.03),
    # Qwen3 Technical Report (arXiv:2505.09388) Table 2: 30.5B, 3.3B active
    ("qwen3-30b-a3b", 30.5e9, 3.3e9, 0.03),
]


@pytest.mark.parametrize(("name", "total", "active", "rel"), PUBLISHED_MOE)
def test_moe_presets_match_published_sizes(name: str, total: float, active: float, rel: float) -> None:
    m = load_model(name)
    assert m.num_params == pytest.approx(total, rel=0.01), m.num_params / 1e9
    assert m.active_params == pytest.approx(active, rel=rel), m.active_params / 1e9


def test_deepseek_v3_active_without_embedding_is_36_6b() -> None:
    m = load_model("deepseek-v3")
    assert m.active_params - m.embedding_params == pytest.approx(36.6e9, rel=0.005)
    # MLA's weights per layer: q down 7168x1536, q up 1536x(128x192), kv down 7168x576,
    # kv up 512x(128x256), output 16384x7168 = 187.1M
    mla = 7168 * 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 * 128 * 256 + 128 * 128 * 7168
    assert m.attn_params == mla
    # and its attention scores: QK^T over 192-wide heads, AV over 128-wide (2 * s * heads * 320 per token-layer)
    assert m.attention_flops_per_token(4096) == 2.0 * 61 * 4096 * 128 * (192 + 128)


def test_first_dense_layers_count_and_flops() -> None:
    """DeepSeek-V3: 3 dense layers of ffn 18432, 58 MoE layers of 256 + 1 shared experts of 2048."""
    m = load_model("deepseek-v3")
    assert (m.dense_layers, m.moe_layers) == (3, 58)
    assert [m.layer_is_moe(i) for i in range(5)] == [False, False, False, True, True]
    h, expert = 7168, 3 * 7168 * 2048
    dense_mlp = 3 * h * 18432
    moe_layer = m.attn_params + 257 * expert + 256 * h  # routed + shared experts + router
    norms = 2 * h + 1536 + 512  # two RMSNorms, and MLA's on its q and kv latents
    assert m.num_params == 3 * (m.attn_params + dense_mlp + norms) + 58 * (moe_layer + norms) + 2 * 129280 * h + h
    # a token's matmul weights: 3 dense MLPs, 58 x (8 routed + 1 shared experts + router)
    per_token = 61 * m.attn_params + 3 * dense_mlp + 58 * (9 * expert + 256 * h) + 129280 * h
    assert m.matmul_params_per_token == per_token
    assert m.model_flops_per_token() == 3 * (2 * per_token + 2 * 61 * 4096 * 128 * (192 + 128))
    # rules
    with pytest.raises(ValueError, match="first_dense_layers needs a mixture-of-experts"):
        TransformerSpec(num_layers=4, hidden_size=64, num_heads=4, first_dense_layers=1)
    with pytest.raises(ValueError, match="fewer than num_layers"):
        TransformerSpec(num_layers=4, hidden_size=64, num_heads=4, num_experts=4, top_k=2, first_dense_layers=4)


def test_pipeline_stages_hold_the_dense_layers_first() -> None:
    m = load_model("deepseek-v3")
    kinds = stage_layer_kinds(m, 16)
    assert sum(nd for nd, _ in kinds) == 3 and sum(nm for _, nm in kinds) == 58
    assert kinds[0] == (3, 0) and kinds[1] == (0, 4)
    # under ep 64 the dense first stage holds more parameters per GPU than an MoE stage: its
    # dense MLPs are whole on each GPU while every MoE stage holds 4 of the 256 experts
    s, _ = _resolved(m, 2048, pp=16, ep=64, global_batch=4096)
    params = rank_params(m, s)
    assert params[0] > params[1]


# ---------------------------------------------------------------------------- expert parallelism


def test_dispatch_and_combine_volumes_by_hand() -> None:
    """Per rank and micro-batch each all-to-all sends tokens * top_k * hidden * bytes * (ep-1)/ep."""
    s, cluster = _resolved(TINY, 16, ep=4, global_batch=16)
    lc = _layer(TINY, 16, ep=4, global_batch=16)
    tokens = 1 * 2048  # micro-batch 1, sequence 2048, cp 1
    buffer = tokens * 2 * 1024 * E
    sent = buffer * (4 - 1) / 4
    assert sent == 6_291_456
    (dispatch,) = _segments(lc, "MoE dispatch")
    (combine,) = _segments(lc, "MoE combine")
    assert dispatch.nbytes == combine.nbytes == sent
    coll = CollectiveModel(cluster, DEFAULT)
    assert dispatch.seconds == pytest.approx(coll.cost("all_to_all", buffer, Group(4, s.tp * s.cp)).total_s)
    # backward moves the gradients of the same tensors: the same bytes again
    bwd = [x for x in lc.backward.segments if x.kind == "ep_comm"]
    assert sum(x.nbytes for x in bwd) == 2 * sent
    # the dense first layer has no all-to-all
    assert not [x for x in _layer(TINY, 16, moe=False, ep=4, global_batch=16).forward.segments if x.kind == "ep_comm"]


def test_graph_tasks_carry_the_all_to_all_bytes() -> None:
    """The first stage's forward task holds 1 dense + 3 MoE layers: 3 dispatches and 3 combines."""
    r = planner.simulate(TINY, accelerator="h100-sxm-80gb", gpus=16, ep=4, global_batch=16)
    attrs = r._graph.nodes[Node(Phase.FORWARD, 0, 0)]
    sent = 0.0
    for p, count in attrs["passes"]:
        sent += count * sum(x.nbytes for x in p.segments if x.kind == "ep_comm")
    assert sent == 3 * 2 * 2048 * 2 * 1024 * E * 3 / 4
    assert r.breakdown.ep_comm_s > 0


def test_expert_gemms_run_the_tokens_each_expert_receives() -> None:
    """ep 4, 8 experts: each rank holds 2 experts; each receives tokens * top_k * ep / experts."""
    base = _layer(TINY, 16, ep=4, global_batch=16)
    per_expert = 2048 * 2 * 4 // 8
    routed_flops = 2 * per_expert * 2 * 3 * 1024 * 512  # 2 local experts, fc1 (2 x 512) + fc2 (512)
    imb = _layer(TINY, 16, ep=4, global_batch=16, moe_imbalance=1.5)
    cap = _layer(TINY, 16, ep=4, global_batch=16, moe_capacity_factor=1.25)
    assert imb.flops_forward - base.flops_forward == pytest.approx(0.5 * routed_flops)
    assert cap.flops_forward - base.flops_forward == pytest.approx(0.25 * routed_flops)


def test_imbalance_and_capacity_scale_the_all_to_all() -> None:
    s, cluster = _resolved(TINY, 16, ep=4, global_batch=16)
    coll = CollectiveModel(cluster, DEFAULT)
    buffer = 2048 * 2 * 1024 * E
    for fields, load in (({"moe_imbalance": 2.0}, 2.0), ({"moe_capacity_factor": 1.25}, 1.25)):
        lc = _layer(TINY, 16, ep=4, global_batch=16, **fields)
        (dispatch,) = _segments(lc, "MoE dispatch")
        assert dispatch.nbytes == pytest.approx(load * buffer * 3 / 4)
        assert dispatch.seconds == pytest.approx(coll.cost("all_to_all", load * buffer, Group(4, 1)).total_s)
    kw = dict(accelerator="h100-sxm-80gb", gpus=64, ep=8, global_batch=64, zero_stage=1)
    slow = planner.simulate("mixtral-8x7b", moe_imbalance=1.5, **kw)
    even = planner.simulate("mixtral-8x7b", **kw)
    # the transfer scales by 1.5, the launch latency does not
    assert 1.4 * even.breakdown.ep_comm_s < slow.breakdown.ep_comm_s < 1.5 * even.breakdown.ep_comm_s
    assert slow.step_time_s > even.step_time_s
    assert slow.mfu < even.mfu  # the same model FLOPs take longer


def test_shared_expert_overlap_hides_all_to_all() -> None:
    kw = dict(ep=4, global_batch=16)
    off = _layer(TINY, 16, **kw)
    on = _layer(TINY, 16, moe_shared_expert_overlap=True, **kw)
    shared = sum(x.seconds for x in off.forward.segments if x.label.startswith("shared"))
    a2a_off = off.forward.seconds_of("ep_comm")
    a2a_on = on.forward.seconds_of("ep_comm")
    assert a2a_on == pytest.approx(max(0.0, a2a_off - shared))
    # the bytes still move
    assert sum(x.nbytes for x in on.forward.segments) == sum(x.nbytes for x in off.forward.segments)


# ---------------------------------------------------------------------------- context parallelism


def test_ulysses_all_to_all_volumes_by_hand() -> None:
    """DeepSpeed-Ulysses, cp 4, tp 1: q, k, v of s/cp tokens out, whole sequence of 1/cp heads in,
    then the attention output back; each all-to-all sends (cp-1)/cp of its local tensor."""
    lc = _layer(TINY_DENSE, 16, cp=4, cp_algorithm="ulysses", global_batch=16)
    tokens = 2048 // 4
    q, kv = tokens * 1024 * E, tokens * 256 * E
    (qkv,) = _segments(lc, "Ulysses q/k/v")
    (out,) = _segments(lc, "Ulysses output")
    assert qkv.nbytes == (q + 2 * kv) * 3 / 4
    assert out.nbytes == q * 3 / 4
    assert not _segments(lc, "ring")
    # backward: the gradients of the same four tensors, no doubling
    bwd = sum(x.nbytes for x in lc.backward.segments if x.kind == "cp_comm")
    assert bwd == qkv.nbytes + out.nbytes


def test_ring_attention_volume_by_hand() -> None:
    """Ring attention, cp 4: three steps, each passing this rank's K and V block on."""
    lc = _layer(TINY_DENSE, 16, cp=4, global_batch=16)
    (ring,) = _segments(lc, "ring-attention")
    assert ring.nbytes == 3 * 2 * (2048 // 4) * 256 * E
    bwd = sum(x.nbytes for x in lc.backward.segments if x.kind == "cp_comm")
    assert bwd == 2 * ring.nbytes  # K/V and their gradients


def test_ulysses_and_ring_run_llama_at_64k() -> None:
    kw = dict(accelerator="h100-sxm-80gb", gpus=16, cp=4, seq_len=65536, global_batch=16, zero_stage=1)
    ring = planner.simulate("llama3-8b", **kw)
    uly = planner.simulate("llama3-8b", cp_algorithm="ulysses", **kw)
    assert ring.model_flops_per_step == uly.model_flops_per_step
    assert uly.breakdown.cp_comm_s > 0
    assert 0.3 < ring.mfu < 0.7 and 0.3 < uly.mfu < 0.7


def test_ulysses_needs_heads_divisible_by_tp_cp() -> None:
    # 4 KV heads cannot be split over tp*cp = 8
    with pytest.raises(PlannerInputError, match=r"cp_algorithm: Ulysses .* num_kv_heads 4"):
        _resolved(TINY_DENSE, 16, cp=8, cp_algorithm="ulysses", global_batch=16)
    with pytest.raises(PlannerInputError, match="num_heads 16"):
        _resolved(TINY_DENSE.model_copy(update={"num_kv_heads": None}), 32, cp=32, cp_algorithm="ulysses")


# ---------------------------------------------------------------------------- memory


def test_memory_per_active_expert_by_hand() -> None:
    """Experts split over ep (and their ZeRO shards over dp*cp/ep), activations of the top-k copies."""
    s, cluster = _resolved(TINY, 16, ep=4, zero_stage=1, global_batch=16)
    h, fe = 1024, 512
    expert = 3 * h * fe
    attn = TINY.attn_params
    norms = 2 * h
    dense_layer = attn + 3 * h * 2048 + norms
    moe_rest = attn + expert + 8 * h + norms  # attention, the shared expert, the router
    routed = 2 * expert  # 8 experts / ep 4 on each rank
    embed = 32000 * h
    ((rest, experts),) = rank_params_split(TINY, s)
    assert rest == dense_layer + 3 * moe_rest + embed + embed  # the final norm is not counted per rank
    assert experts == 3 * routed
    mem = memory(TINY, s, cluster, E)
    dp, edp = 16, 16 // 4
    gib = 2**30
    assert mem.weights_gib * gib == pytest.approx((rest + experts) * 2)
    assert mem.optimizer_gib * gib == pytest.approx(rest * 12 / dp + experts * 12 / edp)
    # activations of an MoE layer: per token, the GPT terms with the shared expert's MLP; per routed
    # copy (top-2), the permuted input (h) and the expert's fc1 outputs and activation (3 x f_e)
    sb = 2048
    stored, _ = layer_activation_bytes(TINY, s, E, moe=True)
    # a SwiGLU model trains without dropout, so no dropout masks (the GPT shape's "+2" of 34 sbh)
    attn_part = 4 * E * sb * h + E * sb * (2 * h + 2 * 256)
    assert stored == attn_part + E * sb * fe * 3 + sb * 2 * (E * h + E * fe * 3)
    dense, _ = layer_activation_bytes(TINY, s, E, moe=False)
    assert dense == attn_part + E * sb * 2048 * 3


# ---------------------------------------------------------------------------- the presets run


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("mixtral-8x7b", dict(gpus=64, tp=2, ep=8, global_batch=256, zero_stage=1)),
        ("qwen3-30b-a3b", dict(gpus=64, ep=8, global_batch=512, zero_stage=1)),
        (
            "deepseek-v3",
            dict(gpus=2048, pp=16, ep=64, global_batch=4096, precision="fp8", zero_stage=1, recompute="full"),
        ),
    ],
)
def test_moe_presets_simulate_and_fit(model: str, fields: dict) -> None:
    r = planner.simulate(model, accelerator="h100-sxm-80gb", **fields)
    assert r.memory.fits, r.memory
    assert r.breakdown.ep_comm_s > 0
    assert 0.03 < r.mfu < 0.7


def test_estimate_follows_simulation_with_dense_first_layers() -> None:
    model = TINY.model_copy(update={"num_layers": 8, "first_dense_layers": 3})
    s, cluster = _resolved(model, 32, pp=2, ep=4, global_batch=64)
    est = AnalyticalEstimator().estimate(model, cluster, s)
    sim = planner.simulate(model, cluster=cluster, strategy=make_strategy(pp=2, ep=4, global_batch=64))
    assert est.step_time_s == pytest.approx(sim.step_time_s, rel=0.1)


def test_fsdp_with_dense_first_layers_runs() -> None:
    r = planner.simulate(TINY, accelerator="h100-sxm-80gb", gpus=8, ep=2, zero_stage=3, global_batch=16)
    assert r.step_time_s > 0 and r.breakdown.ep_comm_s > 0


# ---------------------------------------------------------------------------- bad values


def test_moe_options_on_a_dense_model_are_errors() -> None:
    for fields, name in (
        ({"moe_capacity_factor": 1.25}, "moe_capacity_factor"),
        ({"moe_imbalance": 1.2}, "moe_imbalance"),
        ({"moe_shared_expert_overlap": True}, "moe_shared_expert_overlap"),
    ):
        with pytest.raises(PlannerInputError, match=f"^{name}: .*dense"):
            _resolved(TINY_DENSE, 8, **fields)


def test_moe_option_rules() -> None:
    with pytest.raises(PlannerInputError, match="moe_imbalance: .*needs ep > 1"):
        _resolved(TINY, 8, moe_imbalance=1.5)
    with pytest.raises(PlannerInputError, match="moe_imbalance: applies to dropless"):
        _resolved(TINY, 8, ep=2, moe_imbalance=1.5, moe_capacity_factor=1.0)
    with pytest.raises(PlannerInputError, match="moe_shared_expert_overlap: .*no shared experts"):
        planner.simulate("mixtral-8x7b", gpus=64, ep=8, moe_shared_expert_overlap=True)
    with pytest.raises(PlannerInputError, match="moe_imbalance"):
        make_strategy(moe_imbalance=0.9)
    with pytest.raises(PlannerInputError, match="moe_capacity_factor"):
        make_strategy(moe_capacity_factor=0)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--moe-imbalance", "0.8"], "--moe-imbalance must be >= 1"),
        (["--moe-imbalance", "x"], "--moe-imbalance must be a number"),
        (["--moe-capacity-factor", "0"], "--moe-capacity-factor must be > 0"),
        (["--moe-capacity-factor", "-1"], "--moe-capacity-factor must be > 0"),
        (["--cp-algorithm", "star"], "--cp-algorithm"),
    ],
)
def test_cli_bad_values_name_the_flag(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["simulate", "--model", "mixtral-8x7b", "--gpus", "64", "--ep", "8"]
    with pytest.raises(SystemExit) as ei:
        main(base + argv)
    assert ei.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--model", "llama3-8b", "--moe-capacity-factor", "1.25"], "moe_capacity_factor: llama3-8b is dense"),
        (["--model", "llama3-8b", "--moe-imbalance", "1.2"], "moe_imbalance: llama3-8b is dense"),
        (["--model", "llama3-8b", "--cp", "16", "--cp-algorithm", "ulysses"], "num_kv_heads 8"),
    ],
)
def test_cli_rule_errors_are_one_line(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["simulate", "--gpus", "16", *argv])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_expert_gradients_reduce_over_the_expert_data_parallel_group_only() -> None:
    """8 GPUs, dp 8, ep 8: every rank holds its own experts (expert data parallelism 1), so the
    gradient all-reduce carries only the non-expert parameters; with ep 2 the experts' part goes over
    the 4 ranks that share them. Transfer time is linear in bytes, so the DP tasks' transfers add up."""
    kw = dict(global_batch=16, dp_overlap=False)
    cluster = _cluster(8)
    coll = CollectiveModel(cluster, DEFAULT)

    def dp_transfer(ep: int) -> tuple[float, Strategy]:
        r = planner.simulate(TINY, accelerator="h100-sxm-80gb", gpus=8, ep=ep, **kw)
        s = check_layout(make_strategy(ep=ep, **kw), TINY, cluster)
        return sum(a["transfer"] for k, a in r._graph.nodes(data=True) if k[0] == "DP"), s

    for ep in (8, 2):
        got, s = dp_transfer(ep)
        dense, experts = rank_params_split(TINY, s)[0]
        gb = 4  # fp32 gradient reduction under bf16
        want = coll.cost("all_reduce", dense * gb, Group(8, 1)).transfer_s
        if ep < 8:
            want += coll.cost("all_reduce", experts * gb, Group(8 // ep, ep)).transfer_s
        assert got == pytest.approx(want, rel=1e-9)
