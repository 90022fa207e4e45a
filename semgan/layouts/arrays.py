"""Rectangle builders for square contact and via arrays on a lattice, in integer pixels (y up).

Every contact or via is a size×size square whose corner sits on one lattice: x = x0 + i·pitch_x
(+ a half-pitch shift on odd rows when staggered), y = y0 + j·pitch_y. The lattice starts left
of and below the canvas, so arrays run off the tile border like a crop of a real layout. The
builders share the canonical frame of ``patterns``: ``rules.width`` is the square's side and
``rules.space`` the smallest gap, so every drawn rule holds by construction.
"""

from __future__ import annotations

import numpy as np

from semgan.layouts.patterns import PixelRules

# How contacts are arranged, from dense to sparse (see ``contact_array``), and how often.
CONTACT_ARRANGEMENTS = {"full": 0.25, "partial": 0.25, "rows": 0.15, "blocks": 0.2, "isolated": 0.15}
# How vias are grouped (see ``via_array``).
VIA_GROUPS = ("single", "double", "square", "bar")


class Lattice:
    """The sites of a square-feature array and which of them are taken."""

    def __init__(self, rng: np.random.Generator, rules: PixelRules, width: int, height: int,
                 staggered: bool = False):
        self.size = rules.width
        self.pitch_x = rules.width + rules.space
        # Rows at the same pitch, or further apart (a rectangular lattice).
        stretch = 1.0 if rng.random() < 0.6 else float(rng.uniform(1.0, 2.0))
        self.pitch_y = rules.width + round(rules.space * stretch)
        self.shift = self.pitch_x // 2 if staggered else 0
        # Site (2, 2) has its corner at a random phase on the canvas, so some square is in view
        # even when the lattice is sparser than the canvas is wide.
        self.origin = (int(rng.integers(0, min(self.pitch_x, width))) - 2 * self.pitch_x,
                       int(rng.integers(0, min(self.pitch_y, height))) - 2 * self.pitch_y)
        # Enough sites to cover the canvas plus one beyond each side (and the stagger).
        self.shape = (width // self.pitch_x + 5, height // self.pitch_y + 5)
        self.width, self.height = width, height
        self.taken = np.zeros(self.shape, dtype=bool)

    def corner(self, i: int, j: int) -> tuple[int, int]:
        """Lower-left pixel corner of site (i, j)."""
        return self.origin[0] + i * self.pitch_x + (self.shift if j % 2 else 0), self.origin[1] + j * self.pitch_y

    def visible(self, i: int, j: int) -> bool:
        """True when the square of site (i, j) overlaps the canvas."""
        x, y = self.corner(i, j)
        return x < self.width and x + self.size > 0 and y < self.height and y + self.size > 0

    def inside(self, i: int, j: int) -> bool:
        """True when the square of site (i, j) lies wholly on the canvas."""
        x, y = self.corner(i, j)
        return x >= 0 and x + self.size <= self.width and y >= 0 and y + self.size <= self.height

    def visible_sites(self) -> list[tuple[int, int]]:
        """Every site whose square overlaps the canvas, row by row."""
        return [(i, j) for j in range(self.shape[1]) for i in range(self.shape[0]) if self.visible(i, j)]

    def anchor_sites(self) -> list[tuple[int, int]]:
        """Sites wholly on the canvas (or, on a canvas too small for one, every visible site)."""
        sites = [site for site in self.visible_sites() if self.inside(*site)]
        return sites or self.visible_sites()

    def place(self, sites: list[tuple[int, int]], clearance: int) -> bool:
        """Take ``sites`` if all lie on the lattice with no taken site within ``clearance`` sites."""
        for i, j in sites:
            if not (0 <= i < self.shape[0] and 0 <= j < self.shape[1]):
                return False
            if self.taken[max(i - clearance, 0):i + clearance + 1, max(j - clearance, 0):j + clearance + 1].any():
                return False
        for i, j in sites:
            self.taken[i, j] = True
        return True

    def rects(self) -> np.ndarray:
        """(N, 4) int64 [x0, y0, x1, y1] of the squares of every taken site."""
        rows = [(*self.corner(i, j), *(v + self.size for v in self.corner(i, j)))
                for i, j in zip(*np.nonzero(self.taken), strict=True)]
        return np.array(rows, dtype=np.int64).reshape(-1, 4)

    def info(self) -> dict:
        """Pitch and stagger of the lattice (canonical frame), for the clip's source."""
        return {"feature_px": self.size, "pitch_px": [self.pitch_x, self.pitch_y], "stagger_px": self.shift}


def _fill(rng: np.random.Generator, lattice: Lattice, arrangement: str) -> None:
    """Take the sites of one arrangement (see ``CONTACT_ARRANGEMENTS``)."""
    sites, anchors = lattice.visible_sites(), lattice.anchor_sites()
    if arrangement in ("full", "partial"):
        empty = 0.0 if arrangement == "full" else float(rng.uniform(0.15, 0.6))
        keep = rng.random(len(sites)) >= empty
        lattice.place([s for s, k in zip(sites, keep, strict=True) if k], 0)
    elif arrangement == "rows":  # a few whole rows, like contacts along diffusion strips
        rows = sorted({j for _, j in sites})
        for j in rng.choice(rows, size=min(len(rows), int(rng.integers(1, 4))), replace=False):
            lattice.place([s for s in sites if s[1] == j], 0)
    elif arrangement == "blocks":  # a few n×m sub-arrays, free to run off the border
        for _ in range(int(rng.integers(1, 5))):
            i0, j0 = anchors[int(rng.integers(len(anchors)))]
            n, m = (int(v) for v in rng.integers(2, 7, size=2))
            lattice.place([(i, j) for i in range(i0, i0 + n) for j in range(j0, j0 + m)], 1)
    else:  # isolated contacts, at least two sites apart
        for _ in range(int(rng.integers(1, 9))):
            lattice.place([anchors[int(rng.integers(len(anchors)))]], 1)
    if not lattice.taken.any():  # never an empty clip: one whole contact on the canvas
        lattice.place([anchors[int(rng.integers(len(anchors)))]], 0)


def contact_array(rng: np.random.Generator, rules: PixelRules, width: int,
                  height: int) -> tuple[np.ndarray, dict]:
    """Square contacts: full, partial, row, block or isolated arrays, regular or row-staggered."""
    names = list(CONTACT_ARRANGEMENTS)
    arrangement = names[int(rng.choice(len(names), p=list(CONTACT_ARRANGEMENTS.values())))]
    staggered = arrangement in ("full", "partial") and bool(rng.random() < 0.35)
    lattice = Lattice(rng, rules, width, height, staggered=staggered)
    _fill(rng, lattice, arrangement)
    return lattice.rects(), {"arrangement": arrangement, "staggered": staggered,
                             "features": int(lattice.taken.sum()), **lattice.info()}


def _group(rng: np.random.Generator, i: int, j: int) -> tuple[str, list[tuple[int, int]]]:
    """A via group anchored at site (i, j): a single via, a redundant pair, a square or a bar."""
    kind = VIA_GROUPS[int(rng.integers(len(VIA_GROUPS)))]
    if kind == "single":
        return kind, [(i, j)]
    if kind == "double":
        return kind, [(i, j), (i + 1, j)] if rng.random() < 0.5 else [(i, j), (i, j + 1)]
    if kind == "square":
        n = int(rng.integers(2, 4))
        return kind, [(i + a, j + b) for a in range(n) for b in range(n)]
    n = int(rng.integers(3, 7))
    return kind, [(i + a, j) for a in range(n)] if rng.random() < 0.5 else [(i, j + a) for a in range(n)]


def via_array(rng: np.random.Generator, rules: PixelRules, width: int,
              height: int) -> tuple[np.ndarray, dict]:
    """Square vias in groups (single, redundant pairs, n×n squares, bars) scattered sparse or dense."""
    lattice = Lattice(rng, rules, width, height)
    sites, anchors = lattice.visible_sites(), lattice.anchor_sites()
    dense = bool(rng.random() < 0.5)
    # Sparse: a handful of groups starting on the canvas; dense: as many as fit anywhere in view,
    # one empty site between groups.
    starts, tries = (sites, len(sites)) if dense else (anchors, int(rng.integers(1, 7)))
    groups = 0
    for _ in range(tries):
        _, group = _group(rng, *starts[int(rng.integers(len(starts)))])
        groups += lattice.place(group, 1)
    if not any(lattice.inside(int(i), int(j)) for i, j in zip(*np.nonzero(lattice.taken), strict=True)):
        groups += lattice.place([anchors[int(rng.integers(len(anchors)))]], 0)  # one whole via in view
    return lattice.rects(), {"density": "dense" if dense else "sparse", "groups": int(groups),
                             "features": int(lattice.taken.sum()), **lattice.info()}
