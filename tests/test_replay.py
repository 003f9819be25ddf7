"""The compiled replay (planner.replay) gives the engine's makespan to the last bit, and the
calibration path (re-cost a compiled row under another calibration, replay it) gives what a fresh
simulation under that calibration gives."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from planner.calibration import DEFAULT
from planner.engine import DeadlockError, play
from planner.hardware import resolve_cluster
from planner.replay import compile_graph, makespan, makespan_of
from planner.transformer.family import FAMILY
from planner.transformer.spec import load_model

LAYOUTS = [
    dict(pp=4, schedule="1f1b", global_batch=64),
    dict(tp=2, pp=2, schedule="dualpipe", global_batch=64, sequence_parallel=True),
    dict(pp=4, schedule="zero-bubble", global_batch=64, zero_stage=1),
    dict(zero_stage=3, global_batch=32, recompute="full"),
    dict(pp=2, zero_stage=3, global_batch=32),  # FSDP with pipeline stages: one gather a step
    dict(tp=2, pp=2, global_batch=64, dp_overlap=False),  # the last send and the gradients meet on a NIC
    dict(pp=2, vpp=2, schedule="interleaved", global_batch=32),
    dict(pp=2, schedule="gpipe", global_batch=16, bucket_mb=5),  # many buckets under the backward
]


def _graph(layout: dict, calib=DEFAULT):  # noqa: ANN001, ANN202
    model = load_model("gpt3-1.7b")
    cluster = resolve_cluster(gpus=16, accelerator="a100-sxm-80gb")  # two nodes: links shared across a NIC
    s = FAMILY.check(model, FAMILY.make_strategy(**layout), cluster)
    plan = FAMILY.plan(model, s, cluster, calib)
    return plan, FAMILY.build_graph(plan)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_replay_is_the_engine(layout: dict) -> None:
    _, sg = _graph(layout)
    assert makespan(compile_graph(sg.graph), sg.graph) == play(sg.graph).makespan_s


@pytest.mark.parametrize("layout", LAYOUTS)
def test_recost_replays_a_fresh_simulation(layout: dict) -> None:
    """Re-timing the default calibration's graph for slower GEMMs and NICs is the graph built for them."""
    other = DEFAULT.model_copy(update={"gemm_mamf_fraction": 0.7, "nic_efficiency": 0.5, "layer_host_s": 2e-3})
    plan, sg = _graph(layout)
    compiled = compile_graph(sg.graph)
    _, retimed = FAMILY.recost(plan, sg, other)
    _, fresh = _graph(layout, other)
    want = play(fresh.graph).makespan_s
    assert makespan(compiled, retimed.graph) == want
    assert want != play(_graph(layout)[1].graph).makespan_s  # the constants did move the step


@pytest.mark.parametrize("layout", LAYOUTS)
def test_retimer_times_are_a_fresh_build(layout: dict) -> None:
    """The arrays calibration re-times a row with (planner.transformer.retime) are, task by task,
    the times of the graph built afresh under other constants, and replay to its simulation."""
    other = DEFAULT.model_copy(update={"ring_efficiency": 0.6, "hbm_efficiency": 0.7, "collective_launch_s": 3e-5})
    plan, _ = _graph(layout)
    graph, retimer = FAMILY.build_retimed(plan)
    assert retimer is not None  # (a dense model's DualPipe pairs have no all-to-all to hide: passes kept)
    _, fresh = _graph(layout, other)
    got = retimer.times(other)
    attrs = [fresh.graph.nodes[n] for n in graph.graph.nodes]
    assert got[0].tolist() == [0.0 if "link" in a else a.get("duration", 0.0) for a in attrs]
    assert got[1].tolist() == [a.get("latency", 0.0) for a in attrs]
    assert got[2].tolist() == [a.get("transfer", 0.0) for a in attrs]
    assert makespan_of(compile_graph(graph.graph), *got) == play(fresh.graph).makespan_s


def test_retimer_declines_passes_the_builder_rewrites() -> None:
    """A mixture-of-experts DualPipe pair hides its all-to-all under the other chunk: the builder
    makes new passes from the plan's, so no figure of the plan gives those tasks' times; the row is
    re-costed by building instead (the recost test above covers that path)."""
    model = load_model("mixtral-8x7b")
    cluster = resolve_cluster(gpus=32, accelerator="h100-sxm-80gb")
    s = FAMILY.check(model, FAMILY.make_strategy(tp=2, ep=8, pp=2, schedule="dualpipe", global_batch=32), cluster)
    graph, retimer = FAMILY.build_retimed(FAMILY.plan(model, s, cluster, DEFAULT))
    assert retimer is None
    assert list(graph.graph.nodes) == list(FAMILY.build_graph(FAMILY.plan(model, s, cluster, DEFAULT)).graph.nodes)


def test_shared_link_and_deadlock() -> None:
    """Two 1 s transfers on one link take 2 s together (processor sharing); a cycle is refused."""
    g = nx.DiGraph()
    for k in ("a", "b"):
        g.add_node(k, stream=k, link="L", latency=0.0, transfer=1.0, order=0)
    g.add_node("c", stream="c", duration=0.5, order=0)
    g.add_edge("a", "c")
    assert makespan(compile_graph(g), g) == play(g).makespan_s == 2.5
    g.add_edge("c", "b")
    g.add_edge("b", "a")
    with pytest.raises(DeadlockError):
        makespan(compile_graph(g), g)


def _random_graph(rng: random.Random, times: list[float]) -> nx.DiGraph:
    """Up to 40 tasks on up to 5 streams, half of them transfers on up to 3 links, random edges
    (a few against the stream order, so some graphs deadlock)."""
    g = nx.DiGraph()
    n, streams, links = rng.randint(2, 40), rng.randint(1, 5), rng.randint(1, 3)
    issued: dict[str, int] = {}
    for i in range(n):
        s = f"s{rng.randrange(streams)}"
        issued[s] = issued.get(s, 0) + 1
        if rng.random() < 0.5:
            link = f"L{rng.randrange(links)}"
            g.add_node(i, stream=s, order=issued[s], link=link, latency=rng.choice(times), transfer=rng.choice(times))
        else:
            g.add_node(i, stream=s, order=issued[s], duration=rng.choice(times))
    for _ in range(rng.randint(0, 2 * n)):
        a, b = rng.sample(range(n), 2)
        g.add_edge(*((a, b) if rng.random() < 0.03 else sorted((a, b))))
    return g


@pytest.mark.parametrize("ties", [True, False])
def test_replay_is_the_engine_on_random_graphs(ties: bool) -> None:
    """Transfers meeting on shared links at every point of the step (the replay's event part),
    with times from a few round values (transfers arriving as others leave: its event-order
    fallback) or drawn at random, and cycles: the engine's makespan or its DeadlockError."""
    rng = random.Random(7 if ties else 8)
    for _ in range(400):
        times = [0.0, 0.5, 1.0, 1.5, 2.0] if ties else [0.0] + [rng.random() for _ in range(20)]
        g = _random_graph(rng, times)
        try:
            want: float | str = play(g).makespan_s
        except DeadlockError:
            want = "deadlock"
        try:
            got: float | str = makespan(compile_graph(g), g)
        except DeadlockError:
            got = "deadlock"
        assert got == want
