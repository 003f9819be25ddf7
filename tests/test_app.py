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
    assert m["Step time"].endswith((" s", " ms")) and m["MFU"].endswith(" %") and m["HFU"].endswith(" %")
    assert "TFLOP/s per GPU" in m and "$/M tokens" in m
    assert m["$/hour"].startswith("$")  # the API's default hardware is a priced instance
    assert len(at.get("download_button")) == 2
    assert not at.warning  # the default fits


def test_simulate_widgets_change_metrics() -> None:
    at = page("simulate").run()
    base = metrics(at)
    at.number_input(key="in_gpus").set_value(16).run()
    assert not at.exception and not at.error
    more = metrics(at)
    assert more["Tokens/s"] != base["Tokens/s"]
    # the global batch planner chose is kept: twice the GPUs, the same batch, a shorter step
    assert at.number_input(key="sim_global_batch").value > 0
    at.selectbox(key="sim_precision").select("fp8").run()
    assert not at.exception and not at.error
    assert metrics(at)["Step time"] != more["Step time"]
    at.radio(key="in_hw_kind").set_value("accelerator").run()
    assert not at.exception and not at.error
    assert metrics(at)["$/hour"] == "—"
    at.selectbox(key="sim_precision").select("bf16")  # the A100 cluster has no FP8
    at.number_input(key="sim_global_batch").set_value(0)  # 0: planner chooses again for the cluster
    at.radio(key="in_hw_kind").set_value("cluster").run()
    assert not at.exception and not at.error and "Step time" in metrics(at)


def test_simulate_bad_layout_is_one_error_line_shown_literally() -> None:
    from planner import simulate
    from planner.app.common import escape_md
    from planner.errors import PlannerInputError

    at = page("simulate").run()
    at.number_input(key="sim_tp").set_value(3).run()
    assert not at.exception
    with pytest.raises(PlannerInputError) as e:
        simulate(gpus=8, tp=3)
    assert len(at.error) == 1 and at.error[0].value == escape_md(str(e.value))
    assert "\\*" in at.error[0].value  # tp*pp*cp: the stars are escaped, not italics


def test_escape_md_round_trips_through_markdown() -> None:
    from planner.app.common import escape_md

    text = "tp: tp*pp*cp = 2*3*1 = 6 must divide [8] GPUs_x (a) #1 <b> `c` $5 ~x~ | 1. -"
    escaped = escape_md(text)
    # every special character is preceded by a backslash; removing them gives the text back
    assert escaped.replace("\\", "") == text.replace("\\", "")
    assert "*" not in escaped.replace("\\*", "")


def test_simulate_does_not_fit_greys_and_finds_a_layout() -> None:
    at = page("simulate")
    at.session_state["sim_pending"] = {"in_model": "gpt3-13b", "in_hw_kind": "accelerator",
                                       "in_accelerator": "a100-sxm-40gb", "in_gpus": 8}  # fmt: skip
    at.run()
    assert not at.exception
    assert any("Does not fit" in e.value for e in at.error)
    at.button(key="sim_fit_btn").click().run()
    assert not at.exception
    assert not any("Does not fit" in e.value for e in at.error), [e.value for e in at.error]
    assert at.number_input(key="sim_tp").value * at.number_input(key="sim_pp").value > 1 or (
        at.selectbox(key="sim_zero_stage").value > 0
    )


def test_simulate_a_recommendation_model() -> None:
    at = page("simulate").run()
    at.selectbox(key="in_model").select("dlrm-dcnv2-mlperf").run()
    assert not at.exception and not at.error
    m = metrics(at)
    assert "Samples/s" in m and "$/B samples" in m and m["Dense MFU"].endswith(" %")
    assert m["Step time"].endswith(" ms")  # a small step reads in ms, not 0.0077...
    base = m["Samples/s"]
    at.selectbox(key="sim_rs_sharding").select("row").run()
    assert not at.exception and not at.error
    assert metrics(at)["Samples/s"] != base


SWITCHING = """
import streamlit as st
from planner.app.inputs import keep_inputs
from planner.app.pages import plan, simulate
keep_inputs()
(plan if st.session_state.get("which") == "plan" else simulate).render()
"""


def test_inputs_are_kept_across_pages() -> None:
    at = AppTest.from_string(SWITCHING, default_timeout=TIMEOUT).run()
    at.number_input(key="in_gpus").set_value(16).run()
    at.number_input(key="sim_tp").set_value(2).run()
    at.session_state["which"] = "plan"
    at.run()
    assert not at.exception and at.number_input(key="in_gpus").value == 16
    at.session_state["which"] = "simulate"
    at.run()
    assert not at.exception and at.number_input(key="sim_tp").value == 2


