"""Tool profiles: the physical knobs of one lithography + CD-SEM tool, as sampled ranges.

Every knob is a ``(low, high)`` range; ``ToolProfile.sample`` draws one value per knob
uniformly, so a profile describes a tool's spread from image to image, not one image.
Lengths are in nm (converted with the image's nm/px, so a profile looks the same at any
pixel size), except the scan-electronics knobs, which are in pixels (dwell time per pixel
sets them, not the field of view). Brightness knobs are in secondary-electron yield units:
0 is black, ~1 is a bright edge before gain.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from semgan.errors import SemganError


class ProfileError(SemganError):
    """A tool profile (name, JSON file or values) is invalid."""


Range = tuple[float, float]

# knob → (allowed minimum, allowed maximum, what it means). Bounds catch typos such as a
# negative dose or a level of 128 meant as grey levels; None means unbounded.
KNOBS: dict[str, tuple[float | None, float | None, str]] = {
    "optical_blur_nm": (0.0, 100.0, "Gaussian sigma of the optical image; sets corner rounding"),
    "cd_bias_nm": (-30.0, 30.0, "printed CD minus design CD of a wide line (sets the print threshold)"),
    "ler_sigma_nm": (0.0, 20.0, "std of the edge displacement (line-edge roughness, 1 sigma)"),
    "ler_correlation_nm": (0.1, 1000.0, "correlation length of the edge displacement"),
    "substrate_level": (0.0, 1.0, "SE yield of the substrate (material contrast)"),
    "feature_level": (0.0, 1.0, "SE yield of the printed feature tops (material contrast)"),
    "edge_bloom_gain": (0.0, 2.0, "extra SE yield right at an edge (edge effect)"),
    "edge_bloom_decay_nm": (0.1, 100.0, "inward decay length of the edge bloom; outward is 0.3x"),
    "beam_sigma_nm": (0.0, 100.0, "Gaussian sigma of the beam spot"),
    "background_amplitude": (0.0, 1.0, "std of the slowly varying additive background"),
    "background_scale_nm": (1.0, 1e6, "correlation length of that background"),
    "row_drift_amplitude": (0.0, 1.0, "relative std of slow brightness drift from row to row"),
    "line_noise_amplitude": (0.0, 1.0, "std of a per-scan-line brightness offset (streaks)"),
    "scan_jitter_px": (0.0, 10.0, "std of the per-scan-line horizontal beam shift"),
    "charging_amplitude": (-2.0, 2.0, "strength of the charging tail after bright features (<0: dark)"),
    "charging_decay_px": (0.1, 1e4, "decay length of the charging tail along the scan line"),
    "detector_smear_px": (0.0, 10.0, "detector bandwidth: exponential smear along the scan line"),
    "dose_electrons_per_px": (0.01, 1e6, "primary electrons per pixel; SE counts are Poisson"),
    "gain": (0.01, 10.0, "grey levels per yield unit, as a fraction of 255"),
    "offset": (-255.0, 255.0, "black level in grey levels"),
}
SCAN_DIRECTIONS: dict[str, float] = {"left_to_right": 1.0, "right_to_left": -1.0}


def check_range(name: str, value: object, allowed_low: float | None, allowed_high: float | None,
                label: str | None = None) -> Range:
    """Coerce ``value`` (a number or a [low, high] pair) into a finite float range inside the
    allowed bounds (None: unbounded); ``label`` names the knob in the out-of-bounds error."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, list | tuple) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)):
        raise ProfileError(f"{name}: expected a number or [low, high], got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ProfileError(f"{name}: range bounds must be finite, got {value!r}")
    if lo > hi:
        raise ProfileError(f"{name}: low {lo} is above high {hi}; write [low, high]")
    if (allowed_low is not None and lo < allowed_low) or (allowed_high is not None and hi > allowed_high):
        raise ProfileError(f"{label or name}: [{lo}, {hi}] is outside the allowed "
                           f"[{allowed_low}, {allowed_high}]")
    return lo, hi


def _as_range(name: str, value: object) -> Range:
    """A knob's range, validated against its bounds in ``KNOBS``."""
    allowed_lo, allowed_hi, meaning = KNOBS[name]
    return check_range(name, value, allowed_lo, allowed_hi, f"{name} ({meaning})")


@dataclass(frozen=True)
class ToolProfile:
    """One lithography + CD-SEM tool: a (low, high) range per physical knob (see ``KNOBS``)."""

    name: str
    description: str
    optical_blur_nm: Range
    cd_bias_nm: Range
    ler_sigma_nm: Range
    ler_correlation_nm: Range
    substrate_level: Range
    feature_level: Range
    edge_bloom_gain: Range
    edge_bloom_decay_nm: Range
    beam_sigma_nm: Range
    background_amplitude: Range
    background_scale_nm: Range
    row_drift_amplitude: Range
    line_noise_amplitude: Range
    scan_jitter_px: Range
    charging_amplitude: Range
    charging_decay_px: Range
    detector_smear_px: Range
    dose_electrons_per_px: Range
    gain: Range
    offset: Range
    scan_direction: str = "left_to_right"

    def __post_init__(self) -> None:
        """Validate every range so a bad profile fails where it is made, not mid-simulation."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ProfileError(f"profile name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.description, str):
            raise ProfileError(f"profile {self.name!r}: description must be a string")
        if self.scan_direction not in SCAN_DIRECTIONS:
            raise ProfileError(
                f"profile {self.name!r}: scan_direction {self.scan_direction!r} is not one of "
                f"{', '.join(SCAN_DIRECTIONS)}"
            )
        for knob in KNOBS:
            try:
                object.__setattr__(self, knob, _as_range(knob, getattr(self, knob)))
            except ProfileError as err:
                raise ProfileError(f"profile {self.name!r}: {err}") from None

    def sample(self, rng: np.random.Generator) -> dict[str, float]:
        """Draw one value per knob uniformly in its range (plus scan_direction as +1/-1)."""
        values = {knob: float(rng.uniform(*getattr(self, knob))) for knob in KNOBS}
        values["scan_direction"] = SCAN_DIRECTIONS[self.scan_direction]
        return values

    def to_dict(self) -> dict:
        """JSON-ready dict: name, description, scan_direction and [low, high] per knob."""
        data: dict = {"name": self.name, "description": self.description,
                      "scan_direction": self.scan_direction}
        data.update({knob: list(getattr(self, knob)) for knob in KNOBS})
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ToolProfile:
        """Build a profile from ``to_dict`` output; unknown or missing keys raise ProfileError."""
        if not isinstance(data, dict):
            raise ProfileError(f"a tool profile must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProfileError(f"unknown tool profile key(s) {unknown}; valid keys: {sorted(known)}")
        required = known - {"scan_direction"}
        missing = sorted(required - set(data))
        if missing:
            raise ProfileError(f"tool profile is missing key(s) {missing}")
        return cls(**data)


def _profile(name: str, description: str, **knobs: Range | str) -> ToolProfile:
    return ToolProfile(name=name, description=description, **knobs)  # type: ignore[arg-type]


_CLEAN = dict(
    optical_blur_nm=(9.0, 13.0), cd_bias_nm=(0.5, 2.5), ler_sigma_nm=(1.0, 1.8),
    ler_correlation_nm=(15.0, 30.0), substrate_level=(0.16, 0.21), feature_level=(0.40, 0.47),
    edge_bloom_gain=(0.75, 0.9), edge_bloom_decay_nm=(4.0, 7.0), beam_sigma_nm=(2.0, 3.0),
    background_amplitude=(0.01, 0.025), background_scale_nm=(300.0, 800.0),
    row_drift_amplitude=(0.0, 0.015), line_noise_amplitude=(0.004, 0.01),
    scan_jitter_px=(0.05, 0.15), charging_amplitude=(0.02, 0.05), charging_decay_px=(8.0, 20.0),
    detector_smear_px=(0.4, 0.8), dose_electrons_per_px=(70.0, 110.0), gain=(0.95, 1.05),
    offset=(8.0, 14.0),
)

PROFILES: dict[str, ToolProfile] = {
    "clean": _profile("clean", "reference CD-SEM: high dose, sharp beam, bright edges", **_CLEAN),
    "noisy": _profile(
        "noisy", "second tool: low dose, flatter material contrast, strong charging streaks",
        **{**_CLEAN, "cd_bias_nm": (-3.0, -1.0), "substrate_level": (0.24, 0.30),
           "feature_level": (0.36, 0.42), "edge_bloom_gain": (0.85, 1.05),
           "line_noise_amplitude": (0.01, 0.025), "scan_jitter_px": (0.2, 0.4),
           "charging_amplitude": (0.08, 0.14), "charging_decay_px": (20.0, 50.0),
           "detector_smear_px": (0.8, 1.4), "dose_electrons_per_px": (14.0, 24.0)},
    ),
    "aged": _profile(
        "aged", "aged tool: wide beam spot, weak edge bloom, brightness drift, gain/offset shift",
        **{**_CLEAN, "cd_bias_nm": (1.5, 4.0), "ler_sigma_nm": (1.5, 2.5),
           "edge_bloom_gain": (0.25, 0.4), "edge_bloom_decay_nm": (6.0, 10.0),
           "beam_sigma_nm": (5.0, 7.0), "background_amplitude": (0.03, 0.06),
           "row_drift_amplitude": (0.06, 0.12), "dose_electrons_per_px": (40.0, 60.0),
           "gain": (0.78, 0.88), "offset": (26.0, 36.0)},
    ),
    "drifted": _profile(
        "drifted", "strongly drifted tool: inverted material contrast, dark, heavy charging",
        **{**_CLEAN, "substrate_level": (0.34, 0.40), "feature_level": (0.16, 0.22),
           "edge_bloom_gain": (0.10, 0.18), "beam_sigma_nm": (4.0, 6.0),
           "background_amplitude": (0.04, 0.07), "row_drift_amplitude": (0.05, 0.1),
           "line_noise_amplitude": (0.02, 0.04), "scan_jitter_px": (0.3, 0.6),
           "charging_amplitude": (-0.3, -0.18), "charging_decay_px": (30.0, 80.0),
           "dose_electrons_per_px": (10.0, 18.0), "gain": (0.5, 0.6), "offset": (2.0, 6.0)},
    ),
}
# The profiles the default model is trained on; "drifted" is kept out to exercise drift alarms.
TRAINING_PROFILES: tuple[str, ...] = ("clean", "noisy", "aged")


def save_profile(profile: ToolProfile, path: str | Path) -> None:
    """Write ``profile`` as indented JSON (atomically: temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(profile.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def load_profile(path: str | Path) -> ToolProfile:
    """Read a tool profile JSON file; any problem raises ProfileError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"tool profile file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError(f"cannot read tool profile file {path}: {err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProfileError(
            f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
    try:
        return ToolProfile.from_dict(data)
    except ProfileError as err:
        raise ProfileError(f"{path}: {err}") from None


def get_profile(name_or_path: str | Path) -> ToolProfile:
    """Return a registered profile by name, or load one from a ``.json`` file."""
    text = str(name_or_path)
    if text in PROFILES and not isinstance(name_or_path, Path):
        return PROFILES[text]
    if isinstance(name_or_path, Path) or text.lower().endswith(".json") or Path(text).is_file():
        return load_profile(text)
    raise ProfileError(
        f"unknown tool profile {text!r}; use one of {', '.join(PROFILES)} or a profile .json file"
    )
