"""Issue 16: generated arguments and generated files for every ``planner`` command.

Each example starts from a cheap, valid command line and changes one to three of the command's
flags to a generated value (ints with 0, negatives and huge ones; floats with nan and inf; junk
strings; unknown ids; an output path equal to an input), with small generated YAML and CSV files
as inputs. The contract: exit status 0 (an answer) or 2 (one line naming the field), never 1 (an
internal error) or a traceback; no input file changed; each example within TIME_LIMIT_S.

Only :func:`planner.cli.main` is called (in-process), so the test holds whatever the CLI's inner
layout. ``--workers`` is drawn small: a huge worker count is a resource question, not a parse one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import main

TIME_LIMIT_S = 60
"""Wall-clock bound of one example (a loaded CI machine; the slowest valid example takes ~5 s)."""

INTS = st.one_of(st.sampled_from([0, -1, 1, 2, 3, 7, 8, 16, 10**6, 2**31, 10**18, 10**40]), st.integers(-10, 300)).map(
    str
)
FLOATS = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "0", "-1", "1e300", "1e-300", "1.5", "NaN", "1e999"]),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
)
JUNK = st.one_of(
    st.sampled_from(["", "x", "-", "--", "no-such-id", "../../etc/passwd", "a,b,,c", "1e3", "ü", "0x10"]),
    st.text(min_size=0, max_size=12),
)
IDS = st.sampled_from(["gpt3-1.7b", "llama3-8b", "mixtral-8x7b", "dlrm-dcnv2-mlperf", "no-such-model", "GPT3-1.7B"])
HW_IDS = st.sampled_from(["h100-sxm-80gb", "tpu-v4", "a100-pcie-80gb", "p5.48xlarge", "tpu-v4-8", "nope", ""])
CHOICES = st.sampled_from(["none", "full", "1", "3", "fp8", "fp32", "dualpipe", "interleaved", "ulysses", "bogus"])
ANY = st.one_of(INTS, FLOATS, JUNK)

INT_FLAGS = ["--gpus", "--gpus-per-node", "--tp", "--pp", "--dp", "--cp", "--ep", "--vpp", "--micro-batch",
             "--global-batch", "--seq-len", "--top", "--min-gpus", "--max-gpus", "--max-points", "--grid-points",
             "--rounds", "--folds", "--pipeline-rank"]  # fmt: skip
FLOAT_FLAGS = ["--inter-node-gbps-per-gpu", "--moe-capacity-factor", "--moe-imbalance", "--bucket-mb", "--pue",
               "--grid-gco2-per-kwh", "--usd-per-kwh", "--tokens", "--deadline-days", "--budget-usd",
               "--failures-per-gpu-hour", "--storage-gb-s-per-gpu", "--restart-s", "--point-timeout"]  # fmt: skip
CHOICE_FLAGS = ["--recompute", "--zero", "--precision", "--schedule", "--attention", "--cp-algorithm", "--objective"]
HW_FLAGS = ["--accelerator", "--instance", "--cluster", "--instances"]
SWITCHES = ["--json", "--sequence-parallel", "--tp-comm-overlap", "--no-dp-overlap", "--moe-shared-expert-overlap"]
STRATEGY = ["--tp", "--pp", "--dp", "--cp", "--ep", "--vpp", "--micro-batch", "--global-batch", "--seq-len",
            "--recompute", "--zero", "--precision", "--schedule", "--attention", "--cp-algorithm",
            "--moe-capacity-factor", "--moe-imbalance", "--bucket-mb", "--inter-node-gbps-per-gpu", "--gpus"]  # fmt: skip
GOODPUT = ["--tokens", "--failures-per-gpu-hour", "--storage-gb-s-per-gpu", "--restart-s", "--objective"]

FLAGS: dict[str, list[str]] = {
    "simulate": [
        *STRATEGY,
        "--pue",
        "--grid-gco2-per-kwh",
        "--usd-per-kwh",
        "--tokens",
        "--accelerator",
        "--instance",
        "--gpus-per-node",
        "--model",
        "--trace",
        "--calibration",
        *SWITCHES,
    ],  # fmt: skip
    "search": [
        "--gpus",
        "--global-batch",
        "--seq-len",
        "--top",
        "--min-gpus",
        "--model",
        "--accelerator",
        "--instance",
        "--gpus-per-node",
        "--inter-node-gbps-per-gpu",
        "--calibration",
        "--workers",
        "--json",
        *GOODPUT,
    ],  # fmt: skip
    "compare": [
        "--gpus",
        "--global-batch",
        "--seq-len",
        "--max-gpus",
        "--deadline-days",
        "--budget-usd",
        "--instances",
        "--model",
        "--calibration",
        "--workers",
        "--json",
        *GOODPUT,
    ],  # fmt: skip
    "validate": ["--markdown", "--calibration", "--json", "--verbose"],
    "sweep": ["--out", "--workers", "--max-points", "--point-timeout", "--calibration"],
    "calibrate": ["--out", "--name", "--grid-points", "--rounds", "--folds", "--json", "--holdout", "--model"],
    "catalog": ["--json"],
}
"""The flags each command's parser has that an example may change."""

