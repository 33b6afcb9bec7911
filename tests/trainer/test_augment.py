from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

import kornia  # noqa: E402,F401 - a dependency of the project: a missing kornia fails, never skips

from roadwork.platform.evaluation.challenge import distortions as ref
from roadwork.trainer.data.augment import (
    AugmentConfig,
    Augmenter,
    Fog,
    SunGlare,
    ValidatorPipeline,
    color_contrast,
    color_saturation,
    contact_sheet,
    gaussian_blur,
    gaussian_noise_color,
    jpeg_resample,
)

# Tolerance of the torch validator distortions against the uint8 references, in 8-bit levels: the torch versions
# snap to the same 8-bit grid but resize and blur in float, where OpenCV uses fixed-point weights.
MEAN_ABS_TOL = 1.5
# GNC is random: its noise std per channel must match the reference's within this share.
GNC_STD_TOL = 0.05

# family -> the probability fields that switch it on
FAMILIES = {
    "hflip": ("hflip_p",),
    "rotation": ("rotation_p",),
    "perspective": ("perspective_p",),
    "zoom": ("zoom_p",),
    "colour": ("colour_p",),
    "rain": ("rain_p",),
    "fog": ("fog_p",),
    "shadow": ("shadow_p",),
    "glare": ("glare_p",),
    "noise": ("noise_p",),
    "blur": ("blur_p",),
    "validator": ("validator_p",),
}


