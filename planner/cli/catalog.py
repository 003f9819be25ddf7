"""``planner catalog``: the accelerators, instances, clusters and models planner knows, as text
tables that fit :data:`WIDTH` columns (long cells end in an ellipsis) or, with ``--json``, whole."""

from __future__ import annotations

import argparse
import json
from typing import Any

from planner.cli.common import add_json_arg

WIDTH = 100
"""Terminal columns a text table may take."""

MIN_COL = 12
"""Narrowest a column is cut to when a table is too wide (its header stays whole)."""

SHORT_HEADERS = {"memory_bandwidth_gb_s": "hbm_gb_s", "attention_figures": "attention", "scale_up_gb_s": "up_gb_s"}
"""Text headers for JSON keys too long for a table line (the JSON keeps the keys)."""


def _tables(what: str | None) -> dict[str, list[dict[str, Any]]]:
    """The rows of each catalog table asked for (all when ``what`` is None)."""
    from planner.costs.kernels import catalog_note
    from planner.hardware import catalog
    from planner.transformer.spec import _preset_data

    cat = catalog()
    tables: dict[str, list[dict[str, Any]]] = {}
    if what in (None, "accelerators"):
        tables["accelerators"] = [
            {
                "id": x.id,
                "name": x.name,
                "bf16_tflops": x.peak_tflops.get("bf16") or x.peak_tflops.get("fp16"),
                "fp8_tflops": x.peak_tflops.get("fp8"),
                "memory_gib": x.memory_gib,
                "memory_bandwidth_gb_s": x.memory_bandwidth_gb_s,
                "scale_up_gb_s": x.scale_up_gb_s,
                "attention_figures": catalog_note(x.id),  # hardware_specs/kernels.yaml, or the default used
            }
            for x in cat.accelerators.values()
        ]
    if what in (None, "instances"):
        tables["instances"] = [
            {
                "id": i.id,
                "provider": i.provider,
                "accelerator": cat.node_types[i.node_type].accelerator,
                "gpus": cat.node_types[i.node_type].gpus_per_node,
                "usd_per_hour": i.usd_per_hour,
                "region": i.region,
                "price_date": i.price_date,
            }
            for i in cat.instances.values()
        ]
    if what in (None, "clusters"):
        tables["clusters"] = []
        for c in cat.clusters.values():
            node = cat.node_type(c.node_type)
            tables["clusters"].append(
                {
                    "id": c.id,
                    "node_type": node.id,
                    "nodes": c.nodes,
                    "gpus": c.nodes * node.gpus_per_node,
                    "description": c.description,
                }
            )
    if what in (None, "models"):
        tables["models"] = []
        from planner.transformer.spec import transformer_from_dict

        for name, d in sorted(_preset_data().items()):
            spec = transformer_from_dict(d)
            tables["models"].append(
                {"id": name, "params_b": round(spec.num_params / 1e9, 2), "layers": spec.num_layers,
                 "hidden": spec.hidden_size, "heads": spec.num_heads, "kv_heads": spec.kv_heads, "seq_len": spec.seq_len}
            )  # fmt: skip
        from planner.recsys.spec import load_recsys, recsys_preset_names

        tables["recsys_models"] = []
        for name in recsys_preset_names():
            rs = load_recsys(name)
            tables["recsys_models"].append(
                {"id": name, "tables": len(rs.tables), "embeddings_gib": round(rs.embedding_bytes / 2**30, 1),
                 "params_b": round(rs.num_params / 1e9, 2)}
            )  # fmt: skip
    return tables


def _fmt(v: Any) -> str:
    """A cell as text: "-" for none, floats short."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _widths(rows: list[dict[str, str]], cols: list[str]) -> dict[str, int]:
    """Column widths: each column's widest cell, the widest cut until the table fits :data:`WIDTH`."""
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in cols}
    while 2 + sum(widths.values()) + 2 * (len(cols) - 1) > WIDTH:
        k = max(cols, key=lambda c: widths[c])
        floor = max(len(k), MIN_COL)
        if widths[k] <= floor:
            break
        over = 2 + sum(widths.values()) + 2 * (len(cols) - 1) - WIDTH
        widths[k] = max(floor, widths[k] - over)
    return widths


def _cut(text: str, width: int) -> str:
    """``text`` in ``width`` characters: whole, or cut with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def format_table(name: str, rows: list[dict[str, Any]]) -> str:
    """One catalog table as text: a title with the row count, a header, one line per row."""
    lines = [f"{name} ({len(rows)})"]
    if rows:
        cols = [SHORT_HEADERS.get(k, k) for k in rows[0]]
        cells = [{SHORT_HEADERS.get(k, k): _fmt(v) for k, v in r.items()} for r in rows]
        widths = _widths(cells, cols)
        lines.append(("  " + "  ".join(k.ljust(widths[k]) for k in cols)).rstrip())
        lines += [("  " + "  ".join(_cut(c[k], widths[k]).ljust(widths[k]) for k in cols)).rstrip() for c in cells]
    return "\n".join(lines) + "\n"


def run(a: argparse.Namespace) -> int:
    """Print the tables asked for."""
    tables = _tables(a.what)
    if a.json:
        print(json.dumps(tables, indent=2))
        return 0
    for name, rows in tables.items():
        print(format_table(name, rows))
    return 0


def add_command(sub: Any) -> None:
    """The ``catalog`` subcommand."""
    cat = sub.add_parser("catalog", help="list accelerators, instances, clusters and models")
    cat.add_argument("what", nargs="?", choices=("accelerators", "instances", "clusters", "models"))
    add_json_arg(cat, "the tables")
    cat.set_defaults(func=run)
