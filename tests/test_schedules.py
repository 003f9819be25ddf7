"""Pipeline schedules: well-formed orders, Megatron's warm-up counts, and the bubble they give
when played by the engine (by hand on uniform stages, and through the real simulator)."""

from __future__ import annotations

from collections import Counter

import networkx as nx
import pytest

import planner
from planner.engine import play
from planner.transformer.keys import Node, Phase
from planner.transformer.memory import in_flight
from planner.transformer.schedules import (
    SCHEDULES,
    dualpipe,
    dualpipe_chunk_stage,
    dualpipe_pairs,
    gpipe,
    interleaved,
    one_f_one_b,
    weight_grads_done,
)
from planner.transformer.spec import load_model
from planner.transformer.strategy import Strategy

PM = [(1, 1), (1, 4), (2, 1), (2, 4), (4, 2), (4, 4), (4, 8), (8, 8), (8, 32), (16, 96)]


def _cases(v_values=(2, 3, 4)):
    out = []
    # zero-bubble splits backward into B and W passes: tests/test_model_features.py covers it;
    # DualPipe (two chunks, W passes, its own layout rules) has its own tests below
    for name in (n for n in SCHEDULES if n not in ("zero-bubble", "dualpipe")):
        for p, m in PM:
            if name == "interleaved":
                if p == 1:
                    continue
                for v in v_values:
                    if m % p == 0:
                        out.append((name, p, m, v))
            else:
                out.append((name, p, m, 1))
    return out


@pytest.mark.parametrize(("name", "p", "m", "v"), _cases())
def test_each_op_exactly_once(name: str, p: int, m: int, v: int) -> None:
    for stage in range(p):
        ops = SCHEDULES[name](p, m, stage, v)
        counts = Counter(ops)
        assert all(c == 1 for c in counts.values()), [op for op, c in counts.items() if c > 1]
        expected = {(ph, c, mb) for ph in "FB" for c in range(v) for mb in range(m)}
        assert set(ops) == expected
        assert len(ops) == 2 * m * v


@pytest.mark.parametrize(("name", "p", "m", "v"), _cases())
def test_backward_after_its_forward(name: str, p: int, m: int, v: int) -> None:
    for stage in range(p):
        ops = SCHEDULES[name](p, m, stage, v)
        pos = {op: i for i, op in enumerate(ops)}
        for c in range(v):
            for mb in range(m):
                assert pos[("F", c, mb)] < pos[("B", c, mb)]


@pytest.mark.parametrize(("name", "p", "m", "v"), _cases())
def test_micro_batches_in_order_per_chunk(name: str, p: int, m: int, v: int) -> None:
    for stage in range(p):
        ops = SCHEDULES[name](p, m, stage, v)
        for ph in "FB":
            for c in range(v):
                mbs = [mb for x, cc, mb in ops if x == ph and cc == c]
                assert mbs == sorted(mbs)


def _leading_forwards(ops) -> int:
    n = 0
    for ph, _, _ in ops:
        if ph != "F":
            break
        n += 1
    return n


@pytest.mark.parametrize(("p", "m"), PM)
def test_1f1b_warmup(p: int, m: int) -> None:
    """Megatron: num_warmup_microbatches = min(p - stage - 1, m); the steady phase then starts
    with one more forward before the first backward."""
    for stage in range(p):
        ops = one_f_one_b(p, m, stage)
        warm = min(p - stage - 1, m)
        assert ops[:warm] == [("F", 0, i) for i in range(warm)]
        assert _leading_forwards(ops) == min(warm + 1, m)
        # steady state alternates F, B
        steady = ops[warm : warm + 2 * (m - warm)]
        assert [ph for ph, _, _ in steady] == ["F", "B"] * (m - warm)