def _images(b: int = 4, h: int = 48, w: int = 48, seed: int = 0) -> torch.Tensor:
    """Smooth random scenes on the 8-bit grid: coarse noise upsampled, so blur and resampling show."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, max(2, h // 8), max(2, w // 8), generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    x = x + 0.05 * torch.rand(b, 3, h, w, generator=g)
    return torch.floor(x.clamp(0, 1) * 255) / 255


def _only(family: str, p: float = 1.0) -> AugmentConfig:
    return replace(AugmentConfig.off(), **{name: p for name in FAMILIES[family]})


# ---------------------------------------------------------------------------------------------- config


def test_off_has_every_probability_zero() -> None:
    off = AugmentConfig.off()
    for name in (n for fields in FAMILIES.values() for n in fields):
        assert getattr(off, name) == 0.0


@pytest.mark.parametrize("name", ["hflip_p", "colour_p", "validator_p", "glare_p"])
@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_invalid_probability_names_the_field(name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=name):
        AugmentConfig(**{name: bad})


def test_invalid_ranges_name_the_field() -> None:
    with pytest.raises(ValueError, match="zoom_scale"):
        AugmentConfig(zoom_scale=(0.8, 0.4))
    with pytest.raises(ValueError, match="hue"):
        AugmentConfig(hue=0.7)


# ------------------------------------------------------------------------------------------- Augmenter


def test_off_config_is_the_exact_identity() -> None:
    x = _images()
    aug = Augmenter(AugmentConfig.off(), seed=0)
    assert len(aug.stages) == 0
    assert torch.equal(aug(x), x)


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (3, 3, 48, 64), (2, 3, 72, 40)])
@pytest.mark.parametrize("config", [AugmentConfig(), AugmentConfig.full()], ids=["default", "full"])
def test_output_shape_dtype_range(shape: tuple[int, ...], config: AugmentConfig) -> None:
    x = torch.rand(*shape)
    y = Augmenter(config, seed=1)(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not torch.isnan(y).any()
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_deterministic_for_a_seed_and_leaves_global_rng_alone() -> None:
    x = _images()
    a, b = Augmenter(AugmentConfig.full(), seed=7), Augmenter(AugmentConfig.full(), seed=7)
    state = torch.get_rng_state()
    first, second = a(x), a(x)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, b(x)) and torch.equal(second, b(x))
    assert not torch.equal(first, second)  # the sequence moves on
    assert not torch.equal(first, Augmenter(AugmentConfig.full(), seed=8)(x))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_changes_the_image_at_p1(family: str) -> None:
    x = _images()
    y = Augmenter(_only(family), seed=3)(x)
    changed = (y - x).abs().flatten(1).amax(1) > 1e-4  # (B,)
    assert bool(changed.all()), f"{family} left some images untouched at p=1"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_is_left_out_at_p0(family: str) -> None:
    full = Augmenter(AugmentConfig.full())
    without = Augmenter(replace(AugmentConfig.full(), **{n: 0.0 for n in FAMILIES[family]}))
    assert len(without.stages) == len(full.stages) - 1
    assert torch.equal(Augmenter(_only(family, 0.0), seed=0)(_images()), _images())


def test_hand_written_ops_respect_their_probability() -> None:
    x = _images(b=64, h=16, w=16)
    torch.manual_seed(0)
    for op in (Fog, SunGlare):
        changed = (op(p=0.5)(x) != x).flatten(1).any(1).float().mean().item()
        assert 0.3 < changed < 0.7
        assert torch.equal(op(p=0.0)(x), x)


def test_fog_is_denser_at_the_top() -> None:
    x = torch.zeros(2, 3, 40, 40)
    y = Fog(p=1.0)(x)
    assert (y[:, :, 0] > y[:, :, -1]).all()


def test_validator_levels_follow_the_competition_draw() -> None:
    """Level 1 has no distortions, level 2 only CS/CC/JPEG at level <= 1, level 3 all five at level <= 2."""
    torch.manual_seed(0)
    x = _images(b=300, h=8, w=8)
    out = ValidatorPipeline(1.0).distort(x)
    untouched = (out == x).flatten(1).all(1).float().mean().item()
    # untouched = level 1 (1/3) + level 2 with all three off (1/3 * 1/8) + level 3 with all five off (1/3 / 243)
    assert abs(untouched - (1 / 3 + 1 / 24 + 1 / 729)) < 0.08


# ------------------------------------------------------------------------- validator distortions vs uint8


def _u8_batch(b: int = 3, h: int = 40, w: int = 56) -> tuple[list[np.ndarray], torch.Tensor]:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(b)]
    arrays[0] = (_images(1, h, w)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # one smooth scene
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
    return arrays, x


def _mean_abs_levels(ours: torch.Tensor, theirs: list[np.ndarray]) -> float:
    t = torch.from_numpy(np.stack(theirs)).permute(0, 3, 1, 2).float()
    return (ours * 255.0 - t).abs().mean().item()


@pytest.mark.parametrize(
    ("ours", "theirs", "params"),
    [
        (color_saturation, ref.color_saturation, (0.4, 0.3)),
        (color_contrast, ref.color_contrast, (0.85, 0.725)),
        (jpeg_resample, ref.jpeg_resample, (2, 3)),
        (gaussian_blur, ref.gaussian_blur, (7, 9)),
    ],
    ids=["CS", "CC", "JPEG", "GB"],
)
def test_torch_distortions_match_uint8_reference(ours, theirs, params) -> None:
    arrays, x = _u8_batch()
    for param in params:
        got = ours(x, param)
        assert got.shape == x.shape
        assert torch.equal(got * 255, torch.round(got * 255))  # on the 8-bit grid
        assert _mean_abs_levels(got, [theirs(a, param) for a in arrays]) < MEAN_ABS_TOL, param


def test_cs_and_cc_are_exact_on_the_grid() -> None:
    arrays, x = _u8_batch()
    assert _mean_abs_levels(color_saturation(x, 0.3), [ref.color_saturation(a, 0.3) for a in arrays]) < 0.01
    assert _mean_abs_levels(color_contrast(x, 0.85), [ref.color_contrast(a, 0.85) for a in arrays]) == 0.0


def test_per_sample_parameters() -> None:
    _, x = _u8_batch()
    per_sample = color_contrast(x, torch.tensor([1.0, 0.85, 0.725]))
    assert torch.equal(per_sample[0], x[0])
    assert torch.equal(per_sample[2], color_contrast(x[2:3], 0.725)[0])


@pytest.mark.parametrize("var", [0.001, 0.002])
def test_gnc_noise_matches_reference_std(var: float) -> None:
    rng = np.random.default_rng(1)
    grey = rng.integers(90, 166, (96, 96, 3), dtype=np.uint8)  # far from 0 and 255, so clipping does not bias
    theirs = ref.gaussian_noise_color(grey, var, rng).astype(np.float64) - grey
    x = torch.from_numpy(grey).permute(2, 0, 1)[None].float() / 255
    ours = (gaussian_noise_color(x, var, torch.Generator().manual_seed(0)) * 255 - x * 255)[0].permute(1, 2, 0)
    ours = ours.double().numpy()
    for c in range(3):
        assert abs(ours[..., c].std() / theirs[..., c].std() - 1) < GNC_STD_TOL
        assert abs(ours[..., c].mean() - theirs[..., c].mean()) < 0.3  # both truncate: mean about -0.5


# --------------------------------------------------------------------------------------------- preview


def test_contact_sheet_writes_a_png_of_the_right_size(tmp_path) -> None:
    images = Augmenter(AugmentConfig.full(), seed=0)(_images(b=10, h=24, w=32))
    path = contact_sheet(images, tmp_path / "preview" / "sheet.png", columns=4)
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == (4 * (32 + 2) + 2, 3 * (24 + 2) + 2)  # 4 columns x ceil(10 / 4) rows, 2 px gaps
    one = contact_sheet(images[:1], tmp_path / "one.png")
    with Image.open(one) as im:
        assert im.size == (32 + 4, 24 + 4)
