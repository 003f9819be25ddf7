"""The command line: the JSON contract, the trace, the catalog, and bad input answered with one
line on stderr and exit status 2 (never a traceback)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from planner.cli import main
from planner.errors import PlannerInputError
from planner.hardware import catalog

CONTRACT = [
    "simulate", "--model", "gpt3-175b", "--accelerator", "a100-sxm-80gb", "--gpus", "1024", "--tp", "8",
    "--pp", "16", "--micro-batch", "1", "--global-batch", "1536", "--recompute", "full", "--json",
]  # fmt: skip

A100_64 = ["simulate", "--model", "gpt3-175b", "--accelerator", "a100-sxm-80gb", "--gpus", "64"]
A100_8 = ["simulate", "--model", "gpt3-1.7b", "--accelerator", "a100-sxm-80gb", "--gpus", "8"]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """main() in-process; argparse's own errors leave through SystemExit."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def planner_command() -> list[str]:
    exe = Path(sys.executable).with_name("planner")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "planner.cli"]


def check_contract(r: dict) -> None:
    for key in ("step_time_s", "mfu", "hfu", "tokens_per_s", "model_tflops_per_gpu", "scenario"):
        assert key in r, key
    for key in ("peak_gib", "capacity_gib", "fits"):
        assert key in r["memory"], key
    for key in ("compute_s", "exposed_comm_s", "bubble_s"):
        assert key in r["breakdown"], key
    for key in ("usd_per_hour", "usd_per_step", "usd_per_million_tokens"):
        assert key in r["cost"], key
    # physically sane: above the FLOP lower bound, 0 < MFU <= HFU < 1
    lower = 6 * 175e9 * 1536 * 2048 / (1024 * 312e12)
    assert r["step_time_s"] > lower
    assert 0 < r["mfu"] <= r["hfu"] < 1
    assert r["memory"]["fits"] is True
    assert r["memory"]["capacity_gib"] == 80
    assert r["scenario"]["cluster"]["num_gpus"] == 1024
    assert r["scenario"]["strategy"]["dp"] == 8
    assert r["scenario"]["micro_batches_per_replica"] == 192
    assert r["tokens_per_s"] == pytest.approx(1536 * 2048 / r["step_time_s"], rel=1e-9)


def check_trace(path: Path) -> None:
    t = json.loads(path.read_text())
    events = t["traceEvents"]
    assert len(events) > 100
    assert all("ph" in e and "pid" in e for e in events)
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert {f"pipeline rank {r}" for r in range(16)} <= names


def test_contract_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.json"
    rc, out, err = run_cli([*CONTRACT, "--trace", str(trace)], capsys)
    assert rc == 0, err
    assert "Traceback" not in err
    check_contract(json.loads(out))
    check_trace(trace)


