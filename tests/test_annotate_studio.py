"""annotate: queue navigation, the queue's filters, sample views, labels and the Blocks build."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from annotate import format as fmt
from annotate.app import build_ui
from annotate.correct import brush_radius, brush_steps
from annotate.studio import QueueFilter, Studio, after_removal, step_in_queue
from store import Store


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
