"""The layout editor's data: SEM + translucent layout layer in, edited mask back out.

Gradio 6.31's gr.ImageEditor has two traits this module works around:
- it places layers by its ``canvas_size``, so the editor is built with a canvas smaller than
  any image (EDITOR_CANVAS) and the background then sizes it;
- it slows to a crawl on very large canvases, so the editor shows at most EDIT_MAX_PX a side:
  zoomed in, it shows the result image's window at full resolution (``Window``); a whole image
  wider than that is shown at a reduced scale, and only the pixels the user changed are carried
  back to full resolution (untouched pattern keeps its exact full-resolution edges).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from annotate.render import grey_rgb, png_file

LAYER_RGB = (0, 160, 255)  # the editable layout layer, drawn translucent over the SEM
LAYER_ALPHA = 0.45
BRUSH_COLOR = ("#00a0ff", LAYER_ALPHA)  # gr.Brush colour: the same as the layer
EDITOR_CANVAS = (16, 16)  # gr.ImageEditor canvas_size: must not exceed any image
EDIT_MAX_PX = 1024
Window = tuple[int, int, int, int]  # (top, left, rows, cols): the part of the image edited


def crop(image: np.ndarray, window: Window | None) -> np.ndarray:
    """The part of ``image`` a window covers (all of it for None)."""
    if window is None:
        return image
    top, left, rows, cols = window
    return image[top:top + rows, left:left + cols]


def edit_scale(shape: tuple[int, ...]) -> float:
    """Editor pixels per image pixel (1 up to EDIT_MAX_PX, less for larger images)."""
    return min(1.0, EDIT_MAX_PX / max(shape[:2]))


def _edit_size(shape: tuple[int, ...]) -> tuple[int, int]:
    """(width, height) of the editor canvas for an image of this shape."""
    scale = edit_scale(shape)
    return max(1, round(shape[1] * scale)), max(1, round(shape[0] * scale))


def to_editor_scale(mask: np.ndarray) -> np.ndarray:
    """A full-resolution mask as the editor shows it (area-averaged, at least half covered)."""
    size = _edit_size(mask.shape)
    if size == (mask.shape[1], mask.shape[0]):
        return mask
    return cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5


def editor_value(sem_image: np.ndarray, mask: np.ndarray | None,
                 window: Window | None = None) -> dict:
    """gr.ImageEditor value (files): the SEM as background, the mask as one translucent layer
    (of the window only, when one is given)."""
    sem_image = crop(sem_image, window)
    mask = None if mask is None else crop(mask, window)
    size = _edit_size(sem_image.shape)
    if size != (sem_image.shape[1], sem_image.shape[0]):
        sem_image = cv2.resize(sem_image, size, interpolation=cv2.INTER_AREA)
    layer = np.zeros((size[1], size[0], 4), np.uint8)
    if mask is not None:
        layer[to_editor_scale(mask)] = (*LAYER_RGB, round(LAYER_ALPHA * 255))
    return {"background": png_file(grey_rgb(sem_image)), "layers": [png_file(layer)],
            "composite": None}


def editor_coverage(value: dict | None) -> np.ndarray | None:
    """How much of each editor pixel the layout layer covers, in [0, 1]."""
    if not value or not value.get("layers"):
        return None
    layer = np.asarray(value["layers"][0])
    if layer.ndim != 3 or layer.shape[2] != 4:
        return None
    # Overlapping strokes add up past the layer's own alpha; anything above it is fully set.
    return np.clip(layer[..., 3].astype(np.float32) / (LAYER_ALPHA * 255), 0.0, 1.0)


def editor_mask(value: dict | None) -> np.ndarray | None:
    """The edited layout at editor scale: layer coverage of at least half."""
    coverage = editor_coverage(value)
    return None if coverage is None else coverage >= 0.5


@dataclass(frozen=True)
class EditorBase:
    """The full-resolution mask the editor was last loaded with, and the one it replaced.

    The browser takes a moment to show a layer the server sent; an event fired meanwhile (a
    quick second tool click, Save) uploads the editor as it was. Knowing the replaced mask lets
    ``edited_mask`` tell that stale upload from the user's own strokes.
    """

    mask: np.ndarray
    superseded: np.ndarray | None = None
    window: Window | None = None  # the part of ``mask`` the editor shows (None: all)
    superseded_window: Window | None = None  # ... and the part it showed of ``superseded``

    def edited(self, value: dict | None) -> np.ndarray:
        """The full-resolution mask after the editing that ``value`` (an upload) shows."""
        return edited_mask(value, self.mask, self.superseded, self.window,
                           self.superseded_window)


def edited_mask(value: dict | None, base: np.ndarray, superseded: np.ndarray | None = None,
                window: Window | None = None,
                superseded_window: Window | None = None) -> np.ndarray:
    """The full-resolution mask after editing: ``base`` where the user left the layer alone,
    the drawn/erased layer where they changed it (the editor was loaded with ``base``, or with
    its ``window`` part; pixels outside the window are ``base``'s).

    An upload that still shows ``superseded`` (what the editor held before ``base`` was sent,
    its ``superseded_window`` part) exactly is stale: the browser had not drawn the new layer
    yet, so ``base`` is kept."""
    drawn = editor_mask(value)
    if drawn is None:
        return base
    part = crop(base, window)
    sent = to_editor_scale(part)
    if drawn.shape != sent.shape:
        return base  # not this sample's (or this window's) editor content: keep what we had
    if superseded is not None and superseded.shape == base.shape and \
            not np.array_equal(drawn, sent) and \
            np.array_equal(drawn, to_editor_scale(crop(superseded, superseded_window))):
        return base
    if drawn.shape == part.shape:
        edited = drawn
    else:
        size = (part.shape[1], part.shape[0])
        changed = cv2.resize((drawn != sent).astype(np.uint8), size,
                             interpolation=cv2.INTER_NEAREST).astype(bool)
        full_drawn = cv2.resize(drawn.astype(np.uint8), size,
                                interpolation=cv2.INTER_NEAREST).astype(bool)
        edited = np.where(changed, full_drawn, part)
    if window is None:
        return edited
    out = base.copy()
    top, left, rows, cols = window
    out[top:top + rows, left:left + cols] = edited
    return out


# -- one-click correction tools (the Correct tab's result-image tools) ---------------------------


def region_at(mask: np.ndarray, point_xy: tuple[int, int]) -> np.ndarray:
    """The 4-connected region (pattern or gap, whichever is under the point) holding ``point_xy``."""
    x, y = point_xy
    if not (0 <= y < mask.shape[0] and 0 <= x < mask.shape[1]):
        return np.zeros(mask.shape, bool)
    side = mask if mask[y, x] else ~mask
    _, labels = cv2.connectedComponents(side.astype(np.uint8), connectivity=4)
    return labels == labels[y, x]


def flip_region(mask: np.ndarray, point_xy: tuple[int, int]) -> np.ndarray:
    """Delete the clicked pattern region, or fill the clicked gap/hole."""
    return mask ^ region_at(mask, point_xy)


def keep_region(mask: np.ndarray, point_xy: tuple[int, int]) -> np.ndarray:
    """Keep only the clicked pattern region (every other pattern region is removed)."""
    region = region_at(mask, point_xy)
    return region if region.any() and mask[point_xy[1], point_xy[0]] else mask.copy()


def move_region_edges(mask: np.ndarray, point_xy: tuple[int, int], nm: float,
                      nm_per_px: float) -> np.ndarray:
    """Move every edge of the clicked pattern region out (nm > 0) or in by ``nm``, rounded to
    whole pixels; a square kernel keeps Manhattan edges straight. Other regions stay as they are."""
    steps = round(abs(nm) / nm_per_px)
    region = region_at(mask, point_xy)
    if steps == 0 or not region.any() or not mask[point_xy[1], point_xy[0]]:
        return mask.copy()
    return (mask & ~region) | _moved(region, nm, steps)


def _moved(mask: np.ndarray, nm: float, steps: int) -> np.ndarray:
    kernel = np.ones((2 * steps + 1,) * 2, np.uint8)
    return (cv2.dilate if nm > 0 else cv2.erode)(mask.astype(np.uint8), kernel).astype(bool)


def move_all_edges(mask: np.ndarray, nm: float, nm_per_px: float) -> np.ndarray:
    """Move every edge of the layout out (nm > 0) or in by ``nm``, rounded to whole pixels: a
    CD bias taken off the whole image at once. Gaps narrower than twice the shift close, and
    pieces narrower than twice an inward shift vanish, as they would on the wafer."""
    steps = round(abs(nm) / nm_per_px)
    return mask.copy() if steps == 0 else _moved(mask, nm, steps)
