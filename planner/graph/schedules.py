"""Pipeline schedules: the order in which one pipeline rank runs its forward and backward passes.

Each function returns, for pipeline rank ``stage`` of ``p``, the list of ``(phase, chunk, micro_batch)``
with phase ``"F"`` or ``"B"``; ``chunk`` is the virtual stage index on that rank (0 unless
interleaved). The orders follow Megatron-LM's ``schedules.py``.
"""

from __future__ import annotations

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


SCHEDULES: dict[str, Callable[[int, int, int, int], list[Op]]] = {
    "gpipe": lambda p, m, stage, v: gpipe(p, m, stage),
    "1f1b": lambda p, m, stage, v: one_f_one_b(p, m, stage),
    "interleaved": interleaved,
}
"""Schedule name -> order function ``(p, m, stage, v)``; a new schedule is a new entry."""
