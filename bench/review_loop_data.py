"""The review-loop benchmark's images: each tool's pool and test pairs, and the training tools'."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from semgan.imageio import load_image, save_png
from semgan.semsim import PROFILES, TRAINING_PROFILES
from semgan.semsim.foreign import FOREIGN_TOOLS, ForeignTool
from semgan.synth import make_pair

INDEP = Path(__file__).resolve().parents[2] / "shared" / "eval" / "indep_sem.py"
LAYOUTS = Path(__file__).resolve().parents[2] / "shared" / "layouts"
FIELD_NM = 1024.0  # every synthetic tool's images span the same field
SEEDS = {"pool": 61, "test": 62, "original": 63}


def all_tools() -> list[str]:
    """Family, drifted, then the independent simulator's tools."""
    return [*FOREIGN_TOOLS, "drifted", "indep_a", "indep_b", "indep_c"]


def synthetic_tool(name: str) -> ForeignTool:
    """The family member or ``drifted``."""
    return FOREIGN_TOOLS[name] if name in FOREIGN_TOOLS else ForeignTool(PROFILES[name])


def write_folder(out: Path, pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Path, Path]:
    """SEM and layout PNG folders (what the engineer corrected, or a test set)."""
    sem_dir, layout_dir = out / "sem", out / "layout"
    sem_dir.mkdir(parents=True, exist_ok=True)
    layout_dir.mkdir(parents=True, exist_ok=True)
    for index, (sem, mask) in enumerate(pairs):
        save_png(sem_dir / f"{index:04d}.png", sem)
        save_png(layout_dir / f"{index:04d}.png", mask)
    return sem_dir, layout_dir


def tool_data(name: str, pool: int, test: int, root: Path) -> tuple[list, list, float]:
    """(pool pairs, test pairs, nm/px) of one tool as (uint8 SEM, bool mask) at its pixel size."""
    if name.startswith("indep_"):
        out = root / f"{name}_all"
        subprocess.run([sys.executable, str(INDEP), "--layouts", str(LAYOUTS), "--tool",
                        name.removeprefix("indep_"), "--count", str(pool + test), "--seed", "7",
                        "--out", str(out)], check=True, capture_output=True)
        meta = json.loads((out / "pairs.json").read_text())
        pairs = [((load_image(out / "sem" / f"{i['name']}.png").pixels * 255).round().astype(np.uint8),
                  load_image(out / "layout" / f"{i['name']}.png").pixels > 0.5)
                 for i in meta["items"]]
        return pairs[:pool], pairs[pool:pool + test], float(meta["nm_per_px"])
    tool = synthetic_tool(name)
    size = round(FIELD_NM / tool.nm_per_px)

    def make(count: int, seed: int) -> list:
        return [(p.sem_image, p.layout_mask) for p in
                (make_pair(i, size=size, nm_per_px=tool.nm_per_px, profiles=[tool.profile],
                           seed=seed) for i in range(count))]

    return make(pool, SEEDS["pool"]), make(test, SEEDS["test"]), tool.nm_per_px


def original_data(count: int) -> list:
    """Held-out images of the training tools at 4 nm/px with their tool tags."""
    profiles = [PROFILES[p] for p in TRAINING_PROFILES]
    return [(p.sem_image, p.layout_mask, f"sim:{p.profile}") for p in
            (make_pair(i, size=256, nm_per_px=4.0, profiles=profiles, seed=SEEDS["original"])
             for i in range(count))]
