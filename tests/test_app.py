"""The Streamlit app: every page renders, widgets change the figures, user mistakes are one error line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60


def page(name: str) -> AppTest:
    return AppTest.from_string(f"from planner.app.pages import {name}\n{name}.render()", default_timeout=TIMEOUT)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_simulate_default_render_and_time() -> None:
    t0 = time.perf_counter()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    elapsed = time.perf_counter() - t0
    print(f"\napp.py default Simulate render: {elapsed:.2f} s (cold, simulation included)")
    assert not at.exception
    assert not at.error
    m = metrics(at)
    assert m["Step time"].endswith(" s") and m["MFU"].endswith(" %")
    assert "Memory peak / capacity" in m and "$/M tokens" in m
    assert len(at.get("download_button")) == 2
    assert not at.warning  # the default fits


def test_simulate_widgets_change_metrics() -> None:
    at = page("simulate").run()
    base = metrics(at)
    at.number_input(key="sim_gpus").set_value(16).run()
    assert not at.exception and not at.error
    more = metrics(at)
    assert more["Tokens/s"] != base["Tokens/s"]
    at.selectbox(key="sim_precision").select("fp8").run()
    assert not at.exception and not at.error
    assert metrics(at)["Step time"] != more["Step time"]
    # an instance brings a price
    at.radio(key="sim_hw_kind").set_value("instance").run()
    assert not at.exception and not at.error
    assert metrics(at)["$/hour"] != "n/a"


def test_simulate_bad_layout_is_one_error_line() -> None:
    at = page("simulate").run()
    at.number_input(key="sim_tp").set_value(3).run()
    assert not at.exception
    assert len(at.error) == 1 and "\n" not in at.error[0].value and "tp" in at.error[0].value


def test_simulate_does_not_fit_warns() -> None:
    at = page("simulate")
    at.session_state["sim_pending"] = {"model": "gpt3-175b", "gpus": 8}
    at.run()
    assert not at.exception and not at.error
    assert any("Does not fit" in w.value for w in at.warning)


def test_simulate_a_recommendation_model() -> None:
    at = page("simulate").run()
    at.selectbox(key="sim_model").select("dlrm-dcnv2-mlperf").run()
    assert not at.exception and not at.error
    m = metrics(at)
    assert "Samples/s" in m and "$/B samples" in m and m["Dense MFU"].endswith(" %")
    base = m["Samples/s"]
    at.selectbox(key="sim_rs_sharding").select("row").run()
    assert not at.exception and not at.error
    assert metrics(at)["Samples/s"] != base


def test_plan_renders_and_sends_a_row_to_simulate() -> None:
    at = page("plan").run()
    assert not at.exception and not at.error
    assert len(at.dataframe) >= 1
    at.button(key="plan_to_sim").click().run()
    assert not at.exception
    pending = at.session_state["sim_pending"]
    assert pending["model"] == "gpt3-1.7b" and pending["gpus"] >= 1 and pending["tp"] >= 1


def test_compare_renders_and_empty_choice_is_an_error() -> None:
    at = page("compare").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert set(table["instance"]) == {"p5.48xlarge", "p4d.24xlarge"}
    assert table["price_date"].notna().all() and table["price_source"].notna().all()
    at.multiselect(key="cmp_instances").set_value([]).run()
    assert not at.exception and len(at.error) == 1


def test_sweeps_open_a_store(tmp_path: Path) -> None:
    from planner.sweep import run_sweep

    out = tmp_path / "r.db"
    base = {"model": "gpt3-1.7b", "accelerator": "a100-sxm-80gb", "global_batch": 64}
    run_sweep({"base": base, "axes": {"gpus": [8, 16], "tp": [1, 3]}}, out=out, workers=1)
    at = page("sweeps").run()
    assert not at.exception and at.info  # nothing opened yet
    at.text_input(key="sweep_path").input(str(out)).run()
    assert not at.exception and not at.error
    assert len(at.dataframe[0].value) == 4
    at.selectbox(key="sweep_y").select("mfu").run()
    at.selectbox(key="sweep_colour").select("tp").run()
    assert not at.exception and not at.error
    at.text_input(key="sweep_path").input(str(tmp_path / "missing.db")).run()
    assert not at.exception and len(at.error) == 1


def test_catalog_renders_and_bad_spec_is_an_error() -> None:
    at = page("catalog").run()
    assert not at.exception and not at.error
    assert len(at.tabs) == 5
    at.text_area(key="cat_text").input("name: tiny\nnum_layers: -3\nhidden_size: 64\nnum_heads: 4\n").run()
    assert not at.exception
    assert len(at.error) == 1 and "num_layers" in at.error[0].value and "planner-upload" not in at.error[0].value
    at.text_area(key="cat_text").input("name: tiny\nnum_layers: 2\nhidden_size: 64\nnum_heads: 4\n").run()
    assert not at.exception and not at.error and at.success


@pytest.mark.skipif(not hasattr(AppTest, "file_uploader"), reason="AppTest drives file uploads from streamlit 1.5x")
def test_catalog_model_spec_goes_to_simulate() -> None:
    at = page("catalog").run()
    at.text_area(key="cat_text").input(
        "name: tiny\nnum_layers: 4\nhidden_size: 512\nnum_heads: 8\nseq_len: 1024\nvocab_size: 32000\n"
    ).run()
    assert not at.exception and not at.error
    at.button(key="cat_use_model").click().run()
    assert not at.exception
    pending = at.session_state["sim_pending"]
    assert pending["model"].endswith(".yaml")
    sim = page("simulate")
    sim.session_state["sim_pending"] = pending
    sim.run()
    assert not sim.exception and not sim.error
    assert "Step time" in metrics(sim)


def test_catalog_bad_upload_is_an_error() -> None:
    at = page("catalog").run()
    at.selectbox(key="cat_kind").select("accelerator").run()
    at.file_uploader(key="cat_upload").set_value(("bad.yaml", b"id: [x\n", "application/x-yaml")).run()
    assert not at.exception
    assert len(at.error) == 1 and "bad.yaml" in at.error[0].value
    at.file_uploader(key="cat_upload").set_value(("acc.yaml", b"id: x\nmemory_gib: -1\n", "application/x-yaml")).run()
    assert not at.exception and len(at.error) == 1
