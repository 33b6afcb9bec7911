"""The student's validator-style training images: made by the replay's own renderer, deterministic by seed."""

from __future__ import annotations

import numpy as np

from roadwork.platform.distillation import distill_set, validator_renders
from roadwork.platform.evaluation.challenge import (
    decode_jpeg,
    render_jpeg,
    sample_params,
)
from roadwork.trainer.data.records import decode_image, read_records


def test_renders_are_what_the_replay_renderer_makes_of_each_record_and_repeat_by_seed(synth_data) -> None:
    records = [r for r in read_records(synth_data)[0][:6]]
    images, labels = validator_renders(records, 2, seed=7, cache_resave=False)
    assert len(images) == 12 and labels == [r.label for r in records for _ in range(2)]
    assert all(img.size == (224, 224) for img in images)
    # Copy 1 of record 3 is the challenge the renderer draws from rng([seed, 3, 1]).
    source = decode_image(records[3].image_bytes)
    params = sample_params(np.random.default_rng([7, 3, 1]), source.width, source.height)
    expected = decode_jpeg(render_jpeg(source, params))
    assert np.array_equal(np.asarray(images[7]), np.asarray(expected))
    again, _ = validator_renders(records, 2, seed=7, cache_resave=False)
    other, _ = validator_renders(records, 2, seed=8, cache_resave=False)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, again, strict=True))
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, other, strict=True))


def test_a_distillation_set_holds_the_images_and_their_renders(synth_data) -> None:
    records = read_records(synth_data)[0][:5]
    data = distill_set(records, 3, seed=0, cache_resave=True)
    assert len(data) == 5 * 4 and data.labels.tolist()[:5] == [r.label for r in records]
    assert data.images[0].size == decode_image(records[0].image_bytes).size  # the original, as it is
