"""Calibration from a user's own measurements: the CSV fit (held-out error no worse than the default),
profiles (round trip, --calibration on the faces), the trace import (constants equal hand-computed
values), and bad input answered with one line and exit status 2."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import yaml

from planner.calibrate.fit import calibrate_rows, load_rows
from planner.calibrate.trace import kernel_kind
from planner.calibration import DEFAULT, Calibration, load_calibration
from planner.cli import main
from planner.costs.kernels import attention_figure
from planner.errors import PlannerInputError
from planner.hardware import resolve_cluster

VTRAIN_MULTI = Path(__file__).resolve().parents[2] / "shared" / "validation" / "vtrain_multi.csv"


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


needs_shared = pytest.mark.skipif(not VTRAIN_MULTI.exists(), reason="../shared/validation is not beside the project")


def vtrain_rows() -> list[dict[str, str]]:
    with open(VTRAIN_MULTI, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def made_up_rows(n: int) -> list[dict[str, str]]:
    """``n`` rows in the validation schema (../shared/validation/README.md) with invented step times:
    inputs for the bad-input cases, which fail before any fit, so they need no measured data."""
    base = {
        "source": "test", "model": "gpt-small", "num_layers": "12", "hidden_size": "768", "num_heads": "12",
        "num_kv_heads": "12", "ffn_hidden_size": "3072", "vocab_size": "50257", "seq_len": "1024", "mlp": "gelu",
        "num_experts": "", "top_k": "", "accelerator": "a100-sxm-80gb", "num_gpus": "8", "gpus_per_node": "8",
        "inter_node_gbps_per_gpu": "", "tp": "1", "pp": "1", "dp": "8", "cp": "1", "ep": "1", "vpp": "1",
        "micro_batch": "4", "global_batch": "64", "recompute": "none", "sequence_parallel": "false",
        "zero_stage": "0", "precision": "bf16", "dp_overlap": "true", "framework": "megatron",
        "measured_step_time_s": "", "measured_tflops_per_gpu": "", "measured_mfu": "", "derivation": "", "notes": "",
    }  # fmt: skip
    return [{"id": f"made-up-{i}", **base, "measured_step_time_s": f"{0.5 + 0.01 * i:.2f}"} for i in range(n)]


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


# ------------------------------------------------------------------------------- the CSV fit


@pytest.mark.slow  # a whole calibration fit (~70 s on 2 idle cores)
@needs_shared
def test_fit_even_rows_predicts_odd_rows_no_worse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's acceptance test: fit on the even-position half of vtrain_multi.csv, predict the
    odd half; about a minute on 2 cores."""
    rows = vtrain_rows()
    train = write_csv(tmp_path / "even.csv", rows[0::2])
    test = write_csv(tmp_path / "odd.csv", rows[1::2])
    prof = tmp_path / "a100.yaml"
    argv = ["calibrate", str(train), "--holdout", str(test), "--out", str(prof), "--name", "my-a100",
            "--json"]  # fmt: skip
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err
    rep = json.loads(out)
    before, after = rep["before"], rep["after"]
    assert before["rows"] == after["rows"] == len(rows[1::2])
    for k in ("median_abs_error", "mean_abs_error", "max_abs_error"):
        assert before[k] is not None and after[k] is not None
    assert after["mean_abs_error"] <= before["mean_abs_error"] + 1e-12
    assert after["median_abs_error"] <= before["median_abs_error"] + 0.005
    fitted = {c["name"] for c in rep["constants"] if c["fitted"]}
    kept = {c["name"]: c["reason"] for c in rep["constants"] if not c["fitted"]}
    assert fitted, rep["constants"]
    # vTrain ran Megatron-DeepSpeed's unfused attention: nothing pins attention_fraction down
    assert "attention_fraction" in kept and kept["attention_fraction"].startswith("not identifiable")
    # the profile: name, fitted values inside their ranges, metadata with both error figures
    calib, doc = load_calibration(prof), yaml.safe_load(prof.read_text())
    assert calib.name == "my-a100"
    for c in rep["constants"]:
        assert c["low"] <= getattr(calib, c["name"]) <= c["high"] or not c["fitted"]
    meta = doc["metadata"]
    assert meta["accelerator"] == "a100-sxm-80gb" and meta["rows_used"] == len(rows[0::2])
    assert set(meta["fitted"]) == fitted and set(meta["kept"]) == set(kept)
    assert meta["errors_before"]["mean_abs_error"] == pytest.approx(before["mean_abs_error"])
    # every face names it
    rc, out, err = run_cli(["simulate", "--calibration", str(prof), "--json"], capsys)
    assert rc == 0, err
    assert json.loads(out)["calibration"] == "my-a100"
    rc, out, err = run_cli(["simulate", "--calibration", str(prof)], capsys)
    assert rc == 0 and "calibration: my-a100" in out
    rc, out, err = run_cli(["validate", str(test), "--calibration", str(prof), "--json"], capsys)
    assert rc == 0, err
    v = json.loads(out)
    assert v["calibration"] == "my-a100"
    assert v["mean_abs_error"] == pytest.approx(after["mean_abs_error"], rel=1e-9)


