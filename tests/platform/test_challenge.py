"""The challenge replay against hand-computed expectations and the validator's documented behaviour."""

from __future__ import annotations

import io
import json
import math
import zlib
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

from roadwork.platform.evaluation.challenge import (
    DISTORTION_ORDER,
    DISTORTION_PARAMS,
    MISSING,
    ChallengeParams,
    ReplayStats,
    build_replay,
    color_contrast,
    color_saturation,
    decode_jpeg,
    encode_jpeg,
    gaussian_blur,
    gaussian_noise_color,
    jpeg_resample,
    random_resized_crop_box,
    render,
    render_jpeg,
    replay_from_params,
    rotate,
    sample_params,
)
from roadwork.platform.evaluation.challenge.rendering import center_crop_box, rotated_crop, rotated_crop_u8, to_float, to_uint8
from roadwork.trainer.data.records import Record

LEVELS = [1, 2, 3, 4, 5]
TAG_KEYS = {"level", *DISTORTION_ORDER, "source", "weather", "daytime", "scene"}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def grey(value: int, h: int = 16, w: int = 16) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def scene(w: int, h: int, seed: int = 0) -> Image.Image:
    """A smooth, street-like test picture (gradients and blocks), so JPEG behaves as on photos."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([120 + 80 * np.sin(xx / 37.0), 90 + 60 * np.cos(yy / 23.0), 60 + 0.2 * (xx + yy) % 120], -1)
    for _ in range(6):
        x0, y0 = rng.integers(0, w - w // 5), rng.integers(0, h - h // 5)
        img[y0 : y0 + h // 5, x0 : x0 + w // 5] = rng.integers(0, 256, 3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def record(rid: str, label: int, *, source: str = "real", desc: str | None = None, data: bytes | None = None,
           size: tuple[int, int] = (64, 48), weather: str | None = "['Cloudy']", daytime: str | None = "Light",
           scene_env: str | None = None) -> Record:
    data = jpeg_bytes(scene(*size, seed=zlib.crc32(rid.encode()) % 1000)) if data is None else data
    return Record(id=rid, image_bytes=data, label=label, width=size[0], height=size[1], gps=None, city=None,
                  scene_description=desc, daytime=daytime, scene=scene_env, travel_alteration=None,
                  weather=weather, source=source)


# --------------------------------------------------------------------------
# distortions, each level 1..5, against hand-computed values
# --------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_color_contrast_floors_the_product(level: int) -> None:
    p = DISTORTION_PARAMS["CC"][level - 1]
    assert np.all(color_contrast(grey(200), p) == {1: 170, 2: 145, 3: 120, 4: 95, 5: 70}[level])
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # (1, 256, 3)
    expected = [int(Fraction(k) * Fraction(str(p)) // 1) for k in range(256)]
    assert color_contrast(ramp, p)[0, :, 0].tolist() == expected


@pytest.mark.parametrize("level", LEVELS)
def test_color_saturation_scales_chroma_towards_luma(level: int) -> None:
    p = Fraction(str(DISTORTION_PARAMS["CS"][level - 1]))
    for v in (0, 1, 77, 128, 254, 255):  # grey has no chroma: identity
        assert np.array_equal(color_saturation(grey(v), float(p)), grey(v))
    pixel = np.array([[[200, 100, 50]]], np.uint8)
    y = Fraction(299 * 200 + 587 * 100 + 114 * 50, 1000)  # 124.2
    expected = [int((y + p * (c - y)) // 1) for c in (200, 100, 50)]  # level 1: 154, 114, 94
    assert color_saturation(pixel, float(p))[0, 0].tolist() == expected


def test_color_saturation_zero_gives_luma() -> None:
    pixel = np.array([[[200, 100, 50], [0, 255, 0]]], np.uint8)
    # luma 124.2 and 149.685, floored
    assert color_saturation(pixel, 0.0)[0].tolist() == [[124, 124, 124], [149, 149, 149]]


def _cs_via_ycbcr(img: np.ndarray, p: float) -> np.ndarray:
    """BT.601 full-range YCbCr, Cb and Cr scaled about 128 by p, back to RGB, truncated."""
    r, g, b = (img[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    cb, cr = 128 + p * (cb - 128), 128 + p * (cr - 128)
    out = np.stack(
        [y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128)], -1
    )
    return np.floor(np.clip(out, 0, 255)).astype(np.uint8)


@pytest.mark.parametrize("level", LEVELS)
def test_color_saturation_agrees_with_ycbcr_chroma_scaling(level: int) -> None:
    p = DISTORTION_PARAMS["CS"][level - 1]
    img = np.random.default_rng(level).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert psnr(color_saturation(img, p), _cs_via_ycbcr(img, p)) >= 60.0


@pytest.mark.parametrize("level", LEVELS)
def test_jpeg_resample(level: int) -> None:
    f = DISTORTION_PARAMS["JPEG"][level - 1]
    assert np.array_equal(jpeg_resample(grey(77, 60, 60), f), grey(77, 60, 60))  # constant: identity
    ramp = np.repeat((2 * np.arange(120))[None, :, None], 3, axis=2).repeat(12, axis=0).astype(np.uint8)  # 12 x 120
    out = jpeg_resample(ramp, f)
    assert out.shape == ramp.shape
    inner = slice(2 * f, 120 - 2 * f)  # linear down/up-sampling keeps a linear ramp away from the borders
    assert np.abs(out[:, inner].astype(int) - ramp[:, inner]).max() <= 1


def test_jpeg_resample_by_two_averages_a_checkerboard() -> None:
    board = np.repeat(((np.indices((40, 40)).sum(0) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)
    assert np.all(jpeg_resample(board, 2) == 128)  # each 2x2 block averages to 127.5, rounded


def _gaussian_kernel(k: int) -> np.ndarray:
    sigma = k / 6.0
    x = np.arange(k) - (k - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


@pytest.mark.parametrize("level", LEVELS)
def test_gaussian_blur(level: int) -> None:
    k = DISTORTION_PARAMS["GB"][level - 1]
    assert np.array_equal(gaussian_blur(grey(90, 41, 41), k), grey(90, 41, 41))
    impulse = np.zeros((41, 41, 3), np.uint8)
    impulse[20, 20] = 255
    out = gaussian_blur(impulse, k)[..., 0].astype(np.float64)
    expected = np.zeros((41, 41))
    r = k // 2
    expected[20 - r : 21 + r, 20 - r : 21 + r] = 255 * _gaussian_kernel(k)
    assert np.abs(out - expected).max() <= 1.0


def _ycbcr(img: np.ndarray) -> np.ndarray:
    r, g, b = (img[..., i].astype(np.float64) for i in range(3))
    return np.stack([0.299 * r + 0.587 * g + 0.114 * b,
                     -0.168736 * r - 0.331264 * g + 0.5 * b,
                     0.5 * r - 0.418688 * g - 0.081312 * b], -1)


@pytest.mark.parametrize("level", LEVELS)
def test_gaussian_noise_color(level: int) -> None:
    var = DISTORTION_PARAMS["GNC"][level - 1]
    img = grey(128, 256, 256)
    out = gaussian_noise_color(img, var, np.random.default_rng(7))
    noise = (_ycbcr(out) - _ycbcr(img)).reshape(-1, 3)
    root = 255**2 * math.sqrt(var)
    formula = np.array([root / 219, root / 224, root / 224])  # 9.39, 9.18, 9.18 at level 1
    std = noise.std(axis=0)
    assert np.all(np.abs(noise.mean(axis=0)) < 1.0)  # truncation shifts Y by -0.5 at most
    if level <= 3:  # channel values stay inside [0, 255] almost always
        assert np.allclose(std, formula, rtol=0.03)
    else:  # heavy noise clips at 0 and 255, which can only shrink it
        assert np.all(std < formula) and np.all(std > 0.6 * formula)
    again = gaussian_noise_color(img, var, np.random.default_rng(7))
    assert np.array_equal(out, again)


def test_float_round_trip_is_exact_so_level_zero_distortions_change_nothing() -> None:
    values = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.array_equal(to_uint8(to_float(values)), values)


# --------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------


def test_rotation_by_zero_is_identity() -> None:
    x = to_float(np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    assert torch.equal(rotate(x, 0.0), x)


@pytest.mark.parametrize("n", [6, 7])
def test_rotation_by_90_is_counter_clockwise(n: int) -> None:
    x = to_float(np.random.default_rng(n).integers(0, 256, (n, n, 3), dtype=np.uint8))
    # positive angle = counter-clockwise as displayed, like np.rot90 / torch.rot90 with k = 1
    assert torch.equal(rotate(x, 90.0), torch.rot90(x, 1, dims=(1, 2)))
    assert torch.equal(rotate(x, -90.0), torch.rot90(x, -1, dims=(1, 2)))
    top_row_after = rotate(x, 90.0)[:, 0, :].numpy()
    assert np.array_equal(top_row_after, x[:, :, n - 1].numpy())  # the right column moves to the top


def test_rotation_fills_the_corners_black() -> None:
    white = torch.ones(3, 30, 40)
    out = rotate(white, 20.0)
    for r, c in [(0, 0), (0, 39), (29, 0), (29, 39)]:
        assert torch.all(out[:, r, c] == 0)
    assert torch.all(out[:, 15, 20] == 1)
    assert set(out.unique().tolist()) == {0.0, 1.0}  # nearest neighbour: no blending


@pytest.mark.parametrize("angle", [0.0, -20.0, 7.3, 19.99, 90.0])
def test_windowed_uint8_rotation_matches_the_full_canvas(angle: float) -> None:
    img = np.random.default_rng(1).integers(0, 256, (61, 83, 3), dtype=np.uint8)
    full = rotate(to_float(img), angle)
    for box in [(0, 0, 61, 61), (5, 20, 40, 40), (30, 60, 31, 23)]:
        t, l, h, w = box
        assert torch.equal(rotated_crop_u8(img, angle, box), full[:, t : t + h, l : l + w])
        assert torch.equal(rotated_crop(to_float(img), angle, box), full[:, t : t + h, l : l + w])


def test_whole_image_crop_at_224_and_angle_zero_is_unchanged() -> None:
    img = Image.fromarray(np.random.default_rng(2).integers(0, 256, (224, 224, 3), dtype=np.uint8))
    params = ChallengeParams(level=1, angle=0.0, crop=(0, 0, 224, 224))
    assert np.array_equal(np.asarray(render(img, params)), np.asarray(img))
    assert np.array_equal(np.asarray(render(img, ChallengeParams(level=0))), np.asarray(img))


def test_level_zero_centre_crop_rounds_half_to_even() -> None:
    assert center_crop_box(231, 224) == (4, 0, 228, 224)  # round(3.5) = 4
    assert center_crop_box(229, 224) == (2, 0, 226, 224)  # round(2.5) = 2
    assert center_crop_box(4032, 3024) == (504, 0, 3528, 3024)
    strip = np.zeros((224, 229, 3), np.uint8)
    strip[:, 2:226] = 200  # exactly the centre square is bright
    out = np.asarray(render(Image.fromarray(strip), ChallengeParams(level=0)))
    assert out.shape == (224, 224, 3) and np.all(out == 200)


def test_render_is_224_rgb_and_flips_mirror() -> None:
    img = scene(120, 90)
    base = ChallengeParams(level=1, angle=3.0, crop=(10, 20, 70, 70))
    out = np.asarray(render(img, base))
    assert out.shape == (224, 224, 3)
    h = np.asarray(render(img, ChallengeParams(level=1, angle=3.0, crop=(10, 20, 70, 70), hflip=True)))
    v = np.asarray(render(img, ChallengeParams(level=1, angle=3.0, crop=(10, 20, 70, 70), vflip=True)))
    assert np.array_equal(h, out[:, ::-1]) and np.array_equal(v, out[::-1])


# --------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------


def test_sample_params_distribution() -> None:
    rng = np.random.default_rng(3)
    w, h = 640, 480
    draws = [sample_params(rng, w, h) for _ in range(4000)]
    levels = Counter(p.level for p in draws)
    assert all(abs(levels[k] / 4000 - 0.25) < 0.03 for k in range(4))
    allowed = {2: {"CS": {0, 1}, "CC": {0, 1}, "JPEG": {0, 1}},
               3: {"CS": {0, 1, 2}, "CC": {0, 1, 2}, "JPEG": {0, 1, 2}, "GNC": {0, 1, 2}, "GB": {0, 1, 2}}}
    seen: dict[str, set[int]] = {}
    for p in draws:
        assert not p.hflip and not p.vflip
        if p.level == 0:
            assert p.angle is None and p.crop is None and p.distortions == ()
            continue
        assert -20.0 <= p.angle <= 20.0
        top, left, ch, cw = p.crop
        assert ch == cw and top >= 0 and left >= 0 and top + ch <= h and left + cw <= w
        assert 0.2 - 2 * ch / (w * h) <= ch * cw / (w * h) <= 1.0  # side = round(sqrt(area)): a rounding below 0.2
        names = [n for n, _ in p.distortions]
        assert names == list(allowed.get(p.level, {}))
        for n, lvl in p.distortions:
            assert lvl in allowed[p.level][n]
            seen.setdefault(f"{p.level}{n}", set()).add(lvl)
        assert (p.noise_seed is not None) == (dict(p.distortions).get("GNC", 0) > 0)
    assert all(seen[f"{lvl}{n}"] == s for lvl, d in allowed.items() for n, s in d.items())
    flipped = [sample_params(rng, w, h, flips=True) for _ in range(400)]
    with_geometry = [p for p in flipped if p.level > 0]
    assert 0.35 < np.mean([p.hflip for p in with_geometry]) < 0.65
    assert 0.35 < np.mean([p.vflip for p in with_geometry]) < 0.65


def test_crop_falls_back_to_the_centred_shorter_side() -> None:
    rng = np.random.default_rng(0)
    assert random_resized_crop_box(rng, 1000, 10) == (0, 495, 10, 10)  # no square of >= 20% area fits
    assert random_resized_crop_box(rng, 10, 1000) == (495, 0, 10, 10)


def test_params_round_trip_through_json() -> None:
    rng = np.random.default_rng(4)
    for _ in range(200):
        p = sample_params(rng, 333, 517, flips=True)
        assert ChallengeParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"level": 7}, "level"),
        ({"distortions": [["XX", 1]]}, "distortions"),
        ({"distortions": [["CS", 9]]}, "distortions"),
        ({"crop": [0, 0, 10, 12]}, "crop"),
        ({"crop": [-1, 0, 10, 10]}, "crop"),
        ({"angle": "ten"}, "angle"),
        ({"angle": None}, "angle"),
        ({"distortions": [["GNC", 1]], "noise_seed": None}, "noise_seed"),
        ({"hflip": "yes"}, "hflip"),
        ({"colour": 1}, "params"),
    ],
)
def test_bad_params_name_the_field(change: dict, field: str) -> None:
    good = {"level": 2, "angle": 5.0, "crop": [0, 0, 10, 10], "distortions": [["CS", 1]], "noise_seed": None}
    with pytest.raises(ValueError, match=f"^{field}"):
        ChallengeParams.from_dict({**good, **change})


def test_crop_outside_the_image_is_refused() -> None:
    params = ChallengeParams.from_dict({"level": 1, "angle": 0.0, "crop": [40, 0, 50, 50]})
    with pytest.raises(ValueError, match="^crop"):
        render(scene(64, 48), params)


# --------------------------------------------------------------------------
# what the miner sees
# --------------------------------------------------------------------------


def test_miner_view_is_within_jpeg_noise() -> None:
    img = scene(400, 300)
    rng = np.random.default_rng(5)
    for _ in range(8):
        params = sample_params(rng, *img.size)
        rendered = render(img, params)
        decoded = decode_jpeg(render_jpeg(img, params))
        assert decoded.size == (224, 224) and decoded.mode == "RGB"
        assert psnr(np.asarray(rendered), np.asarray(decoded)) > 25.0
        assert encode_jpeg(rendered) == render_jpeg(img, params)


# --------------------------------------------------------------------------
# replays
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return [
        record("r0", 0, size=(64, 48)),
        record("r1", 0, size=(50, 70), weather=None, daytime=None),
        record("r2", 1, desc="cones in the left lane", size=(80, 60), scene_env="Urban"),
        record("s0", 0, source="synthetic", size=(48, 48)),
        record("s1", 1, source="synthetic", size=(96, 64)),
        record("bad", 1, desc="barriers", data=b"not an image"),
        record("r_no_desc_1", 1, desc=None),  # real roadwork without a description: the validator skips it
        record("r_desc_0", 0, desc="a clear road"),  # real, label 0 with a description: skipped
    ]


def test_replay_is_deterministic_and_a_prefix(records: list[Record]) -> None:
    a = [c.jpeg for c in build_replay(records, 20, seed=11)]
    b = [c.jpeg for c in build_replay(records, 20, seed=11)]
    c = [c.jpeg for c in build_replay(records, 20, seed=12)]
    assert a == b and a != c
    assert [c.jpeg for c in build_replay(records, 5, seed=11)] == a[:5]


def test_replay_from_logged_params_is_byte_exact(records: list[Record]) -> None:
    original = list(build_replay(records, 30, seed=3))
    logged = json.loads(json.dumps([c.to_dict() for c in original]))
    again = list(replay_from_params({r.id: r for r in records}, logged))
    assert [c.jpeg for c in again] == [c.jpeg for c in original]
    assert [c.tags for c in again] == [c.tags for c in original]
    assert [c.index for c in again] == list(range(30))
    with pytest.raises(ValueError, match="^record_id"):
        list(replay_from_params({}, logged[:1]))
    bad = {**logged[0], "params": {**logged[0]["params"], "level": 7}}
    with pytest.raises(ValueError, match="^level"):
        list(replay_from_params({r.id: r for r in records}, [bad]))


def test_replay_balances_labels_and_sources_and_tags_everything(records: list[Record]) -> None:
    stats = ReplayStats()
    challenges = list(build_replay(records, 400, seed=0, stats=stats))
    labels = Counter(c.label for c in challenges)
    assert 160 <= labels[1] <= 240  # 200 +- 4 sigma
    for label in (0, 1):
        sources = Counter(c.source for c in challenges if c.label == label)
        assert abs(sources["real"] - sources["synthetic"]) < 0.25 * labels[label]
    for c in challenges:
        assert set(c.tags) == TAG_KEYS and all(isinstance(v, str) and v for v in c.tags.values())
        assert c.tags["level"] == str(c.params.level) and c.tags["source"] == c.source
        assert decode_jpeg(c.jpeg).size == (224, 224)
    by_id = {c.record_id: c for c in challenges}
    assert by_id["r1"].tags["weather"] == MISSING and by_id["r1"].tags["daytime"] == MISSING
    assert by_id["r2"].tags["scene"] == "Urban" and by_id["r0"].tags["weather"] == "['Cloudy']"
    assert {c.tags["level"] for c in challenges} == {"0", "1", "2", "3"}
    assert all(c.tags["GNC"] == "0" for c in challenges if c.params.level < 3)
    # the description filter and the undecodable record
    assert {"r_no_desc_1", "r_desc_0", "bad"}.isdisjoint(by_id)
    assert stats.description_filtered == 2
    assert stats.undecodable == 1 and stats.undecodable_ids == ["bad"]
    assert stats.built == 400


def test_description_filter_only_when_the_dataset_has_descriptions() -> None:
    plain = [record("a", 0), record("b", 1), record("c", 1)]  # no descriptions anywhere: nothing filtered
    stats = ReplayStats()
    ids = {c.record_id for c in build_replay(plain, 40, seed=1, stats=stats)}
    assert ids == {"a", "b", "c"} and stats.description_filtered == 0
    with pytest.raises(ValueError, match="label 1"):  # the only roadwork row lacks a description: filtered
        build_replay([record("a", 0), record("b", 0, desc="x"), record("c", 1)], 5, seed=0)
