"""annotate: queue navigation, the queue's filters, sample views, labels and the Blocks build."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from annotate import format as fmt
from annotate.blocks import build_ui
from annotate.correct_layout import brush_radius, brush_steps
from annotate.review import queue_update, upload_report
from annotate.saving import save_pair
from annotate.studio import QueueFilter, Studio, after_removal, step_in_queue
from loop.batch import ingest_files
from loop.triggers import set_trigger_settings
from semgan.imageio import save_png
from store import Store, StoreError
from tests.support import register_dummy_production


@pytest.fixture
def studio(tmp_path: Path) -> Studio:
    """A studio on a workspace with three uploads and no model."""
    with Store.open(tmp_path / "ws") as store:
        for value, tool in ((10, "a"), (20, "b"), (30, "a")):
            store.add_sample(np.full((8, 8), value, np.uint8), 4.0, "upload", tool=tool)
        yield Studio(store, author="tester", notice="no model")


def test_stepping_through_the_queue_stops_at_its_ends() -> None:
    assert [step_in_queue([5, 7, 9], 7, 1), step_in_queue([5, 7, 9], 9, 1),
            step_in_queue([5, 7, 9], 5, -1), step_in_queue([5, 7, 9], 42, 1)] == [9, 9, 5, 5]


def test_after_a_sample_is_done_the_next_one_is_shown() -> None:
    assert [after_removal([5, 7, 9], 7), after_removal([5, 7, 9], 9),
            after_removal([5], 5), after_removal([], None)] == [9, 7, 5, None]


def test_the_queue_filters_by_tool_and_hides_corrected_samples(studio: Studio) -> None:
    studio.store.save_correction(1, np.zeros((8, 8), bool), "tester")
    samples, total = studio.queue(QueueFilter(order="date added", tool="a"))
    assert ([s.id for s in samples], total) == ([3], 1)


def test_tool_choices_list_every_tool_once(studio: Studio) -> None:
    assert studio.tools() == ["all", "a", "b"]


def test_a_view_without_a_model_has_no_prediction(studio: Studio) -> None:
    view = studio.view(2)
    assert (view.prediction, view.mask, view.truth) == (None, None, None)
    assert view.sem_image.shape == (8, 8)


def test_counters_show_the_notice_only_without_a_model(studio: Studio) -> None:
    assert "no model" in studio.counters()
    assert "Corrected pairs since production" in studio.counters()


def test_model_labels_round_trip_to_versions() -> None:
    assert [fmt.version_of("v12 · candidate"), fmt.version_of(None),
            fmt.version_of("junk")] == [12, None, None]


def test_brush_widths_are_round_nm_steps_of_at_least_two_pixels() -> None:
    assert brush_steps(4.0)[:3] == [("8 nm (2 px)", 2), ("16 nm (4 px)", 4),
                                    ("32 nm (8 px)", 8)]
    assert brush_radius(8) == 4


def test_metric_numbers_show_infinity_and_missing_values() -> None:
    assert [fmt.number(float("inf")), fmt.number(float("nan")), fmt.number(0.5, "{:.2f}")] == \
        ["∞", "—", "0.50"]


def test_the_whole_ui_builds_with_every_tab(studio: Studio) -> None:
    demo = build_ui(studio)
    labels = [block.label for block in demo.blocks.values() if isinstance(block, gr.Tab)]
    assert labels == ["Review", "Correct", "Compare", "Models", "Export", "Fine-tune"]


@pytest.fixture
def model_studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Studio:
    """A studio with a production row (no weights: the trigger never loads it), threshold 3."""
    monkeypatch.setattr("loop.process.spawn_worker", lambda workspace: 0)  # no real worker
    with Store.open(tmp_path / "ws") as store:
        register_dummy_production(store)
        set_trigger_settings(store, threshold=3)
        for value in range(5):
            store.add_sample(np.full((8, 8), 40 * value, np.uint8), 4.0, "upload")
        yield Studio(store, author="tester")


def test_after_pair_saved_fires_once_when_the_threshold_is_reached(model_studio: Studio) -> None:
    messages = []
    for sample_id in (1, 2, 3, 4):
        model_studio.store.save_correction(sample_id, np.eye(8, dtype=bool), "tester")
        messages.append(model_studio.after_pair_saved())
    assert messages == [None, None, "3 new corrected pairs since v1 reached the threshold of 3: "
                        "fine-tune job 1 queued (it runs in the background; see the Fine-tune "
                        "tab).", None]
    assert [j.kind for j in model_studio.store.list_jobs()] == ["finetune"]


def test_after_pair_saved_turns_a_failure_into_a_message(model_studio: Studio,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def busy(store, spawn):
        raise StoreError("database is locked")

    monkeypatch.setattr("annotate.studio.check_triggers", busy)
    assert model_studio.after_pair_saved() == ("The automatic fine-tune check failed "
                                               "(StoreError: database is locked).")


def test_saving_a_pair_toasts_and_appends_what_the_trigger_queued(
        model_studio: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    toasts = []
    monkeypatch.setattr("annotate.saving.gr.Info", toasts.append)
    messages = [save_pair(model_studio, sample_id, np.eye(8, dtype=bool), "tester", None,
                          "corrected", lambda pair: f"v{pair.version} saved.")
                for sample_id in (1, 2, 3)]
    assert messages[:2] == ["v1 saved.", "v1 saved."]
    assert messages[2].startswith("v1 saved. 3 new corrected pairs since v1 reached")
    assert toasts == [messages[2].removeprefix("v1 saved. ")]


def test_the_queue_note_counts_samples_still_waiting_for_a_batch_job(
        model_studio: Studio) -> None:
    store = model_studio.store
    job = store.enqueue_job("batch_predict", {"sample_ids": [1, 2, 3], "model_version": 1})
    store.add_prediction(2, 1, np.zeros((8, 8), bool), {"mean": 1.0}, 0.1)
    assert [(j.id, waiting) for j, waiting in model_studio.prediction_backlog()] == [(job.id, 2)]
    note = queue_update(model_studio, *dataclasses.astuple(QueueFilter()))[2]
    assert note == ("5 samples in the queue · 2 still waiting for prediction (batch job 1, "
                    "queued; viewing one predicts it now)")


def test_an_upload_report_lists_each_file_and_the_background_job(model_studio: Studio,
                                                                 tmp_path: Path) -> None:
    paths = [tmp_path / "a.png", tmp_path / "bad.png", tmp_path / "b.png"]
    for value, path in ((7, paths[0]), (9, paths[2])):
        save_png(path, np.full((8, 8), value, np.uint8))
    paths[1].write_bytes(b"junk")
    lines = upload_report(ingest_files(model_studio.store, paths, "2.5", spawn=False))
    assert lines[0] == ("✓ **a.png** → sample 6: 8×8 px at 2.5 nm/px (as entered), drift not "
                        "scored, prediction queued")
    assert lines[1].startswith("✗ **bad.png**: ")
    assert lines[3] == ("Stored 2 images, predicting them in the background (job 1). The queue "
                        "is usable meanwhile.")


def test_a_prediction_says_what_the_edge_check_flipped() -> None:
    assert fmt.edge_check_note({}) == ""
    assert fmt.edge_check_note({"edge_flips": 0, "flipped_fraction": 0.0}) == ""
    assert fmt.edge_check_note({"edge_flips": 2, "flipped_fraction": 0.0734}) == (
        " · edge check flipped **2 regions** (7.3 % of pixels, confidence 0 there): the SEM shows "
        "no edge along their outline")
    assert "**1 region**" in fmt.edge_check_note({"edge_flips": 1, "flipped_fraction": 0.01})
    assert fmt.edge_check_note({"edge_check_skipped": True, "edge_flips": 0}) == (
        " · edge check skipped: the SEM's edges are too weak against its noise to judge")


def test_a_foreign_tool_prediction_says_how_it_was_read() -> None:
    assert fmt.tool_note({"tool_calibration": None}) == ""
    assert fmt.tool_note({"tool_calibration": "tool:sem-7", "tool_expert": True,
                          "tool_routing": "tag"}) == \
        " · tool **sem-7**: its own adaptation, its own fine-tuned generator"
    assert fmt.tool_note({"tool_calibration": "tool:sem-7", "tool_expert": False}).endswith(
        "the shared generator")
    fallback = fmt.tool_note({"tool_calibration": "tool:sem-7", "tool_expert": True,
                              "tool_routing": "histogram"})
    assert fallback.startswith(" · untagged image, read as tool **sem-7** by its grey-level")
