"""What validate and calibrate refuse, and what they report beside the error: a measurement that is
not a positive finite number (one line naming file, line and column; exit 2), a trace kernel with a
corrupt duration, a profile constant outside its physical range or not finite, a non-UTF-8 profile,
an output over an input; memory per row (fits, peak, capacity) and the rows predicted not to fit;
progress lines on stderr that leave --json stdout clean."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from test_calibrate import made_up_rows, run_cli, write_csv

from planner.calibrate.trace import _checked, read_trace
from planner.calibration import BOUNDS, Calibration, check_constants
from planner.errors import PlannerInputError
from planner.validate import validate_rows
from planner.validate.runner import Progress


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("planner: error: ") and "internal error" not in lines[0]
    return lines[0]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1.5", "", "fast"])
@pytest.mark.parametrize("command", ["validate", "calibrate"])
def test_bad_measurement_names_file_line_and_column(
    value: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = made_up_rows(4)
    rows[2]["measured_step_time_s"] = value  # line 4 of the file (the header is line 1)
    runs = write_csv(tmp_path / "runs.csv", rows)
    before = runs.read_bytes()
    argv = [command, str(runs)] + (["--out", str(tmp_path / "p.yaml")] if command == "calibrate" else [])
    rc, out, err = run_cli(argv, capsys)
    assert rc == 2 and out == ""
    line = one_error_line(err)
    assert "runs.csv" in line and "row 4 (made-up-2) measured_step_time_s" in line, line
    assert "positive, finite" in line
    assert runs.read_bytes() == before and not (tmp_path / "p.yaml").exists()


def test_non_finite_layout_number_is_refused_not_overflowed() -> None:
    rows = made_up_rows(1)
    rows[0]["tp"] = "inf"  # int(float('inf')) would raise OverflowError, an internal error
    with pytest.raises(PlannerInputError, match=r"row 2 \(made-up-0\) tp: expected an integer, got 'inf'"):
        validate_rows(rows)


@pytest.mark.parametrize("dur", ["NaN", "Infinity", "-5.0"])
def test_trace_kernel_with_corrupt_duration_is_refused(dur: str, tmp_path: Path) -> None:
    good = '{"ph": "X", "cat": "kernel", "name": "sm80_xmma_gemm", "ts": 10.0, "dur": 5.0, "args": {"stream": 7}}'
    bad = f'{{"ph": "X", "cat": "kernel", "name": "flash_fwd_kernel", "ts": 20.0, "dur": {dur}}}'
    path = tmp_path / "t.json"
    path.write_text(f'{{"traceEvents": [{good}, {bad}]}}')  # Python's json reads NaN and Infinity
    with pytest.raises(PlannerInputError, match=r"trace: .*kernel event 1 \('flash_fwd_kernel'\).*finite"):
        read_trace(path)


PROFILES = [
    ("nic_efficiency: 1.0e-300", r"constants\.nic_efficiency: 1e-300 lies outside its physical range \[0\.3, 1\]"),
    ("collective_launch_s: 0.5", r"constants\.collective_launch_s: 0\.5 lies outside its physical range"),
    ("layer_host_s: .inf", r"constants\.layer_host_s: must be a finite number, got inf"),
    ("gemm_ramp_s: .nan", r"constants\.gemm_ramp_s: must be a finite number, got nan"),
]


@pytest.mark.parametrize(("constants", "pattern"), PROFILES, ids=[p[0].split(":")[0] for p in PROFILES])
def test_profile_outside_physical_range_refused(
    constants: str, pattern: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_text(f"name: x\nconstants: {{{constants}}}\n")
    rc, out, err = run_cli(["simulate", "--calibration", str(prof)], capsys)
    assert rc == 2
    assert re.search(pattern, one_error_line(err))


def test_non_utf8_profile_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_bytes(b"name: caf\xe9\nconstants: {}\n")  # Latin-1, not UTF-8
    rc, _, err = run_cli(["simulate", "--calibration", str(prof)], capsys)
    assert rc == 2 and "UTF-8" in one_error_line(err)


def test_trace_and_profile_share_one_range_table() -> None:
    """A value the trace would derive outside a constant's range is kept at the default, and the same
    value in a profile is refused; the range ends themselves are accepted by both."""
    for name, b in BOUNDS.items():
        for inside in (b.low or b.high / 2, b.high):
            assert _checked(name, inside, "hand")[0] == inside
            check_constants(Calibration(**{name: inside}))
        outside = b.high * 1.5
        assert _checked(name, outside, "hand")[0] is None
        with pytest.raises(PlannerInputError, match=name):
            check_constants(Calibration.model_construct(**{**Calibration().model_dump(), name: outside}))


def test_output_over_input_refused_input_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = write_csv(tmp_path / "runs.csv", made_up_rows(4))
    before = runs.read_bytes()
    for argv in (["validate", str(runs), "--markdown", str(runs)], ["calibrate", str(runs), "--out", str(runs)]):
        rc, _, err = run_cli(argv, capsys)
        assert rc == 2, err
        one_error_line(err)
        assert runs.read_bytes() == before


def test_memory_per_row_and_rows_not_fitting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = made_up_rows(2)
    # a 175B-parameter model on 8 A100 80GB with tp 8 and no ZeRO: 16 bytes of weights, gradients and
    # Adam state per parameter / 8 = 350 GB a GPU, which cannot fit in 80 GB
    rows[1].update(id="too-big", num_layers="96", hidden_size="12288", num_heads="96", num_kv_heads="96",
                   ffn_hidden_size="49152", seq_len="2048", tp="8", dp="1", micro_batch="1",
                   global_batch="2")  # fmt: skip
    runs = write_csv(tmp_path / "runs.csv", rows)
    rc, out, err = run_cli(["validate", str(runs), "--json"], capsys)
    assert rc == 0, err
    rep = json.loads(out)  # stdout holds the JSON alone
    small, big = rep["rows"]
    assert small["fits"] is True and 0 < small["peak_gib"] < small["capacity_gib"] == pytest.approx(80, rel=0.01)
    assert big["fits"] is False and big["peak_gib"] > 175e9 * 16 / 8 / 2**30 * 0.99
    assert rep["not_fitting"] == ["too-big"]
    for key in ("median_abs_error", "mean_abs_error", "max_abs_error", "fully_specified", "with_defaults"):
        assert key in rep  # the summaries keep their keys
    rc, out, _ = run_cli(["validate", str(runs), "-v"], capsys)
    assert rc == 0
    assert re.search(r"^too-big .* \d+\.\d/80!", out, re.M), out
    assert "1 row(s) predicted not to fit in memory, though they ran: too-big" in out


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_lines_only_for_long_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 1.0, 2.5, 3.0, 4.8, 5.0])
    monkeypatch.setattr("planner.validate.runner.time.monotonic", lambda: next(clock))
    term = FakeTerminal()
    assert list(Progress("validate x.csv", 5, term).track("abcde")) == list("abcde")
    # on a terminal: a line from 2 s on, then every 2 s, and the last row once anything was shown
    assert term.getvalue().splitlines() == [
        "validate x.csv: 2/5 rows predicted (2 s)",
        "validate x.csv: 4/5 rows predicted (5 s)",
        "validate x.csv: 5/5 rows predicted (5 s)",
    ]
    clock2 = iter([0.0, 1.0, 2.5, 3.0])
    monkeypatch.setattr("planner.validate.runner.time.monotonic", lambda: next(clock2))
    log = io.StringIO()  # not a terminal: nothing for a run under 10 s
    list(Progress("validate x.csv", 3, log).track("abc"))
    assert log.getvalue() == ""


def test_row_on_accelerator_not_in_catalog_is_listed_not_refused() -> None:
    """An accelerator id the catalog lacks fails that row only, with the reason; a malformed number
    in the same row still refuses the whole file."""
    rows = made_up_rows(3)
    rows[1]["accelerator"] = "made-up-gpu-96gb"
    rep = validate_rows(rows, workers=1)
    bad = [r for r in rep.rows if r.error is None]
    assert [r.id for r in bad] == ["made-up-1"] and rep.failed == 1
    assert "unknown id 'made-up-gpu-96gb'" in (bad[0].problem or "")
    assert all(r.error is not None for r in rep.rows if r.id != "made-up-1")
    rows[1]["num_gpus"] = "eight"
    with pytest.raises(PlannerInputError, match=r"row 3 \(made-up-1\) num_gpus: expected an integer"):
        validate_rows(rows, workers=1)


def test_calibrate_still_refuses_an_accelerator_not_in_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """calibrate fits one accelerator's constants, so an unknown id there is an error (exit 2, one line)."""
    rows = made_up_rows(3)
    for r in rows:
        r["accelerator"] = "made-up-gpu-96gb"
    runs = write_csv(tmp_path / "runs.csv", rows)
    rc, out, err = run_cli(["calibrate", str(runs), "--out", str(tmp_path / "p.yaml")], capsys)
    assert rc == 2 and out == "" and "unknown id 'made-up-gpu-96gb'" in one_error_line(err)


