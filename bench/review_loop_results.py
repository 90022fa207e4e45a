"""The review-loop benchmark's results: the per-tool table, the targets, the plot, the files."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.review_loop_data import all_tools

TARGETS = {"min_iou": 0.90, "min_margin_over_peer": 0.10, "max_original_iou_drop": 0.002,
           "max_job_seconds": 600.0}


def summarise(rows: list[dict]) -> list[dict]:
    """Per tool and N: IoU of production and the peer, the margin, the training tools' loss."""
    table = []
    for row in rows:
        base = row["zero_shot"]
        for step in row["steps"]:
            fine, peer = step["production"]["tool"]["iou"], step["peer"]["iou"]
            now = (step.get("production_untagged_now") or {}).get("original_untagged")
            drop = max(base[k]["iou"] - (now if k == "original_untagged" and now else
                                         step["production"][k])["iou"]
                       for k in ("original_tagged", "original_untagged"))
            table.append({"tool": row["tool"], "n": step["n"], "zero_shot_iou": base["tool"]["iou"],
                          "iou": fine, "epe_mean_nm": step["production"]["tool"]["epe_mean_nm"],
                          "candidate_iou": (step.get("candidate") or {}).get("tool", {}).get("iou"),
                          "peer_iou": peer, "margin": round(fine - peer, 4),
                          "original_iou_drop": round(drop, 4),
                          "job_seconds": step["job"]["wall_seconds"],
                          "decision": step["job"]["decision"]})
    return table


def targets_met(table: list[dict]) -> dict:
    """Which tools meet the issue's targets at the largest N."""
    last = max(r["n"] for r in table)
    met = {}
    for r in (r for r in table if r["n"] == last):
        met[r["tool"]] = bool(r["iou"] >= TARGETS["min_iou"]
                              and r["margin"] >= TARGETS["min_margin_over_peer"]
                              and r["original_iou_drop"] <= TARGETS["max_original_iou_drop"]
                              and r["job_seconds"] <= TARGETS["max_job_seconds"])
    return met


def plot(table: list[dict], out: Path) -> None:
    """IoU against N per tool: the fine-tuned production (solid) and the peer (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tools = list(dict.fromkeys(r["tool"] for r in table))
    figure, axis = plt.subplots(figsize=(9, 5))
    colours = plt.get_cmap("tab10")
    for index, tool in enumerate(tools):
        rows = [r for r in table if r["tool"] == tool]
        ns = [0] + [r["n"] for r in rows]
        axis.plot(ns, [rows[0]["zero_shot_iou"]] + [r["iou"] for r in rows], "o-",
                  color=colours(index), label=f"{tool}")
        axis.plot([r["n"] for r in rows], [r["peer_iou"] for r in rows], "x--",
                  color=colours(index), alpha=0.7)
    axis.axhline(TARGETS["min_iou"], color="grey", lw=0.8, ls=":")
    axis.set(xlabel="corrected images N", ylabel="held-out IoU on the tool",
             title="review loop per tool: fine-tuned production (solid) vs from-scratch peer "
                   "(dashed)", ylim=(-0.02, 1.02))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2, loc="lower right")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def finite(value: object) -> object:
    """JSON-safe copy: NaN and ±inf (e.g. EPE with no predicted edge) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def markdown_table(table: list[dict]) -> str:
    """The per-tool table as Markdown (docs/review_loop.md and the README take it as is)."""
    lines = ["| tool | N | zero-shot IoU | production IoU after the job | mean EPE (nm) | candidate "
             "IoU | peer IoU | margin | training tools' IoU drop | job (s) | gate |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        epe = r["epe_mean_nm"]
        lines.append(f"| {r['tool']} | {r['n']} | {r['zero_shot_iou']:.3f} | {r['iou']:.3f} | "
                     f"{'∞' if epe is None or not math.isfinite(epe) else f'{epe:.1f}'} | "
                     f"{_cell(r.get('candidate_iou'))} | "
                     f"{r['peer_iou']:.3f} | {r['margin']:+.3f} | {r['original_iou_drop']:.4f} | "
                     f"{r['job_seconds']:.0f} | {r['decision']} |")
    return "\n".join(lines) + "\n"


def write_results(rows: list[dict], out: Path, name: str, extra: dict) -> dict:
    """The JSON (and, for the full set, the PNG) of these rows."""
    table = summarise(rows)
    result = {"bench": "review_loop", "rows": rows, "table": table, "targets": TARGETS,
              "met": targets_met(table) if table else {}, **extra}
    (out / f"{name}.json").write_text(json.dumps(finite(result), indent=1) + "\n")
    if table:
        plot(table, out / f"{name}.png")
        (out / f"{name}.md").write_text(markdown_table(table))
    return result


def merge_rows(rows: list[dict]) -> list[dict]:
    """One row per tool: the steps of every part (e.g. N = 25 run apart from 10 and 50) by N."""
    merged: dict[str, dict] = {}
    for row in rows:
        if row["tool"] in merged:
            merged[row["tool"]]["steps"] += row["steps"]
        else:
            merged[row["tool"]] = {**row, "steps": list(row["steps"])}
    order = {name: index for index, name in enumerate(all_tools())}
    for row in merged.values():
        row["steps"].sort(key=lambda step: step["n"])
    return sorted(merged.values(), key=lambda row: order.get(row["tool"], len(order)))
