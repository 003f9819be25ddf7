"""Transformer frameworks as documented discrete choices: each framework's choices, explicit flags
win, unknown names are one-line input errors, and validate, search and sweep read the one table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import planner
from planner.calibration import DEFAULT
from planner.cli import main
from planner.engine import play
from planner.errors import PlannerInputError
from planner.hardware import resolve_cluster
from planner.search.enumerate import GridEnumerator
from planner.search.types import SearchSpace
from planner.sweep import sweep
from planner.transformer import frameworks as tf
from planner.transformer.family import FAMILY
from planner.transformer.keys import Phase
from planner.transformer.spec import load_model
from planner.transformer.strategy import Strategy, check_layout
from planner.validate import frameworks as vf


def _resolved(accelerator: str, gpus: int = 16, **fields: Any) -> Strategy:
    cluster = resolve_cluster(gpus=gpus, accelerator=accelerator)
    return check_layout(Strategy(**fields), load_model("llama3-8b"), cluster)


@pytest.mark.parametrize(
    ("name", "accelerator", "tp", "want"),
    [
        ("torchtitan", "h100-sxm-80gb", 1, {"attention": "fa2", "zero_stage": 3, "tp_comm_overlap": False}),
        ("torchtitan", "h100-sxm-80gb", 2, {"attention": "fa2", "sequence_parallel": True, "zero_stage": 3}),
        ("megatron-core", "h100-sxm-80gb", 2,
         {"attention": "cudnn", "tp_comm_overlap": True, "sequence_parallel": True, "zero_stage": 1}),
        ("nemo", "a100-sxm-80gb", 2, {"attention": "fa2", "tp_comm_overlap": True, "zero_stage": 1}),
        ("megatron", "a100-sxm-80gb", 2, {"attention": "unfused", "tp_comm_overlap": False, "zero_stage": 0,
                                          "sequence_parallel": False}),
        ("megatron", "h100-sxm-80gb", 2, {"attention": "cudnn", "tp_comm_overlap": True}),
        ("megatron-deepspeed", "h100-sxm-80gb", 2, {"attention": "unfused", "sequence_parallel": False}),
        ("deepspeed", "a100-sxm-80gb", 1, {"attention": "fa2", "bucket_mb": 500.0, "zero_stage": 0}),
        ("composer", "a100-sxm-40gb", 1, {"attention": "fa2", "zero_stage": 3}),
        ("llm-foundry", "a100-sxm-80gb", 1, {"attention": "fa2", "zero_stage": 3}),
        ("torchtitan", "v100-sxm2-32gb", 1, {"attention": "unfused"}),  # FlashAttention needs sm80
        # MaxText's v5e/v5p scripts: XLA async collective fusion overlaps the tensor-axis collectives
        ("maxtext", "tpu-v5p", 2, {"attention": "flash", "tp_comm_overlap": True, "sequence_parallel": True,
                                   "zero_stage": 3}),
        ("maxtext", "tpu-v5e", 1, {"attention": "flash", "tp_comm_overlap": False, "zero_stage": 3}),
    ],
)  # fmt: skip
def test_each_framework_fills_its_documented_choices(name: str, accelerator: str, tp: int, want: dict) -> None:
    s = _resolved(accelerator, tp=tp, framework=name)
    assert {k: getattr(s, k) for k in want} == want


def test_megatron_core_bucket_grows_with_dp() -> None:
    """Megatron-Core's DDP bucket is max(40M, 1M x dp) parameters."""
    assert _resolved("h100-sxm-80gb", gpus=8, framework="megatron-core").bucket_mb == 40.0
    assert _resolved("h100-sxm-80gb", gpus=64, framework="megatron-core").bucket_mb == 64.0


def test_every_entry_names_a_source_for_its_attention_kernel() -> None:
    for fw in tf.FRAMEWORKS.values():
        assert fw.sources.get("attention"), fw.name
        assert {fw.ampere.attention, fw.hopper.attention} <= {"flash", "fa2", "fa3", "cudnn", "sdpa-math", "unfused"}
    for alias, target in tf.FRAMEWORK_ALIASES.items():
        assert target in tf.FRAMEWORKS, alias