@needs_shared
def test_nothing_identifiable_refuses() -> None:
    rows = load_rows([VTRAIN_MULTI])[:3]
    with pytest.raises(PlannerInputError, match="no constant is identifiable.*attention_fraction"):
        calibrate_rows(rows, constants=["attention_fraction"], grid_points=2, rounds=1, workers=1)


# ------------------------------------------------------------------------------- profiles


def test_profile_round_trip(tmp_path: Path) -> None:
    c = Calibration(name="lab-h100", gemm_mamf_fraction=0.8731, nic_efficiency=0.62, layer_host_s=1.1e-3,
                    collective_launch_s=7.5e-6)  # fmt: skip
    p = tmp_path / "p.yaml"
    c.to_yaml(p, {"accelerator": "h100-sxm-80gb", "rows_used": 5})
    back = load_calibration(p)
    assert back == c
    assert back.to_yaml() == c.to_yaml()
    assert load_calibration(p).constants() == c.constants()
    assert DEFAULT.to_yaml().startswith("name: default")


def test_sweep_spec_names_a_profile(tmp_path: Path) -> None:
    from planner.sweep import run_sweep

    Calibration(name="lab", gemm_mamf_fraction=0.7).to_yaml(tmp_path / "lab.yaml")
    base = {"model": "gpt3-1.7b", "accelerator": "a100-sxm-80gb", "global_batch": 16}
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"base": base, "axes": {"gpus": [8]}, "calibration": "lab.yaml"}))
    _, rows = run_sweep(spec, out=tmp_path / "r.db", workers=1)
    _, plain = run_sweep({"base": base, "axes": {"gpus": [8]}}, out=tmp_path / "r.db", workers=1)
    assert rows[0]["calibration"] == "lab" and plain[0]["calibration"] == "default"
    assert rows[0]["key"] != plain[0]["key"]  # one store keeps both apart
    assert rows[0]["step_time_s"] > plain[0]["step_time_s"]


# ------------------------------------------------------------------------------- the trace

PEAK_FLOPS = 312e12 * 0.869  # A100 bf16 dense peak x its MAMF fraction (hardware_specs)
SMS = 108
LAYERS, H, HEADS, FFN, SEQ, VOCAB = 2, 1024, 8, 4096, 2048, 32768
RAMP_S = DEFAULT.gemm_ramp_s
G, A, NIC = 0.8, 0.5, 0.6  # the constants the hand-made trace is built to show
GAP_US = 100.0


