"""What-if: the cheapest cloud instance to train Llama 3 70B on 15T tokens.

    .venv/bin/pip install -e '.[examples]' && .venv/bin/python examples/cheapest_llama3_70b.py

For each priced 8-GPU H100/H200/A100 instance, planner searches the best layout on 512 GPUs, prices
the whole run (failures and checkpoints included) and ranks by dollars. Writes
examples/out/cheapest_llama3_70b.png and prints the table.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from planner.search import compare  # noqa: E402

INSTANCES = [
    "p5.48xlarge",
    "p5en.48xlarge",
    "p4de.24xlarge",
    "a3-megagpu-8g",
    "a3-ultragpu-8g",
    "Standard_ND96isr_H100_v5",
]
OUT = Path(__file__).resolve().parent / "out" / "cheapest_llama3_70b.png"


def main() -> None:
    res = compare("llama3-70b", instances=INSTANCES, gpus=512, tokens=15e12, global_batch=2048)
    rows = [r for r in res.results if r.fits and r.run is not None and r.run.usd is not None]
    print(f"{'instance':28s} {'layout':34s} {'days':>7s} {'$M':>8s} {'$/M tok':>8s}  price date")
    for r in rows:
        lay = r.layout
        desc = (
            f"tp{lay.tp} pp{lay.pp} vpp{lay.vpp} mb{lay.micro_batch} {lay.recompute} z{lay.zero_stage}" if lay else ""
        )
        print(
            f"{r.instance:28s} {desc:34s} {r.run.wall_days:7.1f} {r.run.usd / 1e6:8.2f} {r.usd_per_million_tokens:8.3f}  {r.price_date}"
        )
    for r in res.results:
        if not r.fits:
            print(f"{r.instance:28s} not priced or does not fit: {r.reason}")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in rows:
        ax.scatter(r.run.wall_days, r.run.usd / 1e6, s=60)
        ax.annotate(
            r.instance, (r.run.wall_days, r.run.usd / 1e6), textcoords="offset points", xytext=(5, 5), fontsize=8
        )
    ax.set_xlabel("days to train 15T tokens on 512 GPUs (failures and checkpoints included)")
    ax.set_ylabel("cost, million USD (on-demand list price)")
    ax.set_title("Llama 3 70B: time against cost per instance type")
    ax.grid(alpha=0.3)
    OUT.parent.mkdir(exist_ok=True)
    fig.tight_layout()
    fig.savefig(OUT, dpi=120)
    print(f"plot: {OUT}")


if __name__ == "__main__":
    main()
