"""The Gradio Blocks of semgan studio: a status strip and one tab per task."""

from __future__ import annotations

import gradio as gr

from annotate import (
    compare_tab,
    correct,
    correct_tools,
    export_tab,
    finetune,
    models_tab,
    overlay,
    review,
)
from annotate.security import WebPolicy, admin_events, expose_api, launch_options
from annotate.studio import Studio

TITLE = "semgan studio"

CSS = """
.sg-title { display:flex; align-items:baseline; gap:1em; margin:0 0 .3em 0; }
.sg-title h1 { font-size:1.35em; margin:0; }
.sg-title .sg-ws { color:var(--body-text-color-subdued); font-size:.85em; font-family:monospace; }
.sg-counters { display:flex; flex-wrap:wrap; gap:.5em; }
.sg-stat { border:1px solid var(--border-color-primary); border-radius:6px; padding:.25em .7em;
           background:var(--background-fill-secondary); display:flex; flex-direction:column; }
.sg-stat-label { font-size:.72em; color:var(--body-text-color-subdued); text-transform:uppercase;
                 letter-spacing:.03em; }
.sg-stat-value { font-size:1.15em; font-weight:600; font-variant-numeric:tabular-nums; }
.sg-notice { margin-top:.4em; padding:.4em .7em; border-radius:6px; background:#fff4e5;
             color:#7a4100; border:1px solid #f5c27a; }
.sg-badge { display:inline-block; padding:.3em .7em; border-radius:6px; font-size:.9em; }
.sg-badge-ok { background:#e7f6ec; color:#135c2d; border:1px solid #9ad5ae; }
.sg-badge-bad { background:#fdecec; color:#8a1c1c; border:1px solid #f0a3a3; }
.sg-badge-none { background:var(--background-fill-secondary);
                 color:var(--body-text-color-subdued); }
.sg-scores { font-variant-numeric:tabular-nums; margin-left:.5em; }
.sg-why { font-size:.85em; margin-top:.15em; }
.sg-metrics { border-collapse:collapse; font-size:.88em; margin:.3em 0;
              font-variant-numeric:tabular-nums; }
.sg-metrics caption { text-align:left; font-weight:600; padding-bottom:.2em; }
.sg-metrics th, .sg-metrics td { border:1px solid var(--border-color-primary); padding:.2em .6em; }
.sg-metrics th { background:var(--background-fill-secondary); font-weight:500; }
.sg-muted { color:var(--body-text-color-subdued); font-size:.9em; }
.sg-legend { font-size:.9em; }
.sg-pixelated img { image-rendering:pixelated; }
.sg-swatch { display:inline-block; width:.9em; height:.9em; border-radius:2px;
             vertical-align:middle; border:1px solid #888; }
.sg-trigger-line { margin-top:.4em; }
.sg-progress { height:.9em; border-radius:5px; background:var(--background-fill-secondary);
               border:1px solid var(--border-color-primary); overflow:hidden; margin:.35em 0; }
.sg-progress-bar { height:100%; background:#3b82f6; }
.sg-progress-succeeded { background:#22a35a; }
.sg-progress-failed, .sg-progress-cancelled { background:#d64545; }
.sg-job-line { font-variant-numeric:tabular-nums; }
.sg-log { font-size:.78em; max-height:18em; overflow:auto; white-space:pre-wrap; margin:0; }
.sg-alarm { padding:.5em .8em; border-radius:6px; background:#fdecec; color:#8a1c1c;
            border:1px solid #f0a3a3; }
.sg-verdict-badge { font-size:1.05em; }
.sg-pass { color:#135c2d; font-weight:600; }
.sg-fail { color:#8a1c1c; font-weight:700; }
.sg-config td { padding:.1em .5em; }
"""

# Keyboard shortcuts: J/→ next, K/← previous, A accept, C correct, S skip. They click the
# visible button of the open tab and never fire while typing in a field.
SHORTCUTS_JS = """
() => {
  const keys = {j: ['next-btn', 'correct-next-btn'], arrowright: ['next-btn', 'correct-next-btn'],
                k: ['prev-btn', 'correct-prev-btn'], arrowleft: ['prev-btn', 'correct-prev-btn'],
                a: ['accept-btn'], c: ['correct-btn'], s: ['skip-btn'],
                4: ['design-nudge-left'], 6: ['design-nudge-right'], 8: ['design-nudge-up'],
                2: ['design-nudge-down']};
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    const tag = (target && target.tagName || '').toLowerCase();
    if (event.ctrlKey || event.metaKey || event.altKey || tag === 'input' ||
        tag === 'textarea' || tag === 'select' || (target && target.isContentEditable)) return;
    for (const id of keys[event.key.toLowerCase()] || []) {
      const button = document.getElementById(id);
      if (button && button.offsetParent !== null) {
        event.preventDefault(); button.click(); return;
      }
    }
  });
}
"""