def test_contract_subprocess(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    p = subprocess.run(
        [*planner_command(), *CONTRACT, "--trace", str(trace)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    check_contract(json.loads(p.stdout))
    check_trace(trace)


def test_bad_input_subprocess() -> None:
    p = subprocess.run([*planner_command(), *A100_64, "--tp", "7"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert p.stdout == ""


def test_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli([*A100_8, "--tp", "2", "--pp", "2"], capsys)
    assert rc == 0, err
    for word in ("step time", "MFU", "memory per GPU", "pipeline bubble"):
        assert word in out
    assert "no price" in out  # a bare accelerator carries no price


def test_instance_has_cost(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(
        [
            "simulate",
            "--model",
            "gpt3-1.7b",
            "--instance",
            "p5.48xlarge",
            "--gpus",
            "16",
            "--tp",
            "2",
            "--json",
        ],
        capsys,
    )
    assert rc == 0, err
    r = json.loads(out)
    c = r["cost"]
    # by hand: 16 GPUs are two p5.48xlarge nodes at the catalog's on-demand price per node
    cluster_usd_per_hour = 2 * catalog().instances["p5.48xlarge"].usd_per_hour
    assert c["usd_per_hour"] == pytest.approx(cluster_usd_per_hour, rel=1e-9)
    assert c["usd_per_gpu_hour"] == pytest.approx(cluster_usd_per_hour / 16, rel=1e-9)
    assert c["usd_per_step"] == pytest.approx(cluster_usd_per_hour * r["step_time_s"] / 3600, rel=1e-9)
    tokens = r["scenario"]["strategy"]["global_batch"] * 2048  # gpt3-1.7b: 2,048-token sequences
    usd_per_million_tokens = cluster_usd_per_hour * r["step_time_s"] / 3600 / tokens * 1e6
    assert c["usd_per_million_tokens"] == pytest.approx(usd_per_million_tokens, rel=1e-9)
    assert c["price_source"] and c["price_date"]
    assert r["scenario"]["cluster"]["instance"] == "p5.48xlarge"
    assert r["scenario"]["cluster"]["nodes"] == 2


def test_default_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    """`planner simulate` alone is the README's first example (GPT-3 1.7B on 8 H100 of a priced
    p5.48xlarge): its first answer shows what a step costs, and the API gives the same."""
    rc, out, err = run_cli(["simulate", "--json"], capsys)
    assert rc == 0, err
    r = json.loads(out)
    assert r["scenario"]["model"]["name"] == "gpt3-1.7b"
    assert r["scenario"]["cluster"]["accelerator"] == "h100-sxm-80gb"
    assert r["scenario"]["cluster"]["num_gpus"] == 8
    assert r["scenario"]["cluster"]["instance"] == "p5.48xlarge"
    assert r["cost"]["usd_per_step"] > 0
    import planner

    api = planner.simulate()
    assert api.step_time_s == r["step_time_s"] and api.cost.usd_per_step == r["cost"]["usd_per_step"]
    rc, out, err = run_cli(["simulate"], capsys)
    assert rc == 0 and "no price" not in out and re.search(r"\$\d+\.\d+/hour", out), out


def test_bare_accelerator_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    """--accelerator without --gpus: the API's default count on the accelerator's own node, no price."""
    rc, out, err = run_cli(["simulate", "--accelerator", "h100-sxm-80gb", "--json"], capsys)
    assert rc == 0, err
    c = json.loads(out)["scenario"]["cluster"]
    assert c["num_gpus"] == 8 and c["instance"] is None


def test_api_errors_name_fields_not_flags() -> None:
    """The Python API's hardware errors name its keywords (gpus), not the CLI's flags (--gpus)."""
    from planner.hardware import resolve_cluster

    for kw in ({"instance": "p5.48xlarge"}, {"accelerator": "h100-sxm-80gb"}, {}):
        with pytest.raises(PlannerInputError) as e:
            resolve_cluster(gpus=None, **kw)
        assert "--" not in str(e.value), e.value


def test_search_defaults_come_from_the_api(capsys: pytest.CaptureFixture[str]) -> None:
    """`planner search` without hardware runs on the default instance (it used to refuse although its
    help named a default) and tries down to a quarter of the GPUs, as planner.search.search does."""
    rc, out, err = run_cli(["search", "--top", "1", "--json"], capsys)
    assert rc == 0, err
    r = json.loads(out)
    assert r["hardware"].startswith("p5.48xlarge") and r["gpus"] == 8
    assert r["gpu_counts"] == [8, 4, 2]
    rc, out, err = run_cli(["search", "--gpus", "8", "--min-gpus", "16"], capsys)
    assert rc == 2 and err.startswith("planner: error: min_gpus:") and "--" not in err.split(":", 2)[2]


def test_recommendation_search_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """A recommendation model searches with the model's own batch and a quarter of the GPUs, on the
    default hardware, with no branch on the kind in the CLI (planner.search.dispatch)."""
    rc, out, err = run_cli(["search", "--model", "dlrm-criteo-1tb", "--top", "2", "--json"], capsys)
    assert rc == 0, err
    r = json.loads(out)
    assert r["global_batch"] == 65536 and r["gpu_counts"] == [8, 4, 2] and r["hardware"] == "p5.48xlarge"
    rc, out, err = run_cli(["search", "--model", "dlrm-criteo-1tb", "--tokens", "1e9"], capsys)
    assert rc == 2 and err.startswith("planner: error: tokens:"), err


def test_compare_recommendation_model_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(["compare", "--model", "dlrm-criteo-1tb", "--instances", "p5.48xlarge"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "unknown id" not in err and "recsys model" in err and "transformer" in err


# --------------------------------------------------------------------- outputs never over an input


def _same_file_cases(tmp_path: Path) -> list[tuple[list[str], Path, str]]:
    """(argv, the input that argv names as its output too, the flag the error must name)."""
    model = tmp_path / "m.yaml"
    model.write_text("num_layers: 4\nhidden_size: 1024\nnum_heads: 16\n")
    runs = tmp_path / "runs.csv"
    runs.write_text("id,measured_step_time_s\n1,2.0\n")  # refused before it is read
    trace = tmp_path / "t.json"
    trace.write_text('{"traceEvents": []}')
    spec = tmp_path / "spec.yaml"
    spec.write_text("base: {model: gpt3-1.7b}\naxes: {gpus: [8]}\n")
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\nconstants: {}\n")
    (tmp_path / "alias.csv").symlink_to(runs)
    return [
        (["simulate", "--model", str(model), "--trace", str(model)], model, "trace"),
        (["simulate", "--calibration", str(profile), "--trace", str(profile)], profile, "trace"),
        (["validate", str(runs), "--markdown", str(runs)], runs, "markdown"),
        (["validate", str(runs), "--markdown", str(tmp_path / "alias.csv")], runs, "markdown"),
        (["calibrate", str(runs), "--out", str(runs)], runs, "out"),
        (["calibrate", "--trace", str(trace), "--out", str(trace)], trace, "out"),
        (["calibrate", "--trace", str(trace), "--model", str(model), "--out", str(model)], model, "out"),
        (["sweep", str(spec), "--out", str(spec)], spec, "out"),
        (["simulate", "--cluster", str(profile), "--trace", str(profile)], profile, "trace"),
    ]


@pytest.mark.parametrize("case", range(9))
def test_output_over_an_input_is_refused(case: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16 item 2: each of these used to overwrite the user's input and exit 0."""
    argv, victim, flag = _same_file_cases(tmp_path)[case]
    before = victim.read_bytes()
    rc, out, err = run_cli(argv, capsys)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"planner: error: {flag}: "), err
    assert "is one of the inputs" in lines[0]
    assert victim.read_bytes() == before


def test_trace_is_written_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The trace replaces an older one atomically: valid JSON, no temporary file left beside it."""
    t = tmp_path / "t.json"
    t.write_text("stale")
    rc, out, err = run_cli([*A100_8, "--trace", str(t)], capsys)
    assert rc == 0, err
    assert json.loads(t.read_text())["traceEvents"]
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_catalog_text_fits_100_columns(capsys: pytest.CaptureFixture[str]) -> None:
    """Long descriptions are cut with an ellipsis in the text; --json keeps them whole."""
    rc, out, err = run_cli(["catalog"], capsys)
    assert rc == 0, err
    assert max(len(line) for line in out.splitlines()) <= 100
    rc, text, err = run_cli(["catalog", "clusters"], capsys)
    rc, js, err = run_cli(["catalog", "clusters", "--json"], capsys)
    longest = max(json.loads(js)["clusters"], key=lambda c: len(c["description"]))
    assert len(longest["description"]) > 100
    line = next(x for x in text.splitlines() if x.split()[:1] == [longest["id"]])
    assert line.endswith("\u2026") and len(line) <= 100


def test_catalog_text(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(["catalog"], capsys)
    assert rc == 0, err
    for section in ("accelerators", "instances", "clusters", "models"):
        assert re.search(rf"^{section} \(\d+\)", out, re.M), section
    assert "a100-sxm-80gb" in out and "p5.48xlarge" in out and "gpt3-175b" in out


def test_catalog_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(["catalog", "models", "--json"], capsys)
    assert rc == 0, err
    d = json.loads(out)
    assert list(d) == ["models", "recsys_models"]
    assert "dlrm-dcnv2-mlperf" in {m["id"] for m in d["recsys_models"]}
    by_id = {m["id"]: m for m in d["models"]}
    assert by_id["gpt3-175b"]["params_b"] == pytest.approx(174.6, abs=0.1)
    assert by_id["llama3-70b"]["kv_heads"] == 8


@pytest.mark.parametrize("what", ["accelerators", "instances", "clusters"])
def test_catalog_sections_json(what: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(["catalog", what, "--json"], capsys)
    assert rc == 0, err
    d = json.loads(out)
    assert list(d) == [what] and d[what]


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli([], capsys)
    assert rc == 2
    assert "simulate" in out + err
    assert "Traceback" not in out + err


def test_trace_unwritable(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, out, err = run_cli([*A100_8, "--trace", str(tmp_path / "missing" / "t.json")], capsys)
    assert rc == 2
    assert err.startswith("planner: error: trace")


# ------------------------------------------------------------------------------- bad input


def _files(tmp_path: Path) -> dict[str, str]:
    f = {
        "bad_yaml": "num_layers: [oops\n",
        "neg_layers": "num_layers: -3\nhidden_size: 0\n",
        "neg_layers_only": "num_layers: -3\nhidden_size: 1024\nnum_heads: 16\n",
        "heads": "num_layers: 4\nhidden_size: 1000\nnum_heads: 16\n",
        "unknown_field": "num_layers: 4\nhidden_size: 1024\nnum_heads: 16\nlayerz: 3\n",
        "empty": "",
        "list": "- 1\n- 2\n",
        "bad_cluster": "id: x\nnode_type: [oops\n",
        "cluster_missing": "id: x\nnodes: 2\n",
    }
    out = {}
    for name, text in f.items():
        p = tmp_path / f"{name}.yaml"
        p.write_text(text)
        out[name] = str(p)
    csv = tmp_path / "cols.csv"
    csv.write_text("id,num_layers\nx,abc\n")
    out["cols_csv"] = str(csv)
    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_text("")
    out["empty_csv"] = str(empty_csv)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    out["binary_csv"] = str(binary)
    out["dir"] = str(tmp_path)
    return out


# (id, argv with {placeholders} for the files, regex the one stderr line must match)
A100 = ["--accelerator", "a100-sxm-80gb"]
G175 = ["simulate", "--model", "gpt3-175b", *A100]


def model_file(name: str) -> list[str]:
    return ["simulate", "--model", "{" + name + "}", *A100, "--gpus", "8"]


BAD = [
    ("unknown-model", ["simulate", "--model", "gpt3-175bb", *A100, "--gpus", "64"],
     r"model: unknown id 'gpt3-175bb'; did you mean gpt3-175b\b"),
    ("unknown-accelerator", ["simulate", "--accelerator", "a100-sxm-81gb", "--gpus", "64"],
     r"accelerator: unknown id .*a100-sxm-80gb"),
    ("unknown-instance", ["simulate", "--instance", "p5.48xlargee", "--gpus", "16"],
     r"instance: unknown id .*p5\.48xlarge"),
    ("unknown-cluster", ["simulate", "--cluster", "selenee"], r"cluster: unknown id .*selene"),
    ("tp-7", [*A100_64, "--tp", "7"], r"\btp\b.*7"),
    ("tp8-pp5", [*A100_64, "--tp", "8", "--pp", "5"], r"\bpp\b.*5"),
    ("gpus-negative", [*G175, "--gpus", "-8"], r"--gpus.*-8"),
    ("gpus-zero", [*G175, "--gpus", "0"], r"--gpus.*0"),
    ("gpus-not-a-number", [*G175, "--gpus", "eight"], r"--gpus.*eight"),
    ("gpus-partial-node", [*G175, "--gpus", "12"], r"gpus.*12"),
    ("global-batch-7", [*A100_64, "--global-batch", "7"], r"global[_-]batch.*7"),
    ("recompute-sometimes", [*A100_64, "--recompute", "sometimes"], r"--recompute.*sometimes"),
    ("zero-5", [*A100_8, "--zero", "5"], r"--zero"),
    ("zero2-with-pp", [*A100_8, "--zero", "2", "--pp", "2"], r"zero"),
    ("precision-fp8-a100", [*A100_8, "--precision", "fp8"], r"precision.*(fp8|FP8)"),
    ("precision-unknown", [*A100_8, "--precision", "fp6"], r"--precision"),
    ("sp-without-tp", [*A100_8, "--sequence-parallel"], r"sequence.parallel"),
    ("ep-dense", [*A100_8, "--ep", "2"], r"\bep\b"),
    ("vpp-without-pp", [*A100_8, "--vpp", "2"], r"vpp"),
    ("dp-mismatch", [*A100_8, "--dp", "3"], r"\bdp\b"),
    ("too-many-stages", [*A100_8, "--pp", "8", "--vpp", "4"], r"\bpp\b"),
    ("interleaved-m", [*A100_8, "--pp", "2", "--vpp", "2", "--global-batch", "12"], r"global[_-]batch"),
    ("tp-heads", ["simulate", *A100, "--gpus", "16", "--tp", "16"], r"\btp\b.*num_heads"),
    ("cp-seq", [*A100_8, "--seq-len", "2047", "--cp", "2"], r"\bcp\b"),
    ("seq-len-0", [*A100_8, "--seq-len", "0"], r"--seq-len"),
    ("micro-batch-0", [*A100_8, "--micro-batch", "0"], r"--micro-batch"),
    ("bandwidth-0", [*A100_8, "--inter-node-gbps-per-gpu", "0"], r"--inter-node-gbps-per-gpu"),
    ("two-hardware", [*A100_8, "--instance", "p5.48xlarge"], r"cluster|instance|accelerator"),
    ("cluster-too-small", ["simulate", "--cluster", "selene", "--gpus", "100000"], r"gpus"),
    ("model-missing-file", ["simulate", "--model", "/nonexistent.yaml", *A100, "--gpus", "64"],
     r"model.*not found"),
    ("model-folder", model_file("dir"), r"model.*folder"),
    ("model-malformed", model_file("bad_yaml"), r"model.*line \d+"),
    ("model-negative-layers", model_file("neg_layers"), r"num_layers"),
    ("model-negative-layers-2", model_file("neg_layers_only"), r"num_layers.*greater than 0"),
    ("model-heads", model_file("heads"), r"hidden_size 1000 must be divisible by num_heads 16"),
    ("model-unknown-field", model_file("unknown_field"), r"layerz"),
    ("model-empty", model_file("empty"), r"model.*mapping"),
    ("model-list", model_file("list"), r"model.*mapping"),
    ("cluster-malformed", ["simulate", "--cluster", "{bad_cluster}"], r"cluster.*line \d+"),
    ("cluster-incomplete", ["simulate", "--cluster", "{cluster_missing}"], r"cluster.*node_type"),
    ("validate-missing", ["validate", "/nonexistent.csv"], r"not found"),
    ("validate-columns", ["validate", "{cols_csv}"], r"lacks the column"),
    ("validate-empty", ["validate", "{empty_csv}"], r"no data rows|no rows|no header|lacks"),
    ("validate-binary", ["validate", "{binary_csv}"], r"readable|decode|encoding|UTF-8|utf-8"),
    ("validate-folder", ["validate", "{dir}"], r"folder"),
    ("validate-no-file", ["validate"], r"file"),
    ("tp-comm-overlap-tp1", [*A100_64, "--tp-comm-overlap"], r"tp_comm_overlap: .*tp > 1"),
    ("catalog-unknown", ["catalog", "gpus"], r"invalid choice"),
    ("unknown-command", ["simulat"], r"invalid choice"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "pattern"), [(a, p) for _, a, p in BAD], ids=[i for i, _, _ in BAD])
def test_bad_input(argv: list[str], pattern: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _files(tmp_path)
    argv = [a.format(**files) if "{" in a else a for a in argv]
    rc, out, err = run_cli(argv, capsys)
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("planner: error: ")
    assert "internal error" not in lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert out == ""


def test_shared_bad_input_list_is_covered() -> None:
    """Every simulate/validate case of ../shared/checks/bad-input has a case here (search,
    compare and sweep are later issues)."""
    ids = {i for i, _, _ in BAD}
    for needed in (
        "unknown-model", "unknown-accelerator", "tp-7", "tp8-pp5", "gpus-negative", "global-batch-7",
        "recompute-sometimes", "model-missing-file", "model-malformed", "model-negative-layers",
        "validate-missing", "validate-columns",
    ):  # fmt: skip
        assert needed in ids


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate"],
        ["simulate", "--model", "dlrm-criteo-1tb"],
        ["simulate", "--framework", "metaseq", "--tp", "2"],  # the layout line names the framework too
    ],
    ids=["transformer", "recsys", "framework"],
)
def test_simulate_text_fits_100_columns(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """The default outputs name a long price source and energy line: they wrap, not overflow."""
    rc, out, _ = run_cli(argv, capsys)
    assert rc == 0
    assert "price:" in out and "energy" in out
    assert max(len(line) for line in out.splitlines()) <= 100, max(out.splitlines(), key=len)


def test_documented_choices_reach_the_strategy_from_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """--grad-reduce-dtype and --interaction-kernel are the strategy fields a framework fills: given on
    the command line they are the user's, and they change what is priced (fp32 gradients move twice the
    bytes; the framework's own interaction ops are slower than the fused one)."""
    gpt = ["simulate", "--model", "gpt3-13b", "--accelerator", "a100-sxm-80gb", "--gpus", "64", "--zero", "1",
           "--no-dp-overlap", "--json"]  # fmt: skip
    runs = {}
    for dtype in ("fp32", "param"):
        rc, out, _ = run_cli([*gpt, "--grad-reduce-dtype", dtype], capsys)
        assert rc == 0
        runs[dtype] = json.loads(out)
        assert runs[dtype]["scenario"]["strategy"]["grad_reduce_dtype"] == dtype
    assert runs["fp32"]["breakdown"]["dp_comm_exposed_s"] > 1.2 * runs["param"]["breakdown"]["dp_comm_exposed_s"]
    dlrm = ["simulate", "--model", "dlrm-criteo-1tb", "--instance", "p4d.24xlarge", "--gpus", "8", "--json"]
    steps = {}
    for kernel in ("custom", "framework"):
        rc, out, _ = run_cli([*dlrm, "--interaction-kernel", kernel], capsys)
        assert rc == 0
        r = json.loads(out)
        assert r["scenario"]["strategy"]["interaction_kernel"] == kernel
        steps[kernel] = r["step_time_s"]
    assert steps["framework"] > steps["custom"]
    rc, _, err = run_cli([*gpt, "--grad-reduce-dtype", "fp16"], capsys)
    assert rc == 2 and "--grad-reduce-dtype" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["simulate", "search", "compare", "sweep", "validate", "calibrate", "catalog"])
def test_help_fits_100_columns(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command's --help, the definitions and descriptions included, reads at 100 columns."""
    monkeypatch.setenv("COLUMNS", "100")
    rc, out, _ = run_cli([command, "--help"], capsys)
    assert rc == 0
    assert [line for line in out.splitlines() if len(line) > 100] == []
