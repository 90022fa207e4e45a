"""The foreign-tool family: tools the default model never trained on, each different in kind.

The review loop is judged on all of them at once (``bench/review_loop.py``), so that no recipe
is shaped around one. Each is a clean-tool profile with the knobs of one kind of difference
changed, plus the pixel size its images are taken at (the Predictor resamples to the model's).
"""

from __future__ import annotations

from dataclasses import dataclass

from semgan.semsim.profiles import PROFILES, ToolProfile


@dataclass(frozen=True)
class ForeignTool:
    """A tool profile and the pixel size (nm/px) its images are taken at."""

    profile: ToolProfile
    nm_per_px: float = 4.0

    @property
    def name(self) -> str:
        """The tool's name (its profile's)."""
        return self.profile.name


def _variant(name: str, description: str, **knobs: tuple[float, float]) -> ToolProfile:
    """A clean-tool profile with some knobs changed."""
    return ToolProfile.from_dict({**PROFILES["clean"].to_dict(), "name": name,
                                  "description": description,
                                  **{k: list(v) for k, v in knobs.items()}})


FOREIGN_TOOLS: dict[str, ForeignTool] = {tool.name: tool for tool in (
    ForeignTool(_variant("edge_only", "weak material contrast, edge-dominated outlines",
                         substrate_level=(0.26, 0.30), feature_level=(0.27, 0.33),
                         edge_bloom_gain=(0.9, 1.4))),
    ForeignTool(_variant("dark_features", "dark features on a bright substrate",
                         substrate_level=(0.40, 0.48), feature_level=(0.10, 0.18))),
    ForeignTool(_variant("wide_beam", "much wider beam spot", beam_sigma_nm=(6.0, 14.0))),
    ForeignTool(_variant("low_dose", "very low dose", dose_electrons_per_px=(1.5, 10.0))),
    ForeignTool(_variant("charging_pads", "strong charging tails and halos behind large features",
                         charging_amplitude=(0.25, 0.45), charging_decay_px=(40.0, 120.0),
                         background_amplitude=(0.05, 0.08))),
    ForeignTool(_variant("fine_pixel", "a finer pixel size: 2 nm/px, beam and blur as clean"),
                nm_per_px=2.0),
)}
