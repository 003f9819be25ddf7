"""Pipeline schedules: the order in which one pipeline rank runs its forward and backward passes.

Each function returns, for pipeline rank ``stage`` of ``p``, the list of ``(phase, chunk, micro_batch)``
with phase ``"F"``, ``"B"`` (backward; its input-gradient part when a ``"W"`` follows) or ``"W"``
(the weight-gradient part, in zero-bubble schedules); ``chunk`` is the virtual stage index on that rank (0 unless
interleaved). The orders follow Megatron-LM's ``schedules.py``.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable

Op = tuple[str, int, int]


def gpipe(p: int, m: int, stage: int) -> list[Op]:
    """All forwards, then all backwards (Huang et al. 2019)."""
    return [("F", 0, i) for i in range(m)] + [("B", 0, i) for i in range(m)]


def one_f_one_b(p: int, m: int, stage: int) -> list[Op]:
    """1F1B (PipeDream-Flush): warm-up forwards, steady one-forward-one-backward, cool-down."""
    warm = min(p - stage - 1, m)
    ops: list[Op] = [("F", 0, i) for i in range(warm)]
    for i in range(m - warm):
        ops.append(("F", 0, warm + i))
        ops.append(("B", 0, i))
    ops += [("B", 0, i) for i in range(m - warm, m)]
    return ops


def interleaved(p: int, m: int, stage: int, v: int) -> list[Op]:
    """Interleaved 1F1B with ``v`` model chunks per rank (Narayanan et al. SC'21, sec. 2.2.2)."""
    total = m * v
    group = p * v

    def fwd(k: int) -> Op:
        return ("F", (k % group) // p, (k // group) * p + k % p)

    def bwd(k: int) -> Op:
        return ("B", v - 1 - (k % group) // p, (k // group) * p + k % p)

    warm = min((p - stage - 1) * 2 + (v - 1) * p, total)
    ops: list[Op] = [fwd(k) for k in range(warm)]
    for i in range(total - warm):
        ops.append(fwd(warm + i))
        ops.append(bwd(i))
    ops += [bwd(k) for k in range(total - warm, total)]
    return ops


def zero_bubble_h1(p: int, m: int, stage: int) -> list[Op]:
    """Zero-bubble pipeline (Qi et al. 2023, "Zero Bubble Pipeline Parallelism", arXiv:2401.10241).

    Backward is split into ``B`` (input gradient, on the critical path) and ``W`` (weight gradient,
    which nothing downstream waits for). The order is the paper's greedy heuristic played with
    equal pass times: a stage runs a ready ``B`` first, else a forward while fewer than ``p - stage``
    micro-batches are in flight (1F1B's bound), else a deferred ``W``; at most ``p`` ``W`` s are
    deferred, which bounds the extra memory. On uniform stages the step takes
    ``m (F + B + W) + (p - 1)(F + B - W)``, against ``(m + p - 1)(F + B + W)`` for 1F1B.
    """
    return list(_zero_bubble_orders(p, m)[stage])


@functools.lru_cache(maxsize=64)
def _zero_bubble_orders(p: int, m: int) -> tuple[tuple[Op, ...], ...]:
    finish: dict[tuple[str, int, int], int] = {}
    orders: list[list[Op]] = [[] for _ in range(p)]
    f_next, b_next = [0] * p, [0] * p
    deferred: list[collections.deque[int]] = [collections.deque() for _ in range(p)]
    t = 0
    while len(finish) < 3 * m * p:
        for i in range(p):
            if orders[i] and finish[(orders[i][-1][0], i, orders[i][-1][2])] > t:
                continue  # busy

            def done(key: tuple[str, int, int], now: int = t) -> bool:
                return finish.get(key, now + 1) <= now

            ready_w = bool(deferred[i]) and done(("B", i, deferred[i][0]))
            op: tuple[str, int] | None = None
            b = b_next[i]
            if ready_w and len(deferred[i]) >= p:
                op = ("W", deferred[i].popleft())
            elif b < m and done(("F", i, b)) and (i == p - 1 or done(("B", i + 1, b))):
                op = ("B", b)
                b_next[i] += 1
                deferred[i].append(b)
            elif f_next[i] < m and f_next[i] - b_next[i] < p - i and (i == 0 or done(("F", i - 1, f_next[i]))):
                op = ("F", f_next[i])
                f_next[i] += 1
            elif ready_w:
                op = ("W", deferred[i].popleft())
            if op is not None:
                finish[(op[0], i, op[1])] = t + 1
                orders[i].append((op[0], 0, op[1]))
        t += 1
    return tuple(tuple(o) for o in orders)


SCHEDULES: dict[str, Callable[[int, int, int, int], list[Op]]] = {
    "gpipe": lambda p, m, stage, v: gpipe(p, m, stage),
    "1f1b": lambda p, m, stage, v: one_f_one_b(p, m, stage),
    "interleaved": interleaved,
    "zero-bubble": lambda p, m, stage, v: zero_bubble_h1(p, m, stage),
}
"""Schedule name -> order function ``(p, m, stage, v)``; a new schedule is a new entry."""
