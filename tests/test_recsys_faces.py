"""Recommendation models through the faces: the Python API, the CLI and validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import planner
from planner.cli import main
from planner.errors import PlannerInputError
from planner.validate import validate_file

RECSYS_CSV = Path(__file__).resolve().parents[2] / "shared" / "validation" / "recsys.csv"
MLPERF = ["simulate", "--model", "dlrm-dcnv2-mlperf", "--accelerator", "h100-sxm-80gb", "--gpus", "64",
          "--global-batch", "135168"]  # fmt: skip


def test_api_simulates_a_recsys_preset():
    r = planner.simulate("dlrm-dcnv2-mlperf", accelerator="h100-sxm-80gb", gpus=64, global_batch=135168)
    assert r.kind == "recsys"
    assert r.samples_per_s == pytest.approx(135168 / r.step_time_s)
    b = r.breakdown
    parts = b.embedding_s + b.all_to_all_exposed_s + b.dense_compute_s + b.all_reduce_exposed_s
    parts += b.optimizer_s + b.host_s + b.idle_s
    assert parts == pytest.approx(r.step_time_s, rel=1e-6)
    assert 0 < r.mfu < 1
    assert r.memory.fits and len(r.memory.per_rank) == 64
    assert sum(len(p["tables"]) for p in r.memory.per_rank) >= 26


def test_recsys_yaml_dispatches_by_kind(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("kind: recsys\nembedding_dim: 64\ncardinalities: [1000, 2000]\nbottom_mlp: [64]\ntop_mlp: [32, 1]\n")
    r = planner.simulate(str(f), accelerator="a100-sxm-80gb", gpus=2, global_batch=4096)
    assert r.scenario["model"]["name"] == "mine"
    with pytest.raises(PlannerInputError, match="tp"):
        planner.simulate(str(f), accelerator="a100-sxm-80gb", gpus=2, tp=2)


def test_cli_json_keys_and_forced_sharding(capsys):
    assert main([*MLPERF, "--json", "--sharding", "row"]) == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("samples_per_s", "step_time_s", "breakdown", "memory", "cost", "scenario", "mfu"):
        assert key in r, key
    assert "usd_per_billion_samples" in r["cost"]
    for key in ("embedding_s", "all_to_all_exposed_s", "dense_compute_s", "all_reduce_exposed_s", "compute_s",
                "exposed_comm_s", "bubble_s"):  # fmt: skip
        assert key in r["breakdown"], key
    # row-wise everywhere a table has a row per rank; tables of fewer than 64 rows stay whole
    assert set(r["sharding"]["counts"]) <= {"row_wise", "table_wise"} and r["sharding"]["counts"]["row_wise"] >= 20
    assert main(MLPERF) == 0
    out = capsys.readouterr().out
    assert "samples/s" in out and "all-to-all" in out and "tables on rank" in out


def test_cli_priced_instance_and_bad_flag(capsys):
    assert main(["simulate", "--model", "dlrm-criteo-1tb", "--instance", "p4d.24xlarge", "--gpus", "8", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["cost"]["usd_per_billion_samples"] > 0
    assert (
        main(["simulate", "--model", "dlrm-criteo-1tb", "--accelerator", "a100-sxm-80gb", "--gpus", "8", "--pp", "2"])
        == 2
    )
    assert "pp" in capsys.readouterr().err


@pytest.mark.skipif(not RECSYS_CSV.exists(), reason="shared validation data not present")
def test_validate_recsys_csv():
    rep = validate_file(RECSYS_CSV)
    assert rep.failed == 0 and len(rep.rows) == 21
    assert rep.median_abs_error <= 0.15
    assert all(r.predicted_samples_per_s and r.measured_samples_per_s for r in rep.rows)
