"""Whole-run goodput: Young/Daly closed forms, the expected wall time, the run arithmetic."""

from __future__ import annotations

import math

import pytest

from planner.search.goodput import (
    DEFAULT_FAILURES_PER_GPU_HOUR,
    DEFAULT_STORAGE_GB_S_PER_GPU,
    GoodputModel,
    daly_interval_s,
    expected_wall_s,
    run_plan,
    young_interval_s,
)


def _argmin_interval(work: float, delta: float, mtbf: float, restart: float) -> float:
    """Golden-section search of the expected wall time over the checkpoint interval."""
    lo, hi = delta * 1e-3, mtbf * 5
    g = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if expected_wall_s(work, a, delta, mtbf, restart) < expected_wall_s(work, b, delta, mtbf, restart):
            hi = b
        else:
            lo = a
    return (lo + hi) / 2


def test_default_failure_rate_is_llama3() -> None:
    assert DEFAULT_FAILURES_PER_GPU_HOUR == pytest.approx(419 / (54 * 24 * 16384))
    assert DEFAULT_FAILURES_PER_GPU_HOUR == pytest.approx(1.97e-5, rel=1e-2)
    assert DEFAULT_STORAGE_GB_S_PER_GPU == pytest.approx(2000 / 16384)


def test_young_closed_form() -> None:
    assert young_interval_s(20.0, 50_000.0) == pytest.approx(math.sqrt(2 * 20 * 50_000))


@pytest.mark.parametrize(("delta", "mtbf"), [(20.0, 180_000.0), (60.0, 11_000.0), (300.0, 3_600.0)])
def test_daly_interval_minimises_expected_wall_time(delta: float, mtbf: float) -> None:
    tau = _argmin_interval(1e6, delta, mtbf, 600.0)
    assert daly_interval_s(delta, mtbf) == pytest.approx(tau, rel=0.01)
    # Young's first-order form is close while the checkpoint is short against the MTBF
    if delta / mtbf < 0.01:
        assert young_interval_s(delta, mtbf) == pytest.approx(tau, rel=0.05)


def test_expected_wall_time_first_order() -> None:
    """For delta, tau, R << M: T ~ W (1 + delta/tau + (tau + delta)/(2M) + R/M)."""
    work, delta, mtbf, restart = 1e6, 10.0, 1e7, 100.0
    tau = young_interval_s(delta, mtbf)
    first = work * (1 + delta / tau + (tau + delta) / (2 * mtbf) + restart / mtbf)
    assert expected_wall_s(work, tau, delta, mtbf, restart) == pytest.approx(first, rel=1e-3)
    # without failures in sight, only the checkpoints cost time
    assert expected_wall_s(work, 1000.0, 10.0, 1e15, 0.0) == pytest.approx(work * 1.01, rel=1e-6)


def test_goodput_model_and_run_plan_arithmetic() -> None:
    gm = GoodputModel(failures_per_gpu_hour=1e-5, storage_gb_s_per_gpu=0.5, restart_s=300.0)
    params, gpus = 70e9, 64
    plan = run_plan(tokens=1e12, tokens_per_step=4_194_304, step_time_s=60.0, gpus=gpus, params=params,
                    usd_per_gpu_hour=2.0, model=gm)  # fmt: skip
    g = plan.goodput
    assert plan.steps == math.ceil(1e12 / 4_194_304)
    assert plan.compute_s == pytest.approx(plan.steps * 60.0)
    assert g.mtbf_s == pytest.approx(3600 / (1e-5 * gpus))
    assert g.checkpoint_bytes == pytest.approx(params * 14)
    assert g.checkpoint_write_s == pytest.approx(params * 14 / (0.5e9 * gpus))
    assert g.restart_s == pytest.approx(300.0 + g.checkpoint_write_s)
    assert g.checkpoint_interval_s == pytest.approx(daly_interval_s(g.checkpoint_write_s, g.mtbf_s))
    wall = expected_wall_s(plan.compute_s, g.checkpoint_interval_s, g.checkpoint_write_s, g.mtbf_s, g.restart_s)
    assert plan.wall_s == pytest.approx(wall)
    assert g.goodput == pytest.approx(plan.compute_s / wall)
    assert 0.9 < g.goodput < 1
    assert plan.usd == pytest.approx(gpus * wall / 3600 * 2.0)
    assert plan.usd_without_failures == pytest.approx(gpus * plan.compute_s / 3600 * 2.0)
    assert plan.usd_per_million_tokens == pytest.approx(plan.usd / 1e12 * 1e6)
    assert g.expected_failures == pytest.approx(wall / g.mtbf_s)
    # more failures, less goodput
    worse = run_plan(tokens=1e12, tokens_per_step=4_194_304, step_time_s=60.0, gpus=gpus, params=params,
                     usd_per_gpu_hour=2.0, model=gm.model_copy(update={"failures_per_gpu_hour": 1e-4}))  # fmt: skip
    assert worse.goodput.goodput < g.goodput


def test_bad_goodput_input() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        GoodputModel(failures_per_gpu_hour=0)
