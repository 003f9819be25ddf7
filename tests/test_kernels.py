"""The measured attention-kernel table (hardware_specs/kernels.yaml): every figure sourced and dated,
variants map onto catalog ids, and an accelerator without a figure names the default it uses."""

from __future__ import annotations

import math

import pytest
import yaml

import planner
from planner.calibration import DEFAULT
from planner.costs.compute import ComputeModel
from planner.costs.kernels import attention_figure, catalog_note, combined_tflops, table_path
from planner.hardware import catalog


def _raw() -> dict:
    return yaml.safe_load(table_path().read_text())


def test_every_figure_has_a_source_and_a_date() -> None:
    raw = _raw()
    assert raw["default"]["source"] and 0 < raw["default"]["of_gemm_ceiling"] <= 1
    for entry in raw["attention"]:
        for kernel, fig in entry["kernels"].items():
            assert fig.get("source", "").strip(), (entry["accelerator"], kernel)
            assert str(fig.get("date", "")).strip(), (entry["accelerator"], kernel)
            assert "fwd_bwd_tflops" in fig or {"fwd_tflops", "bwd_tflops"} <= set(fig)


def test_table_names_only_catalog_accelerators() -> None:
    ids = set(catalog().accelerators)
    for entry in _raw()["attention"]:
        assert {entry["accelerator"], *entry.get("applies_to", [])} <= ids


def test_combined_rate_weights_the_backward() -> None:
    """Forward F at 400, backward 2.5F at 200: 3.5F in F/400 + 2.5F/200 -> 233.3 TFLOP/s."""
    assert math.isclose(combined_tflops({"fwd_tflops": 400, "bwd_tflops": 200}), 3.5 / (1 / 400 + 2.5 / 200))
    assert combined_tflops({"fwd_bwd_tflops": 150}) == 150


def test_unmeasured_accelerator_names_its_default() -> None:
    fig = attention_figure("mi300x-192gb", "fa2")
    assert fig.tflops is None and "no published fa2 benchmark for mi300x-192gb" in fig.basis
    # a kernel the accelerator has no figure for (FlashAttention-3 is Hopper-only) says so too
    assert attention_figure("a100-sxm-80gb", "fa3").tflops is None
    assert catalog_note("mi300x-192gb").startswith("default: 0.8057 x GEMM ceiling")
    assert catalog_note("h200-sxm-141gb") == "fa2,fa3,cudnn (as h100-sxm-80gb)"
    r = planner.simulate("llama3-8b", accelerator="mi300x-192gb", gpus=8, global_batch=16)
    assert "no published fa2 benchmark" in r.scenario["attention_kernel"]


def test_same_die_variant_shares_the_figure() -> None:
    h800 = attention_figure("h800-sxm-80gb", "cudnn")
    assert h800.tflops == attention_figure("h100-sxm-80gb", "cudnn").tflops and "same die" in h800.basis


@pytest.mark.parametrize("acc", ["a100-sxm-80gb", "h100-sxm-80gb", "mi300x-192gb"])
def test_compute_prices_attention_from_the_table(acc: str) -> None:
    a = catalog().accelerators[acc]
    comp = ComputeModel(a, DEFAULT, "bf16")
    fig = attention_figure(acc, "flash")
    if fig.tflops is not None:
        assert math.isclose(comp.attention_flops("flash"), fig.tflops * 1e12 * DEFAULT.attention_fraction)
    else:  # the default: a ratio of this accelerator's own GEMM ceiling
        assert comp.attention_flops("flash") < comp.gemm_ceiling


def test_hopper_kernels_rank_as_measured() -> None:
    comp = ComputeModel(catalog().accelerators["h100-sxm-80gb"], DEFAULT, "bf16")
    fa2, cudnn, fa3 = (comp.attention_flops(k) for k in ("fa2", "cudnn", "fa3"))
    assert fa2 < cudnn < fa3
    assert comp.attention_s(1e12, 0.0, "fa3") < comp.attention_s(1e12, 0.0, "fa2")
