"""Compare tab: two registry versions side by side, their disagreement, held-out metrics."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from annotate import format as fmt
from annotate import render
from annotate.studio import Studio
from loop.compare import disagreement, evaluate_version, heldout_sets, most_disagreeing
from semgan.errors import SemganError
from store import StoreError

EVAL_LIMIT = 40  # samples per held-out set, so an evaluation stays within seconds on a CPU
SCAN_LIMIT = 60  # recent samples searched for the largest disagreement
METRIC_HEADERS = ["model", "held-out set", "samples", *(h for _, h, _ in fmt.METRIC_COLUMNS)]
DISAGREE_HEADERS = ["sample", "name", "tool", "1 − IoU(A, B)", "only A (px)", "only B (px)"]
LEGEND = ("<div class='sg-legend'><span class='sg-swatch' style='background:rgb(255,140,0)'>"
          "</span> only A marks &nbsp; <span class='sg-swatch' style='background:rgb(30,144,255)'>"
          "</span> only B marks &nbsp; <span class='sg-swatch' style='background:rgb(235,235,235)'>"
          "</span> both</div>")


@dataclass(frozen=True)
class Compared:
    """One sample under models A and B (``CompareUI.fill`` maps it onto the tab)."""

    summary: str
    sem: str | None = None  # PNG paths
    a: str | None = None
    b: str | None = None
    diff: str | None = None


@dataclass
class CompareUI:
    """The Compare tab's components that app.py wires to."""

    versions: list[gr.Dropdown]
    sem_img: gr.Image
    a_img: gr.Image
    b_img: gr.Image
    diff_img: gr.Image
    summary: gr.HTML
    compare_btn: gr.Button

    @property
    def show_outputs(self) -> list[gr.components.Component]:
        return [self.sem_img, self.a_img, self.b_img, self.diff_img, self.summary]

    def fill(self, compared: Compared) -> dict:
        """The sample panels' updates."""
        return {self.sem_img: compared.sem, self.a_img: compared.a, self.b_img: compared.b,
                self.diff_img: compared.diff, self.summary: compared.summary}


def default_versions(studio: Studio) -> tuple[str | None, str | None]:
    """A = production (else the newest), B = the newest other version."""
    models = studio.models()
    if not models:
        return None, None
    first = next((m for m in models if m.status == "production"), models[0])
    second = next((m for m in models if m.version != first.version), first)
    return fmt.model_choice(first)[1], fmt.model_choice(second)[1]


def compare_sample(studio: Studio, choice_a: str | None, choice_b: str | None,
                   sample_id: int | None) -> Compared:
    """SEM | A | B | disagreement map and a summary for one sample."""
    version_a, version_b = fmt.version_of(choice_a), fmt.version_of(choice_b)
    if sample_id is None or version_a is None or version_b is None:
        return Compared("Pick a sample in Review and two model versions.")
    view = studio.view(sample_id)
    try:
        mask_a, mask_b, diff = disagreement(studio.store, sample_id, version_a, version_b,
                                            studio.cache)
    except (SemganError, StoreError) as exc:
        gr.Warning(str(exc))
        return Compared(f"Cannot compare: {exc}", render.png_file(view.sem_image))
    rows = ""
    if view.truth is not None:
        for version in (version_a, version_b):
            prediction = studio.store.get_prediction(sample_id, version)
            rows += fmt.metrics_html(studio.truth_metrics(view, prediction),
                                     f"v{version} vs {view.truth_label}")
    same = " (the same version twice)" if version_a == version_b else ""
    nm2 = view.sample.nm_per_px ** 2
    summary = (f"<p><b>Sample {sample_id}</b>{same}: IoU(A, B) = <b>{diff.iou:.4f}</b> · only "
               f"A: {diff.only_a:,} px ({diff.only_a * nm2:,.0f} nm²) · only B: "
               f"{diff.only_b:,} px ({diff.only_b * nm2:,.0f} nm²)</p>{rows}")
    return Compared(summary, render.png_file(view.sem_image),
                    render.png_file(render.layout_image(mask_a)),
                    render.png_file(render.layout_image(mask_b)),
                    render.png_file(render.disagreement_map(view.sem_image, mask_a, mask_b)))