@pytest.mark.parametrize(("p", "m"), [(4, 8), (8, 16), (2, 4)])
@pytest.mark.parametrize("v", [2, 4])
def test_interleaved_warmup(p: int, m: int, v: int) -> None:
    """Megatron: (p - stage - 1) * 2 + (v - 1) * p warm-up forwards, capped at m * v."""
    for stage in range(p):
        ops = interleaved(p, m, stage, v)
        warm = min((p - stage - 1) * 2 + (v - 1) * p, m * v)
        assert _leading_forwards(ops) == min(warm + 1, m * v)


def test_interleaved_chunk_order() -> None:
    """Forwards go p micro-batches through chunk 0, then the same p through chunk 1, ..."""
    ops = interleaved(2, 4, 0, 2)
    fwd = [(c, mb) for ph, c, mb in ops if ph == "F"]
    assert fwd == [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    bwd = [(c, mb) for ph, c, mb in ops if ph == "B"]
    assert bwd == [(1, 0), (1, 1), (0, 0), (0, 1), (1, 2), (1, 3), (0, 2), (0, 3)]


def test_gpipe_all_forwards_first() -> None:
    ops = gpipe(4, 3, 1)
    assert [ph for ph, _, _ in ops] == ["F"] * 3 + ["B"] * 3


def test_schedules_registry() -> None:
    assert set(SCHEDULES) == {"gpipe", "1f1b", "interleaved", "zero-bubble", "dualpipe"}
    assert SCHEDULES["1f1b"](4, 8, 1, 1) == one_f_one_b(4, 8, 1)
    assert SCHEDULES["gpipe"](4, 8, 1, 1) == gpipe(4, 8, 1)
    assert SCHEDULES["interleaved"](4, 8, 1, 2) == interleaved(4, 8, 1, 2)


# ------------------------------------------------------------------ bubble on uniform stages


def pipeline_graph(name: str, p: int, m: int, v: int = 1, tf: float = 1.0, tb: float = 2.0) -> nx.DiGraph:
    """A pipeline of p ranks x v chunks, each chunk taking tf/v forward and tb/v backward, with
    zero-cost sends (direct edges between stages)."""
    g = nx.DiGraph()
    V = p * v
    for r in range(p):
        for k, (ph, c, mb) in enumerate(SCHEDULES[name](p, m, r, v)):
            vs = c * p + r
            g.add_node(
                (ph, vs, mb),
                stream=f"rank{r}",
                order=k,
                duration=(tf if ph == "F" else tb) / v,
                kind="compute",
            )
    for vs in range(V):
        for mb in range(m):
            if vs > 0:
                g.add_edge(("F", vs - 1, mb), ("F", vs, mb))
            if vs < V - 1:
                g.add_edge(("B", vs + 1, mb), ("B", vs, mb))
            else:
                g.add_edge(("F", vs, mb), ("B", vs, mb))
    return g


def _busy(g: nx.DiGraph, tl, stream: str) -> float:
    return sum(tl.span(n)[1] - tl.span(n)[0] for n, a in g.nodes(data=True) if a["stream"] == stream)


@pytest.mark.parametrize("name", ["gpipe", "1f1b"])
@pytest.mark.parametrize(("p", "m"), [(1, 4), (2, 1), (2, 4), (4, 4), (4, 8), (8, 8), (8, 32), (4, 2)])
def test_bubble_uniform_stages(name: str, p: int, m: int) -> None:
    """Step time (m + p - 1)(tf + tb); each rank idles (p - 1)/(m + p - 1) of it."""
    tf, tb = 1.0, 2.0
    g = pipeline_graph(name, p, m, 1, tf, tb)
    tl = play(g)
    assert tl.makespan_s == pytest.approx((m + p - 1) * (tf + tb), rel=1e-12)
    for r in range(p):
        idle = 1 - _busy(g, tl, f"rank{r}") / tl.makespan_s
        assert idle == pytest.approx((p - 1) / (m + p - 1), abs=1e-12)


@pytest.mark.parametrize(("p", "m"), [(2, 4), (4, 4), (4, 8), (8, 8), (4, 16)])
@pytest.mark.parametrize("v", [2, 4])
def test_bubble_interleaved(p: int, m: int, v: int) -> None:
    """Narayanan et al. SC'21 sec. 2.2.2: the interleaved bubble is (p - 1)/v (tf + tb), so the
    step is (m + (p - 1)/v)(tf + tb)."""
    tf, tb = 1.0, 2.0
    g = pipeline_graph("interleaved", p, m, v, tf, tb)
    tl = play(g)
    assert tl.makespan_s == pytest.approx((m + (p - 1) / v) * (tf + tb), rel=1e-12)


def test_1f1b_equals_gpipe_time_but_less_in_flight() -> None:
    p, m = 4, 8
    t1 = play(pipeline_graph("1f1b", p, m)).makespan_s
    t2 = play(pipeline_graph("gpipe", p, m)).makespan_s
    assert t1 == pytest.approx(t2)


# --------------------------------------------------------------- bubble in the real simulator

P, M = 4, 8
LAYOUT = dict(accelerator="a100-sxm-80gb", gpus=8, pp=P, tp=1, dp=2, micro_batch=1, global_batch=2 * M)
IDEAL = (P - 1) / (M + P - 1)


def test_simulated_bubble_uniform_stages() -> None:
    """GPT-3 1.7B with a tiny vocabulary (so the LM head does not unbalance the last stage):
    the stages are uniform and communication is negligible on one NVSwitch node, so the bubble
    fraction is (p - 1)/(m + p - 1) within a few %. The optimizer step and the exposed gradient
    reduction also lengthen the step; taking them out, it agrees within 1 %."""
    spec = load_model("gpt3-1.7b").model_copy(update={"vocab_size": 128})
    r = planner.simulate(spec, **LAYOUT)
    b = r.breakdown
    assert r.scenario["micro_batches_per_replica"] == M
    assert b.bubble_s / r.step_time_s == pytest.approx(IDEAL, rel=0.05)
    pipeline_time = r.step_time_s - b.optimizer_s - b.exposed_comm_s
    assert b.bubble_s / pipeline_time == pytest.approx(IDEAL, rel=0.01)


def test_simulated_bubble_gpt3_1_7b() -> None:
    """The real preset: its 51200 x 2304 LM head (tied embeddings) sits on the last stage and adds
    ~30 % to that stage's compute; that stage is the busiest, the breakdown reports it, and its own
    bubble is the (p - 1) lighter stages' fill/drain time divided by a longer step, so the
    fraction is below (p - 1)/(m + p - 1) (0.224 vs 0.273): within 20 % relative."""
    r = planner.simulate("gpt3-1.7b", **LAYOUT)
    b = r.breakdown
    assert b.busiest_rank == P - 1
    frac = b.bubble_s / r.step_time_s
    assert frac == pytest.approx(IDEAL, rel=0.20)
    assert frac < IDEAL


@pytest.mark.parametrize("m", [4, 16])
def test_simulated_bubble_shrinks_with_micro_batches(m: int) -> None:
    spec = load_model("gpt3-1.7b").model_copy(update={"vocab_size": 128})
    r = planner.simulate(spec, **{**LAYOUT, "global_batch": 2 * m})
    ideal = (P - 1) / (m + P - 1)
    assert r.breakdown.bubble_s / r.step_time_s == pytest.approx(ideal, rel=0.05)


def test_simulated_interleaved_bubble_smaller() -> None:
    spec = load_model("gpt3-1.7b").model_copy(update={"vocab_size": 128})
    flat = planner.simulate(spec, **LAYOUT)
    inter = planner.simulate(spec, **LAYOUT, vpp=2)
    assert inter.scenario["strategy"]["schedule"] == "interleaved"
    assert inter.breakdown.bubble_s < flat.breakdown.bubble_s
    ideal = (P - 1) / 2 / (M + (P - 1) / 2)
    assert inter.breakdown.bubble_s / inter.step_time_s == pytest.approx(ideal, rel=0.05)


def test_simulated_gpipe_bubble() -> None:
    spec = load_model("gpt3-1.7b").model_copy(update={"vocab_size": 128})
    r = planner.simulate(spec, **LAYOUT, schedule="gpipe")
    assert r.breakdown.bubble_s / r.step_time_s == pytest.approx(IDEAL, rel=0.05)


def test_simulated_no_pipeline_no_bubble() -> None:
    r = planner.simulate("gpt3-1.7b", accelerator="a100-sxm-80gb", gpus=8, tp=1, micro_batch=1)
    assert r.breakdown.bubble_s / r.step_time_s < 0.01


# ------------------------------------------------------------------------------- DualPipe

DUAL_PM = [(2, 4), (2, 6), (4, 8), (4, 10), (6, 12), (8, 16), (8, 20), (16, 32), (16, 128)]


@pytest.mark.parametrize(("p", "m"), DUAL_PM)
def test_dualpipe_order_well_formed(p: int, m: int) -> None:
    """Each rank runs every F and B of its two chunks once (chunk 0: micro-batches 0 .. m/2 - 1,
    chunk 1: the rest), in order per chunk, F before B before W; W only for a deferred backward."""
    half = m // 2
    for stage in range(p):
        ops = dualpipe(p, m, stage)
        assert len(set(ops)) == len(ops)
        fb = {(ph, c, mb) for ph, c, mb in ops if ph != "W"}
        assert fb == {(ph, c, mb) for ph in "FB" for c in (0, 1) for mb in range(c * half, (c + 1) * half)}
        pos = {op: i for i, op in enumerate(ops)}
        for ph, c, mb in ops:
            if ph == "B":
                assert pos[("F", c, mb)] < pos[("B", c, mb)]
            if ph == "W":
                assert pos[("B", c, mb)] < pos[("W", c, mb)]
        for ph in "FBW":
            for c in (0, 1):
                mbs = [mb for x, cc, mb in ops if x == ph and cc == c]
                assert mbs == sorted(mbs)
        # the published structure: steps 1-2 are p forwards (p + 1 on the two middle ranks, whose
        # step 3 is empty), steps 3 and 6-8 defer p/2 weight gradients in all
        middle = min(stage, p - 1 - stage) == p // 2 - 1
        assert _leading_forwards(ops) == p + middle
        assert sum(ph == "W" for ph, _, _ in ops) == p // 2 + (p // 2 - min(stage, p - 1 - stage) - 1)
        # each chunk's gradients are complete at its last W, or its last B when nothing is deferred
        done = weight_grads_done(ops)
        assert set(done) == {0, 1}
        for c, i in done.items():
            assert ops[i][1] == c and ops[i][0] in "BW"
        for i in dualpipe_pairs(p, m, stage):
            (f, cf, _), (bk, cb, _) = ops[i], ops[i + 1]
            assert (f, bk) == ("F", "B") and cf != cb


def test_dualpipe_chunks_and_directions() -> None:
    """Rank r holds stage r of the copy fed at rank 0 and stage p - 1 - r of the copy fed at rank
    p - 1; each rank starts with the direction that enters at its own end."""
    p, m = 8, 20
    assert [dualpipe_chunk_stage(p, 2, c) for c in (0, 1)] == [2, 5]
    assert dualpipe(p, m, 0)[0] == ("F", 0, 0)
    assert dualpipe(p, m, p - 1)[0] == ("F", 1, m // 2)


@pytest.mark.parametrize(("p", "m"), [(3, 8), (4, 6), (4, 9), (1, 4)])
def test_dualpipe_rejects_bad_sizes(p: int, m: int) -> None:
    with pytest.raises(ValueError, match="DualPipe"):
        dualpipe(p, m, 0)


def dualpipe_graph(p: int, m: int, tf: float, tb: float, tw: float) -> nx.DiGraph:
    """DualPipe on uniform stages: F takes tf, B its input-gradient part tb (tb + tw when its W is
    not deferred), W tw; zero-cost sends; an overlapped pair's F also waits for the gradient its B
    needs (the pair starts once both inputs are in), its two passes then run one after the other."""
    g = nx.DiGraph()
    for r in range(p):
        ops = dualpipe(p, m, r)
        apart = {(c, mb) for ph, c, mb in ops if ph == "W"}
        for k, (ph, c, mb) in enumerate(ops):
            d = {"F": tf, "W": tw, "B": tb if (c, mb) in apart else tb + tw}[ph]
            g.add_node((ph, dualpipe_chunk_stage(p, r, c), mb), stream=f"rank{r}", order=k, duration=d)
        for i in dualpipe_pairs(p, m, r):
            (_, cf, mf), (_, cb, mbb) = ops[i], ops[i + 1]
            sb = dualpipe_chunk_stage(p, r, cb)
            if sb < p - 1:
                g.add_edge(("B", sb + 1, mbb), ("F", dualpipe_chunk_stage(p, r, cf), mf))
    for st in range(p):
        for mb in range(m):
            if st > 0:
                g.add_edge(("F", st - 1, mb), ("F", st, mb))
            g.add_edge(("B", st + 1, mb) if st < p - 1 else ("F", st, mb), ("B", st, mb))
            if ("W", st, mb) in g:
                g.add_edge(("B", st, mb), ("W", st, mb))
    return g


@pytest.mark.parametrize(("p", "m"), [(2, 4), (4, 8), (8, 16), (8, 20), (16, 32), (16, 96)])
def test_dualpipe_bubble_uniform_stages(p: int, m: int) -> None:
    """F = B = W = 1 (B the input gradient, so a full backward is 2): every rank does m(F + B + W);
    DualPipe's Table 2 bubble is (p/2 - 1)(F&B + B_full - 3W) with F&B = F + B_full (planner runs a
    pair's two computations one after the other), against 1F1B's (p - 1)(F + B_full) and ZB1P's
    (p - 1)(F + B_full - 2W). The played order meets the formula exactly."""
    g = dualpipe_graph(p, m, 1.0, 1.0, 1.0)
    assert nx.is_directed_acyclic_graph(g)
    tl = play(g)
    bubble = tl.makespan_s - 3 * m
    assert bubble == pytest.approx((p // 2 - 1) * ((1 + 2) + 2 - 3 * 1), abs=1e-9)
    one_f_one_b_bubble = play(pipeline_graph("1f1b", p, m, 1, 1.0, 2.0)).makespan_s - 3 * m
    assert one_f_one_b_bubble == pytest.approx((p - 1) * 3)
    if p > 2:
        assert bubble < (p - 1) * (1 + 2 - 2) < one_f_one_b_bubble  # below ZB1P's, below 1F1B's
    for r in range(p):
        assert _busy(g, tl, f"rank{r}") == pytest.approx(3 * m)


@pytest.mark.parametrize(("tf", "tb", "tw"), [(1.0, 1.5, 0.5), (1.0, 1.2, 0.8), (2.0, 1.0, 1.0)])
def test_dualpipe_bubble_unequal_passes(tf: float, tb: float, tw: float) -> None:
    """With unequal passes the formula is the paper's estimate: the played bubble is within 35 % of
    it and well below 1F1B's."""
    p, m = 8, 20
    bubble = play(dualpipe_graph(p, m, tf, tb, tw)).makespan_s - m * (tf + tb + tw)
    formula = (p // 2 - 1) * ((tf + tb + tw) + (tb + tw) - 3 * tw)
    assert bubble == pytest.approx(formula, rel=0.35)
    assert bubble < 0.5 * (p - 1) * (tf + tb + tw)


@pytest.mark.parametrize(("p", "m"), [(4, 8), (8, 20), (16, 128)])
def test_dualpipe_in_flight_is_p_plus_1(p: int, m: int) -> None:
    """Every rank holds at most p + 1 chunks' activations (a deferred W counted whole): Table 2's
    PP + 1, which planner.transformer.memory uses."""
    for stage in range(p):
        ops = dualpipe(p, m, stage)
        apart = {(c, mb) for ph, c, mb in ops if ph == "W"}
        live = peak = 0
        for ph, c, mb in ops:
            live += {"F": 1, "B": 0 if (c, mb) in apart else -1, "W": -1}[ph]
            peak = max(peak, live)
        assert peak == p + 1
        s = Strategy(pp=p, dp=1, micro_batch=1, global_batch=m, schedule="dualpipe")
        assert in_flight(s, stage) == peak


# ---------------------------------------------------------------- DualPipe in the simulator

DUAL = dict(accelerator="a100-sxm-80gb", gpus=8, pp=P, tp=1, dp=2, micro_batch=1, global_batch=2 * M)


def test_simulated_dualpipe_bubble_and_memory() -> None:
    """GPT-3 1.7B, uniform stages (tiny vocabulary), p = 4, m = 8: DualPipe's bubble is below 1F1B's;
    each rank holds two stages, so weights, gradients and optimizer states double and the step
    all-reduces each stage's gradients between its two copies."""
    spec = load_model("gpt3-1.7b").model_copy(update={"vocab_size": 128})
    one = planner.simulate(spec, **DUAL, schedule="1f1b")
    dual = planner.simulate(spec, **DUAL, schedule="dualpipe")
    assert dual.scenario["strategy"]["schedule"] == "dualpipe"
    assert dual.breakdown.bubble_s < 0.8 * one.breakdown.bubble_s
    for part in ("weights_gib", "gradients_gib", "optimizer_gib"):
        assert getattr(dual.memory, part) == pytest.approx(2 * getattr(one.memory, part), rel=0.02)
    assert dual.breakdown.optimizer_s == pytest.approx(2 * one.breakdown.optimizer_s, rel=0.05)


def test_dualpipe_rank_params_two_copies() -> None:
    """Rank r holds stages r and p - 1 - r: its parameters are those of 1F1B's ranks r and p - 1 - r
    (ranks 0 and p - 1 share one tied embedding/LM-head matrix between the copies' ends)."""
    from planner.hardware import resolve_cluster
    from planner.transformer.sharding import chunk_stages, pipeline_stages, rank_params
    from planner.transformer.strategy import check_layout

    model = load_model("gpt3-1.7b")
    cluster = resolve_cluster(accelerator="a100-sxm-80gb", gpus=8)
    one = check_layout(Strategy(pp=8, global_batch=16), model, cluster)
    dual = check_layout(Strategy(pp=8, global_batch=16, schedule="dualpipe"), model, cluster)
    assert pipeline_stages(dual) == 8 and chunk_stages(dual, 2) == [2, 5]
    a, d = rank_params(model, one), rank_params(model, dual)
    for r in range(1, 7):
        assert d[r] == pytest.approx(a[r] + a[7 - r])
    tied = model.vocab_size * model.hidden_size  # ranks 0 and 7: one tied matrix, not two
    assert d[0] == pytest.approx(a[0] + a[7] - tied)


@pytest.mark.parametrize(
    ("kw", "field", "words"),
    [
        (dict(pp=3, gpus=6, global_batch=12), "pp", "even"),
        (dict(pp=4, global_batch=12), "global_batch", "at least 2\\*pp = 8"),
        (dict(pp=4, global_batch=18), "global_batch", "even"),
        (dict(pp=4, vpp=2, global_batch=16), "vpp", "two model chunks"),
    ],
)
def test_dualpipe_layout_rules(kw: dict, field: str, words: str) -> None:
    args = {"accelerator": "a100-sxm-80gb", "gpus": 8, "tp": 1, "micro_batch": 1, **kw}
    with pytest.raises(planner.PlannerInputError, match=words) as e:
        planner.simulate("gpt3-1.7b", schedule="dualpipe", **args)
    assert e.value.field == field


def test_dualpipe_cli(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from planner.cli import main

    argv = ["simulate", "--model", "gpt3-1.7b", "--accelerator", "a100-sxm-80gb", "--gpus", "8", "--pp", "4"]
    assert main([*argv, "--schedule", "dualpipe", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["scenario"]["strategy"]["schedule"] == "dualpipe"
    with pytest.raises(SystemExit) as e:
        main([*argv, "--schedule", "dual-pipe"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def _dualpipe_step_graph(model: str, accelerator: str, gpus: int, **kw: int) -> tuple[nx.DiGraph, Strategy]:
    """The simulator's own step graph for a DualPipe layout, and its resolved strategy."""
    from planner.calibration import Calibration
    from planner.hardware import resolve_cluster
    from planner.transformer.graph import build
    from planner.transformer.plan import make_plan
    from planner.transformer.strategy import check_layout

    spec = load_model(model)
    cluster = resolve_cluster(accelerator=accelerator, gpus=gpus)
    s = check_layout(Strategy(schedule="dualpipe", **kw), spec, cluster)
    g = build(make_plan(spec, s, cluster, Calibration())).graph
    return g, s


def test_dualpipe_graph_reduces_both_copies_per_layer() -> None:
    """Each gradient bucket of rank r waits for the same layer's gradient on rank p - 1 - r (the
    stage's other copy) and is reduced over both copies' data-parallel ranks; the chunk's last pass
    (a W or a full B) is split per layer so the buckets overlap it; the pairs' forwards wait for
    their backward's incoming gradient."""
    g, s = _dualpipe_step_graph("gpt3-1.7b", accelerator="a100-sxm-80gb", gpus=8, pp=4, global_batch=16)
    p = s.pp
    tl = play(g)
    assert tl.makespan_s > 0
    dp_tasks = [n for n, a in g.nodes(data=True) if a["stream"].endswith("/dp")]
    assert dp_tasks
    for t in dp_tasks:
        r = g.nodes[t]["rank"]
        ranks = {g.nodes[x]["rank"] for x in g.predecessors(t)}
        assert ranks == {r, p - 1 - r}
    assert any(n.phase is Phase.WEIGHT_GRAD and n.part >= 0 for n in g.nodes)  # per-layer pieces of a last W
    for r in range(p):
        ops = dualpipe(p, s.micro_batches, r)
        for i in dualpipe_pairs(p, s.micro_batches, r):
            _, cf, mf = ops[i]
            _, cb, mbb = ops[i + 1]
            sb = dualpipe_chunk_stage(p, r, cb)
            if sb < p - 1:
                send = Node(Phase.SEND_BACKWARD, sb + 1, mbb)
                assert g.has_edge(send, Node(Phase.FORWARD, dualpipe_chunk_stage(p, r, cf), mf))


def test_dualpipe_hides_the_pairs_all_to_all() -> None:
    """MoE: in an F & B pair each chunk's expert-parallel all-to-all runs under the other's
    computation, so less of it is exposed than under 1F1B; a dense model has none to hide. (On one
    node, so that summing the two copies' expert gradients stays on NVLink: across nodes that sum
    can cost more than the pairs save.)"""
    kw = dict(accelerator="h100-sxm-80gb", gpus=8, pp=4, ep=2, tp=1, micro_batch=1, global_batch=32)
    one = planner.simulate("qwen3-30b-a3b", schedule="1f1b", **kw)
    dual = planner.simulate("qwen3-30b-a3b", schedule="dualpipe", **kw)
    assert 0 < dual.breakdown.ep_comm_s < 0.8 * one.breakdown.ep_comm_s
    assert dual.step_time_s < one.step_time_s
    g, _ = _dualpipe_step_graph("gpt3-1.7b", accelerator="a100-sxm-80gb", gpus=8, pp=4, global_batch=16)
    labels = {seg.label for _, a in g.nodes(data=True) for pp, _ in a.get("passes", []) for seg in pp.segments}
    assert not any("paired chunk" in x for x in labels)