def test_plan_runs_on_the_button_and_sends_a_row_to_simulate() -> None:
    at = page("plan").run()
    assert not at.exception and not at.error
    assert not at.dataframe and at.info  # nothing runs before the button
    at.button(key="plan_run_btn").click().run()
    assert not at.exception and not at.error
    assert len(at.dataframe) >= 2
    text = " ".join(c.value for c in at.caption) + " ".join(i.value for i in at.info)
    assert "8, 4, 2" in text  # fewest GPUs 0: a quarter, really searched
    assert "20 tokens per parameter" in text  # tokens 0: says what the run is priced at
    alts = at.dataframe[1].value
    assert not (alts["slower_by"] == 0).any()  # no alternative equal to the winner
    at.number_input(key="plan_gb").set_value(512).run()
    assert any("inputs changed" in w.value for w in at.warning)  # no search on every keystroke
    at.button(key="plan_to_sim_btn").click().run()
    assert not at.exception
    pending = at.session_state["sim_pending"]
    assert pending["in_model"] == "gpt3-1.7b" and pending["in_gpus"] >= 1 and pending["tp"] >= 1


def test_compare_runs_on_the_button_with_best_layouts() -> None:
    at = page("compare").run()
    assert not at.exception and not at.error and not at.dataframe
    at.button(key="cmp_run_btn").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert set(table["instance"]) == {"p5.48xlarge", "p4d.24xlarge"}
    assert table["best_layout"].str.startswith("tp").all() and (table["usd"] > 100).all()
    prices = at.dataframe[1].value
    assert prices["price_date"].notna().all() and prices["price_source"].notna().all()
    at.multiselect(key="cmp_instances").set_value([]).run()
    at.button(key="cmp_run_btn").click().run()
    assert not at.exception and len(at.error) == 1


def test_sweeps_define_and_run(tmp_path: Path) -> None:
    at = page("sweeps").run()
    assert not at.exception and not at.error
    at.text_input(key="sweep_vals0").input("8, 16").run()
    at.text_input(key="sweep_vals1").input("1, 2").run()
    at.button(key="sweep_run_btn").click().run()
    assert not at.exception and not at.error
    assert len(at.dataframe[0].value) == 4
    at.selectbox(key="sweep_colour").select("micro_batch").run()
    assert not at.exception and not at.error


def test_sweeps_open_a_store_read_only(tmp_path: Path) -> None:
    from planner.sweep import run_sweep

    out = tmp_path / "r.db"
    base = {"model": "gpt3-1.7b", "accelerator": "a100-sxm-80gb", "global_batch": 64}
    run_sweep({"base": base, "axes": {"gpus": [8, 16], "tp": [1, 3]}}, out=out, workers=1)
    before = out.read_bytes()
    at = page("sweeps").run()
    at.text_input(key="sweep_path").input(str(out)).run()
    assert not at.exception and not at.error
    assert len(at.dataframe[0].value) == 4
    at.selectbox(key="sweep_y").select("mfu").run()
    at.selectbox(key="sweep_colour").select("tp").run()
    assert not at.exception and not at.error
    assert out.read_bytes() == before
    notes = tmp_path / "notes.txt"
    notes.write_text("")
    at.text_input(key="sweep_path").input(str(notes)).run()
    assert not at.exception and len(at.error) == 1
    assert notes.read_text() == ""  # not turned into a database
    at.text_input(key="sweep_path").input(str(tmp_path / "missing.db")).run()
    assert not at.exception and len(at.error) == 1


def test_catalog_renders_filters_and_bad_spec_is_an_error() -> None:
    at = page("catalog").run()
    assert not at.exception and not at.error
    assert len(at.tabs) == 5
    for df in at.dataframe:
        assert not df.value.map(lambda v: isinstance(v, (dict, list))).any().any()
    n = len(at.dataframe[0].value)
    at.text_input(key="cat_filter").input("h100").run()
    assert 0 < len(at.dataframe[0].value) < n
    at.text_area(key="cat_text").input("name: tiny\nnum_layers: -3\nhidden_size: 64\nnum_heads: 4\n").run()
    assert not at.exception
    assert len(at.error) == 1 and "num\\_layers" in at.error[0].value and "check-" not in at.error[0].value
    at.text_area(key="cat_text").input("name: tiny\nnum_layers: 2\nhidden_size: 64\nnum_heads: 4\n").run()
    assert not at.exception and not at.error and at.success