def header_html(studio: Studio) -> str:
    """Title line with the workspace path."""
    return (f"<div class='sg-title'><h1>{TITLE}</h1><span class='sg-ws'>workspace "
            f"{studio.store.workspace}</span></div>")


def build_ui(studio: Studio, show_api: bool = False) -> gr.Blocks:
    """The whole app as a gr.Blocks, ready to ``launch`` (``show_api``: document its API)."""
    with gr.Blocks(title=TITLE, fill_width=True) as demo:
        sample = gr.State(None)  # the sample every tab works on
        queue = gr.State([])  # ids of the Review queue, in its order
        gr.HTML(header_html(studio))
        counters = gr.HTML(studio.counters(), elem_id="counters")
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Review", id="review", elem_id="tab-review") as review_tab:
                review_ui = review.build(studio, sample, queue, counters)
            with gr.Tab("Correct", id="correct", elem_id="tab-correct") as correct_tab:
                correct_ui = correct.build(studio, sample, queue, counters)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare") as compare_page:
                compare_ui = compare_tab.build(studio, sample)
            # Promote, roll back, download, export, fine-tune, cancel, settings: never an API.
            with admin_events(demo):
                with gr.Tab("Models", id="models", elem_id="tab-models") as models_page:
                    models_ui = models_tab.build(studio, counters)
                with gr.Tab("Export", id="export", elem_id="tab-export"):
                    export_tab.build(studio)
                with gr.Tab("Fine-tune", id="finetune", elem_id="tab-finetune") as finetune_tab:
                    finetune_ui = finetune.build(studio, counters)
        _wire(studio, demo, tabs, sample, queue, counters, review_ui, correct_ui, compare_ui,
              models_ui, (review_tab, correct_tab, compare_page, models_page))
        finetune_tab.select(lambda: finetune.refresh(studio, finetune_ui), None,
                            finetune_ui.refresh_outputs)
        overlay.wire_correction(studio, review_ui.design, correct_ui, tabs, queue, sample)
        expose_api(demo, show_api)
    return demo


def _wire(studio, demo, tabs, sample, queue, counters, review_ui, correct_ui, compare_ui,
          models_ui, tab_list) -> None:
    """Events that cross tabs: start-up, tab switches, Correct from Review, the counter timer."""
    review_tab, correct_tab, compare_page, models_page = tab_list
    panel, viewer = review_ui.queue, review_ui.viewer

    def start(*filters):
        found = review.queue_update(studio, *filters)
        first = found[1][0] if found[1] else None
        return {**panel.fill(found),
                **viewer.fill(review.show_sample(studio, first, found[1], True, 0.3, "4×", None))}

    def back_to_review(current, *filters):
        found = review.queue_update(studio, *filters)
        ids = found[1]
        shown = current if current is not None else (ids[0] if ids else None)
        return {**panel.fill(found),
                **viewer.fill(review.show_sample(studio, shown, ids, True, 0.3, "4×", None))}

    def to_editor(current, loaded, ids):
        if current is not None and current == loaded:
            return gr.skip()  # skips every output
        return correct_ui.fill(correct.load(studio, current, ids))

    def to_compare(a, b, current):
        first, second = compare_tab.default_versions(studio)
        choices = studio.model_choices()
        values = [value for _, value in choices]
        a = a if a in values else first
        b = b if b in values and b != a else second  # a new model may have been registered
        return {compare_ui.versions[0]: gr.Dropdown(choices=choices, value=a),
                compare_ui.versions[1]: gr.Dropdown(choices=choices, value=b),
                **compare_ui.fill(compare_tab.compare_sample(studio, a, b, current))}

    def to_models():
        return models_tab.tables_update(studio, models_ui)

    demo.load(start, panel.filters, [*panel.outputs, *viewer.outputs])
    demo.load(to_models, None, models_ui.tables)
    review_tab.select(back_to_review, [sample, *panel.filters], [*panel.outputs, *viewer.outputs])
    correct_tab.select(to_editor, [sample, correct_ui.editor_sample, queue],
                       correct_ui.load_outputs)
    # Only switch tabs: the Correct tab's select event loads the editor. Loading here as well
    # would race it, and two overlapping value updates break the editor's layer in Gradio 6.
    review_ui.buttons.correct.click(lambda: gr.Tabs(selected="correct"), None, tabs)
    compare_page.select(to_compare, [*compare_ui.versions, sample],
                       [*compare_ui.versions, *compare_ui.show_outputs])
    models_page.select(to_models, None, models_ui.tables)
    gr.Timer(10).tick(studio.counters, None, counters, show_progress="hidden")


def launch_kwargs(policy: WebPolicy | None = None) -> dict:
    """``Blocks.launch`` arguments: styling (Gradio 6 takes theme/css/js there) and the guards."""
    return {"theme": gr.themes.Default(primary_hue="blue", neutral_hue="slate"), "css": CSS,
            "js": f"() => {{ ({SHORTCUTS_JS})(); ({correct_tools.KEYS_JS})(); }}",
            **launch_options(policy or WebPolicy())}
