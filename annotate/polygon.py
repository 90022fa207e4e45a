"""Manhattan polygon tool: clicked vertices, each new edge snapped horizontal or vertical.

Layouts are Manhattan, so every edge the user draws is axis-aligned: a new vertex keeps the
larger of its two moves from the previous vertex and drops the smaller. Clicking near the
first vertex closes the polygon; the closing edge gets one corner vertex if it is not
axis-aligned already. Vertices are pixel centres (x, y) and the fill includes the pixels on
the outline, so a four-vertex polygon fills exactly what the rectangle tool fills.
"""

from __future__ import annotations

import cv2
import numpy as np

Vertex = tuple[int, int]


def close_radius(shape: tuple[int, ...]) -> int:
    """How near (px, either axis) a click must come to the first vertex to close: a few
    screen pixels however much the image is scaled down to fit."""
    return max(3, round(max(shape[:2]) / 128))


def snap(previous: Vertex, point: Vertex) -> Vertex:
    """``point`` moved so that the edge from ``previous`` is horizontal or vertical."""
    dx, dy = point[0] - previous[0], point[1] - previous[1]
    return (point[0], previous[1]) if abs(dx) >= abs(dy) else (previous[0], point[1])


def add_vertex(vertices: list[Vertex], point: Vertex,
               radius: int) -> tuple[list[Vertex], bool]:
    """(vertices, closed) after a click at ``point``: closed when it lands within ``radius``
    of the first vertex of a polygon with three or more vertices; a click that would repeat
    the last vertex is ignored; a vertex that continues the last edge straight replaces
    the last vertex (no collinear vertices)."""
    point = (int(point[0]), int(point[1]))
    if not vertices:
        return [point], False
    first = vertices[0]
    if len(vertices) >= 3 and max(abs(point[0] - first[0]), abs(point[1] - first[1])) <= radius:
        return list(vertices), True
    new = snap(vertices[-1], point)
    if new == vertices[-1]:
        return list(vertices), False
    if len(vertices) >= 2 and _collinear(vertices[-2], vertices[-1], new):
        return [*vertices[:-1], new], False
    return [*vertices, new], False


def _collinear(a: Vertex, b: Vertex, c: Vertex) -> bool:
    return (a[0] == b[0] == c[0]) or (a[1] == b[1] == c[1])


def closed_outline(vertices: list[Vertex]) -> list[Vertex]:
    """The vertices of the closed Manhattan outline: if the last and the first vertex are not
    aligned, a corner is added that turns the last edge by 90°."""
    if len(vertices) < 2:
        return list(vertices)
    last, first = vertices[-1], vertices[0]
    if last[0] == first[0] or last[1] == first[1]:
        return list(vertices)
    before = vertices[-2]
    came_horizontally = before[1] == last[1]
    corner = (last[0], first[1]) if came_horizontally else (first[0], last[1])
    return [*vertices, corner]


def polygon_mask(shape: tuple[int, int], vertices: list[Vertex]) -> np.ndarray:
    """The closed outline through ``vertices`` filled, outline pixels included."""
    mask = np.zeros(shape[:2], np.uint8)
    outline = closed_outline(vertices)
    if len(outline) >= 3:
        cv2.fillPoly(mask, [np.asarray(outline, np.int32).reshape(-1, 1, 2)], 1)
    return mask.astype(bool)


def apply_polygon(mask: np.ndarray, vertices: list[Vertex], add: bool) -> np.ndarray:
    """The mask with the polygon made pattern (``add``) or erased."""
    shape = polygon_mask(mask.shape, vertices)
    return mask | shape if add else mask & ~shape


def draw_path(picture: np.ndarray, vertices: list[Vertex], add: bool) -> np.ndarray:
    """The open polygon drawn on an RGB picture: its edges, and a box on the first vertex
    (click it to close)."""
    picture = picture.copy()
    if not vertices:
        return picture
    colour = (60, 220, 90) if add else (255, 70, 70)
    width = max(1, round(max(picture.shape[:2]) / 700))
    points = np.asarray(vertices, np.int32).reshape(-1, 1, 2)
    cv2.polylines(picture, [points], False, colour, width)
    x, y = vertices[0]
    box = max(2, width * 3)
    cv2.rectangle(picture, (x - box, y - box), (x + box, y + box), (255, 255, 0), width)
    return picture
