"""The discrete-event engine on small graphs whose timelines can be worked out by hand."""

from __future__ import annotations

import networkx as nx
import pytest

from planner.engine import DeadlockError, play


def task(g: nx.DiGraph, name: str, stream: str, order: int, duration: float, kind: str = "compute") -> str:
    g.add_node(name, stream=stream, order=order, duration=duration, kind=kind)
    return name


def xfer(g: nx.DiGraph, name: str, stream: str, order: int, link: str, transfer: float, latency: float = 0.0) -> str:
    g.add_node(name, stream=stream, order=order, link=link, transfer=transfer, latency=latency, kind="dp_comm")
    return name


def test_empty_graph() -> None:
    tl = play(nx.DiGraph())
    assert tl.makespan_s == 0.0 and tl.nodes == []


def test_chain_on_one_stream_sums() -> None:
    g = nx.DiGraph()
    for i, d in enumerate((1.0, 2.0, 3.5)):
        task(g, f"t{i}", "s", i, d)
    g.add_edge("t0", "t1")
    g.add_edge("t1", "t2")
    tl = play(g)
    assert tl.makespan_s == pytest.approx(6.5)
    assert tl.span("t0") == pytest.approx((0.0, 1.0))
    assert tl.span("t1") == pytest.approx((1.0, 3.0))
    assert tl.span("t2") == pytest.approx((3.0, 6.5))


def test_stream_is_fifo_without_edges() -> None:
    """A stream runs one task at a time in ``order`` even with no edges between them."""
    g = nx.DiGraph()
    task(g, "b", "s", 1, 2.0)
    task(g, "a", "s", 0, 1.0)
    tl = play(g)
    assert tl.span("a") == pytest.approx((0.0, 1.0))
    assert tl.span("b") == pytest.approx((1.0, 3.0))
    assert tl.makespan_s == pytest.approx(3.0)


def test_two_streams_overlap() -> None:
    g = nx.DiGraph()
    task(g, "a", "s1", 0, 2.0)
    task(g, "b", "s2", 0, 3.0)
    tl = play(g)
    assert tl.span("a") == pytest.approx((0.0, 2.0))
    assert tl.span("b") == pytest.approx((0.0, 3.0))
    assert tl.makespan_s == pytest.approx(3.0)


def test_edge_across_streams_delays() -> None:
    g = nx.DiGraph()
    task(g, "a", "s1", 0, 2.0)
    task(g, "b", "s2", 0, 3.0)
    g.add_edge("a", "b")
    tl = play(g)
    assert tl.span("b") == pytest.approx((2.0, 5.0))
    assert tl.makespan_s == pytest.approx(5.0)


def test_cross_stream_wait_blocks_later_tasks_on_that_stream() -> None:
    """In-order streams: a task waiting on another stream holds back what follows it."""
    g = nx.DiGraph()
    task(g, "a", "s1", 0, 4.0)
    task(g, "b", "s2", 0, 1.0)
    task(g, "c", "s2", 1, 1.0)  # no dependency of its own, but queued after b
    g.add_edge("a", "b")
    tl = play(g)
    assert tl.span("b") == pytest.approx((4.0, 5.0))
    assert tl.span("c") == pytest.approx((5.0, 6.0))


def test_join_waits_for_all_predecessors() -> None:
    g = nx.DiGraph()
    task(g, "a", "s1", 0, 1.0)
    task(g, "b", "s2", 0, 3.0)
    task(g, "c", "s3", 0, 1.0)
    g.add_edge("a", "c")
    g.add_edge("b", "c")
    tl = play(g)
    assert tl.span("c") == pytest.approx((3.0, 4.0))


def test_zero_duration_tasks() -> None:
    g = nx.DiGraph()
    task(g, "a", "s", 0, 0.0)
    task(g, "b", "s", 1, 1.0)
    g.add_edge("a", "b")
    tl = play(g)
    assert tl.span("a") == (0.0, 0.0)
    assert tl.makespan_s == pytest.approx(1.0)


# ------------------------------------------------------------------------------------ links


def test_one_transfer_alone() -> None:
    g = nx.DiGraph()
    xfer(g, "x", "s1", 0, "L", 1.5)
    assert play(g).span("x") == pytest.approx((0.0, 1.5))


def test_two_equal_transfers_share_the_link() -> None:
    g = nx.DiGraph()
    xfer(g, "x", "s1", 0, "L", 1.0)
    xfer(g, "y", "s2", 0, "L", 1.0)
    tl = play(g)
    assert tl.span("x") == pytest.approx((0.0, 2.0))
    assert tl.span("y") == pytest.approx((0.0, 2.0))


def test_short_and_long_transfer_share_then_long_runs_alone() -> None:
    g = nx.DiGraph()
    xfer(g, "x", "s1", 0, "L", 1.0)
    xfer(g, "y", "s2", 0, "L", 3.0)
    tl = play(g)
    assert tl.span("x")[1] == pytest.approx(2.0)
    assert tl.span("y")[1] == pytest.approx(4.0)