def test_optional_model_columns_reach_the_spec() -> None:
    """moe_ffn_hidden_size, shared_experts, first_dense_layers and head_dim describe the model when
    present (DeepSeek-V3's and MaxText's rows); without them the row is the plain model."""
    from planner.validate.rows import row_scenario

    row = made_up_rows(1)[0] | {"num_experts": "8", "top_k": "2", "ep": "8", "moe_ffn_hidden_size": "512",
                                "shared_experts": "1", "first_dense_layers": "2", "head_dim": "128"}  # fmt: skip
    model = row_scenario(row, 2)[0]
    assert (model.moe_ffn_hidden_size, model.shared_experts, model.first_dense_layers) == (512, 1, 2)
    assert model.head_dim == 128 and model.moe_layers == 10
    plain = row_scenario(made_up_rows(1)[0], 2)[0]
    assert (plain.moe_ffn_hidden_size, plain.shared_experts, plain.first_dense_layers, plain.head_dim) == (
        None, 0, 0, None)  # fmt: skip
    with pytest.raises(PlannerInputError, match=r"row 2 \(made-up-0\) head_dim: expected an integer"):
        row_scenario(made_up_rows(1)[0] | {"head_dim": "wide"}, 2)


@pytest.mark.parametrize(
    ("name", "same_as", "accelerator"),
    [("megatron-core", "nemo", "h100-sxm-80gb"), ("metaseq", "megatron-deepspeed", "a100-sxm-80gb"),
     ("meta-internal", "torchtitan", "h100-sxm-80gb"), ("hai-llm", "torchtitan", "h800-sxm-80gb")],
)  # fmt: skip
def test_public_file_framework_names_use_documented_choices(name: str, same_as: str, accelerator: str) -> None:
    from planner.validate.frameworks import transformer_choices

    def borrowed(fw: str) -> dict:  # an alias borrows its entry's kernel and TP overlap, not its reduce dtype
        return {k: v for k, v in transformer_choices(fw, accelerator, 8).items() if k != "grad_reduce_dtype"}

    assert borrowed(name) == borrowed(same_as)
    assert transformer_choices("MegaTron-Core ", "h100-sxm-80gb", 8) == {"attention": "cudnn", "tp_comm_overlap": True}
    assert transformer_choices("metaseq", "a100-sxm-80gb", 8) == {"attention": "unfused"}
