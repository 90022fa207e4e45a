"""Config fields that carry their own note: one place for what a setting means."""

from __future__ import annotations

import dataclasses
from typing import Any


def setting(default: Any, note: str) -> Any:
    """A config field with the one-line note the Fine-tune tab shows beside it."""
    return dataclasses.field(default=default, metadata={"note": note})


def setting_notes(config: type) -> dict[str, str]:
    """Field name → its note for a config dataclass; a nested config's as ``name.field``."""
    notes = {}
    for item in dataclasses.fields(config):
        if "note" in item.metadata:
            notes[item.name] = item.metadata["note"]
        elif item.default_factory is not dataclasses.MISSING:
            nested = item.default_factory()
            if dataclasses.is_dataclass(nested):
                notes |= {f"{item.name}.{k}": v for k, v in setting_notes(type(nested)).items()}
    return notes
