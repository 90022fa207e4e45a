"""Resizing a grey image or mask to another pixel grid, the one way inference and exports do it."""

from __future__ import annotations

import cv2
import numpy as np


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` at (height, width): area averaging when shrinking (no aliasing of thin lines),
    bilinear when enlarging, the array itself when the size already matches."""
    if image.shape == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