VALID_ROW = {
    "id": "r1", "source": "fuzz", "model": "GPT 1.7B", "num_layers": 24, "hidden_size": 2304, "num_heads": 24,
    "num_kv_heads": 24, "ffn_hidden_size": 9216, "vocab_size": 51200, "seq_len": 2048, "mlp": "gelu",
    "accelerator": "a100-sxm-80gb", "num_gpus": 8, "gpus_per_node": 8, "inter_node_gbps_per_gpu": 200, "tp": 1,
    "pp": 1, "dp": 8, "micro_batch": 1, "global_batch": 64, "recompute": "full", "sequence_parallel": "false",
    "zero_stage": 0, "precision": "bf16", "dp_overlap": "true", "measured_step_time_s": 1.5,
}  # fmt: skip
VALID_MODEL = {"num_layers": 4, "hidden_size": 256, "num_heads": 4, "seq_len": 128, "vocab_size": 1000}
VALID_SWEEP = {"base": {"model": "gpt3-1.7b", "accelerator": "h100-sxm-80gb", "global_batch": 16},
               "axes": {"gpus": [8], "micro_batch": [1, 2]}}  # fmt: skip


class ExampleTooSlow(Exception):
    """An example ran past TIME_LIMIT_S: the contract says no command runs unbounded."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def stop(_sig: int, _frm: object) -> None:
        raise ExampleTooSlow(f"example ran over {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _mutate(base: dict, keys: list[str], values: list[object]) -> dict:
    out = dict(base)
    for k, v in zip(keys, values, strict=False):
        out[k] = v
    return out


@st.composite
def files(draw: st.DrawFn) -> dict[str, str]:
    """The text of the input files: a runs CSV, a model YAML, a sweep spec, a profile (each perhaps mangled)."""
    cells = st.one_of(
        st.sampled_from(["", "nan", "inf", "-1", "0", "1e400", "x", "8", "\u00e9"]), st.integers(-3, 10**9)
    )
    row_keys = draw(st.lists(st.sampled_from(sorted(VALID_ROW)), max_size=3)) if draw(st.integers(0, 2)) == 0 else []
    row = _mutate(VALID_ROW, row_keys, [draw(cells) for _ in row_keys])
    header = list(VALID_ROW)
    others = [
        {**VALID_ROW, "id": f"r{i}", "num_gpus": 8 * i, "dp": 8 * i, "measured_step_time_s": 1.5 / i} for i in (2, 4)
    ]
    csv_text = ",".join(header) + "\n" + "".join(",".join(str(r[h]) for h in header) + "\n" for r in [row, *others])
    if draw(st.integers(0, 3)) == 0:
        csv_text = draw(st.sampled_from(["", "id\n", "a,b\n1\n", csv_text[: len(csv_text) // 2], "\x00\x01"]))
    mkeys = draw(st.lists(st.sampled_from([*VALID_MODEL, "num_experts", "top_k", "bogus"]), max_size=2))
    model = _mutate(VALID_MODEL, mkeys, [draw(cells) for _ in mkeys])
    sweep = VALID_SWEEP
    if draw(st.integers(0, 3)) == 0:
        axis = draw(st.sampled_from(["gpus", "micro_batch", "inter_node_gbps_per_gpu", "tp", "bogus"]))
        sweep = {"base": VALID_SWEEP["base"], "axes": {axis: draw(st.lists(cells, min_size=1, max_size=3))}}
    profile = draw(
        st.sampled_from(["", "name: x\n", "nic_efficiency: .nan\n", "{{{", "- 1\n", "name: p\nconstants: {}\n"])
    )
    return {
        "runs.csv": csv_text,
        "model.yaml": draw(st.sampled_from([yaml.safe_dump(model), "{{", "", "- a\n"])) if draw(st.booleans())
        else yaml.safe_dump(model),
        "sweep.yaml": yaml.safe_dump(sweep) if draw(st.integers(0, 3)) else draw(st.sampled_from(["", "axes: [", "1\n"])),
        "profile.yaml": profile,
    }  # fmt: skip


def _value(draw: st.DrawFn, flag: str, inputs: list[str], fresh: str) -> str:
    if flag in ("--trace", "--markdown", "--out"):
        return draw(st.sampled_from([*inputs, fresh]))  # an output that is one of the inputs must be refused
    if flag == "--workers":
        return draw(st.sampled_from(["0", "-1", "1", "2", "x"]))
    if flag in ("--calibration", "--holdout"):
        return draw(st.sampled_from([*inputs, "missing.yaml", "default"]))
    if flag == "--model":
        return draw(st.one_of(IDS, st.sampled_from(inputs)))
    if flag in HW_FLAGS:
        return draw(HW_IDS)
    if flag in INT_FLAGS:
        return draw(st.one_of(INTS, INTS, ANY))
    if flag in FLOAT_FLAGS:
        return draw(st.one_of(FLOATS, FLOATS, ANY))
    if flag in CHOICE_FLAGS:
        return draw(CHOICES)
    return draw(ANY)


def _base(command: str, d: Path) -> list[str]:
    """A cheap, valid command line for each command (small model, few GPUs, one point)."""
    return {
        "simulate": ["simulate", "--model", "gpt3-1.7b", "--accelerator", "h100-sxm-80gb", "--gpus", "8"],
        "search": [
            "search",
            "--model",
            str(d / "model.yaml"),
            "--accelerator",
            "h100-sxm-80gb",
            "--gpus",
            "8",
            "--top",
            "1",
            "--workers",
            "1",
            "--global-batch",
            "8",
        ],  # fmt: skip
        "compare": [
            "compare",
            "--model",
            str(d / "model.yaml"),
            "--instances",
            "p5.48xlarge",
            "--gpus",
            "8",
            "--global-batch",
            "8",
            "--workers",
            "1",
        ],  # fmt: skip
        "validate": ["validate", str(d / "runs.csv")],
        "sweep": ["sweep", str(d / "sweep.yaml"), "--out", str(d / "out.db"), "--workers", "1"],
        "calibrate": [
            "calibrate",
            str(d / "runs.csv"),
            "--out",
            str(d / "out.yaml"),
            "--grid-points",
            "2",
            "--rounds",
            "1",
        ],  # fmt: skip
        "catalog": ["catalog"],
    }[command]


def _set(argv: list[str], flag: str, value: str | None) -> list[str]:
    """argv with ``flag`` set to ``value`` (replaced where present; a switch when value is None)."""
    out = list(argv)
    if flag in out:
        i = out.index(flag)
        if value is None:
            return out
        out[i + 1] = value
        return out
    return out + ([flag] if value is None else [flag, value])


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of ``planner argv`` run in-process (argparse's exit included)."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return int(code or 0), err.getvalue()


EXAMPLES = {"simulate": 40, "search": 8, "compare": 8, "validate": 15, "sweep": 10, "calibrate": 6, "catalog": 2}


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_cli_answers_or_refuses_in_one_line(command: str) -> None:
    @settings(
        max_examples=EXAMPLES[command],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data(), texts=files())
    def check(data: st.DataObject, texts: dict[str, str]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            for name, text in texts.items():
                (d / name).write_text(text, encoding="utf-8")
            inputs = [str(d / n) for n in texts]
            argv = _base(command, d)
            flags = data.draw(st.lists(st.sampled_from(FLAGS[command]), max_size=3, unique=True), label="flags")
            for flag in flags:
                switch = flag in SWITCHES or flag == "--verbose"
                value = None if switch else _value(data.draw, flag, inputs, str(d / "fresh.out"))
                argv = _set(argv, flag, value)
            data.draw(st.just(argv), label="argv")
            before = {n: _digest(d / n) for n in texts}
            with time_limit(TIME_LIMIT_S):
                code, err = run_cli(argv)
            assert code in (0, 2), f"planner {' '.join(argv)} exited {code}: {err.strip()[-400:]}"
            if code == 2:
                assert err.strip() and "Traceback" not in err
            changed = [n for n in texts if _digest(d / n) != before[n]]
            assert not changed, f"planner {' '.join(argv)} changed its input(s) {changed}"

    check()
