"""Heavy training augmentation on batches, on the training device: every family behind a probability.

`Augmenter(AugmentConfig(...), seed)` is an `nn.Module` mapping a float batch (B, 3, H, W) in [0, 1] to one of the
same shape, dtype and range. Families, in the order they run (a family whose probability is 0 is left out):
- geometric (kornia): horizontal flip, rotation (black corners), perspective, zoom (random resized crop to H x W);
- colour (kornia): ColorJitter of brightness, contrast, saturation, hue;
- weather: fog (hand-written: blend toward a grey haze, denser at the top, where the scene is far away),
  shadow (kornia RandomPlasmaShadow), rain (kornia RandomRain), sun glare (hand-written: a warm radial
  spot and halo, screen-blended);
- noise and blur (kornia): RandomGaussianNoise, RandomGaussianBlur;
- validator (hand-written torch, after COMPETITION.md): a chosen image gets a level drawn from {1, 2, 3}: the
  level-1 geometry (rotation in [-20, 20] degrees, nearest, black fill; square random resized crop, area scale
  [0.2, 1]), then at level 2 CS, CC, JPEG each at a distortion level drawn from {0, 1}, at level 3 CS, CC, JPEG,
  GNC, GB each from {0, 1, 2}.

The validator distortions below are public functions on float batches that follow the uint8 reference in
`roadwork.platform.evaluation.challenge.distortions`: values are snapped to the 8-bit grid on entry and exit as the validator
does (floor where it casts with astype, round where OpenCV saturates). They are not bit-exact: OpenCV's fixed-point
resize and blur differ from torch's float ones by at most a level or so (see tests/trainer/test_augment.py).

Randomness: with a seed, every call draws a fresh seed from the module's own generator and runs inside
`torch.random.fork_rng`, so two Augmenters built with the same seed give the same sequence of batches and the
caller's global RNG is untouched. Without a seed the global RNG is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import kornia.augmentation as K
import kornia.filters
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

# Validator distortion parameters by distortion level 1, 2 (COMPETITION.md; levels 3-5 are never reached today).
CS_FACTORS = (0.4, 0.3)  # chroma scale about the luma
CC_FACTORS = (0.85, 0.725)  # every pixel multiplied
JPEG_FACTORS = (2, 3)  # downscale then upscale back
GNC_VARIANCES = (0.001, 0.002)  # noise variance in YCbCr, values in [0, 1]
GB_KERNELS = (7, 9)  # Gaussian kernel size, sigma = k / 6
LUMA = (0.299, 0.587, 0.114)  # BT.601
# BT.601 full range: RGB offset per unit of (Y, Cb - 128, Cr - 128); rows R, G, B
YCBCR_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))
_FLOOR_GUARD = 1e-4  # in 0-255 units: a value that is an integer in exact arithmetic must not floor to one less


@dataclass(frozen=True)
class AugmentConfig:
    # geometric
    hflip_p: float = 0.5  # mirror left-right (roadwork has no handedness)
    rotation_degrees: float = 15.0  # rotation drawn in [-d, d], black corners
    rotation_p: float = 0.3
    perspective_distortion: float = 0.2  # kornia distortion_scale in [0, 1]
    perspective_p: float = 0.2
    zoom_scale: tuple[float, float] = (0.4, 1.0)  # area share kept by the random resized crop
    zoom_p: float = 0.3
    # colour (ColorJitter ranges: factor in [1 - x, 1 + x]; hue shift in [-hue, hue] of a turn, at most 0.5)
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.03
    colour_p: float = 0.5
    # weather
    rain_p: float = 0.05  # kornia RandomRain streaks (needs images taller than 15 px)
    fog_p: float = 0.05  # grey haze, denser toward the top of the image
    shadow_p: float = 0.1  # kornia RandomPlasmaShadow
    glare_p: float = 0.05  # sun glare spot in the upper half
    # noise and blur
    noise_std: float = 0.03  # std of the additive Gaussian noise, in [0, 1] units
    noise_p: float = 0.1
    blur_sigma: tuple[float, float] = (0.1, 1.5)  # sigma range of the 7 x 7 Gaussian blur
    blur_p: float = 0.1
    # the validator's own pipeline (level 1-3 geometry + CS, CC, JPEG, GNC, GB)
    validator_p: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name.endswith("_p") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"'{f.name}' is a probability and must be in [0, 1], got {getattr(self, f.name)}")
        for name in ("rotation_degrees", "brightness", "contrast", "saturation", "noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"'{name}' must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.perspective_distortion <= 1.0:
            raise ValueError(f"'perspective_distortion' must be in [0, 1], got {self.perspective_distortion}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"'hue' must be in [0, 0.5], got {self.hue}")
        lo, hi = self.zoom_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"'zoom_scale' must satisfy 0 < low <= high <= 1, got {self.zoom_scale}")
        lo, hi = self.blur_sigma
        if not 0.0 < lo <= hi:
            raise ValueError(f"'blur_sigma' must satisfy 0 < low <= high, got {self.blur_sigma}")

    @classmethod
    def off(cls) -> AugmentConfig:
        """Every probability 0: the Augmenter is the identity."""
        return cls(**{f.name: 0.0 for f in fields(cls) if f.name.endswith("_p")})

    @classmethod
    def full(cls) -> AugmentConfig:
        """Every probability 1: each family fires on every image (for previews and tests)."""
        return cls(**{f.name: 1.0 for f in fields(cls) if f.name.endswith("_p")})


# ------------------------------------------------------------------------ validator distortions (float batches)


def _per_sample(value: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A scalar or a (B,) tensor as a (B, 1, 1, 1) tensor on x's device."""
    return torch.as_tensor(value, dtype=x.dtype, device=x.device).expand(x.shape[0]).view(-1, 1, 1, 1)