def test_catalog_model_spec_goes_to_simulate_by_its_name() -> None:
    at = page("catalog").run()
    at.text_area(key="cat_text").input(
        "name: tiny\nnum_layers: 4\nhidden_size: 512\nnum_heads: 8\nseq_len: 1024\nvocab_size: 32000\n"
    ).run()
    assert not at.exception and not at.error
    at.button(key="cat_use_model_btn").click().run()
    assert not at.exception
    pending = at.session_state["sim_pending"]
    assert pending["in_model"] == "tiny"
    sim = page("simulate")
    sim.session_state["sim_pending"] = pending
    sim.session_state["custom_models"] = at.session_state["custom_models"]
    sim.run()
    assert not sim.exception and not sim.error
    assert "Step time" in metrics(sim) and sim.caption[0].value.startswith("tiny on")


def test_catalog_bad_upload_is_an_error() -> None:
    at = page("catalog").run()
    at.selectbox(key="cat_kind").select("accelerator").run()
    at.file_uploader(key="cat_upload").set_value(("bad.yaml", b"id: [x\n", "application/x-yaml")).run()
    assert not at.exception
    assert len(at.error) == 1 and "bad\\.yaml" in at.error[0].value
    at.file_uploader(key="cat_upload").set_value(("acc.yaml", b"id: x\nmemory_gib: -1\n", "application/x-yaml")).run()
    assert not at.exception and len(at.error) == 1


def test_tables_have_readable_headers_units_and_no_gaps() -> None:
    import pandas as pd

    from planner.app.tables import prepare

    df = pd.DataFrame({"usd": [19186.8626, None], "mfu": [0.562, 0.5], "step_time_s": [0.0077, 12.0],
                       "instance": ["p5", None], "memory_bandwidth_gb_s": [3350.0, 2039.0]})  # fmt: skip
    shown, config = prepare(df)
    assert [config[c]["label"] for c in df.columns] == [
        "Run cost ($)", "MFU", "Step time", "Instance", "Memory bandwidth (GB/s)"]  # fmt: skip
    assert list(shown["usd"]) == ["$19,187", "—"] and list(shown["step_time_s"]) == ["7.7 ms", "12 s"]
    assert list(shown["instance"]) == ["p5", "—"] and list(shown["mfu"]) == pytest.approx([56.2, 50.0])


def test_a_hugging_face_config_upload_becomes_the_model() -> None:
    import json

    config = {"model_type": "llama", "_name_or_path": "someone/tiny-llama", "hidden_size": 512,
              "intermediate_size": 1376, "num_hidden_layers": 4, "num_attention_heads": 8,
              "num_key_value_heads": 8, "vocab_size": 32000, "max_position_embeddings": 2048}  # fmt: skip
    at = page("simulate").run()
    at.file_uploader(key="in_hf_upload").set_value(("config.json", json.dumps(config).encode(), "application/json"))
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="in_model").value == "tiny-llama"
    assert at.caption[0].value.startswith("tiny\\-llama on") and "Step time" in metrics(at)
    at.file_uploader(key="in_hf_upload").set_value(("x.json", b'{"model_type": "llama"}', "application/json")).run()
    assert not at.exception and len(at.error) == 1 and "hidden" in at.error[0].value


def test_simulate_tp_across_nodes_is_noted_and_out_of_memory_is_greyed() -> None:
    at = page("simulate")
    at.session_state["sim_pending"] = {"in_model": "gpt3-175b", "in_gpus": 16, "tp": 16, "recompute": "full"}
    at.run()
    assert not at.exception
    assert any("spans 2 nodes of 8 GPUs" in w.value for w in at.warning)
    assert any("Does not fit" in e.value for e in at.error)
    assert at.get("html") and "sim_metrics_oom" in at.get("html")[0].proto.body


def test_simulate_shows_the_band_and_a_framework_changes_the_step() -> None:
    at = page("simulate").run()
    assert any("Step time band" in c.value and "comparable published runs" in c.value for c in at.caption)
    base = metrics(at)["Step time"]
    # metaseq's launcher recomputes every layer under FSDP with unfused attention: a slower step than
    # planner's defaults (torchtitan's FA2 and ZeRO 3 on one 8-GPU node differ from them by under 1 ms)
    at.selectbox(key="sim_framework").select("metaseq").run()
    assert not at.exception and not at.error
    assert metrics(at)["Step time"] != base
