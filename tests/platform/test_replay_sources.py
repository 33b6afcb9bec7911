"""What a replay starts from: the validator cache's re-save of real rows, and the validator's source draw.

The re-save is checked byte for byte against the Pillow calls COMPETITION.md documents (``img.save`` as JPEG
at Pillow's defaults), done here by hand; the source draw against its documented proportions (real 1/2,
text-to-image 1/4, image-to-image 1/4).
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from roadwork.platform.evaluation.challenge import (
    ReplayStats,
    build_replay,
    draw_pool,
    pool_weights,
    render_jpeg,
    replay_from_params,
    resave_image,
    resave_jpeg,
    source_pool,
)
from roadwork.trainer.data.records import BadImageError, Record

ORIENTATION = 0x0112  # EXIF tag


def photo(w: int, h: int, seed: int) -> np.ndarray:
    """Smooth gradients plus fine texture, so that two JPEG encodings of it visibly differ."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([128 + 90 * np.sin(xx / 9.0), 100 + 70 * np.cos(yy / 7.0), (xx * 3 + yy) % 256], -1)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def original_jpeg(w: int, h: int, seed: int) -> bytes:
    """A camera-like file: quality 95, 4:4:4 chroma, EXIF saying "rotate 90 degrees" (orientation 6)."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    buf = io.BytesIO()
    Image.fromarray(photo(w, h, seed)).save(buf, format="JPEG", quality=95, subsampling=0, exif=exif.tobytes())
    return buf.getvalue()


def record(rid: str, label: int, source: str = "real", data: bytes | None = None) -> Record:
    size = (72, 40) if label else (40, 56)  # not square, so an applied orientation would show in the size
    data = original_jpeg(*size, seed=sum(map(ord, rid))) if data is None else data
    return Record(id=rid, image_bytes=data, label=label, width=size[0], height=size[1], gps=None, city=None,
                  scene_description=None, daytime=None, scene=None, travel_alteration=None, weather=None,
                  source=source)


def validator_cache(data: bytes) -> Image.Image:
    """The documented calls: open the row with Pillow, ``img.save`` it as JPEG with no options, reopen."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, format="JPEG")
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def as_is(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


@pytest.fixture(scope="module")
def mixed() -> list[Record]:
    return [record("real0", 0), record("real1", 1), record("t2i0", 0, "t2i"), record("t2i1", 1, "t2i"),
            record("i2i0", 0, "i2i"), record("i2i1", 1, "i2i")]


# --------------------------------------------------------------------------
# the cache re-save
# --------------------------------------------------------------------------


def test_resave_is_pillows_default_jpeg_without_exif_or_orientation() -> None:
    data = original_jpeg(72, 40, seed=1)
    resaved = resave_jpeg(data)
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, format="JPEG")
    assert resaved == buf.getvalue() and resaved != data
    with Image.open(io.BytesIO(resaved)) as im:
        assert im.size == (72, 40)  # orientation 6 would have made it 40 x 72
        assert ORIENTATION not in im.getexif() and "exif" not in im.info
    assert Image.open(io.BytesIO(data)).getexif()[ORIENTATION] == 6  # the source did carry it
    # from the decoded image (what render gets) the re-save is the same
    assert np.array_equal(np.asarray(resave_image(as_is(data))), np.asarray(as_is(resaved)))


def test_resave_converts_modes_jpeg_cannot_hold_and_names_bad_images() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.dstack([photo(30, 20, 2), np.full((20, 30), 128, np.uint8)])).save(buf, format="PNG")
    rgba = buf.getvalue()
    expected = io.BytesIO()
    Image.open(io.BytesIO(rgba)).convert("RGB").save(expected, format="JPEG")
    assert resave_jpeg(rgba) == expected.getvalue()
    with pytest.raises(BadImageError) as err:
        resave_jpeg(b"not an image")
    assert err.value.reason == "undecodable"
    with pytest.raises(BadImageError) as err:
        resave_jpeg(original_jpeg(72, 40, seed=1)[:300])
    assert err.value.reason == "truncated"


def test_real_challenges_are_the_transforms_of_the_cache_resave_byte_for_byte(mixed: list[Record]) -> None:
    by_id = {r.id: r for r in mixed}
    on = list(build_replay(mixed, 40, seed=5))
    off = list(build_replay(mixed, 40, seed=5, cache_resave=False))
    assert [c.params.level for c in on] == [c.params.level for c in off]  # the switch changes no draw
    real = [c for c in on if c.source == "real"]
    assert real and len(real) < len(on)
    for c in on:
        data = by_id[c.record_id].image_bytes
        if c.source == "real":
            assert c.params.cache_resave is True
            assert c.jpeg == render_jpeg(validator_cache(data), replace(c.params, cache_resave=False))
            assert c.jpeg == render_jpeg(as_is(data), c.params)  # render re-saves when the params say so
        else:  # synthetic rows do not come through the cache
            assert c.params.cache_resave is False
            assert c.jpeg == render_jpeg(as_is(data), c.params)
    for c in off:
        assert c.params.cache_resave is False
        assert c.jpeg == render_jpeg(as_is(by_id[c.record_id].image_bytes), c.params)
    # the re-save is not a no-op: most real challenges differ with the switch off
    differ = sum(a.jpeg != b.jpeg for a, b in zip(on, off) if a.source == "real")
    assert differ >= len(real) // 2


