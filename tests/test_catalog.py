"""The hardware catalog in hardware_specs/: it loads, has the entries planner relies on, and every
figure carries a source and a date."""

from __future__ import annotations

import re

import pytest

from planner.calibration import DEFAULT
from planner.costs.compute import ComputeModel
from planner.errors import PlannerInputError
from planner.hardware import catalog

# Accelerator ids the validation data names (shared/validation/README.md).
VALIDATION_ACCELERATORS = [
    "a100-sxm-40gb",
    "a100-sxm-80gb",
    "h100-sxm-80gb",
    "h200-sxm-141gb",
    "b200-sxm-180gb",
    "v100-sxm2-32gb",
]

# Accelerators the catalog must cover (the list).
REQUIRED_ACCELERATORS = [
    "v100-sxm2-32gb",
    "v100-sxm2-16gb",
    "a100-sxm-40gb",
    "a100-sxm-80gb",
    "h100-sxm-80gb",
    "h200-sxm-141gb",
    "b200-sxm-180gb",
    "gb200-186gb",
    "mi300x-192gb",
    "l4-24gb",
    "l40s-48gb",
    "a10g-24gb",
    "tpu-v5p",
    "trainium2",
    "gaudi3",
]

PRICED_INSTANCES = ["p5.48xlarge", "p4d.24xlarge", "a3-highgpu-8g"]

DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")  # ISO date or YYYY-MM


@pytest.fixture(scope="module")
def cat():
    return catalog()


@pytest.mark.parametrize("acc_id", sorted(set(VALIDATION_ACCELERATORS + REQUIRED_ACCELERATORS)))
def test_required_accelerators_exist(cat, acc_id):
    acc = cat.accelerator(acc_id)
    assert acc.id == acc_id
    assert acc.peak_tflops


@pytest.mark.parametrize("acc_id", VALIDATION_ACCELERATORS)
def test_validation_accelerators_have_default_node(cat, acc_id):
    acc = cat.accelerator(acc_id)
    assert acc.default_node in cat.node_types


def test_volta_has_fp16_but_no_bf16(cat):
    v100 = cat.accelerator("v100-sxm2-32gb")
    assert v100.peak_tflops["fp16"] == 125
    assert "bf16" not in v100.peak_tflops


def test_mamf_fractions(cat):
    assert cat.accelerator("a100-sxm-80gb").gemm_peak_fraction["bf16"] == pytest.approx(0.869)
    h100 = cat.accelerator("h100-sxm-80gb")
    assert h100.gemm_peak_fraction["bf16"] == pytest.approx(0.803)
    assert h100.gemm_peak_fraction["fp8"] == pytest.approx(0.709)


def test_gemm_fraction_is_per_precision(cat):
    """V100's measured SGEMM fraction (DeepBench) prices its fp32 CUDA-core GEMMs only: its fp16
    tensor-core GEMMs keep the default, and A100's bf16 MAMF covers fp16 but neither tf32 nor fp32."""
    v100 = cat.accelerator("v100-sxm2-32gb")
    assert v100.gemm_peak_fraction == {"fp32": pytest.approx(0.941)}
    assert any("DeepBench" in s for s in v100.sources)
    assert cat.accelerator("v100-sxm2-16gb").gemm_peak_fraction == v100.gemm_peak_fraction
    m, default = DEFAULT.gemm_mamf_fraction, DEFAULT.gemm_default_fraction
    assert ComputeModel(v100, DEFAULT, "fp32").gemm_ceiling == pytest.approx(15.7e12 * 0.941 * m)
    assert ComputeModel(v100, DEFAULT, "fp16").gemm_ceiling == pytest.approx(125e12 * default * m)
    a100 = cat.accelerator("a100-sxm-80gb")
    assert ComputeModel(a100, DEFAULT, "fp16").gemm_ceiling == pytest.approx(312e12 * 0.869 * m)
    assert ComputeModel(a100, DEFAULT, "tf32").gemm_ceiling == pytest.approx(156e12 * default * m)
    assert ComputeModel(a100, DEFAULT, "fp32").gemm_ceiling == pytest.approx(19.5e12 * default * m)


def test_instances_across_big_three_clouds(cat):
    providers = {"aws", "gcp", "azure"}
    big3 = [i for i in cat.instances.values() if i.provider in providers]
    assert len(big3) >= 20
    assert {i.provider for i in big3} == providers


@pytest.mark.parametrize("inst_id", PRICED_INSTANCES)
def test_key_instances_are_priced(cat, inst_id):
    inst = cat.instance(inst_id)
    assert inst.usd_per_hour is not None and inst.usd_per_hour > 0


def test_every_entry_has_sources_and_date(cat):
    entries = [*cat.accelerators.values(), *cat.node_types.values(), *cat.clusters.values()]
    for e in entries:
        assert e.sources and all(s.strip() for s in e.sources), e.id
        assert DATE.match(e.date), (e.id, e.date)


def test_every_instance_has_price_source_and_date(cat):
    for i in cat.instances.values():
        assert i.price_source.strip(), i.id
        assert DATE.match(i.price_date), (i.id, i.price_date)
        if i.usd_per_hour is None:
            assert i.notes.strip(), f"{i.id}: an unpriced instance must say why in notes"


def test_required_clusters(cat):
    for cid in ["dgx-a100-superpod", "dgx-h100-superpod", "selene", "vtrain-a100", "gb200-nvl72-rack"]:
        assert cid in cat.clusters
    vtrain = cat.node_type(cat.cluster("vtrain-a100").node_type)
    assert vtrain.scale_out_gbps_per_gpu == pytest.approx(100)
    assert cat.cluster("selene").nodes == 560


@pytest.mark.parametrize(
    "text",
    [
        "id: broken\nname: [unclosed\n",  # YAML syntax error
        "id: broken\nname: Broken\nvendor: X\n",  # valid YAML, missing required fields
        "- just\n- a list\n",  # not a mapping
    ],
)
def test_malformed_user_yaml_is_a_user_error(cat, tmp_path, text):
    path = tmp_path / "my_accelerator.yaml"
    path.write_text(text)
    with pytest.raises(PlannerInputError):
        cat.accelerator(str(path))