def evaluate(studio: Studio, choice_a: str | None, choice_b: str | None,
             progress: gr.Progress | None = None) -> list[list]:
    """Metric rows for both versions on each held-out set (predicting what is missing)."""
    versions = [v for v in dict.fromkeys((fmt.version_of(choice_a), fmt.version_of(choice_b)))
                if v is not None]
    sets = heldout_sets(studio.store, EVAL_LIMIT)
    rows = []
    for version in versions:
        for name, ids in sets.items():
            if progress is not None:
                progress(0, desc=f"v{version} on {name}")
            scores = evaluate_version(studio.store, version, ids, studio.cache) if ids else {}
            count = int(scores.get("count", 0))
            rows.append([f"v{version}", name, count,
                         *(fmt.number(scores.get(k) if count else None, f)
                           for k, _, f in fmt.METRIC_COLUMNS)])
    return rows


def build(studio: Studio, sample: gr.State) -> CompareUI:
    """Lay out the Compare tab and wire its own events."""
    first, second = default_versions(studio)
    with gr.Row():
        version_a = gr.Dropdown(studio.model_choices(), value=first, label="Model A",
                                elem_id="compare-a")
        version_b = gr.Dropdown(studio.model_choices(), value=second, label="Model B",
                                elem_id="compare-b")
        compare_btn = gr.Button("Compare on the current sample", variant="primary",
                                elem_id="compare-btn")
    with gr.Row():
        sem_img = gr.Image(label="SEM input", format="png", interactive=False,
                           elem_id="compare-sem", height=300, buttons=["fullscreen", "download"])
        a_img = gr.Image(label="Model A layout", format="png", interactive=False,
                         elem_id="compare-a-image", height=300,
                         buttons=["fullscreen", "download"])
        b_img = gr.Image(label="Model B layout", format="png", interactive=False,
                         elem_id="compare-b-image", height=300,
                         buttons=["fullscreen", "download"])
        diff_img = gr.Image(label="Disagreement map", format="png", interactive=False,
                            elem_id="compare-diff", height=300,
                            buttons=["fullscreen", "download"])
    gr.HTML(LEGEND)
    summary = gr.HTML(elem_id="compare-summary")
    eval_btn = gr.Button(f"Evaluate A and B on the held-out sets (≤ {EVAL_LIMIT} samples "
                         "each)", elem_id="evaluate-btn")
    gr.Markdown("*Old data*: samples with a known true layout (e.g. the demo set) that were "
                "never corrected, per tool. *New corrections*: corrected pairs in the `holdout` "
                "split. Predictions missing for a version are made and stored. EPE is ∞ when a "
                "prediction has no edges at all (e.g. an empty mask).")
    table = gr.Dataframe(headers=METRIC_HEADERS, interactive=False, elem_id="metrics-table")
    find_btn = gr.Button(f"Find the samples where A and B disagree most (last {SCAN_LIMIT})",
                         elem_id="disagree-btn")
    disagree = gr.Dataframe(headers=DISAGREE_HEADERS, interactive=False, elem_id="disagree-table")
    gr.Markdown("Click a row to compare on that sample (it also becomes the current sample in "
                "Review and Correct).")
    disagree_ids = gr.State([])
    ui = CompareUI([version_a, version_b], sem_img, a_img, b_img, diff_img, summary, compare_btn)

    def run_eval(a, b, progress=gr.Progress()):  # noqa: B008 (how Gradio injects progress)
        return evaluate(studio, a, b, progress)

    def find(a, b):
        version_a, version_b = fmt.version_of(a), fmt.version_of(b)
        if version_a is None or version_b is None:
            return {disagree: [], disagree_ids: []}
        ids = [s.id for s in studio.store.list_samples(limit=SCAN_LIMIT)]
        found = most_disagreeing(studio.store, version_a, version_b, ids, cache=studio.cache)
        rows = []
        for item in found:
            s = studio.store.get_sample(item.sample_id)
            rows.append([s.id, s.name or "", s.tool or "", f"{1 - item.iou:.4f}",
                         item.only_a, item.only_b])
        return {disagree: rows, disagree_ids: [item.sample_id for item in found]}

    def pick(ids, a, b, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        target = ids[row] if 0 <= row < len(ids) else None
        return {sample: target, **ui.fill(compare_sample(studio, a, b, target))}

    compare_btn.click(lambda a, b, s: ui.fill(compare_sample(studio, a, b, s)),
                      [version_a, version_b, sample], ui.show_outputs)
    eval_btn.click(run_eval, [version_a, version_b], table)
    find_btn.click(find, [version_a, version_b], [disagree, disagree_ids])
    disagree.select(pick, [disagree_ids, version_a, version_b], [sample, *ui.show_outputs])
    return ui
