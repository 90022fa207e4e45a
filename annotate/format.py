"""Text for the UI: counters, sample headers, drift badges, metric tables (HTML / Markdown)."""

from __future__ import annotations

import html
import math
import time

from store import Counts, ModelVersion, Prediction, Sample

METRIC_COLUMNS = (  # (key from semgan.metrics.evaluate_pair, header with unit, format)
    ("iou", "IoU", "{:.3f}"),
    ("epe_mean_nm", "EPE mean (nm)", "{:.2f}"),
    ("epe_p95_nm", "EPE p95 (nm)", "{:.2f}"),
    ("cd_error_nm", "CD error (nm)", "{:+.2f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("psnr", "PSNR (dB)", "{:.1f}"),
    ("l1", "L1", "{:.3f}"),
)


def number(value: float | None, fmt: str = "{:.3f}") -> str:
    """A metric value, or an em dash for missing / NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"  # e.g. EPE when one mask has no edges at all
    return fmt.format(value)


def when(seconds: float | None) -> str:
    """Unix seconds as local 'YYYY-MM-DD HH:MM'."""
    return "—" if seconds is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def counters_html(counts: Counts, notice: str | None = None) -> str:
    """The always-visible status strip: production model, corrections since it, queue size."""
    production = (f"v{counts.production_version}" if counts.production_version is not None
                  else "none installed")
    cells = [("Production model", production),
             ("Corrected pairs since production", str(counts.new_since_production)),
             ("Corrected samples (train / holdout)",
              f"{counts.corrected_samples} ({counts.train_pairs} / {counts.holdout_pairs})"),
             ("Samples", str(counts.samples)),
             ("Drift-flagged", str(counts.drift_flagged)),
             ("Background jobs", str(counts.active_jobs))]
    body = "".join(f"<div class='sg-stat'><span class='sg-stat-label'>{html.escape(k)}</span>"
                   f"<span class='sg-stat-value' data-stat='{i}'>{html.escape(v)}</span></div>"
                   for i, (k, v) in enumerate(cells))
    warn = f"<div class='sg-notice'>{html.escape(notice)}</div>" if notice else ""
    return f"<div class='sg-counters'>{body}</div>{warn}"


def sample_header(sample: Sample, position: str = "") -> str:
    """Markdown header of the selected sample: id, name, size in px and nm, pixel size."""
    height_nm, width_nm = sample.height * sample.nm_per_px, sample.width * sample.nm_per_px
    status = "corrected" if sample.corrected else "not corrected yet"
    tool = f" · tool **{sample.tool}**" if sample.tool else ""
    return (f"### Sample {sample.id} — {sample.name or 'unnamed'} {position}\n"
            f"{sample.width}×{sample.height} px · **{sample.nm_per_px:g} nm/px** "
            f"({width_nm:,.0f}×{height_nm:,.0f} nm) · source {sample.source}{tool} · {status}"
            " · "
            f"added {when(sample.created)}")


def drift_badge(sample: Sample) -> str:
    """A coloured badge (in range / drift / not scored) with the z-scores and KL behind it."""
    scores = sample.drift_scores
    if not scores:
        return ("<div class='sg-badge sg-badge-none'>drift: not scored "
                "<small>(the production model card has no drift reference)</small></div>")
    label, css = ("DRIFT", "sg-badge-bad") if sample.drift_flagged else ("in range", "sg-badge-ok")
    z = scores.get("z", {})
    zs = " · ".join(f"{html.escape(k.replace('_', ' '))} z = {v:+.1f}" for k, v in z.items())
    kl = scores.get("kl")
    kl_text = f" · histogram KL = {kl:.2f}" if isinstance(kl, int | float) else ""
    limits = (f"flag at |z| &gt; {scores.get('z_threshold', 3):g} or KL &gt; "
              f"{scores.get('kl_threshold', 0.5):g}")
    reasons = "; ".join(html.escape(r) for r in scores.get("reasons", []))
    why = f"<div class='sg-why'>{reasons}</div>" if reasons else ""
    return (f"<div class='sg-badge {css}'><b>drift: {label}</b> "
            f"<span class='sg-scores'>{zs}{kl_text} ({limits})</span>{why}</div>")


def prediction_note(prediction: Prediction | None, model: ModelVersion | None) -> str:
    """One line about the shown prediction: model version, time, confidence."""
    if prediction is None:
        return ("**No prediction**: no model is installed. Start the app with "
                "`--model-dir MODEL_DIR` on an empty workspace, or register one.")
    summary = prediction.confidence_summary
    status = f" ({model.status})" if model is not None else ""
    return (f"Prediction by model **v{prediction.model_version}**{status} in "
            f"{prediction.seconds:.2f} s" + uncertainty_note(summary) + " · mean confidence "
            f"{number(summary.get('mean'), '{:.3f}')} · uncertain pixels "
            f"{number(100 * summary.get('uncertain_fraction', math.nan), '{:.1f}')} %"
            + tool_note(summary) + edge_check_note(summary))


def uncertainty_note(summary: dict) -> str:
    """The per-image uncertainty P(wrong) (semgan.uncertainty) and its reason, when measured."""
    score = summary.get("uncertainty")
    if not isinstance(score, int | float) or isinstance(score, bool):
        return ""
    verdict = "**likely wrong**" if score >= 0.5 else "likely right"
    return (f" · uncertainty **{score:.2f}** ({verdict}: "
            f"{summary.get('uncertainty_reason') or 'no reason recorded'})")


def edge_check_note(summary: dict) -> str:
    """What the edge-support check changed: regions whose outline had no edge in the SEM."""
    if summary.get("edge_check_skipped"):
        return " · edge check skipped: the SEM's edges are too weak against its noise to judge"
    flips = int(summary.get("edge_flips") or 0)
    if flips <= 0:
        return ""
    share = 100 * float(summary.get("flipped_fraction") or 0.0)
    regions = "region" if flips == 1 else "regions"
    return (f" · edge check flipped **{flips} {regions}** ({share:.1f} % of pixels, confidence 0 "
            "there): the SEM shows no edge along their outline")


def tool_note(summary: dict) -> str:
    """Which tool adaptation read the image, and how it was chosen (its tag or, for an
    untagged image, the nearest grey-level histogram)."""
    tool = summary.get("tool_calibration")
    if not tool:
        return ""
    how = "its own fine-tuned generator" if summary.get("tool_expert") else "the shared generator"
    name = str(tool).removeprefix("tool:")  # adaptations are keyed by the pairs' "tool:NAME"
    if summary.get("tool_routing") == "histogram":
        return (f" · untagged image, read as tool **{name}** by its grey-level histogram "
                f"(a fallback: tag uploads with their tool), {how}")
    return f" · tool **{name}**: its own adaptation, {how}"


def metrics_html(metrics: dict | None, caption: str) -> str:
    """One row of metrics (IoU, EPE, CD, SSIM, PSNR, L1) as a small HTML table."""
    if not metrics:
        return (f"<div class='sg-muted'>{html.escape(caption)}: no known layout for this "
                "sample</div>")
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in METRIC_COLUMNS)
    row = "".join(f"<td>{number(metrics.get(k), f)}</td>" for k, _, f in METRIC_COLUMNS)
    return (f"<table class='sg-metrics'><caption>{html.escape(caption)}</caption>"
            f"<tr>{head}</tr><tr>{row}</tr></table>")


def change_summary(added: int, removed: int, iou: float, nm_per_px: float) -> str:
    """What a correction changed, in pixels and nm²."""
    area = nm_per_px**2
    return (f"**+{added:,} px** added ({added * area:,.0f} nm²) · **−{removed:,} px** removed "
            f"({removed * area:,.0f} nm²) · IoU with the prediction **{iou:.4f}**")


def model_choice(model: ModelVersion) -> tuple[str, str]:
    """Dropdown (label, value) of a registered model: the value stays "vN" as its status moves."""
    return f"v{model.version} · {model.status}", f"v{model.version}"


def version_of(choice: str | None) -> int | None:
    """The version number back from a dropdown label ("v3 · candidate" → 3)."""
    if not choice:
        return None
    head = str(choice).split("·")[0].strip().lstrip("v")
    return int(head) if head.isdigit() else None
