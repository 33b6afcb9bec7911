"""The validator's five distortions (DeeperForensics style), pure functions on uint8 (H, W, 3) RGB arrays.

Each returns a new uint8 array; every conversion to 8 bits truncates (floor), as the validator's
``astype(np.uint8)`` does.  Channel order does not matter except to CS and GNC, which take RGB here
(the validator feeds OpenCV BGR and converts with the matching BGR codes, so the result is the same).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = [
    "color_saturation",
    "color_contrast",
    "jpeg_resample",
    "gaussian_noise_color",
    "gaussian_blur",
    "LUMA",
    "YCBCR_TO_RGB",
]

LUMA = (0.299, 0.587, 0.114)  # BT.601 luma weights of R, G, B
# BT.601 full range: RGB offset per unit of (Y, Cb - 128, Cr - 128); rows R, G, B
YCBCR_TO_RGB = np.array(
    [[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]],
    dtype=np.float64,
)
# A result that is an integer in exact arithmetic must not floor to one less because of float error.
_FLOOR_GUARD = 1e-6


def _check(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) array, got {img.dtype} {img.shape}")
    return img


def _floor_u8(x: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(x + _FLOOR_GUARD, 0.0, 255.0)).astype(np.uint8)


def color_saturation(img: np.ndarray, p: float) -> np.ndarray:
    """CS: each channel c -> Y + p (c - Y) with Y the BT.601 luma, truncated.

    This is the validator's "scale Cb and Cr about the centre by p" written in RGB (the two agree to
    about 73 dB PSNR; the validator's float32 OpenCV route adds an offset of ~0.002 and flips a rare
    pixel by one).  Y is computed from integer weights (299, 587, 114) / 1000, so grey stays grey exactly.
    """
    a = _check(img).astype(np.int64)
    y = (299 * a[..., 0] + 587 * a[..., 1] + 114 * a[..., 2]) / 1000.0  # (H, W)
    out = y[..., None] + p * (a - y[..., None])
    return _floor_u8(out)


def color_contrast(img: np.ndarray, p: float) -> np.ndarray:
    """CC: floor(c * p), in float32 as the validator computes it."""
    return (_check(img).astype(np.float32) * np.float32(p)).astype(np.uint8)


def jpeg_resample(img: np.ndarray, f: int) -> np.ndarray:
    """JPEG: OpenCV resize to (w // f, h // f) and back to (w, h), default (bilinear) interpolation."""
    h, w = _check(img).shape[:2]
    small = cv2.resize(img, (max(1, w // f), max(1, h // f)))
    return cv2.resize(small, (w, h))


def gaussian_blur(img: np.ndarray, k: int) -> np.ndarray:
    """GB: OpenCV Gaussian blur with a k x k kernel, sigma k / 6, default border (reflect 101)."""
    return cv2.GaussianBlur(_check(img), (k, k), k / 6.0)


def gaussian_noise_color(img: np.ndarray, var: float, rng: np.random.Generator) -> np.ndarray:
    """GNC: independent Gaussian noise on Y, Cb, Cr (BT.601 full range), back to RGB, clip, truncate.

    In 0-255 units the noise std is 255^2 sqrt(var) / 219 on Y and 255^2 sqrt(var) / 224 on Cb and Cr
    (the validator adds sqrt(var) * N(0, 1) to its studio-swing YCbCr scaled by 1/255, then undoes the
    studio scaling).  The conversion is linear, so adding the noise mapped through the inverse
    matrix equals converting, adding and converting back.  Noise is drawn as (H, W, 3) in the order
    Y, Cb, Cr from ``rng.standard_normal``.
    """
    a = _check(img).astype(np.float64)
    h, w = a.shape[:2]
    root = math.sqrt(var) * 255.0 * 255.0
    std = np.array([root / 219.0, root / 224.0, root / 224.0])
    noise = rng.standard_normal((h, w, 3)) * std  # (H, W, 3): Y, Cb, Cr
    out = a + noise @ YCBCR_TO_RGB.T  # (H, W, 3): R, G, B
    return np.clip(out, 0.0, 255.0).astype(np.uint8)