def _floor8(x255: torch.Tensor) -> torch.Tensor:
    return torch.floor((x255 + _FLOOR_GUARD).clamp(0.0, 255.0))


def _to_255(x: torch.Tensor) -> torch.Tensor:
    """Float [0, 1] -> 0-255 truncated, as the validator's entry to every distortion."""
    return _floor8(x * 255.0)


def color_saturation(x: torch.Tensor, p: float | torch.Tensor) -> torch.Tensor:
    """CS: each channel c -> Y + p (c - Y), Y the BT.601 luma, on 8-bit values, truncated. p scalar or (B,)."""
    a = _to_255(x)
    y = (LUMA[0] * a[:, 0:1] + LUMA[1] * a[:, 1:2] + LUMA[2] * a[:, 2:3])  # (B, 1, H, W)
    return _floor8(y + _per_sample(p, x) * (a - y)) / 255.0


def color_contrast(x: torch.Tensor, p: float | torch.Tensor) -> torch.Tensor:
    """CC: floor(c * p) on 8-bit values. p scalar or (B,)."""
    return _floor8(_to_255(x) * _per_sample(p, x)) / 255.0


def jpeg_resample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """JPEG: bilinear resize (no antialias) to (h // f, w // f) and back, rounded at each step as OpenCV does."""
    h, w = x.shape[-2:]
    small = F.interpolate(_to_255(x), size=(max(1, h // factor), max(1, w // factor)), mode="bilinear",
                          align_corners=False, antialias=False)
    back = F.interpolate(torch.round(small), size=(h, w), mode="bilinear", align_corners=False, antialias=False)
    return torch.round(back).clamp(0.0, 255.0) / 255.0


def gaussian_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """GB: k x k Gaussian, sigma k / 6, reflect-101 border (OpenCV's default), rounded to 8 bits."""
    blurred = kornia.filters.gaussian_blur2d(_to_255(x), (k, k), (k / 6.0, k / 6.0), border_type="reflect")
    return torch.round(blurred).clamp(0.0, 255.0) / 255.0


def gaussian_noise_color(x: torch.Tensor, var: float | torch.Tensor, generator: torch.Generator | None = None
                         ) -> torch.Tensor:
    """GNC: Gaussian noise on Y, Cb, Cr (std 255^2 sqrt(var) / 219 and / 224 in 0-255 units), to RGB, clip, floor."""
    a = _to_255(x)
    b, _, h, w = a.shape
    root = torch.sqrt(_per_sample(var, x)).view(b, 1) * 255.0 * 255.0  # (B, 1)
    std = root * torch.tensor([1 / 219.0, 1 / 224.0, 1 / 224.0], dtype=a.dtype, device=a.device)  # (B, 3)
    noise = torch.randn(b, 3, h, w, generator=generator, dtype=a.dtype, device=a.device) * std.view(b, 3, 1, 1)
    m = torch.tensor(YCBCR_TO_RGB, dtype=a.dtype, device=a.device)  # (3 RGB, 3 YCbCr)
    rgb_noise = torch.einsum("rc,bchw->brhw", m, noise)  # (B, 3, H, W)
    return torch.floor((a + rgb_noise).clamp(0.0, 255.0)) / 255.0


# ------------------------------------------------------------------------------------------ hand-written ops


def _where_chosen(chosen: torch.Tensor, changed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.where(chosen.view(-1, 1, 1, 1), changed, x)


class Fog(nn.Module):
    """Blend toward a grey haze whose density falls from the top (far) to the bottom (near) of the image."""

    def __init__(self, p: float, density: tuple[float, float] = (0.3, 0.7), grey: tuple[float, float] = (0.6, 0.9)):
        super().__init__()
        self.p, self.density, self.grey = p, density, grey

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, _ = x.shape
        u = torch.rand(b, 3, device=x.device)  # choice, density, grey
        density = self.density[0] + (self.density[1] - self.density[0]) * u[:, 1]
        grey = self.grey[0] + (self.grey[1] - self.grey[0]) * u[:, 2]
        depth = 1.0 - 0.7 * torch.linspace(0.0, 1.0, h, device=x.device)  # (H,): 1 at the top, 0.3 at the bottom
        alpha = density.view(b, 1, 1, 1) * depth.view(1, 1, h, 1)  # (B, 1, H, 1)
        fogged = x * (1 - alpha) + grey.view(b, 1, 1, 1) * alpha
        return _where_chosen(u[:, 0] < self.p, fogged, x)


class SunGlare(nn.Module):
    """A warm radial spot with a wider faint halo in the upper half, screen-blended (only ever brightens)."""

    COLOUR = (1.0, 0.95, 0.8)

    def __init__(self, p: float, radius: tuple[float, float] = (0.08, 0.3), intensity: tuple[float, float] = (0.5, 0.95)):
        super().__init__()
        self.p, self.radius, self.intensity = p, radius, intensity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        u = torch.rand(b, 5, device=x.device)  # choice, centre x, centre y, radius, intensity
        cx, cy = u[:, 1] * (w - 1), u[:, 2] * (h - 1) * 0.5
        r = (self.radius[0] + (self.radius[1] - self.radius[0]) * u[:, 3]) * min(h, w)
        strength = self.intensity[0] + (self.intensity[1] - self.intensity[0]) * u[:, 4]
        ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
        xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
        d2 = (xs - cx.view(b, 1, 1)) ** 2 + (ys - cy.view(b, 1, 1)) ** 2  # (B, H, W)
        r2 = (r ** 2).view(b, 1, 1)
        light = torch.exp(-d2 / (2 * r2)) + 0.3 * torch.exp(-d2 / (18 * r2))  # spot + halo of 3x the radius
        light = (strength.view(b, 1, 1) * light).clamp(max=1.0).unsqueeze(1)  # (B, 1, H, W)
        colour = torch.tensor(self.COLOUR, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        glared = 1 - (1 - x) * (1 - light * colour)
        return _where_chosen(u[:, 0] < self.p, glared, x)


class _Zoom(nn.Module):
    """kornia RandomResizedCrop back to the input's own size (one per size seen, so any H x W works)."""

    def __init__(self, scale: tuple[float, float], p: float, ratio: tuple[float, float] = (3 / 4, 4 / 3)):
        super().__init__()
        self.scale, self.ratio, self.p = scale, ratio, p
        self._crops: dict[tuple[int, int], nn.Module] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[-2], x.shape[-1])
        if size not in self._crops:
            self._crops[size] = K.RandomResizedCrop(size, scale=self.scale, ratio=self.ratio, p=self.p)
        return self._crops[size](x)


def _apply_to_share(x: torch.Tensor, p: float, fn) -> torch.Tensor:
    """fn on each image with probability p (indexed out and written back); the rest pass through as is."""
    chosen = torch.rand(x.shape[0], device=x.device) < p
    if not bool(chosen.any()):  # one sync per stage: cheap next to the ops themselves
        return x
    if bool(chosen.all()):
        return fn(x)
    out = x.clone()
    out[chosen] = fn(x[chosen]).to(x.dtype)
    return out


class _Chosen(nn.Module):
    """A kornia op built at p=1, run on a random share p of the batch only."""

    def __init__(self, op: nn.Module, p: float):
        super().__init__()
        self.op, self.p = op, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _apply_to_share(x, self.p, self.op)


class ValidatorPipeline(nn.Module):
    """The validator's level 1-3 transform on a chosen share of the batch (geometry, then distortions)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.rotate = K.RandomRotation(20.0, resample="nearest", p=1.0)
        self.crop = _Zoom((0.2, 1.0), ratio=(1.0, 1.0), p=1.0)  # square crop, as the validator's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _apply_to_share(x, self.p, self._level_1_to_3)

    def _level_1_to_3(self, x: torch.Tensor) -> torch.Tensor:
        return self.distort(self.crop(self.rotate(x)).clamp(0.0, 1.0))

    def distort(self, x: torch.Tensor) -> torch.Tensor:
        """Draw a level in {1, 2, 3} per image and apply CS, CC, JPEG (levels 2, 3), GNC, GB (level 3)."""
        x, n = x.clone(), x.shape[0]
        level = torch.randint(1, 4, (n, 1), device=x.device)  # (n, 1)
        # distortion level per image and distortion: {0, 1} at level 2, {0, 1, 2} at level 3, 0 at level 1
        dlevel = (torch.rand(n, 5, device=x.device) * level).long()  # (n, 5)
        dlevel[:, 3:] *= (level == 3).long()  # GNC and GB only at level 3
        dlevel = dlevel.tolist()  # one sync; the groups below then index the batch with plain lists
        steps = [(0, CS_FACTORS, color_saturation), (1, CC_FACTORS, color_contrast), (2, JPEG_FACTORS, jpeg_resample),
                 (3, GNC_VARIANCES, gaussian_noise_color), (4, GB_KERNELS, gaussian_blur)]
        for column, table, fn in steps:  # the validator's order: CS, CC, JPEG, GNC, GB
            for lv, value in enumerate(table, start=1):
                rows = [i for i in range(n) if dlevel[i][column] == lv]
                if rows:  # only the images at this level pay for it
                    x[rows] = fn(x[rows], value)
        return x


# ------------------------------------------------------------------------------------------------ Augmenter


class Augmenter(nn.Module):
    """Batched augmentation: forward((B, 3, H, W) float in [0, 1]) -> same shape, dtype, range."""

    def __init__(self, config: AugmentConfig, seed: int | None = None):
        super().__init__()
        c = self.config = config
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)
        # kornia ops run at p=1 on the chosen images only (_Chosen): kornia draws its parameters (a plasma map,
        # a hue matrix) for the whole batch whatever p is, so a rare op would otherwise cost as much as a sure one
        stages: list[nn.Module] = [
            _Chosen(K.RandomHorizontalFlip(p=1.0), c.hflip_p),
            _Chosen(K.RandomRotation(c.rotation_degrees, p=1.0), c.rotation_p),
            _Chosen(K.RandomPerspective(c.perspective_distortion, p=1.0), c.perspective_p),
            _Chosen(_Zoom(c.zoom_scale, p=1.0), c.zoom_p),
            _Chosen(K.ColorJitter(c.brightness, c.contrast, c.saturation, c.hue, p=1.0), c.colour_p),
            Fog(p=c.fog_p),
            # shade where the plasma map is below a threshold in [0.4, 0.7]: about 60 % of the image, rarely none
            _Chosen(K.RandomPlasmaShadow(shade_intensity=(-0.6, -0.1), shade_quantity=(0.4, 0.7), p=1.0), c.shadow_p),
            _Chosen(K.RandomRain(number_of_drops=(300, 800), drop_height=(5, 15), drop_width=(-3, 3), p=1.0), c.rain_p),
            SunGlare(p=c.glare_p),
            _Chosen(K.RandomGaussianNoise(std=c.noise_std, p=1.0), c.noise_p),
            _Chosen(K.RandomGaussianBlur(7, c.blur_sigma, p=1.0), c.blur_p),
            ValidatorPipeline(p=c.validator_p),
        ]
        # a family switched off is not in the list at all, so the off config is the exact identity
        self.stages = nn.ModuleList(s for s in stages if float(s.p) > 0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(images.shape)}")
        if len(self.stages) == 0 or images.shape[0] == 0:
            return images
        if self.generator is None:
            return self._run(images)
        call_seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=images.device.type):
            torch.manual_seed(call_seed)
            return self._run(images)

    def _run(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        for stage in self.stages:
            x = stage(x).clamp(0.0, 1.0)  # kornia noise, shadow and jitter may leave [0, 1]
        return torch.nan_to_num(x, nan=0.0).to(images.dtype)


# ------------------------------------------------------------------------------------------------ preview


def contact_sheet(images: torch.Tensor, path: str | Path, columns: int = 8, pad: int = 2) -> Path:
    """Write (N, 3, H, W) images in [0, 1] as a PNG grid: min(columns, N) wide, ceil(N / columns) tall.

    The sheet is (cols * (W + pad) + pad) x (rows * (H + pad) + pad) pixels on a white ground. Returns the path.
    """
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(f"expected (N, 3, H, W) images with N >= 1, got {tuple(images.shape)}")
    n, _, h, w = images.shape
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    pixels = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(pixels):  # N tiles into a numpy canvas: cheap next to writing the PNG
        r, c = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        sheet[top:top + h, left:left + w] = tile
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path, format="PNG")
    return path
