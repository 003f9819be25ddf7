"""What-if: DLRM-DCNv2 (MLPerf) with table-wise against row-wise sharding, 8 to 128 H100.

    .venv/bin/pip install -e '.[examples]' && .venv/bin/python examples/dlrm_table_vs_row.py

A sweep over GPUs x sharding at 2,112 samples per GPU (MLPerf's 135,168 on 64 GPUs); results in
examples/out/dlrm_sharding.db, plot in examples/out/dlrm_table_vs_row.png.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from planner.sweep import run_sweep  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
GPUS = [8, 16, 32, 64, 128]
SPEC = {
    "base": {"model": "dlrm-dcnv2-mlperf", "accelerator": "h100-sxm-80gb"},
    "axes": {"gpus": GPUS, "global_batch": [2112 * g for g in GPUS]},
    "mode": "zip",
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for sharding in ("table", "row"):
        spec = {**SPEC, "base": {**SPEC["base"], "sharding": sharding}}
        _, rows = run_sweep(spec, out=OUT / "dlrm_sharding.db")
        ok = [r for r in rows if r["status"] == "ok"]
        for r in rows:
            msg = f"{r['samples_per_s'] / 1e6:6.2f} M samples/s" if r["status"] == "ok" else r["error"]
            print(f"{sharding:5s} {r['gpus']:4d} GPUs  {msg}")
        ax.plot([r["gpus"] for r in ok], [r["samples_per_s"] / 1e6 for r in ok], marker="o", label=f"{sharding}-wise")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("H100 GPUs (2,112 samples per GPU)")
    ax.set_ylabel("million samples/s")
    ax.set_title("DLRM-DCNv2 (MLPerf): embedding sharding")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "dlrm_table_vs_row.png", dpi=120)
    print(f"plot: {OUT / 'dlrm_table_vs_row.png'}")


if __name__ == "__main__":
    main()
