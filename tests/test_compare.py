"""planner compare: cost arithmetic by hand, sorting, prices with source and date, bad input."""

from __future__ import annotations

import json
import math

import pytest

from planner.cli import main
from planner.errors import PlannerInputError
from planner.hardware import catalog
from planner.search import compare
from planner.search.goodput import expected_wall_s


def test_cost_arithmetic_by_hand() -> None:
    tokens = 2e9
    r = compare(
        "gpt3-1.7b", instances=["p4d.24xlarge", "p5.48xlarge"], gpus=16, tokens=tokens, global_batch=64, workers=1
    )
    assert len(r.results) == 2
    cat = catalog()
    for row in r.results:
        assert row.fits and row.run is not None and row.step_time_s is not None
        inst = cat.instances[row.instance]
        per_gpu = inst.usd_per_hour / cat.node_types[inst.node_type].gpus_per_node
        assert row.usd_per_gpu_hour == pytest.approx(per_gpu)
        assert row.price_source == inst.price_source and row.price_date == inst.price_date
        run = row.run
        assert run.tokens_per_step == 64 * 2048
        assert run.steps == math.ceil(tokens / (64 * 2048))
        assert run.compute_s == pytest.approx(run.steps * row.step_time_s)
        g = run.goodput
        wall = expected_wall_s(run.compute_s, g.checkpoint_interval_s, g.checkpoint_write_s, g.mtbf_s, g.restart_s)
        assert run.wall_s == pytest.approx(wall)
        assert run.wall_days == pytest.approx(wall / 86400)
        assert run.usd == pytest.approx(16 * wall / 3600 * per_gpu)
        assert row.usd_per_million_tokens == pytest.approx(run.usd / tokens * 1e6)
    costs = [row.run.usd for row in r.results if row.run]
    assert costs == sorted(costs)


def test_cli_compare_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", "--model", "gpt3-1.7b", "--instances", "p5.48xlarge,p4d.24xlarge", "--gpus", "8",
            "--tokens", "1e9", "--global-batch", "32", "--workers", "1"]  # fmt: skip
    assert main(argv + ["--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [row["instance"] for row in r["results"]] and all("usd_per_million_tokens" in row for row in r["results"])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "p5.48xlarge" in out and "prices" in out and "$/M tokens" in out


def test_row_that_does_not_fit_says_why() -> None:
    r = compare("gpt3-175b", instances=["p4d.24xlarge"], gpus=8, tokens=1e9, workers=1)
    row = r.results[0]
    assert not row.fits and row.reason and "no layout fits" in row.reason


def test_chosen_gpu_count_meets_the_deadline() -> None:
    r = compare("gpt3-1.7b", instances=["p5.48xlarge"], tokens=1e11, deadline_days=2.0, max_gpus=64, workers=1)
    row = r.results[0]
    assert row.fits and row.run is not None and row.gpus is not None
    assert row.run.wall_days <= 2.0 * 1.05  # the count was chosen on the estimate


def test_unknown_instance_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PlannerInputError, match="instances"):
        compare("gpt3-1.7b", instances=["p5.48xlarg"], gpus=8)
    rc = main(["compare", "--model", "gpt3-1.7b", "--instances", "p5.48xlarg", "--gpus", "8"])
    err = capsys.readouterr().err
    assert rc == 2 and "p5.48xlarge" in err and len(err.strip().splitlines()) == 1
