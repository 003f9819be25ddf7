"""What-if: how MFU holds up for GPT-3 175B from 64 to 8192 H100, with the best layout at each size.

    .venv/bin/pip install -e '.[examples]' && .venv/bin/python examples/mfu_scaling_gpt3_175b.py

A sweep with ``search: true``: at each GPU count planner searches the best layout for a fixed global
batch of 2048 sequences (4M tokens). Results go to examples/out/mfu_scaling.db (rerunning resumes),
the plot to examples/out/mfu_scaling_gpt3_175b.png.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from planner.sweep import run_sweep  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
SPEC = {
    "base": {"model": "gpt3-175b", "accelerator": "h100-sxm-80gb", "global_batch": 2048},
    "axes": {"gpus": [64, 128, 256, 512, 1024, 2048, 4096, 8192]},
    "search": True,
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    _, rows = run_sweep(SPEC, out=OUT / "mfu_scaling.db", progress=True)
    ok = [r for r in rows if r["status"] == "ok"]
    for r in rows:
        lay = f"tp{r.get('layout.tp')} pp{r.get('layout.pp')} vpp{r.get('layout.vpp')} mb{r.get('layout.micro_batch')}"
        if r["status"] == "ok":
            print(f"{r['gpus']:5d} GPUs  MFU {r['mfu']:.1%}  step {r['step_time_s']:.2f} s  {lay}")
        else:
            print(f"{r['gpus']:5d} GPUs  {r['error']}")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["gpus"] for r in ok], [100 * r["mfu"] for r in ok], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("H100 GPUs")
    ax.set_ylabel("MFU of the best layout, %")
    ax.set_title("GPT-3 175B, global batch 2048 x 2048 tokens")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "mfu_scaling_gpt3_175b.png", dpi=120)
    print(f"plot: {OUT / 'mfu_scaling_gpt3_175b.png'}")


if __name__ == "__main__":
    main()