def test_explicit_flags_beat_the_framework() -> None:
    s = _resolved("h100-sxm-80gb", tp=2, framework="megatron-core", attention="fa3", zero_stage=0,
                  tp_comm_overlap=False, sequence_parallel=False, bucket_mb=10.0)  # fmt: skip
    assert (s.attention, s.zero_stage, s.tp_comm_overlap, s.sequence_parallel, s.bucket_mb) == (
        "fa3", 0, False, False, 10.0)  # fmt: skip
    # and through the API: the framework changes the prediction only where the user left a field unset
    kw = dict(accelerator="h100-sxm-80gb", gpus=8, global_batch=16)
    same = planner.simulate("llama3-8b", attention="unfused", zero_stage=1, framework="torchtitan", **kw)
    plain = planner.simulate("llama3-8b", attention="unfused", zero_stage=1, **kw)
    assert math.isclose(same.step_time_s, plain.step_time_s, rel_tol=1e-12)
    assert same.scenario["strategy"]["framework"] == "torchtitan"
    assert "fsdp_prefetch" in same.scenario["framework_not_modelled"]
    assert "framework_not_modelled" not in plain.scenario


def test_fsdp_framework_with_pipeline_falls_back_to_zero1() -> None:
    """ZeRO-2/3 cannot combine with pp > 1 here: an FSDP framework shards the optimizer only."""
    cluster = resolve_cluster(gpus=16, accelerator="h100-sxm-80gb")
    s = check_layout(Strategy(pp=2, framework="torchtitan"), load_model("llama3-8b"), cluster)
    assert s.zero_stage == 1


