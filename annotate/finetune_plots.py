"""Plots of the Fine-tune tab as RGB pictures: a job's losses, recent samples' drift scores.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot state, safe in
Gradio's worker threads) and returned as uint8 (H, W, 3) arrays for ``render.png_file``.
"""

from __future__ import annotations

import time

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from store import Sample

GENERATOR_LOSSES = (("g_loss", "G total (weighted L1 + cycle + GAN + FM)", "#1f77b4"),
                    ("loss", "tool expert: L1 + Dice (one tool after another)", "#9467bd"))
CRITIC_LOSSES = (("d_loss", "D", "#d62728"), ("g_gan", "G adversarial", "#2ca02c"))
FLAG_LEVEL = 1.0  # drift score in units of the flag threshold (loop.predictions.score_drift)


def figure_pixels(figure: Figure) -> np.ndarray:
    """Render a figure to an RGB array."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3)


def loss_series(losses: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """{loss name: (steps, values)} from ``store.job_losses`` rows, non-finite values dropped."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for row in losses:
        for name, value in row.items():
            if name in ("step", "created") or not isinstance(value, int | float):
                continue
            if np.isfinite(value):
                steps, values = series.setdefault(name, ([], []))
                steps.append(int(row["step"]))
                values.append(float(value))
    return series


def loss_picture(losses: list[dict], title: str, total_steps: int = 0) -> np.ndarray | None:
    """Generator losses (left) and critic vs adversarial term (right) against the step."""
    series = loss_series(losses)
    if not series:
        return None
    figure = Figure(figsize=(9.0, 3.0), dpi=100, layout="constrained")
    panels = figure.subplots(1, 2)
    for axes, group, heading in ((panels[0], GENERATOR_LOSSES, "generator"),
                                 (panels[1], CRITIC_LOSSES,
                                  "discriminator vs G adversarial (shared strategy)")):
        for key, label, colour in group:
            if key in series:
                steps, values = series[key]
                axes.plot(steps, values, color=colour, label=label, lw=1.4,
                          marker="o" if len(steps) < 30 else None, ms=3)
        axes.set_title(heading, fontsize=9)
        axes.set_xlabel("step", fontsize=8)
        if total_steps:
            axes.set_xlim(0, total_steps * 1.03)  # room for the last point's marker
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend(fontsize=8, loc="best")
    figure.suptitle(title, fontsize=10)
    return figure_pixels(figure)


def drift_picture(samples: list[Sample], alarm_window: int = 10,
                  since: float | None = None) -> np.ndarray | None:
    """Drift score of recent scored samples (oldest → newest), flagged ones marked in red.

    The score is in units of the flag threshold (max |z| / z-limit, KL / KL-limit), so the
    flag line sits at 1 whatever the limits; the shaded band is the alarm window: the latest
    ``alarm_window`` scored samples added since ``since`` (production's promotion).
    """
    scored = sorted((s for s in samples if s.drift_score is not None),
                    key=lambda s: (s.created, s.id))
    if not scored:
        return None
    order = np.arange(len(scored))
    values = np.array([max(s.drift_score, 1e-3) for s in scored])
    flagged = np.array([s.drift_flagged for s in scored])
    figure = Figure(figsize=(7.0, 3.0), dpi=100, layout="constrained")
    axes = figure.subplots()
    axes.plot(order, values, color="#9aa5b1", lw=0.8, zorder=1)
    axes.scatter(order[~flagged], values[~flagged], s=14, color="#1f77b4", label="in range",
                 zorder=2)
    axes.scatter(order[flagged], values[flagged], s=30, color="#d62728", marker="X",
                 label="flagged", zorder=3)
    axes.axhline(FLAG_LEVEL, color="#d62728", ls="--", lw=1, label="flag threshold")
    window = [i for i, s in enumerate(scored) if since is None or s.created >= since]
    window = window[-alarm_window:]
    if window:
        axes.axvspan(window[0] - 0.5, window[-1] + 0.5, color="#f5c27a", alpha=0.25,
                     label=f"alarm window ({int(flagged[window].sum())}/{len(window)} flagged)")
    if values.max() / max(values.min(), 1e-3) > 50:
        axes.set_yscale("log")  # one wildly drifted image would flatten all the others
    else:
        axes.set_ylim(0, max(values.max(), FLAG_LEVEL) * 1.1)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    first, last = (time.strftime("%m-%d %H:%M", time.localtime(s.created))
                   for s in (scored[0], scored[-1]))
    axes.set_xlabel(f"scored samples, oldest → newest ({first} … {last})", fontsize=8)
    axes.set_ylabel("drift score (1 = flag limit)", fontsize=8)
    axes.tick_params(labelsize=8)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    axes.set_title(f"Drift of the last {len(scored)} scored samples", fontsize=10)
    return figure_pixels(figure)