def wave(m: int, n: int) -> float:
    """Useful fraction of 108 SMs' 128x256 (or 256x128) tiles, by hand."""
    best = 0.0
    for tm, tn in ((128, 256), (256, 128)):
        tiles = math.ceil(m / tm) * math.ceil(n / tn)
        best = max(best, m * n / (math.ceil(tiles / SMS) * SMS * tm * tn))
    return best


def ideal_gemm_s(m: int, n: int, k: int) -> float:
    return 2.0 * m * n * k / (PEAK_FLOPS * wave(m, n))


def build_trace(path: Path) -> dict[str, float]:
    """One step (1 micro-batch, 2 layers, pp 1) of a small GPT on one rank of 16 A100: GEMMs at
    G of the ceiling, flash attention at A of its kernel benchmark, an elementwise kernel per layer, 100 us idle gaps, then
    a data-parallel all-reduce at NIC efficiency across the two nodes."""
    T = SEQ
    layer = [("qkv", T, 3 * H, H), ("attn-proj", T, H, H), ("fc1", T, FFN, H), ("fc2", T, H, FFN)]
    # causal half of QK^T and AV at the A100's published FlashAttention-2 rate (hardware_specs/kernels.yaml)
    attn_s = 0.5 * 4 * T * SEQ * H / (attention_figure("a100-sxm-80gb", "flash").tflops * 1e12)
    kernels: list[tuple[str, float]] = []
    w_gemm = 0.0
    for _ in range(LAYERS):  # forward
        for label, m, n, k in layer[:1]:
            kernels.append(
                (f"ampere_bf16_s16816gemm_bf16_256x128_ldg8_f2f_tn {label}", ideal_gemm_s(m, n, k) / G + RAMP_S)
            )
        kernels.append(("flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4>>", attn_s / A + RAMP_S))
        for label, m, n, k in layer[1:]:
            kernels.append(
                (
                    f"sm80_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize256x128 {label}",
                    ideal_gemm_s(m, n, k) / G + RAMP_S,
                )
            )
        kernels.append(("void at::native::vectorized_elementwise_kernel<4, GeluCUDAKernelImpl>", 50e-6))
        w_gemm += sum(ideal_gemm_s(m, n, k) for _, m, n, k in layer)
    head = ideal_gemm_s(T, VOCAB, H)
    kernels.append(("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_TNT lm-head", head / G + RAMP_S))
    for _ in range(2):  # lm-head backward: dgrad and wgrad
        kernels.append(
            (
                "void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_32x6_tn_align8>",
                head / G + RAMP_S,
            )
        )
    for _ in range(LAYERS):  # backward: every GEMM twice, flash backward 2.5x its forward
        kernels.append(("fmha_cutlassB_bf16_aligned_64x64_k128_sm80", 2.5 * attn_s / A + RAMP_S))
        for label, m, n, k in layer:
            for _ in range(2):
                kernels.append((f"cublasLt gemm {label}", ideal_gemm_s(m, n, k) / G + RAMP_S))
    w_gemm = 3 * w_gemm + 3 * head
    events = [{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0.0, "dur": 5.0, "pid": 1, "tid": 1}]
    t_us = 1000.0
    for name, dur_s in kernels:
        events.append({"ph": "X", "cat": "kernel", "name": name, "ts": t_us, "dur": dur_s * 1e6, "pid": 0,
                       "tid": 7, "args": {"stream": 7, "device": 0}})  # fmt: skip
        t_us += dur_s * 1e6 + GAP_US
    span_s = (t_us - GAP_US - 1000.0) * 1e-6
    # data-parallel gradient all-reduce over 16 ranks, 8 per node: 8 NICs of 200 Gb/s carry it
    cl = resolve_cluster(gpus=16, accelerator="a100-sxm-80gb")
    nbytes = 50_000_000 * 4
    nic_bw = 8 * cl.node.scale_out_gbps_per_gpu * 1e9 / 8
    transfer_s = 2 * 15 / 16 * nbytes / nic_bw
    latency_s = DEFAULT.collective_launch_s + 2 * 7 * 2.7e-6 + 2 * 20e-6  # launch, 14 NVSwitch hops, 2 tree levels
    events.append({"ph": "X", "cat": "kernel", "name": "ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevComm*)",
                   "ts": t_us + 10.0, "dur": (latency_s + transfer_s / NIC) * 1e6, "pid": 0, "tid": 20,
                   "args": {"stream": 20, "Collective name": "allreduce", "In msg nelems": 50_000_000,
                            "Out msg nelems": 50_000_000, "dtype": "Float", "Group size": 16}})  # fmt: skip
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}))
    return {"span_s": span_s, "w_gemm_s": w_gemm}


