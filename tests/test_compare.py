"""Paired per-image comparison of two methods: mean difference, bootstrap interval, wins."""

from __future__ import annotations

import math

import pytest

from semgan.paired_stats import (
    ComparisonError,
    compare_methods,
    format_comparison,
    paired_difference,
)


def _rows(values: list[tuple[str, str, float, float]]) -> list[dict]:
    return [{"name": name, "profile": profile, "iou": iou, "epe_mean_nm": epe}
            for name, profile, iou, epe in values]


def _result(first: list[dict], second: list[dict]) -> dict:
    return {"methods": {"a": {"rows": first}, "b": {"rows": second}}}


def test_a_constant_lead_has_a_tight_interval_and_wins_every_image() -> None:
    item = paired_difference([0.95, 0.97, 0.99], [0.94, 0.96, 0.98], "iou", "overall", True)
    assert (item.images, item.better, item.worse) == (3, 3, 0)
    assert item.mean == pytest.approx(0.01) and item.low == pytest.approx(0.01) and item.high == pytest.approx(0.01)


def test_lower_is_better_for_edge_placement_error() -> None:
    item = paired_difference([1.0, 2.0, 5.0], [2.0, 3.0, 4.0], "epe_mean_nm", "overall", False)
    assert (item.better, item.worse) == (2, 1)
    assert item.mean == pytest.approx(-1 / 3)


def test_a_noisy_difference_has_an_interval_around_zero() -> None:
    item = paired_difference([1.0, 0.0, 1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
                             "iou", "overall", True)
    assert item.mean == 0.0 and item.low < 0 < item.high and (item.better, item.worse) == (3, 3)


def test_infinite_values_are_left_out_and_counted() -> None:
    item = paired_difference([1.0, math.inf, 3.0], [2.0, 2.0, 2.0], "epe_mean_nm", "overall", False)
    assert (item.images, item.dropped, item.mean) == (2, 1, 0.0)
    assert "1 with ∞ left out" in format_comparison([item], "a", "b")


def test_groups_are_overall_then_each_profile_and_rows_pair_by_name() -> None:
    first = _rows([("x", "clean", 0.9, 1.0), ("y", "aged", 0.8, 2.0)])
    second = _rows([("y", "aged", 0.7, 3.0), ("x", "clean", 0.9, 1.0)])  # another order
    differences = compare_methods(_result(first, second), "a", "b")
    assert [(d.group, d.metric) for d in differences] == [
        ("overall", "iou"), ("overall", "epe_mean_nm"), ("profile:clean", "iou"),
        ("profile:clean", "epe_mean_nm"), ("profile:aged", "iou"), ("profile:aged", "epe_mean_nm")]
    aged_iou = differences[4]
    assert aged_iou.mean == pytest.approx(0.1) and (aged_iou.better, aged_iou.worse) == (1, 0)


def test_methods_scored_on_different_images_are_refused() -> None:
    result = _result(_rows([("x", "clean", 0.9, 1.0)]), _rows([("z", "clean", 0.9, 1.0)]))
    with pytest.raises(ComparisonError, match="different images"):
        compare_methods(result, "a", "b")


def test_an_unknown_method_is_named() -> None:
    with pytest.raises(ComparisonError, match="'c'"):
        compare_methods(_result([], []), "a", "c")
