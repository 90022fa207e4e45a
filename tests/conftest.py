"""Fixtures that several test modules share; a module's own fixture of the same name overrides one here."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import Store


@pytest.fixture
def store(tmp_path: Path):
    """An empty workspace store at tmp_path/ws."""
    with Store.open(tmp_path / "ws") as opened:
        yield opened


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace folder (tmp_path/ws) with a tiny production model and 8 corrected pairs."""
    # Imported here, not at the top: tests.support imports torch and sets its thread count, which
    # modules that never use this fixture should not pay for or inherit.
    from tests.support import workspace_with_pairs

    return workspace_with_pairs(tmp_path / "ws")