def test_kernel_kinds() -> None:
    for name, kind in (
        ("ampere_bf16_s16816gemm_bf16_256x128_ldg8_f2f_stages_64x3_tn", "gemm"),
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64", "gemm"),
        ("nvjet_tst_192x192_64x3_2x1_v_bz_TNN", "gemm"),
        ("void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_16x16_128x2_tn_align8>", "gemm"),
        ("flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel", "attention"),
        ("fmha_cutlassF_bf16_aligned_64x128_rf_sm80", "attention"),
        ("ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL", "nccl"),
        ("void at::native::vectorized_elementwise_kernel<4>", "other"),
        ("void (anonymous namespace)::softmax_warp_forward<c10::Half>", "other"),
    ):
        assert kernel_kind(name) == kind, name


def test_trace_constants_equal_hand_computed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.yaml").write_text(
        f"name: tiny\nnum_layers: {LAYERS}\nhidden_size: {H}\nnum_heads: {HEADS}\nffn_hidden_size: {FFN}\n"
        f"seq_len: {SEQ}\nvocab_size: {VOCAB}\nmlp: gelu\n"
    )
    hand = build_trace(tmp_path / "t.json")
    prof = tmp_path / "trace.yaml"
    argv = ["calibrate", "--trace", str(tmp_path / "t.json"), "--model", str(tmp_path / "m.yaml"),
            "--accelerator", "a100-sxm-80gb", "--gpus", "16", "--micro-batch", "1", "--global-batch", "16",
            "--out", str(prof), "--json"]  # fmt: skip
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err
    rep = json.loads(out)
    c = {x["name"]: x for x in rep["constants"]}
    assert rep["kinds"]["gemm"]["kernels"] == LAYERS * 12 + 3
    assert rep["kinds"]["attention"]["kernels"] == 2 * LAYERS
    assert rep["kinds"]["nccl"]["kernels"] == 1 and rep["kinds"]["other"]["kernels"] == LAYERS
    assert c["gemm_mamf_fraction"]["derived"] and c["gemm_mamf_fraction"]["value"] == pytest.approx(G, rel=1e-9)
    assert c["attention_fraction"]["derived"] and c["attention_fraction"]["value"] == pytest.approx(A, rel=1e-9)
    assert c["nic_efficiency"]["derived"] and c["nic_efficiency"]["value"] == pytest.approx(NIC, rel=1e-9)
    # 100 us gaps make the GPU wait on the host: the span over 6 layer passes (2 layers x fwd 1 + bwd 2)
    assert c["layer_host_s"]["derived"]
    assert c["layer_host_s"]["value"] == pytest.approx(hand["span_s"] / 6, rel=1e-9)
    assert rep["span_s"] == pytest.approx(hand["span_s"], rel=1e-9)
    # what the trace cannot say keeps its default, with the reason
    assert not c["ring_efficiency"]["derived"] and "not derivable" in c["ring_efficiency"]["how"]
    assert not c["hbm_efficiency"]["derived"] and c["hbm_efficiency"]["value"] == DEFAULT.hbm_efficiency
    calib = load_calibration(prof)
    assert calib.gemm_mamf_fraction == pytest.approx(G) and calib.ring_efficiency == DEFAULT.ring_efficiency
    assert yaml.safe_load(prof.read_text())["metadata"]["method"] == "planner calibrate --trace"


