"""Render a challenge image exactly as the validator does: geometry in float, distortions in 8 bits, JPEG.

Level 0: Pillow centre crop to the shorter side (torchvision ``CenterCrop`` offsets: round half to even),
Pillow bilinear resize to 224.  Levels 1-3: the full image as a float32 (C, H, W) tensor in [0, 1], rotated
about its centre on the same canvas with nearest-neighbour sampling and black fill (torchvision's tensor
``rotate``, rebuilt here with plain torch), then the crop box, then ``interpolate(bilinear, antialias)`` to
224, optional flips, then the distortions on the 8-bit image.  The float -> 8-bit conversion is
``(x * 255).astype(uint8)`` in float32, i.e. truncation; 8-bit -> float is ``/ 255`` in float32.  That round
trip is exact for all 256 values, so truncating between distortions changes nothing after the first time.

Only the crop window of the rotated canvas is computed (nearest sampling is per pixel, and the window's
grid values are bit-identical to the full canvas's), and it is gathered from the 8-bit image, which skips the
full-size float copy: a 4032 x 3024 level-3 challenge renders in about a third of a second on two CPU cores.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from roadwork.platform.evaluation.challenge.cache import resave_image
from roadwork.platform.evaluation.challenge.distortions import (
    color_contrast,
    color_saturation,
    gaussian_blur,
    gaussian_noise_color,
    jpeg_resample,
)
from roadwork.platform.evaluation.challenge.params import ChallengeParams

__all__ = [
    "SIZE",
    "center_crop_box",
    "rotation_matrix",
    "rotate",
    "rotated_crop",
    "rotated_crop_u8",
    "resize_224",
    "to_float",
    "to_uint8",
    "apply_distortions",
    "render",
    "encode_jpeg",
    "render_jpeg",
    "decode_jpeg",
]

SIZE = 224  # every challenge is SIZE x SIZE


# --------------------------------------------------------------------------
# 8-bit <-> float, as torchvision's ToTensor / ToPILImage and the validator's numpy code convert
# --------------------------------------------------------------------------


def to_float(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1]."""
    img = np.ascontiguousarray(img)
    if not img.flags.writeable:
        img = img.copy()  # torch warns about read-only arrays (Pillow's)
    return torch.from_numpy(img).permute(2, 0, 1).to(torch.float32).div(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float32 (3, H, W) -> uint8 (H, W, 3), multiplying by 255 in float32 and truncating."""
    return x.mul(255.0).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


# --------------------------------------------------------------------------
# level 0
# --------------------------------------------------------------------------


def center_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of torchvision's ``CenterCrop(min(size))``: offsets round half to even."""
    side = min(width, height)
    left = int(round((width - side) / 2.0))
    top = int(round((height - side) / 2.0))
    return left, top, left + side, top + side


def _level0(image: Image.Image) -> Image.Image:
    square = image.crop(center_crop_box(*image.size))
    if square.size == (SIZE, SIZE):
        return square
    return square.resize((SIZE, SIZE), Image.Resampling.BILINEAR)


# --------------------------------------------------------------------------
# levels 1-3: rotation, crop, resize
# --------------------------------------------------------------------------


def rotation_matrix(angle: float) -> torch.Tensor:
    """(1, 2, 3) float32 map from output to input pixel coordinates, both centred on the image centre.

    Sign convention (torchvision's): a positive ``angle`` turns the picture counter-clockwise as displayed
    (y down).  torchvision's ``rotate`` builds its inverse affine matrix for ``-angle``; with no shear,
    scale 1 and the centre as origin that is [[cos a, -sin a, 0], [sin a, cos a, 0]] for a = radians(angle):
    x_in = cos a * x - sin a * y, y_in = sin a * x + cos a * y.  Computed in float64, then cast to float32
    as torchvision does (theta takes the image dtype).
    """
    r = math.radians(-angle)
    return torch.tensor([math.cos(r), math.sin(r), 0.0, -math.sin(r), math.cos(r), 0.0], dtype=torch.float32).reshape(
        1, 2, 3
    )


def _sampling_grid(theta: torch.Tensor, w: int, h: int, rows: slice, cols: slice) -> torch.Tensor:
    """``grid_sample`` grid (1, h', w', 2) for the given rows/cols of a w x h output canvas.

    Same operations as torchvision's affine grid: pixel centres x - w/2 + 0.5 from ``linspace`` in float32,
    a homogeneous 1, a batched matmul with theta^T scaled by (w/2, h/2) into [-1, 1] units.  Slicing the
    full-canvas ``linspace`` keeps every grid value bit-identical to the full canvas's (checked by a test).
    """
    xs = torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, steps=w)[cols]
    ys = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, steps=h)[rows]
    base = torch.empty(1, len(ys), len(xs), 3)  # (1, H', W', 3): x, y, 1
    base[..., 0].copy_(xs)
    base[..., 1].copy_(ys.unsqueeze(-1))
    base[..., 2].fill_(1.0)
    scaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h])  # (1, 3, 2)
    return base.view(1, -1, 3).bmm(scaled).view(1, len(ys), len(xs), 2)


