"""Energy: the power model by hand on tiny timelines, its monotonic properties, PUE/CO2/$ arithmetic,
no estimate without a power figure, and bad site figures answered with exit status 2."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

import planner
from planner.cli import main
from planner.energy import (
    DEFAULT_GRID_GCO2_PER_KWH,
    DEFAULT_PUE,
    DEFAULT_USD_PER_KWH,
    HOST_LOAD_FRACTION,
    HOST_RATED_PER_ACCELERATOR_W,
    IDLE_FRACTION_OF_MAX,
    PowerModel,
    Site,
    estimate_energy,
    make_site,
)
from planner.errors import PlannerInputError
from planner.hardware import resolve_cluster

H100_8 = resolve_cluster(gpus=8, accelerator="h100-sxm-80gb")  # one DGX H100: 10.2 kW rated


def fake(step_s: float, busy_s: float = 0.0, comm_s: float = 0.0, tokens_per_step: float = 1e6) -> SimpleNamespace:
    """A result with only what the energy model reads."""
    bd = SimpleNamespace(compute_s=busy_s, optimizer_s=0.0, exposed_comm_s=comm_s)
    return SimpleNamespace(step_time_s=step_s, breakdown=bd, tokens_per_s=tokens_per_step / step_s)


HOST_W = HOST_LOAD_FRACTION * (10_200 - 8 * 700)  # busy DGX H100 without its GPUs


def test_idle_timeline_draws_idle_power_plus_host() -> None:
    e = estimate_energy(fake(10.0), H100_8, Site(pue=1.0))
    assert e is not None
    assert e.accelerator_idle_power_w == pytest.approx(IDLE_FRACTION_OF_MAX * 700)
    assert e.avg_accelerator_power_w == pytest.approx(105.0)
    assert e.host_power_w_per_node == pytest.approx(HOST_W)
    it_w = 8 * 105.0 + HOST_W
    assert e.it_power_kw == pytest.approx(it_w / 1e3)
    assert e.kwh_per_step == pytest.approx(it_w * 10.0 / 3.6e6)
    assert e.activity["idle"] == pytest.approx(1.0)


def test_fully_busy_timeline_draws_max_power() -> None:
    e = estimate_energy(fake(10.0, busy_s=10.0), H100_8)
    assert e is not None
    assert e.avg_accelerator_power_w == pytest.approx(700.0)
    assert e.activity["busy"] == pytest.approx(1.0)


def test_communication_is_between_idle_and_max() -> None:
    e = estimate_energy(fake(10.0, comm_s=10.0), H100_8)
    assert e is not None
    assert e.avg_accelerator_power_w == pytest.approx(105 + (700 - 105) * PowerModel().comm_activity)


def test_pue_multiplies_and_co2_and_dollars_follow() -> None:
    r = fake(3600.0, busy_s=1800.0)  # one hour, half busy
    e1 = estimate_energy(r, H100_8, Site(pue=1.0, grid_gco2_per_kwh=500, usd_per_kwh=0.1))
    e2 = estimate_energy(r, H100_8, Site(pue=1.5, grid_gco2_per_kwh=500, usd_per_kwh=0.1))
    assert e1 is not None and e2 is not None
    p_acc = 105 + (700 - 105) * 0.5
    assert e1.avg_accelerator_power_w == pytest.approx(p_acc)
    assert e1.kwh_per_step == pytest.approx((8 * p_acc + HOST_W) / 1e3)  # one hour at IT power
    assert e2.kwh_per_step == pytest.approx(1.5 * e1.kwh_per_step)
    assert e2.it_kwh_per_step == pytest.approx(e1.it_kwh_per_step)
    assert e2.facility_power_kw == pytest.approx(1.5 * e2.it_power_kw)
    assert e2.co2_kg_per_step == pytest.approx(e2.kwh_per_step * 0.5)
    assert e2.energy_usd_per_step == pytest.approx(e2.kwh_per_step * 0.1)


def test_per_million_tokens_and_per_run() -> None:
    e = estimate_energy(fake(2.0, busy_s=1.0, tokens_per_step=4e6), H100_8, tokens=4e9)
    assert e is not None
    assert e.kwh_per_million_tokens == pytest.approx(e.kwh_per_step / 4)
    assert e.kwh_per_run == pytest.approx(e.kwh_per_step * 1000)
    assert e.co2_kg_per_run == pytest.approx(e.kwh_per_run * DEFAULT_GRID_GCO2_PER_KWH / 1000)
    assert e.energy_usd_per_run == pytest.approx(e.kwh_per_run * DEFAULT_USD_PER_KWH)
    assert estimate_energy(fake(2.0), H100_8).kwh_per_run is None  # type: ignore[union-attr]


def test_monotonic_in_busy_time_gpus_and_site() -> None:
    kwh = [estimate_energy(fake(10.0, busy_s=b), H100_8).kwh_per_step for b in (0, 2, 5, 8, 10)]  # type: ignore[union-attr]
    assert kwh == sorted(kwh) and kwh[0] < kwh[-1]
    h100_16 = resolve_cluster(gpus=16, accelerator="h100-sxm-80gb")
    r = fake(10.0, busy_s=5.0)
    assert estimate_energy(r, h100_16).kwh_per_step == pytest.approx(2 * estimate_energy(r, H100_8).kwh_per_step)  # type: ignore[union-attr]
    a100 = resolve_cluster(gpus=8, accelerator="a100-sxm-80gb")
    assert estimate_energy(r, a100).avg_accelerator_power_w < estimate_energy(r, H100_8).avg_accelerator_power_w  # type: ignore[union-attr]


def test_catalog_figures_take_precedence_and_rules_fill_in() -> None:
    gb200 = resolve_cluster(gpus=72, accelerator="gb200-186gb")
    e = estimate_energy(fake(1.0), gb200)
    assert e is not None and e.accelerator_idle_power_w == 200  # NVIDIA DPS minimum load
    assert "idle_power_w" in e.sources["accelerator_idle_power_w"]
    p4d = resolve_cluster(gpus=8, instance="p4d.24xlarge")  # no system_power_w: the DGX H100 ratio
    e = estimate_energy(fake(1.0), p4d)
    assert e is not None
    assert e.host_power_w_per_node == pytest.approx(HOST_LOAD_FRACTION * HOST_RATED_PER_ACCELERATOR_W * 8 * 400)
    assert e.sources["host_power_w_per_node"].startswith(f"{HOST_LOAD_FRACTION:.2f} x rated (rule")


def test_no_power_figure_gives_no_estimate() -> None:
    tpu = resolve_cluster(gpus=8, accelerator="tpu-v5p")
    assert tpu.accelerator.power_w is None
    assert estimate_energy(fake(1.0, busy_s=1.0), tpu) is None


def test_site_validation_names_the_field() -> None:
    assert make_site() == Site()
    assert make_site(pue=1.1).pue == 1.1
    for kw, field in (({"pue": 0.9}, "pue"), ({"grid_gco2_per_kwh": -1}, "grid_gco2_per_kwh"),
                      ({"usd_per_kwh": -0.01}, "usd_per_kwh")):  # fmt: skip
        with pytest.raises(PlannerInputError) as ei:
            make_site(**kw)
        assert ei.value.field == field
    with pytest.raises(PlannerInputError) as ei:
        planner.simulate("gpt3-1.7b", gpus=8, pue=0.5)
    assert ei.value.field == "pue"


def test_simulated_step_carries_energy() -> None:
    r = planner.simulate("gpt3-1.7b", accelerator="h100-sxm-80gb", gpus=8)
    e = r.energy
    assert e is not None
    assert e.accelerator_idle_power_w < e.avg_accelerator_power_w <= e.accelerator_max_power_w
    # by hand, from NVIDIA's DGX H100 datasheet (10.2 kW max system power, 8 x 700 W GPUs): one node draws
    # at most 10.2 kW and at least its host (10.2 - 5.6 = 4.6 kW); the meter adds PUE 1.58; kW x s / 3600 = kWh
    low_kwh, high_kwh = (w * DEFAULT_PUE * r.step_time_s / 3.6e6 for w in (10_200 - 8 * 700, 10_200))
    assert low_kwh < e.kwh_per_step < high_kwh
    assert e.kwh_per_step == pytest.approx(e.it_kwh_per_step * 1.58)
    tokens_per_step = r.scenario["strategy"]["global_batch"] * 2048  # gpt3-1.7b: 2,048-token sequences
    assert low_kwh * 1e6 / tokens_per_step < e.kwh_per_million_tokens < high_kwh * 1e6 / tokens_per_step
    assert sum(e.activity[k] for k in ("busy", "comm", "idle")) == pytest.approx(1.0)
    g = planner.simulate("gpt3-1.7b", accelerator="h100-sxm-80gb", gpus=8, pue=1.1, tokens=1e9).energy
    assert g is not None and g.kwh_per_step == pytest.approx(e.kwh_per_step * 1.1 / DEFAULT_PUE)
    assert g.kwh_per_run == pytest.approx(g.kwh_per_million_tokens * 1e3)


def test_recommendation_model_energy_per_billion_samples() -> None:
    r = planner.simulate("dlrm-criteo-1tb", accelerator="a100-sxm-80gb", gpus=8)
    e = r.energy
    assert e is not None and e.kwh_per_million_tokens is None
    # by hand, from NVIDIA's DGX A100 datasheet (6.5 kW max system power, 8 x 400 W GPUs): between the host
    # alone (3.3 kW) and the whole node, times PUE 1.58, over one step of global_batch samples
    low_kwh, high_kwh = (w * DEFAULT_PUE * r.step_time_s / 3.6e6 for w in (6_500 - 8 * 400, 6_500))
    samples_per_step = r.scenario["strategy"]["global_batch"]
    assert low_kwh * 1e9 / samples_per_step < e.kwh_per_billion_samples < high_kwh * 1e9 / samples_per_step


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as ex:
        rc = ex.code if isinstance(ex.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


SMALL = ["simulate", "--model", "gpt3-1.7b", "--accelerator", "h100-sxm-80gb", "--gpus", "8"]


@pytest.mark.parametrize(
    "flag,value,field",
    [("--pue", "0.9", "pue"), ("--grid-gco2-per-kwh", "-5", "grid_gco2_per_kwh"), ("--usd-per-kwh", "-1", "usd_per_kwh"),
     ("--pue", "abc", "--pue"), ("--tokens", "0", "--tokens")],
)  # fmt: skip
def test_bad_site_flags_exit_2(flag: str, value: str, field: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run([*SMALL, flag, value], capsys)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and field in err and "Traceback" not in err


def test_cli_json_and_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run([*SMALL, "--pue", "1.2", "--grid-gco2-per-kwh", "0", "--usd-per-kwh", "0.2", "--json"], capsys)
    assert rc == 0
    e = json.loads(out)["energy"]
    assert e["kwh_per_step"] > 0 and e["pue"] == 1.2 and e["co2_kg_per_step"] == 0
    assert e["energy_usd_per_step"] == pytest.approx(0.2 * e["kwh_per_step"])
    rc, out, _ = run([*SMALL, "--tokens", "1e10"], capsys)
    assert rc == 0 and "kWh/step" in out and "W avg per GPU" in out and "whole run" in out
    rc, out, _ = run(["simulate", "--model", "gpt3-1.7b", "--accelerator", "tpu-v5p", "--gpus", "8", "--json"], capsys)
    assert rc == 0 and json.loads(out)["energy"] is None
    rc, out, _ = run(["simulate", "--model", "gpt3-1.7b", "--accelerator", "tpu-v5p", "--gpus", "8"], capsys)
    assert rc == 0 and "no power figure (power_w) for tpu-v5p" in out