# ------------------------------------------------------------------------------- bad input


def _bad_files(tmp: Path) -> dict[str, str]:
    rows = made_up_rows(4)
    mixed = [dict(r) for r in rows[:4]]
    mixed[2]["accelerator"] = "h100-sxm-80gb"
    (tmp / "nokernels.json").write_text(json.dumps({"traceEvents": [
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 5, "pid": 1, "tid": 1}]}))  # fmt: skip
    (tmp / "unknown.yaml").write_text("name: x\nconstants: {gemm_mamf_fraction: 0.9, gemm_fudge: 1.1}\n")
    (tmp / "range.yaml").write_text("name: x\nconstants: {gemm_mamf_fraction: 1.5}\n")
    (tmp / "topkey.yaml").write_text("name: x\nconstant: {gemm_mamf_fraction: 0.9}\n")
    return {
        "two": str(write_csv(tmp / "two.csv", rows[:2])),
        "four": str(write_csv(tmp / "four.csv", rows)),
        "mixed": str(write_csv(tmp / "mixed.csv", mixed)),
        "nokernels": str(tmp / "nokernels.json"),
        "unknown": str(tmp / "unknown.yaml"),
        "range": str(tmp / "range.yaml"),
        "topkey": str(tmp / "topkey.yaml"),
    }


BAD = [
    ("too-few-rows", ["calibrate", "{two}", "--out", "{tmp}/p.yaml"], r"rows: 2 row\(s\).*at least 3"),
    ("mixed-accelerators", ["calibrate", "{mixed}", "--out", "{tmp}/p.yaml"], r"accelerator: .*one profile per accelerator"),
    ("trace-no-kernels", ["calibrate", "--trace", "{nokernels}", "--out", "{tmp}/p.yaml"], r"trace: .*no GPU kernel events"),
    ("no-input", ["calibrate", "--out", "{tmp}/p.yaml"], r"file: "),
    ("profile-unknown-constant", ["simulate", "--calibration", "{unknown}"], r"calibration\.constants\.gemm_fudge: not a calibration constant"),
    ("profile-out-of-range", ["simulate", "--calibration", "{range}"], r"calibration\.constants\.gemm_mamf_fraction: .*less than or equal to 1"),
    ("profile-unknown-key", ["validate", "{four}", "--calibration", "{topkey}"], r"calibration\.constant: unknown key"),
    ("profile-missing", ["search", "--calibration", "{tmp}/nope.yaml"], r"calibration: file not found"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "pattern"), [(a, p) for _, a, p in BAD], ids=[i for i, _, _ in BAD])
def test_bad_input(argv: list[str], pattern: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = {**_bad_files(tmp_path), "tmp": str(tmp_path)}
    rc, out, err = run_cli([a.format(**files) if "{" in a else a for a in argv], capsys)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("planner: error: ") and "internal error" not in lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert out == ""


# ------------------------------------------------------------------------------- the app


def test_app_sidebar_profile_changes_simulate(tmp_path: Path) -> None:
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    prof = tmp_path / "slow.yaml"
    Calibration(name="slow-gemms", gemm_mamf_fraction=0.6).to_yaml(prof)
    at = AppTest.from_string("from planner.app.pages import simulate\nsimulate.render()", default_timeout=60).run()
    base = {m.label: m.value for m in at.metric}["Step time"]
    assert any(c.value == "calibration: default" for c in at.caption)
    at.text_input(key="in_calibration_path").set_value(str(prof)).run()
    assert not at.exception and not at.error
    assert any(c.value == "calibration: slow-gemms" for c in at.caption)
    assert {m.label: m.value for m in at.metric}["Step time"] != base
    at.text_input(key="in_calibration_path").set_value(str(tmp_path / "nope.yaml")).run()
    assert not at.exception
    assert len(at.error) == 1 and "calibration" in at.error[0].value
