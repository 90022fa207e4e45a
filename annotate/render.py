"""Pictures for the UI: overlays, contours, disagreement maps, zoom crops, editor layers.

Everything takes and returns numpy arrays: SEM images uint8 (H, W), masks bool (H, W), RGB
pictures uint8 (H, W, 3). Row 0 is the top of the image.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

ONLY_A_RGB = (255, 140, 0)  # orange: only model A marks the pixel
ONLY_B_RGB = (30, 144, 255)  # blue: only model B marks it
BOTH_RGB = (235, 235, 235)
CONTOUR_RGB = (0, 230, 255)
FILL_RGB = (0, 160, 255)
RECT_ADD_RGB = (60, 220, 90)
RECT_REMOVE_RGB = (255, 70, 70)
UNCERTAIN_RGB = (255, 0, 200)  # magenta: where flipped/rotated predictions disagree
UNCERTAIN_OPACITY = 0.9  # at a disagreement of UNCERTAIN_FULL_AT or more …
UNCERTAIN_FULL_AT = 0.5  # … (half the flipped predictions say the opposite)

_png_dir: Path | None = None
_png_lock = threading.Lock()


def _png_folder() -> Path:
    """This process's folder of rendered PNGs (in the temp dir, which Gradio may serve)."""
    global _png_dir
    with _png_lock:
        if _png_dir is None:
            _png_dir = Path(tempfile.mkdtemp(prefix="semgan-studio-"))
            atexit.register(shutil.rmtree, _png_dir, True)
        return _png_dir


def png_file(picture: np.ndarray) -> str:
    """Write a uint8 grey/RGB/RGBA picture once as a lossless PNG named by its content.

    Handing Gradio file paths (instead of arrays) matters: Gradio re-encodes an array and
    rewrites its cache file on every update, and a browser fetching that file meanwhile gets
    a truncated image. A path is copied into Gradio's cache once, atomically.
    """
    picture = np.ascontiguousarray(picture, np.uint8)
    digest = hashlib.blake2b(picture.tobytes(), digest_size=16)
    digest.update(str(picture.shape).encode())
    path = _png_folder() / f"{digest.hexdigest()}.png"
    if not path.exists():
        channels = 1 if picture.ndim == 2 else picture.shape[2]
        order = {1: None, 3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}[channels]
        pixels = picture if order is None else cv2.cvtColor(picture, order)
        ok, data = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise ValueError(f"cannot encode a picture of shape {picture.shape} as PNG")
        partial = path.with_name(f".{path.name}.{threading.get_ident()}")
        partial.write_bytes(data.tobytes())
        os.replace(partial, path)
    return str(path)


def grey_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) grey → (H, W, 3)."""
    return np.repeat(np.asarray(image, np.uint8)[..., None], 3, axis=2)


def line_width(shape: tuple[int, ...]) -> int:
    """Contour width in px that stays visible when a large image is shown scaled down."""
    return max(1, round(max(shape[:2]) / 700))


def contour(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels of ``mask`` within ``width`` px of its edge (inner contour)."""
    if not mask.any():
        return np.zeros_like(mask)
    inner = ndimage.binary_erosion(mask, iterations=width, border_value=0)
    return mask & ~inner


def layout_image(mask: np.ndarray) -> np.ndarray:
    """A layout mask as a picture: features white on near-black."""
    return np.where(mask, 255, 24).astype(np.uint8)


def overlay(sem_image: np.ndarray, mask: np.ndarray | None, opacity: float = 0.35,
            show_contour: bool = True) -> np.ndarray:
    """SEM with the mask filled at ``opacity`` and its contour drawn on top."""
    picture = grey_rgb(sem_image).astype(np.float32)
    if mask is not None:
        fill = np.asarray(FILL_RGB, np.float32)
        picture[mask] = (1 - opacity) * picture[mask] + opacity * fill
        if show_contour:
            picture[contour(mask, line_width(mask.shape))] = CONTOUR_RGB
    return np.clip(picture + 0.5, 0, 255).astype(np.uint8)


def uncertainty_overlay(picture: np.ndarray, pixel_map: np.ndarray) -> np.ndarray:
    """An RGB picture with the per-pixel uncertainty (0–1) painted over it in magenta."""
    alpha = np.clip(np.asarray(pixel_map, np.float32) / UNCERTAIN_FULL_AT, 0, 1)[..., None]
    alpha = alpha * UNCERTAIN_OPACITY
    painted = (1 - alpha) * picture.astype(np.float32) + alpha * np.asarray(UNCERTAIN_RGB, np.float32)
    return np.clip(painted + 0.5, 0, 255).astype(np.uint8)


def disagreement_map(sem_image: np.ndarray, mask_a: np.ndarray,
                     mask_b: np.ndarray) -> np.ndarray:
    """Dimmed SEM; pixels only A marks in orange, only B in blue, both in light grey."""
    picture = (grey_rgb(sem_image).astype(np.float32) * 0.45).astype(np.uint8)
    picture[mask_a & mask_b] = BOTH_RGB
    picture[mask_a & ~mask_b] = ONLY_A_RGB
    picture[mask_b & ~mask_a] = ONLY_B_RGB
    return picture


def zoom(picture: np.ndarray, center_xy: tuple[int, int] | None, factor: int,
         window: int = 128) -> np.ndarray:
    """A ``window``×``window`` px crop around ``center_xy`` enlarged ``factor``× (nearest)."""
    height, width = picture.shape[:2]
    if factor <= 1 or center_xy is None:
        return picture
    side_h, side_w = min(window, height), min(window, width)
    x, y = center_xy
    top = int(np.clip(y - side_h // 2, 0, height - side_h))
    left = int(np.clip(x - side_w // 2, 0, width - side_w))
    crop = picture[top:top + side_h, left:left + side_w]
    return np.repeat(np.repeat(crop, factor, axis=0), factor, axis=1)


def display_factor(shape: tuple[int, ...], target_px: int) -> int:
    """Integer enlargement that brings a small image up to about ``target_px`` (1 if large)."""
    return max(1, target_px // max(shape[:2]))


def enlarge(picture: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (pixels stay square and sharp)."""
    if factor <= 1:
        return picture
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)


def rectangle_mask(shape: tuple[int, int], corner_a: tuple[int, int],
                   corner_b: tuple[int, int]) -> np.ndarray:
    """The axis-aligned rectangle spanning two clicked pixels (x, y), both included."""
    (x0, y0), (x1, y1) = corner_a, corner_b
    mask = np.zeros(shape, bool)
    top, bottom = sorted((int(y0), int(y1)))
    left, right = sorted((int(x0), int(x1)))
    mask[max(top, 0):bottom + 1, max(left, 0):right + 1] = True
    return mask


def mark_point(picture: np.ndarray, point_xy: tuple[int, int], add: bool) -> np.ndarray:
    """Draw a small cross at a clicked corner (the rectangle tool's first click)."""
    picture = picture.copy()
    height, width = picture.shape[:2]
    x, y = point_xy
    arm = max(3, line_width(picture.shape) * 4)
    color = RECT_ADD_RGB if add else RECT_REMOVE_RGB
    picture[max(0, y - arm):min(height, y + arm + 1), min(max(x, 0), width - 1)] = color
    picture[min(max(y, 0), height - 1), max(0, x - arm):min(width, x + arm + 1)] = color
    return picture


def change_picture(sem_image: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The mask to be saved over the SEM: kept in blue, added in green, removed in red."""
    picture = overlay(sem_image, after, opacity=0.35, show_contour=False)
    picture[after & ~before] = RECT_ADD_RGB
    picture[before & ~after] = RECT_REMOVE_RGB
    return picture