def test_unknown_framework_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--model", "llama3-8b", "--accelerator", "h100-sxm-80gb", "--gpus", "8"]
    rc = main([*argv, "--framework", "jax-magic"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "framework" in err and "torchtitan" in err and "Traceback" not in err
    with pytest.raises(PlannerInputError, match="not a transformer framework"):
        tf.framework("jax-magic")


def test_search_fixes_the_framework() -> None:
    """search: the framework is not varied; its kernel fills every enumerated layout."""
    model, cluster = load_model("llama3-8b"), resolve_cluster(gpus=16, accelerator="h100-sxm-80gb")
    en = GridEnumerator().enumerate(model, cluster, SearchSpace(framework="megatron-core"), 64)
    assert en.valid and {s.attention for s in en.valid} == {"cudnn"}
    assert all(s.tp_comm_overlap for s in en.valid if s.tp > 1)
    plain = GridEnumerator().enumerate(model, cluster, SearchSpace(), 64)
    assert {s.attention for s in plain.valid} == {"flash"}
    pinned = GridEnumerator().enumerate(model, cluster, SearchSpace(framework="megatron-core", attention="fa2"), 64)
    assert {s.attention for s in pinned.valid} == {"fa2"}


def test_sweep_spec_passes_the_framework_through(tmp_path: Path) -> None:
    base = {"model": "llama3-8b", "accelerator": "h100-sxm-80gb", "global_batch": 16, "gpus": 8}
    rows = sweep({"base": base, "axes": {"framework": ["torchtitan", "composer"]}}, out=tmp_path / "r.db", workers=1)
    recs = rows if isinstance(rows, list) else rows.to_dict("records")  # type: ignore[attr-defined]
    assert [r["status"] for r in recs] == ["ok", "ok"]
    direct = planner.simulate("llama3-8b", accelerator="h100-sxm-80gb", gpus=8, global_batch=16, framework="torchtitan")
    assert math.isclose(recs[0]["step_time_s"], direct.step_time_s, rel_tol=1e-9)


def test_validate_reads_the_one_table() -> None:
    assert vf.FRAMEWORK_ALIASES is tf.FRAMEWORK_ALIASES
    for name in [*tf.FRAMEWORKS, *tf.FRAMEWORK_ALIASES]:
        for acc in ("a100-sxm-80gb", "h100-sxm-80gb"):
            g = tf.gen_choices(tf.framework(name), acc)
            assert vf.attention_kernel(name, acc) == g.attention
            assert vf.tp_comm_overlap(name, acc) is g.tp_comm_overlap


@pytest.mark.parametrize("command", ["search", "compare"])
def test_search_and_compare_refuse_an_unknown_framework(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    hw = ["--instances", "p5.48xlarge"] if command == "compare" else ["--accelerator", "h100-sxm-80gb"]
    rc = main([command, "--model", "llama3-8b", *hw, "--gpus", "8", "--framework", "jax-magic"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "not a transformer framework" in err


def test_llama3_framework_interleaves_one_layer_per_chunk() -> None:
    """Llama 3's stack (arXiv:2407.21783 sec. 3.3.2): V = (layers + 2) / pp, the first and last chunks
    holding only the embedding and the head: 126 layers over pp 16 is V = 8 (128 chunks)."""
    assert tf.layer_chunk_vpp(126, 16) == 8 and tf.layer_chunk_vpp(126, 1) == 1
    cluster = resolve_cluster(gpus=128, accelerator="h100-sxm-80gb")
    s = check_layout(Strategy(tp=8, pp=16, framework="meta-internal"), load_model("llama3-405b"), cluster)
    assert (s.vpp, s.zero_stage, s.pipeline_schedule) == (8, 1, "interleaved")
    pinned = check_layout(Strategy(tp=8, pp=16, vpp=2, framework="meta-internal"), load_model("llama3-405b"), cluster)
    assert pinned.vpp == 2  # an explicit vpp wins
    with pytest.raises(PlannerInputError, match="fewer than the pp"):
        check_layout(Strategy(tp=8, pp=16, vpp=9), load_model("llama3-405b"), cluster)  # 144 - 2 > 126
    # validate: a row that leaves vpp blank gets the framework's; one that states it keeps it
    assert vf.transformer_choices("meta-internal", "h100-sxm-80gb", 8, {"pp": 16}, 126)["vpp"] == 8
    assert "vpp" not in vf.transformer_choices("meta-internal", "h100-sxm-80gb", 8, {"pp": 16, "vpp": 4}, 126)
    assert "vpp" not in vf.transformer_choices("torchtitan", "h100-sxm-80gb", 8, {"pp": 16}, 126)


def test_embedding_and_head_only_stages_simulate() -> None:
    """32 layers over 2 x 17 virtual stages: the first and last chunks hold no layer, and the step
    still plays; each micro-batch's work is the same, so it costs no less than the 2 x 16 layout."""
    kw = dict(accelerator="h100-sxm-80gb", gpus=2, pp=2, global_batch=8)
    edge = planner.simulate("llama3-8b", vpp=17, **kw)
    even = planner.simulate("llama3-8b", vpp=16, **kw)
    assert math.isfinite(edge.step_time_s) and edge.step_time_s > 0.9 * even.step_time_s


def test_metaseq_fills_what_the_opt_launcher_sets() -> None:
    """metaseq's opt_baselines.py: FSDP not resharded after forward, full recomputation with the
    checkpoints split over tp, no sequence parallelism, --update-freq 1 (one micro-batch of the whole
    per-replica batch: 992 sequences over dp 124 is a micro-batch of 8)."""
    cluster = resolve_cluster(gpus=992, accelerator="a100-sxm-80gb")
    s = check_layout(Strategy(tp=8, global_batch=992, precision="fp16", framework="metaseq"), load_model("gpt3-175b"),
                     cluster)  # fmt: skip
    assert (s.zero_stage, s.fsdp_reshard_after_forward, s.recompute, s.distribute_saved_activations) == (
        3, False, "full", True)  # fmt: skip
    assert (s.sequence_parallel, s.micro_batch, s.micro_batches, s.attention) == (False, 8, 1, "unfused")
    # the user's own recomputation wins, and its checkpoints stay whole
    own = check_layout(Strategy(tp=8, global_batch=992, recompute="selective", framework="metaseq"),
                       load_model("gpt3-175b"), cluster)  # fmt: skip
    assert (own.recompute, own.distribute_saved_activations) == ("selective", False)
    # validate: a row leaving the fields blank gets the launcher's; one that states them keeps them
    row = {"tp": 8, "pp": 1, "dp": 124, "global_batch": 992, "zero_stage": 3}
    got = vf.transformer_choices("metaseq", "a100-sxm-80gb", 8, row, 96)
    assert {k: got[k] for k in ("micro_batch", "recompute", "sequence_parallel", "distribute_saved_activations",
                                "fsdp_reshard_after_forward")} == {  # fmt: skip
        "micro_batch": 8, "recompute": "full", "sequence_parallel": False, "distribute_saved_activations": True,
        "fsdp_reshard_after_forward": False}  # fmt: skip
    stated = vf.transformer_choices("metaseq", "a100-sxm-80gb", 8, row | {"micro_batch": 2, "recompute": "none"}, 96)
    assert "micro_batch" not in stated and "recompute" not in stated and "distribute_saved_activations" not in stated


def test_distributed_checkpoints_need_tp_and_full_recompute() -> None:
    """Megatron-LM's arguments.py refuses --distribute-saved-activations without tp > 1 and full
    recomputation; so does planner, as a one-line input error."""
    with pytest.raises(PlannerInputError, match="distribute_saved_activations"):
        _resolved("a100-sxm-80gb", tp=1, recompute="full", distribute_saved_activations=True)
    with pytest.raises(PlannerInputError, match="distribute_saved_activations"):
        _resolved("a100-sxm-80gb", tp=2, recompute="selective", distribute_saved_activations=True)


def test_fsdp_kept_gathered_from_forward_to_backward() -> None:
    """--no-reshard-after-forward: no gather in the backward (the step is no slower: two gathers and
    one reduce-scatter a layer become one of each), the rank's
    whole 16-bit weights held at the backward's start; the estimate follows the graph; split
    checkpoints hold 1/tp of full recomputation's saved inputs and add an all-gather to recompute."""
    kw: dict[str, Any] = dict(accelerator="a100-sxm-80gb", gpus=16, tp=2, zero_stage=3, global_batch=32,
                              recompute="full", precision="fp16")  # fmt: skip
    model = load_model("gpt3-1.7b")
    regather = planner.simulate(model, **kw)
    kept = planner.simulate(model, fsdp_reshard_after_forward=False, **kw)
    split = planner.simulate(model, fsdp_reshard_after_forward=False, distribute_saved_activations=True, **kw)
    assert kept.step_time_s <= regather.step_time_s
    cluster = resolve_cluster(gpus=16, accelerator="a100-sxm-80gb")
    layout = {k: v for k, v in kw.items() if k not in ("accelerator", "gpus")}
    for reshard in (True, False):
        s = FAMILY.check(model, FAMILY.make_strategy(fsdp_reshard_after_forward=reshard, **layout), cluster)
        plan = FAMILY.plan(model, s, cluster, DEFAULT)
        graph = FAMILY.build_graph(plan).graph
        bwd_gathers = sum(1 for n in graph.nodes if n.phase == Phase.LAYER_GATHER_BACKWARD)
        assert bwd_gathers == (model.num_layers * s.micro_batches if reshard else 0)
        if not reshard:  # the search's estimate plays the same single gather
            assert FAMILY.estimate(plan).step_time_s == pytest.approx(play(graph).makespan_s, rel=0.02)
    whole = model.num_params / 2 * 2 / 2**30  # 16-bit weights of one tp rank
    assert kept.memory.weights_gib == pytest.approx(whole, rel=0.02) and regather.memory.weights_gib < whole / 4
    saved = model.num_layers * model.seq_len * 1 * model.hidden_size * 2 / 2**30  # one layer input a layer, mb 1
    assert kept.memory.activations_gib - split.memory.activations_gib == pytest.approx(saved / 2, rel=0.01)
    assert split.step_time_s > kept.step_time_s  # the gathered checkpoint before each recomputation


@pytest.mark.parametrize(
    ("name", "want"),
    [("torchtitan", "fp32"), ("meta-internal", "fp32"), ("composer", "param"), ("llm-foundry", "param"),
     ("deepspeed", "param"), ("megatron-core", None), ("nemo", None), ("megatron", None)],
)  # fmt: skip
def test_grad_reduce_dtype_is_the_frameworks_documented_one(name: str, want: str | None) -> None:
    """torchtitan's mixed_precision_reduce float32 and Llama 3's FP32 reduce-scatter; llm-foundry's
    PURE mixed precision and DeepSpeed's communication_data_type in the 16-bit dtype; Megatron's
    rule is planner's own (None). Each entry that sets it names where."""
    s = _resolved("h100-sxm-80gb", framework=name)
    assert s.grad_reduce_dtype == want
    fw = tf.framework(name)
    assert (fw.grad_reduce is None and name not in ("torchtitan", "meta-internal")) or "grad_reduce" in fw.sources
    assert _resolved("h100-sxm-80gb", framework=name, grad_reduce_dtype="fp32").grad_reduce_dtype == "fp32"


def _fsdp_plan(accelerator: str = "h100-sxm-80gb", gpus: int = 16, **fields: Any) -> Any:
    model = load_model("llama3-8b")
    cluster = resolve_cluster(gpus=gpus, accelerator=accelerator)
    s = FAMILY.check(model, FAMILY.make_strategy(zero_stage=3, global_batch=2 * gpus, **fields), cluster)
    return FAMILY.plan(model, s, cluster, DEFAULT)


def test_fp32_reduce_scatter_moves_twice_the_bytes_and_only_that() -> None:
    """FSDP2 with reduce_dtype fp32 (torchtitan): each layer's reduce-scatter carries 4 bytes a
    gradient (its bandwidth time doubles, its latency does not), the all-gather stays bf16, the
    step is no faster, and memory is what the gradients occupy, not the wire: unchanged."""
    wide, narrow = _fsdp_plan(grad_reduce_dtype="fp32"), _fsdp_plan(grad_reduce_dtype="param")
    assert (wide.grad_bytes, narrow.grad_bytes) == (4, 2)
    rs32, rs16 = wide.fsdp[False].rs.total_s, narrow.fsdp[False].rs.total_s
    assert 1.5 < rs32 / rs16 < 2.0
    assert wide.fsdp[False].ag.total_s == narrow.fsdp[False].ag.total_s
    assert wide.memory == narrow.memory
    steps = [FAMILY.estimate(p).step_time_s for p in (wide, narrow)]
    assert steps[0] >= steps[1]


def test_no_framework_keeps_planners_rule() -> None:
    """Without a framework (or a stated dtype) the reduction is priced as before: 16-bit for ZeRO-3,
    fp32 for a bf16 replica (Megatron's main_grad), 16-bit under fp16 and for FP8 with ZeRO-1."""
    assert _fsdp_plan().grad_bytes == 2
    assert _fsdp_plan(precision="fp16", grad_reduce_dtype="fp32").grad_bytes == 4
    assert _fsdp_plan(precision="fp32", grad_reduce_dtype="param").grad_bytes == 4
    model, cluster = load_model("llama3-8b"), resolve_cluster(gpus=16, accelerator="h100-sxm-80gb")
    for fields, want in [({}, 4), ({"precision": "fp16"}, 2), ({"precision": "fp8", "zero_stage": 1}, 2)]:
        s = FAMILY.check(model, FAMILY.make_strategy(global_batch=32, tp=2, **fields), cluster)
        assert FAMILY.plan(model, s, cluster, DEFAULT).grad_bytes == want


def test_validate_applies_the_reduce_dtype_of_the_named_entry_only() -> None:
    """A row naming torchtitan reduces in fp32; an alias borrows its entry's kernel, not this
    (DeepSeek-V3's HAI-LLM maps to torchtitan's kernel only), and an unknown name keeps the rule."""
    assert vf.transformer_choices("torchtitan", "h100-sxm-80gb", 1)["grad_reduce_dtype"] == "fp32"
    assert vf.transformer_choices("mosaic", "a100-sxm-40gb", 1, {"zero_stage": 3}).get("grad_reduce_dtype") is None
    assert "grad_reduce_dtype" not in vf.transformer_choices("hai-llm", "h800-sxm-80gb", 1)
    assert "grad_reduce_dtype" not in vf.transformer_choices("someone-else", "a100-sxm-80gb", 1)


def test_deepspeed_pipeline_reduces_after_the_flush_and_bf16_all_reduces() -> None:
    """Megatron-DeepSpeed with pp > 1 runs DeepSpeed's PipelineEngine: its TrainSchedule reduces the
    gradients after the last micro-batch (no overlap), and bf16 with ZeRO-1 is the BF16_Optimizer,
    which all-reduces the fp32 gradients (twice a reduce-scatter's traffic) before all-gathering."""
    cluster = resolve_cluster(gpus=64, accelerator="a100-sxm-80gb")
    model = load_model("gpt3-1.7b")
    kw: dict[str, Any] = dict(tp=2, pp=4, global_batch=64, framework="megatron-deepspeed")
    bf16 = check_layout(Strategy(zero_stage=1, precision="bf16", **kw), model, cluster)
    assert (bf16.dp_overlap, bf16.grad_all_reduce) == (False, True)
    fp16 = check_layout(Strategy(zero_stage=1, precision="fp16", **kw), model, cluster)
    assert (fp16.dp_overlap, fp16.grad_all_reduce) == (False, False)
    flat = check_layout(Strategy(zero_stage=1, tp=2, global_batch=64, framework="megatron-deepspeed"), model, cluster)
    assert (flat.dp_overlap, flat.grad_all_reduce) == (True, False)  # no pipeline engine at pp 1
    with pytest.raises(PlannerInputError, match="grad_all_reduce"):
        check_layout(Strategy(zero_stage=0, grad_all_reduce=True, **kw), model, cluster)
    rs, ar = (FAMILY.plan(model, s, cluster, DEFAULT) for s in (bf16.model_copy(update={"grad_all_reduce": False}), bf16))
    t_rs, t_ar = (p.grad_reduce(1e9, 0, p.groups.dp).transfer_s for p in (rs, ar))
    assert t_ar == pytest.approx(2 * t_rs, rel=0.05)
    # validate: a bf16 ZeRO-1 pipeline row gets the all-reduce; its stated dp_overlap wins
    row = {"tp": 4, "pp": 12, "dp": 8, "zero_stage": 1, "precision": "bf16", "dp_overlap": True}
    got = vf.transformer_choices("bloom", "a100-sxm-80gb", 4, row, 70)
    assert got["grad_all_reduce"] is True and "dp_overlap" not in got


def test_mtnlg_fills_what_its_paper_documents() -> None:
    """MT-NLG 530B (arXiv:2201.11990): every transformer block recomputed (sec. 2.1 counts only the
    layer-boundary activations), Megatron's 2021 unfused softmax, no sequence parallelism, and
    DeepSpeed's pipeline engine reducing the gradients after the flush; what a caller or a row states
    wins, and a row leaving recompute blank is predicted with full recomputation."""
    cluster = resolve_cluster(gpus=64, accelerator="a100-sxm-80gb")
    model = load_model("gpt3-1.7b")
    s = check_layout(Strategy(tp=2, pp=4, global_batch=64, framework="mtnlg"), model, cluster)
    assert (s.recompute, s.attention, s.sequence_parallel, s.dp_overlap) == ("full", "unfused", False, False)
    assert (s.zero_stage, s.distribute_saved_activations, s.micro_batch) == (0, False, 1)
    own = check_layout(Strategy(tp=2, pp=4, global_batch=64, recompute="selective", framework="mtnlg"), model, cluster)
    assert own.recompute == "selective"
    row = {"tp": 8, "pp": 35, "dp": 8, "global_batch": 1920, "zero_stage": 0, "precision": "bf16",
           "sequence_parallel": False, "dp_overlap": True}  # fmt: skip
    got = vf.transformer_choices("mtnlg", "a100-sxm-80gb", 8, row, 105)
    assert got["recompute"] == "full" and got["attention"] == "unfused" and "dp_overlap" not in got
    assert "recompute" not in vf.transformer_choices("mtnlg", "a100-sxm-80gb", 8, row | {"recompute": "none"}, 105)
    assert "grad_all_reduce" not in got  # no ZeRO-1 stated: DeepSpeed's BF16_Optimizer is not assumed
