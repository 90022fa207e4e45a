"""Saving a pair from the Review or Correct tab: store it, run the automatic trigger, toast."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import numpy as np

from annotate.studio import Studio
from store import CorrectedPair


def save_pair(studio: Studio, sample_id: int, mask: np.ndarray, author: str,
              prediction_id: int | None, kind: str, describe: Callable[[CorrectedPair], str]) -> str:
    """Save the pair, run the automatic trigger and toast what it queued; the status message.

    ``describe`` words the saved pair; a StoreError (nothing saved) is left to the caller.
    """
    pair = studio.store.save_correction(sample_id, mask, author, prediction_id, kind=kind)
    message = describe(pair)
    fired = studio.after_pair_saved()  # the automatic trigger: threshold / drift alarm
    if fired:
        gr.Info(fired)
        message += f" {fired}"
    return message
