"""Pipeline schedules: the order in which one pipeline rank runs its forward and backward passes.

Each function returns, for pipeline rank ``stage`` of ``p``, the list of ``(phase, chunk, micro_batch)``
with phase ``"F"``, ``"B"`` (backward; its input-gradient part when a ``"W"`` follows) or ``"W"``
(the weight-gradient part, in zero-bubble schedules and DualPipe); ``chunk`` is the virtual stage index on
that rank (0 unless interleaved; under DualPipe, which of the rank's two model chunks). The orders
follow Megatron-LM's ``schedules.py``, the zero-bubble paper and the DualPipe reference.
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


def dualpipe_chunk_stage(p: int, stage: int, chunk: int) -> int:
    """Model stage held by ``chunk`` of pipeline rank ``stage`` under DualPipe.

    Chunk 0 is stage ``stage`` of the copy fed at rank 0 (micro-batches ``0 .. m/2 - 1`` flow
    rank 0 -> p - 1); chunk 1 is stage ``p - 1 - stage`` of the copy fed at rank ``p - 1``
    (micro-batches ``m/2 .. m - 1`` flow rank p - 1 -> 0).
    """
    return stage if chunk == 0 else p - 1 - stage


def dualpipe(p: int, m: int, stage: int) -> list[Op]:
    """DualPipe (DeepSeek-V3 technical report, arXiv:2412.19437 sec. 3.2.1; deepseek-ai/DualPipe).

    Micro-batches enter from both ends: each rank holds two model chunks (see
    :func:`dualpipe_chunk_stage`), ``m/2`` micro-batches flow in each direction. The order is the
    published eight-step structure, with ``h = m/2``, ``q = p/2``, ``k = min(stage, p - 1 - stage)``
    and "near"/"far" the chunk whose direction enters at this rank's end of the pipeline or the other:

    1. ``2(q - k - 1)`` near forwards;  2. ``k + 1`` x (near F, far F);
    3. ``q - k - 1`` x (far B with W deferred, that W, far F);
    4. ``h - p + k + 1`` x (near F & far B, far F & near B), the overlapped pairs of the steady state;
    5. ``q - k - 1`` x (far B, far F & near B);  6. ``k + 1`` x (far B, near B), the later ones with W
       deferred;  7. ``q - k - 1`` x (a deferred W, near B with W deferred);
    8. the ``k + 1`` remaining deferred W s, oldest first.

    ``B`` is a full backward unless a ``W`` of the same (chunk, micro-batch) follows (zero-bubble
    split). Which ``F`` s start an overlapped F & B pair: :func:`dualpipe_pairs`. Needs ``p`` even
    and ``m`` even with ``m >= 2p`` (the reference implementation's asserts). On uniform stages,
    with each pair started once both its inputs are in, a step takes
    ``m (F + B + W) + (p/2 - 1)(F&B + B - 3W)`` (``B`` the full backward): the paper's Table 2 bubble.
    """
    return list(_dualpipe(p, m, stage)[0])


def dualpipe_pairs(p: int, m: int, stage: int) -> frozenset[int]:
    """Positions ``i`` in :func:`dualpipe`'s order where ``F`` at ``i`` and ``B`` at ``i + 1`` (the
    other chunk) run as one overlapped pair: started together once both inputs have arrived, each
    one's communication hidden under the other's computation. The middle ranks run their first
    steady-state pair apart, as the reference implementation does, to shorten the bubble."""
    return _dualpipe(p, m, stage)[1]


@functools.lru_cache(maxsize=256)
def _dualpipe(p: int, m: int, stage: int) -> tuple[tuple[Op, ...], frozenset[int]]:
    if p % 2 or m % 2 or m < 2 * p:
        raise ValueError(f"DualPipe needs an even pp and an even number of micro-batches >= 2 pp, got {p=}, {m=}")
    half, q = m // 2, p // 2
    k = min(stage, p - 1 - stage)
    second_half = stage >= q
    ops: list[Op] = []
    pairs: set[int] = set()
    nxt = {"F": [0, 0], "B": [0, 0]}
    deferred: collections.deque[tuple[int, int]] = collections.deque()

    def run(ph: str, local: int, zb: bool = False) -> None:
        c = local ^ second_half  # local 0 = the direction entering at this rank's end
        mb = nxt[ph][c] + c * half
        nxt[ph][c] += 1
        ops.append((ph, c, mb))
        if zb:
            deferred.append((c, mb))

    def pair(f_local: int, overlapped: bool = True) -> None:
        if overlapped:
            pairs.add(len(ops))
        run("F", f_local)
        run("B", 1 - f_local)

    def weight() -> None:
        c, mb = deferred.popleft()
        ops.append(("W", c, mb))

    for _ in range(2 * (q - k - 1)):  # 1
        run("F", 0)
    for _ in range(k + 1):  # 2
        run("F", 0)
        run("F", 1)
    for _ in range(q - k - 1):  # 3
        run("B", 1, zb=True)
        weight()
        run("F", 1)
    for i in range(half - p + k + 1):  # 4
        pair(0, overlapped=i > 0 or k < q - 1)
        pair(1)
    for _ in range(q - k - 1):  # 5
        run("B", 1)
        pair(1)
    for i in range(k + 1):  # 6: the later backwards leave their W for steps 7 and 8
        late = i > (k + 1) // 2 or (i == (k + 1) // 2 and k % 2 == 1)
        run("B", 1, zb=late)
        run("B", 0, zb=i >= (k + 1) // 2)
    for _ in range(q - k - 1):  # 7
        weight()
        run("B", 0, zb=True)
    while deferred:  # 8
        weight()
    return tuple(ops), frozenset(pairs)


def weight_grads_done(ops: list[Op]) -> dict[int, int]:
    """Per chunk, the position in ``ops`` of the pass that completes its weight gradients: its last
    ``W``, or its last ``B`` whose weight gradient is not deferred to a ``W``."""
    split = {(c, mb) for ph, c, mb in ops if ph == "W"}
    done: dict[int, int] = {}
    for i, (ph, c, mb) in enumerate(ops):
        if ph == "W" or (ph == "B" and (c, mb) not in split):
            done[c] = i
    return done


SCHEDULES: dict[str, Callable[[int, int, int, int], list[Op]]] = {
    "gpipe": lambda p, m, stage, v: gpipe(p, m, stage),
    "1f1b": lambda p, m, stage, v: one_f_one_b(p, m, stage),
    "interleaved": interleaved,
    "zero-bubble": lambda p, m, stage, v: zero_bubble_h1(p, m, stage),
    "dualpipe": lambda p, m, stage, v: dualpipe(p, m, stage),
}
"""Schedule name -> order function ``(p, m, stage, v)``; a new schedule is a new entry."""


DUALPIPE_COMM_SMS = 20
"""SMs DeepSeek-V3 gives its all-to-all kernels while an F & B pair overlaps (arXiv:2412.19437
sec. 3.2.2: "only 20 SMs are sufficient to fully utilize the bandwidths of IB and NVLink", of
H800's 132); the pair's computation runs on the others."""

DUALPIPE_DEFAULT_SMS = 132
"""SMs assumed for an accelerator whose catalog entry has no ``compute_units`` (H100/H800/H200 SXM)."""


def dualpipe_compute_share(compute_units: int | None) -> float:
    """The fraction of an accelerator's SMs left to computation while DualPipe's all-to-all kernels
    hold :data:`DUALPIPE_COMM_SMS` of them (112 / 132 on H800)."""
    units = compute_units or DUALPIPE_DEFAULT_SMS
    return max(1, units - DUALPIPE_COMM_SMS) / units


def overlapped_pair(compute_s: float, all_to_all_s: float, compute_share: float) -> tuple[float, float]:
    """How a DualPipe F & B pair (DeepSeek-V3 sec. 3.2.1, Figure 4) runs ``compute_s`` seconds of
    computation and ``all_to_all_s`` seconds of expert-parallel dispatch / combine, both halves
    together: each micro-batch's attention and MLP run under the other's all-to-all. While the
    all-to-all kernels run they hold ``1 - compute_share`` of the SMs (20 of 132), so computation
    under them progresses at ``compute_share`` of its rate; before and after, on every SM. The
    overlap window is ``w = min(all_to_all_s, compute_s / compute_share)`` and the pair takes
    ``max(all_to_all_s, compute_s + (1 - compute_share) * all_to_all_s)`` instead of ``compute_s +
    all_to_all_s``. Returns (the fraction of the all-to-all left exposed, ``all_to_all_s - w``; the
    compute seconds lost per compute second, ``(1 - compute_share) * w / compute_s``); every other
    kind of time (tensor-parallel collectives, host overhead) stays outside the overlap."""
    if all_to_all_s <= 0 or compute_s <= 0:
        return 1.0, 0.0
    window = min(all_to_all_s, compute_s / compute_share)
    return (all_to_all_s - window) / all_to_all_s, (1.0 - compute_share) * window / compute_s
