"""The randomization space: the knobs a randomized tool draws, which draws are usable, held-out regions.

Every knob has a default range (wide: the point is tools nobody has seen), bounds that any
range must keep, and a way of drawing (uniform, or log-uniform for knobs spanning decades).
A held-out region is a named box over one to three knobs; draws inside any region are kept
out of training and used for validation only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from semgan.layouts.procedural import MIN_CD_NM, MIN_SPACE_NM
from semgan.semsim.printing import MIN_BLUR_PX, print_threshold
from semgan.semsim.profiles import KNOBS, ProfileError, check_range

Range = tuple[float, float]


class Knob(NamedTuple):
    """One randomized knob: its default range, the bounds any range must keep, how it is drawn."""

    low: float
    high: float
    allowed_low: float
    allowed_high: float
    log: bool  # drawn log-uniformly: scale-like knobs that span decades
    meaning: str


def _shared(name: str, low: float, high: float, log: bool = False) -> Knob:
    """A knob that ``ToolProfile`` has too: its bounds and meaning come from ``KNOBS``."""
    allowed_low, allowed_high, meaning = KNOBS[name]
    return Knob(low, high, float(allowed_low), float(allowed_high), log, meaning)


# Drawn in this order (one uniform number each), so pinning a knob keeps the others' draws.
RANDOM_KNOBS: dict[str, Knob] = {
    "acquisition_nm_per_px": Knob(2.0, 8.0, 0.5, 32.0, False,
                                  "pixel size the SEM image is taken at, resampled to the model's"),
    "optical_blur_nm": _shared("optical_blur_nm", 4.0, 14.0),
    "cd_bias_nm": _shared("cd_bias_nm", -8.0, 10.0),
    "ler_sigma_nm": _shared("ler_sigma_nm", 0.3, 3.5),
    "ler_correlation_nm": _shared("ler_correlation_nm", 8.0, 60.0, log=True),
    "substrate_level": _shared("substrate_level", 0.08, 0.45),
    "material_contrast": Knob(-0.3, 0.4, -1.0, 1.0, False,
                              "feature minus substrate SE yield: > 0 bright features, < 0 inverted"),
    "edge_bloom_gain": _shared("edge_bloom_gain", 0.05, 1.2),
    "edge_bloom_decay_nm": _shared("edge_bloom_decay_nm", 2.0, 14.0),
    "beam_sigma_nm": _shared("beam_sigma_nm", 1.0, 10.0),
    "beam_aspect": Knob(0.4, 1.0, 0.05, 1.0, False,
                        "astigmatism: minor over major sigma of the beam spot (1 = round)"),
    "beam_angle_deg": Knob(0.0, 180.0, -360.0, 360.0, False,
                           "direction of the spot's major axis, from +x towards the top"),
    "background_amplitude": _shared("background_amplitude", 0.0, 0.08),
    "background_scale_nm": _shared("background_scale_nm", 150.0, 3000.0, log=True),
    "background_gradient": Knob(0.0, 0.12, -1.0, 1.0, False,
                                "SE yield change across the field (collection efficiency)"),
    "background_gradient_angle_deg": Knob(0.0, 360.0, -360.0, 360.0, False,
                                          "direction of that gradient, from +x towards the top"),
    "halo_gain": Knob(-0.05, 0.25, -1.0, 1.0, False,
                      "SE yield added around feature material, per unit of nearby feature area"),
    "halo_width_nm": Knob(30.0, 300.0, 1.0, 1e5, True, "reach (Gaussian sigma) of that halo"),
    "row_drift_amplitude": _shared("row_drift_amplitude", 0.0, 0.15),
    "line_noise_amplitude": _shared("line_noise_amplitude", 0.0, 0.04),
    "scan_jitter_px": _shared("scan_jitter_px", 0.0, 0.7),
    "charging_amplitude": _shared("charging_amplitude", -0.3, 0.45),
    "charging_decay_px": _shared("charging_decay_px", 5.0, 150.0, log=True),
    "detector_smear_px": _shared("detector_smear_px", 0.0, 1.6),
    "dose_electrons_per_px": _shared("dose_electrons_per_px", 2.0, 300.0, log=True),
    "gain": _shared("gain", 0.5, 1.3),
    "offset": _shared("offset", 0.0, 45.0),
    "gamma": Knob(0.6, 1.7, 0.1, 10.0, True, "detector response: grey ∝ signal^gamma (> 1 darkens mid-grey)"),
    "saturation_grey": Knob(175.0, 255.0, 1.0, 255.0, False, "grey level at which the detector saturates"),
}
# Derived per draw: feature_level (substrate + contrast, within [0, 1]) and scan_direction (±1).
DERIVED = ("feature_level", "scan_direction")
SPLITS = ("train", "validation", "all")
# A draw is refused when a minimum contact would not print (or a minimum space not open) by
# this margin of the optical field, when exposure leaves features fewer grey levels than
# this, or when they drown in shot noise (the tool's min_contrast_to_noise).
PRINT_MARGIN = 0.05
MIN_GREY_SPAN = 12.0


def contrast_to_noise(params: Mapping[str, float]) -> float:
    """Per-pixel feature contrast (material step + half the bloom) over the shot noise."""
    signal = abs(params["feature_level"] - params["substrate_level"]) + 0.5 * params["edge_bloom_gain"]
    brightest = max(params["substrate_level"], params["feature_level"], 0.05)
    return signal * math.sqrt(params["dose_electrons_per_px"] / brightest)


def grey_level(params: Mapping[str, float], se_yield: float) -> float:
    """The noise-free grey a yield shows after gain, offset, gamma and detector saturation."""
    grey = min(max(params["offset"] + 255.0 * params["gain"] * se_yield, 0.0), 255.0)
    return min(255.0 * (grey / 255.0) ** params["gamma"], math.floor(params["saturation_grey"]))


def visible_grey_span(params: Mapping[str, float]) -> float:
    """Grey levels between substrate and feature or edge rim: 0 when exposure flattens them."""
    substrate, feature = params["substrate_level"], params["feature_level"]
    rim = max(substrate, feature) + 0.5 * params["edge_bloom_gain"]
    base = grey_level(params, substrate)
    return max(abs(grey_level(params, feature) - base), abs(grey_level(params, rim) - base))


def prints_minimum_features(params: Mapping[str, float]) -> bool:
    """True if a minimum-CD contact prints and a minimum space stays open at this blur and bias."""
    sigma = max(params["optical_blur_nm"], MIN_BLUR_PX * params["acquisition_nm_per_px"])
    threshold = print_threshold(params["cd_bias_nm"], sigma)
    contact_peak = math.erf(MIN_CD_NM / (2.0 * math.sqrt(2.0) * sigma)) ** 2
    space_centre = 1.0 - math.erf(MIN_SPACE_NM / (2.0 * math.sqrt(2.0) * sigma))
    return contact_peak - threshold > PRINT_MARGIN and threshold - space_centre > PRINT_MARGIN


@dataclass(frozen=True)
class HeldOutRegion:
    """A named box over one to three knobs: a draw lies inside when every bound holds (inclusive)."""

    name: str
    bounds: Mapping[str, Range]

    def __post_init__(self) -> None:
        """Validate the name and every bound (knob names are checked by the tool that holds it)."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ProfileError(f"held-out region name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.bounds, Mapping) or not 1 <= len(self.bounds) <= 3:
            raise ProfileError(f"held-out region {self.name!r}: bounds must map 1 to 3 knobs to [low, high]")
        bounds = {}
        for knob, value in self.bounds.items():
            spec = RANDOM_KNOBS.get(knob)
            if spec is None:
                raise ProfileError(f"held-out region {self.name!r}: unknown knob {knob!r}; "
                                   f"valid: {sorted(RANDOM_KNOBS)}")
            try:
                bounds[knob] = check_range(knob, value, spec.allowed_low, spec.allowed_high)
            except ProfileError as err:
                raise ProfileError(f"held-out region {self.name!r}: {err}") from None
        object.__setattr__(self, "bounds", bounds)

    def contains(self, params: Mapping[str, float]) -> bool:
        """True if every bounded knob of ``params`` lies within its [low, high]."""
        return all(low <= params[knob] <= high for knob, (low, high) in self.bounds.items())

    def to_dict(self) -> dict:
        """JSON-ready: name and [low, high] per bounded knob."""
        return {"name": self.name, "bounds": {knob: list(r) for knob, r in self.bounds.items()}}

    @classmethod
    def from_dict(cls, data: object) -> HeldOutRegion:
        """Build from ``to_dict`` output."""
        if not isinstance(data, dict) or set(data) != {"name", "bounds"}:
            raise ProfileError(f'a held-out region is {{"name": ..., "bounds": {{knob: [low, high]}}}}, got {data!r}')
        return cls(data["name"], data["bounds"])


# Corners of the space a base model must reach without having trained on them.
DEFAULT_HELD_OUT: tuple[HeldOutRegion, ...] = (
    HeldOutRegion("inverted_low_dose", {"material_contrast": (-0.3, -0.08),
                                        "dose_electrons_per_px": (2.0, 6.0)}),
    HeldOutRegion("coarse_pixel", {"acquisition_nm_per_px": (6.5, 8.0)}),
    HeldOutRegion("astigmatic_wide_beam", {"beam_sigma_nm": (7.0, 10.0), "beam_aspect": (0.4, 0.6)}),
)


def held_out_region(params: Mapping[str, float], regions: Sequence[HeldOutRegion]) -> str | None:
    """The name of the first region that holds ``params``, or None if it is a training draw."""
    return next((region.name for region in regions if region.contains(params)), None)


def is_held_out(params: Mapping[str, float], regions: Sequence[HeldOutRegion]) -> bool:
    """True if ``params`` lies in any of ``regions``."""
    return held_out_region(params, regions) is not None