def rotate(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate a float (C, H, W) image about its centre: same canvas, nearest neighbour, black outside."""
    _, h, w = x.shape
    return rotated_crop(x, angle, (0, 0, h, w))


def rotated_crop(x: torch.Tensor, angle: float, box: tuple[int, int, int, int]) -> torch.Tensor:
    """``rotate(x, angle)[:, top:top+h, left:left+w]`` computed on the box only (nearest sampling is per pixel)."""
    _, height, width = x.shape
    top, left, h, w = box
    grid = _sampling_grid(rotation_matrix(angle), width, height, slice(top, top + h), slice(left, left + w))
    out = F.grid_sample(x.unsqueeze(0), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.squeeze(0)  # (C, h, w)


def rotated_crop_u8(img: np.ndarray, angle: float, box: tuple[int, int, int, int]) -> torch.Tensor:
    """:func:`rotated_crop` of ``to_float(img)`` for a uint8 (H, W, 3) image, without a full-size float copy.

    Nearest sampling returns input values as they are, so it is a gather: ``grid_sample`` itself, on the
    same grid, picks each pixel's source column (sampling a broadcast H x W image of column numbers 1..W)
    and source row (of row numbers 1..H), with its own rounding and bounds; 0 means outside, i.e. black.
    A test checks this against :func:`rotated_crop` bit for bit.
    """
    height, width = img.shape[:2]
    top, left, h, w = box
    grid = _sampling_grid(rotation_matrix(angle), width, height, slice(top, top + h), slice(left, left + w))
    cols = torch.arange(1, width + 1, dtype=torch.float32).view(1, 1, 1, width).expand(1, 1, height, width)
    rows = torch.arange(1, height + 1, dtype=torch.float32).view(1, 1, height, 1).expand(1, 1, height, width)
    ix = F.grid_sample(cols, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]  # (h, w)
    iy = F.grid_sample(rows, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
    ix, iy = ix.to(torch.int64).numpy(), iy.to(torch.int64).numpy()
    outside = ix == 0  # the same pixels have iy == 0
    flat = (iy - 1) * width + (ix - 1)
    flat[outside] = 0
    out = np.take(img.reshape(-1, 3), flat, axis=0)  # (h, w, 3), a new array
    out[outside] = 0
    return to_float(out)  # (3, h, w)


def resize_224(x: torch.Tensor) -> torch.Tensor:
    """float (C, h, w) -> (C, 224, 224), bilinear with antialias; a 224 x 224 input is returned as is."""
    if tuple(x.shape[-2:]) == (SIZE, SIZE):
        return x  # torchvision's resize returns early when the size already matches
    return F.interpolate(x.unsqueeze(0), size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)[0]


# --------------------------------------------------------------------------
# distortions and the whole render
# --------------------------------------------------------------------------


def apply_distortions(img: np.ndarray, params: ChallengeParams) -> np.ndarray:
    """Apply ``params.distortions`` in order to a uint8 (H, W, 3) array; level-0 entries are skipped.

    The validator returns its float image untouched for a distortion at level 0 (no 8-bit round trip);
    since that round trip is exact after the first truncation, the result is the same either way.
    """
    for name, p in params.active_distortions():
        if name == "CS":
            img = color_saturation(img, p)
        elif name == "CC":
            img = color_contrast(img, p)
        elif name == "JPEG":
            img = jpeg_resample(img, int(p))
        elif name == "GNC":
            img = gaussian_noise_color(img, p, np.random.default_rng(params.noise_seed))
        elif name == "GB":
            img = gaussian_blur(img, int(p))
    return img


def render(image: Image.Image, params: ChallengeParams) -> Image.Image:
    """The 224 x 224 RGB challenge image before the JPEG encoding.

    With ``params.cache_resave`` the transforms start from the validator cache's JPEG re-save of ``image``
    (:mod:`.cache`), as they do for real rows.  Raises ``ValueError`` naming ``crop`` when the crop box does
    not fit the image.
    """
    if params.cache_resave:
        image = resave_image(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    if params.level == 0:
        return _level0(image)
    params.check_image(*image.size)
    x = resize_224(rotated_crop_u8(np.asarray(image), params.angle, params.crop))  # (3, 224, 224)
    if params.hflip:
        x = x.flip(-1)
    if params.vflip:
        x = x.flip(-2)
    out = apply_distortions(to_uint8(x), params)
    return Image.fromarray(out)


def encode_jpeg(image: Image.Image) -> bytes:
    """Pillow's JPEG defaults (quality 75, 4:2:0 chroma subsampling), as the validator saves a challenge."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG")
    return buf.getvalue()


def render_jpeg(image: Image.Image, params: ChallengeParams) -> bytes:
    """The JPEG bytes a miner receives for ``image`` under ``params``."""
    return encode_jpeg(render(image, params))


def decode_jpeg(data: bytes) -> Image.Image:
    """What the miner decodes: the JPEG as an RGB Pillow image."""
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")
