"""What decides one challenge image: :class:`ChallengeParams`, and how validators draw them.

The drawing mirrors the validator: augmentation level uniform over 0..3; for levels 1-3 a rotation angle
uniform in [-20, 20] degrees and a square crop drawn the way torchvision's ``RandomResizedCrop.get_params``
draws one with ``scale=(0.2, 1.0)``, ``ratio=(1, 1)``; level 2 adds CS, CC, JPEG at a level from {0, 1};
level 3 adds CS, CC, JPEG, GNC, GB at a level from {0, 1, 2}.  The random numbers come from a numpy
``Generator`` (not the validator's torch/numpy/random global state), so a replay is reproducible but is
never the validator's own draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DISTORTION_PARAMS",
    "DISTORTION_ORDER",
    "LEVEL_DISTORTIONS",
    "MAX_ANGLE",
    "CROP_SCALE",
    "ChallengeParams",
    "sample_params",
    "random_resized_crop_box",
]

# distortion name -> its parameter at distortion level 1..5 (index level - 1)
DISTORTION_PARAMS: dict[str, tuple[float, ...]] = {
    "CS": (0.4, 0.3, 0.2, 0.1, 0.0),  # chroma scale
    "CC": (0.85, 0.725, 0.6, 0.475, 0.35),  # pixel multiplier
    "JPEG": (2, 3, 4, 5, 6),  # down/up-scaling factor
    "GNC": (0.001, 0.002, 0.005, 0.01, 0.05),  # noise variance, [0, 1] units
    "GB": (7, 9, 13, 17, 21),  # blur kernel size, sigma = k / 6
}
DISTORTION_ORDER = ("CS", "CC", "JPEG", "GNC", "GB")  # the validator's application order
# augmentation level -> (distortions applied, highest distortion level drawn)
LEVEL_DISTORTIONS: dict[int, tuple[tuple[str, ...], int]] = {
    2: (("CS", "CC", "JPEG"), 1),
    3: (("CS", "CC", "JPEG", "GNC", "GB"), 2),
}
MAX_ANGLE = 20.0  # degrees, both ways
CROP_SCALE = (0.2, 1.0)  # crop area as a fraction of the image area
CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop tries this many boxes before its fallback


@dataclass(frozen=True)
class ChallengeParams:
    """Everything that decides one rendered challenge, given the source image."""

    level: int  # augmentation level 0..3
    angle: float | None = None  # degrees, positive = counter-clockwise (torchvision); levels 1-3
    crop: tuple[int, int, int, int] | None = None  # (top, left, height, width) in the rotated image, h == w
    hflip: bool = False
    vflip: bool = False
    distortions: tuple[tuple[str, int], ...] = ()  # (name, level) in application order; level 0 = off
    noise_seed: int | None = None  # seed of the GNC noise (numpy default_rng)
    # the source went through the validator's cache re-save (JPEG, Pillow defaults) first; see .cache
    cache_resave: bool = False

    def __post_init__(self) -> None:
        _check(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; :meth:`from_dict` inverts it."""
        return {
            "level": self.level,
            "angle": self.angle,
            "crop": list(self.crop) if self.crop is not None else None,
            "hflip": self.hflip,
            "vflip": self.vflip,
            "distortions": [[name, lvl] for name, lvl in self.distortions],
            "noise_seed": self.noise_seed,
            "cache_resave": self.cache_resave,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChallengeParams:
        """Parse and validate; raises ``ValueError`` naming the bad field."""
        if not isinstance(d, dict):
            raise ValueError(f"params: expected a dict, got {type(d).__name__}")
        unknown = set(d) - {"level", "angle", "crop", "hflip", "vflip", "distortions", "noise_seed", "cache_resave"}
        if unknown:
            raise ValueError(f"params: unknown field(s) {sorted(unknown)}")
        crop = d.get("crop")
        if crop is not None:
            if not isinstance(crop, (list, tuple)) or len(crop) != 4:
                raise ValueError(f"crop: expected [top, left, height, width], got {crop!r}")
            crop = tuple(_int("crop", v) for v in crop)
        dist = d.get("distortions") or ()
        if not isinstance(dist, (list, tuple)) or any(not isinstance(x, (list, tuple)) or len(x) != 2 for x in dist):
            raise ValueError(f"distortions: expected a list of [name, level] pairs, got {dist!r}")
        angle = d.get("angle")
        if angle is not None and (isinstance(angle, bool) or not isinstance(angle, (int, float))):
            raise ValueError(f"angle: expected a number, got {angle!r}")
        seed = d.get("noise_seed")
        return cls(
            level=_int("level", d.get("level")),
            angle=float(angle) if angle is not None else None,
            crop=crop,
            hflip=_bool("hflip", d.get("hflip", False)),
            vflip=_bool("vflip", d.get("vflip", False)),
            distortions=tuple((str(n), _int("distortions", lvl)) for n, lvl in dist),
            noise_seed=_int("noise_seed", seed) if seed is not None else None,
            # logs written before the re-save existed were rendered without it
            cache_resave=_bool("cache_resave", d.get("cache_resave", False)),
        )

    def check_image(self, width: int, height: int) -> None:
        """Raise ``ValueError`` naming ``crop`` when the crop box does not fit a ``width`` x ``height`` image."""
        if self.crop is None:
            return
        top, left, h, w = self.crop
        if top + h > height or left + w > width:
            raise ValueError(f"crop: box {self.crop} (top, left, h, w) does not fit a {width}x{height} image")

    def active_distortions(self) -> list[tuple[str, float]]:
        """(name, parameter) of the distortions that are on, in application order."""
        return [(name, DISTORTION_PARAMS[name][lvl - 1]) for name, lvl in self.distortions if lvl > 0]


def _int(field: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise ValueError(f"{field}: expected an integer, got {v!r}")
    return int(v)


def _bool(field: str, v: Any) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{field}: expected true/false, got {v!r}")
    return bool(v)


def _check(p: ChallengeParams) -> None:
    if isinstance(p.level, bool) or p.level not in (0, 1, 2, 3):
        raise ValueError(f"level: expected 0, 1, 2 or 3, got {p.level!r}")
    if p.level == 0:
        if p.angle is not None or p.crop is not None or p.hflip or p.vflip or p.distortions:
            raise ValueError("level: level 0 (centre crop) takes no angle, crop, flips or distortions")
        return
    if isinstance(p.angle, bool) or not isinstance(p.angle, (int, float)) or not math.isfinite(p.angle):
        raise ValueError(f"angle: levels 1-3 need a finite angle, got {p.angle!r}")
    if p.crop is None or len(p.crop) != 4:
        raise ValueError(f"crop: levels 1-3 need a box (top, left, height, width), got {p.crop!r}")
    top, left, h, w = p.crop
    if top < 0 or left < 0 or h <= 0 or w <= 0:
        raise ValueError(f"crop: expected top, left >= 0 and height, width > 0, got {p.crop}")
    if h != w:
        raise ValueError(f"crop: the validator's crops are square (ratio 1), got height {h} != width {w}")
    seen: set[str] = set()
    for name, lvl in p.distortions:
        if name not in DISTORTION_PARAMS:
            raise ValueError(f"distortions: unknown distortion {name!r} (known: {', '.join(DISTORTION_ORDER)})")
        if name in seen:
            raise ValueError(f"distortions: {name} listed twice")
        seen.add(name)
        if not 0 <= lvl <= len(DISTORTION_PARAMS[name]):
            raise ValueError(f"distortions: {name} level must be 0..5, got {lvl}")
    if dict(p.distortions).get("GNC", 0) > 0 and p.noise_seed is None:
        raise ValueError("noise_seed: GNC is on, so the noise needs a seed")


def random_resized_crop_box(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) as ``RandomResizedCrop.get_params(scale=(0.2, 1), ratio=(1, 1))`` picks it.

    With ratio exactly 1 the aspect draw is exp(0) = 1, so the box is a square of side
    round(sqrt(area * U(0.2, 1))) when that fits; after 10 misses, the centred square of the shorter side.
    """
    area = width * height
    for _ in range(CROP_ATTEMPTS):
        side = int(round(math.sqrt(area * rng.uniform(*CROP_SCALE))))
        if 0 < side <= width and 0 < side <= height:
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
            return top, left, side, side
    side = min(width, height)
    return (height - side) // 2, (width - side) // 2, side, side


def sample_params(
    rng: np.random.Generator, width: int, height: int, *, flips: bool = False, cache_resave: bool = False
) -> ChallengeParams:
    """Draw one challenge's parameters for a ``width`` x ``height`` source image.

    ``flips=True`` draws a horizontal and a vertical flip with p = 1/2 each (the validator configures
    them, but they never fire in its current code, hence off by default).  ``cache_resave`` is recorded as
    is (it draws nothing): whether the source image goes through the validator's cache re-save.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    level = int(rng.integers(0, 4))
    if level == 0:
        return ChallengeParams(level=0, cache_resave=cache_resave)
    angle = float(rng.uniform(-MAX_ANGLE, MAX_ANGLE))
    crop = random_resized_crop_box(rng, width, height)
    hflip = bool(rng.random() < 0.5) if flips else False
    vflip = bool(rng.random() < 0.5) if flips else False
    distortions: tuple[tuple[str, int], ...] = ()
    noise_seed = None
    if level in LEVEL_DISTORTIONS:
        names, top_level = LEVEL_DISTORTIONS[level]
        distortions = tuple((name, int(rng.integers(0, top_level + 1))) for name in names)
        if dict(distortions).get("GNC", 0) > 0:
            noise_seed = int(rng.integers(0, 2**63 - 1))
    return ChallengeParams(level, angle, crop, hflip, vflip, distortions, noise_seed, cache_resave)