def test_transfer_arriving_mid_flight() -> None:
    """x (2 s of link) runs alone for 1 s, then shares with y (1 s): both have 1 s left at half
    rate and finish together at 3 s."""
    g = nx.DiGraph()
    task(g, "wait", "s2", 0, 1.0)
    xfer(g, "x", "s1", 0, "L", 2.0)
    xfer(g, "y", "s2", 1, "L", 1.0)
    g.add_edge("wait", "y")
    tl = play(g)
    assert tl.span("x") == pytest.approx((0.0, 3.0))
    assert tl.span("y") == pytest.approx((1.0, 3.0))


def test_three_flows_processor_sharing() -> None:
    """Flows of 1, 2, 3 s: all three share until 3 s (the first is done), two share until
    5 s, the last runs alone until 6 s (the total work)."""
    g = nx.DiGraph()
    for i, w in enumerate((1.0, 2.0, 3.0)):
        xfer(g, f"x{i}", f"s{i}", 0, "L", w)
    tl = play(g)
    assert [tl.span(f"x{i}")[1] for i in range(3)] == pytest.approx([3.0, 5.0, 6.0])


def test_different_links_do_not_share() -> None:
    g = nx.DiGraph()
    xfer(g, "x", "s1", 0, "L1", 1.0)
    xfer(g, "y", "s2", 0, "L2", 1.0)
    tl = play(g)
    assert tl.span("x")[1] == pytest.approx(1.0)
    assert tl.span("y")[1] == pytest.approx(1.0)


def test_latency_before_link_time() -> None:
    g = nx.DiGraph()
    xfer(g, "x", "s1", 0, "L", 1.0, latency=0.5)
    assert play(g).span("x") == pytest.approx((0.0, 1.5))


def test_latency_does_not_occupy_the_link() -> None:
    """During y's latency x has the link alone: x ends at 1.0 (it had 1.0 of work alone until
    y's flow starts at 1.0), then y runs alone: 1.0 + 1.0 = 2.0."""
    g = nx.DiGraph()
    xfer(g, "x", "s1", 0, "L", 1.0)
    xfer(g, "y", "s2", 0, "L", 1.0, latency=1.0)
    tl = play(g)
    assert tl.span("x")[1] == pytest.approx(1.0)
    assert tl.span("y")[1] == pytest.approx(2.0)


def test_zero_transfer_is_latency_only() -> None:
    g = nx.DiGraph()
    xfer(g, "x", "s1", 0, "L", 0.0, latency=0.25)
    assert play(g).span("x") == pytest.approx((0.0, 0.25))


def test_transfer_then_compute() -> None:
    g = nx.DiGraph()
    task(g, "f", "c", 0, 1.0)
    xfer(g, "send", "p2p", 0, "L", 0.5, latency=0.1)
    task(g, "g", "c2", 0, 1.0)
    g.add_edge("f", "send")
    g.add_edge("send", "g")
    tl = play(g)
    assert tl.span("send") == pytest.approx((1.0, 1.6))
    assert tl.span("g") == pytest.approx((1.6, 2.6))


# ------------------------------------------------------------------------------- deadlocks


def test_cycle_raises_deadlock() -> None:
    g = nx.DiGraph()
    task(g, "a", "s1", 0, 1.0)
    task(g, "b", "s2", 0, 1.0)
    g.add_edge("a", "b")
    g.add_edge("b", "a")
    with pytest.raises(DeadlockError, match="never ran"):
        play(g)


def test_order_contradicting_edges_raises_deadlock() -> None:
    """b is first on its stream but depends on a, which is queued behind it."""
    g = nx.DiGraph()
    task(g, "b", "s", 0, 1.0)
    task(g, "a", "s", 1, 1.0)
    g.add_edge("a", "b")
    with pytest.raises(DeadlockError):
        play(g)


def test_deadlock_is_a_runtime_error_not_user_error() -> None:
    from planner.errors import PlannerInputError

    assert issubclass(DeadlockError, RuntimeError)
    assert not issubclass(DeadlockError, PlannerInputError)


def test_timeline_index_covers_all_nodes() -> None:
    g = nx.DiGraph()
    for i in range(5):
        task(g, i, f"s{i % 2}", i, 1.0)
    tl = play(g)
    assert set(tl.index) == set(range(5))
    assert len(tl.start_s) == len(tl.end_s) == 5
    assert tl.makespan_s == pytest.approx(3.0)  # stream s0 runs 0, 2, 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_processor_sharing_closed_form(seed: int) -> None:
    """n flows starting together with works w1 <= ... <= wn finish at
    t_k = w1 + ... + w_{k-1} + (n - k + 1) * w_k (egalitarian processor sharing)."""
    import random

    rnd = random.Random(seed)
    works = sorted(rnd.uniform(0.01, 2.0) for _ in range(40))
    g = nx.DiGraph()
    for i, w in enumerate(works):
        xfer(g, i, f"s{i}", 0, "L", w)
    tl = play(g)
    n = len(works)
    expected = [sum(works[:k]) + (n - k) * works[k] for k in range(n)]
    assert [tl.span(i)[1] for i in range(n)] == pytest.approx(expected, rel=1e-9)
    assert tl.makespan_s == pytest.approx(sum(works), rel=1e-9)