def test_logged_challenges_rerender_with_or_without_the_resave(mixed: list[Record]) -> None:
    by_id = {r.id: r for r in mixed}
    for switch in (True, False):
        original = list(build_replay(mixed, 16, seed=2, cache_resave=switch))
        logged = json.loads(json.dumps([c.to_dict() for c in original]))
        assert all(e["params"]["cache_resave"] == (switch and e["source"] == "real") for e in logged)
        assert [c.jpeg for c in replay_from_params(by_id, logged)] == [c.jpeg for c in original]
    # a log written before the field existed was rendered without the re-save
    old = [{**e, "params": {k: v for k, v in e["params"].items() if k != "cache_resave"}} for e in logged]
    assert [c.jpeg for c in replay_from_params(by_id, old)] == [c.jpeg for c in original]


# --------------------------------------------------------------------------
# the source draw
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "pool"),
    [("real", "real"), (None, "real"), ("t2i", "t2i"), ("Text-to-Image", "t2i"), ("synthetic_t2i", "t2i"),
     ("i2i", "i2i"), ("image-to-image", "i2i"), ("synthetic-i2i", "i2i"), ("synthetic", "synthetic"),
     ("sdxl", "synthetic")],
)
def test_source_pool(source: str | None, pool: str) -> None:
    assert source_pool(source) == pool


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        ({"real", "t2i", "i2i"}, {"real": 0.5, "t2i": 0.25, "i2i": 0.25}),  # the validator's draw
        ({"real", "t2i"}, {"real": 0.5, "t2i": 0.5}),  # a missing generator: its quarter stays synthetic
        ({"real", "synthetic"}, {"real": 0.5, "synthetic": 0.5}),
        ({"real", "t2i", "i2i", "synthetic"}, {"real": 0.5, "t2i": 1 / 6, "i2i": 1 / 6, "synthetic": 1 / 6}),
        ({"t2i", "i2i"}, {"t2i": 0.5, "i2i": 0.5}),  # no real rows: the synthetic side takes all
        ({"real"}, {"real": 1.0}),
        (set(), {}),
    ],
)
def test_pool_weights(present: set[str], expected: dict[str, float]) -> None:
    weights = pool_weights(present)
    assert weights == pytest.approx(expected)
    assert math.isclose(sum(weights.values()), 1.0) or not present


def within(count: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize(
    "present",
    [{"real", "t2i", "i2i"}, {"real", "t2i"}, {"t2i", "i2i"}, {"real", "synthetic"}, {"real", "t2i", "i2i", "synthetic"}],
)
def test_draw_pool_follows_the_weights_and_is_reproducible(present: set[str]) -> None:
    n = 20000
    draws = [draw_pool(np.random.default_rng([7, i]), present) for i in range(n)]  # as the replay seeds them
    counts = Counter(draws)
    assert set(counts) == present
    for pool, p in pool_weights(present).items():
        assert within(counts[pool], n, p), (pool, counts[pool], n * p)
    assert draws[:50] == [draw_pool(np.random.default_rng([7, i]), sorted(present)) for i in range(50)]
    with pytest.raises(ValueError, match="present"):
        draw_pool(np.random.default_rng(0), set())


def test_validator_proportions_over_many_draws() -> None:
    n = 20000
    counts = Counter(draw_pool(np.random.default_rng([3, i]), {"real", "t2i", "i2i"}) for i in range(n))
    assert within(counts["real"], n, 0.5) and within(counts["t2i"], n, 0.25) and within(counts["i2i"], n, 0.25)
    assert not within(counts["real"], n, 1 / 3)  # a uniform draw over the three sources would not pass


def test_replay_draws_sources_as_validators_do(mixed: list[Record]) -> None:
    n = 160
    challenges = list(build_replay(mixed, n, seed=0, cache_resave=False))
    sources = Counter(c.source for c in challenges)
    assert within(sources["real"], n, 0.5) and within(sources["t2i"], n, 0.25) and within(sources["i2i"], n, 0.25)
    # label 1 has only real rows here: its challenges are all real, label 0 keeps its three pools
    only_real_1 = [r for r in mixed if r.label == 0 or r.source == "real"]
    challenges = list(build_replay(only_real_1, 40, seed=2, cache_resave=False))
    assert {c.source for c in challenges if c.label == 1} == {"real"}
    assert {c.source for c in challenges if c.label == 0} == {"real", "t2i", "i2i"}


def test_an_undecodable_record_leaves_its_pool_and_the_draw_goes_on(mixed: list[Record]) -> None:
    broken = [*mixed, record("i2i_bad", 1, "i2i", data=b"\xff\xd8 broken")]
    stats = ReplayStats()
    challenges = list(build_replay(broken, 60, seed=3, stats=stats, cache_resave=False))
    assert stats.undecodable == 1 and stats.undecodable_ids == ["i2i_bad"] and len(challenges) == 60
    assert "i2i_bad" not in {c.record_id for c in challenges}
    assert "i2i1" in {c.record_id for c in challenges}  # the pool lives on with its good row
