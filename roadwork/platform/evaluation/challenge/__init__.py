"""The challenge replay: challenge images built exactly as StreetVision validators build them.

- :mod:`.params`: :class:`ChallengeParams` (level, angle, crop, flips, distortions, noise seed) and
  :func:`sample_params`, the validator's random draw.
- :mod:`.cache`: :func:`resave_jpeg` / :func:`resave_image`, the validator cache's Pillow re-save of a real row
  before the transforms (applied by :func:`render` when ``params.cache_resave``).
- :mod:`.distortions`: CS, CC, JPEG, GNC, GB as pure functions on uint8 arrays.
- :mod:`.rendering`: the rendering (rotation, crop, resize, distortions, JPEG quality 75) and the miner's decode.
- :mod:`.stream`: :func:`build_replay`, a seeded stream of :class:`Challenge` from a dataset, and
  :func:`replay_from_params`, which re-renders logged challenges.
"""

from roadwork.platform.evaluation.challenge.cache import resave_image, resave_jpeg
from roadwork.platform.evaluation.challenge.distortions import (
    color_contrast,
    color_saturation,
    gaussian_blur,
    gaussian_noise_color,
    jpeg_resample,
)
from roadwork.platform.evaluation.challenge.params import (
    DISTORTION_ORDER,
    DISTORTION_PARAMS,
    LEVEL_DISTORTIONS,
    ChallengeParams,
    random_resized_crop_box,
    sample_params,
)
from roadwork.platform.evaluation.challenge.rendering import (
    SIZE,
    decode_jpeg,
    encode_jpeg,
    render,
    render_jpeg,
    rotate,
)
from roadwork.platform.evaluation.challenge.stream import (
    MISSING,
    Challenge,
    ReplayStats,
    build_replay,
    challenge_tags,
    description_disagrees,
    draw_pool,
    pool_weights,
    replay_from_params,
    source_pool,
)

__all__ = [
    "DISTORTION_ORDER",
    "DISTORTION_PARAMS",
    "LEVEL_DISTORTIONS",
    "MISSING",
    "SIZE",
    "Challenge",
    "ChallengeParams",
    "ReplayStats",
    "build_replay",
    "challenge_tags",
    "color_contrast",
    "color_saturation",
    "decode_jpeg",
    "description_disagrees",
    "draw_pool",
    "encode_jpeg",
    "gaussian_blur",
    "gaussian_noise_color",
    "jpeg_resample",
    "pool_weights",
    "random_resized_crop_box",
    "render",
    "render_jpeg",
    "replay_from_params",
    "resave_image",
    "resave_jpeg",
    "rotate",
    "sample_params",
    "source_pool",
]
