"""What `roadwork deploy` publishes loads in the stock miner's own environment with its own calls, and answers
what our tools answer.

The miner's environment is a second venv (`make miner-env`: `.venv-miner`, transformers 4.45.2 as the stock
miner pins it, the CPU torch of this project, Pillow, numpy, safetensors). The miner's calls run there in a
subprocess, exactly as COMPETITION.md gives them, with no remote code. Under CI=true a missing or wrong miner
environment fails these tests; elsewhere it skips them with the command that makes it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from roadwork.platform.evaluation.challenge.params import sample_params
from roadwork.platform.evaluation.challenge.rendering import render_jpeg
from roadwork.platform.registry import publish
from roadwork.platform.registry import service as registry
from roadwork.settings import load_settings
from roadwork.trainer.data.records import read_records
from roadwork.trainer.student.model import (
    IMAGE_MEAN,
    IMAGE_STD,
    build_student,
    load_student,
    save_student,
)
from tests.helpers import DEPLOY_FORMAT_VAR, ROOT, as_json, register_student, roadwork

MINER_PYTHON = ROOT / ".venv-miner" / "bin" / "python"
MINER_TRANSFORMERS = "4.45.2"  # the stock miner's pin (COMPETITION.md)

# The miner's calls, verbatim; the processor falls back to use_fast=False only where torchvision is missing.
MINER_SCORES = """
import importlib.util, json, sys
import transformers
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

folder, out, images = sys.argv[1], sys.argv[2], sys.argv[3:]
fallback = False
try:
    feature_extractor = AutoImageProcessor.from_pretrained(folder, use_fast=True)
except Exception:
    if importlib.util.find_spec("torchvision") is not None:
        raise
    feature_extractor, fallback = AutoImageProcessor.from_pretrained(folder, use_fast=False), True
detector = pipeline("image-classification", model=AutoModelForImageClassification.from_pretrained(folder),
                    feature_extractor=feature_extractor)
scores = []
for path in images:
    answer = detector(Image.open(path))  # the decoded JPEG as a Pillow image, no conversion
    scores.append(next(a["score"] for a in answer if a["label"] == "Roadwork"))
json.dump({"transformers": transformers.__version__, "fallback": fallback,
           "processor": type(feature_extractor).__name__, "scores": scores}, open(out, "w"))
"""

MINER_PIXELS = """
import sys
import numpy as np
from PIL import Image
from transformers import AutoImageProcessor

folder, out, images = sys.argv[1], sys.argv[2], sys.argv[3:]
processor = AutoImageProcessor.from_pretrained(folder, use_fast=True)
pixels = processor(images=[Image.open(p) for p in images], return_tensors="np")["pixel_values"]
np.save(out, pixels)
"""


def _miner_env_problem() -> str | None:
    if not MINER_PYTHON.exists():
        return f"no miner environment at {MINER_PYTHON.parent.parent}"
    done = subprocess.run([str(MINER_PYTHON), "-I", "-c", "import transformers; print(transformers.__version__)"],
                          capture_output=True, text=True, timeout=300, check=False)
    version = done.stdout.strip()
    if done.returncode != 0 or version != MINER_TRANSFORMERS:
        return f"the miner environment has transformers {version or '(none)'}, not {MINER_TRANSFORMERS}"
    return None


@pytest.fixture(scope="module")
def miner_python() -> Path:
    problem = _miner_env_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}: `make test` must make it (`make miner-env`)")
        pytest.skip(f"{problem}; `make miner-env` makes it")
    return MINER_PYTHON


def run_in_miner_env(python: Path, script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `script` with the miner's interpreter, isolated from this project (no PYTHONPATH, no user site)."""
    path = tmp_path / "miner_script.py"
    path.write_text(script)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run([str(python), "-I", str(path), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, f"the miner's environment failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return done


def challenge_jpegs(synth_data: Path, out: Path, n: int, seed: int = 0) -> list[Path]:
    """`n` challenges rendered from the synthetic rows as validators render them (224 px JPEG, quality 75)."""
    records, _ = read_records(synth_data)
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        record = records[int(rng.integers(len(records)))]
        with Image.open(io.BytesIO(record.image_bytes)) as image:
            image = image.convert("RGB")
            params = sample_params(rng, *image.size)
            data = render_jpeg(image, params)
        path = out / f"challenge-{i:03d}.jpg"
        path.write_bytes(data)
        paths.append(path)
    return paths


@pytest.mark.parametrize("kind", ["dinov2", pytest.param("vit", marks=pytest.mark.slow)])
def test_the_published_student_loads_in_the_miners_environment_and_answers_our_scores(
        kind, miner_python, engine, clean_env, tiny_checkpoint, synth_data, tmp_path) -> None:
    clean_env.setenv(DEPLOY_FORMAT_VAR, "stock")
    settings = load_settings()
    teacher = registry.register_version(engine, settings, tiny_checkpoint.checkpoint_dir, config={"name": "tiny"},
                                        metrics={}, data_fingerprint="fp", parent_id=None, actor="test")
    register_student(engine, settings, teacher, tmp_path / "student", kind=kind, threshold=0.35)
    registry.deploy(engine, settings, teacher.id, actor="test", reason="the miner's environment")
    published = (settings.publish_dirs[0] / publish.CURRENT).resolve()

    jpegs = challenge_jpegs(synth_data, tmp_path / "challenges", n=24)
    out = tmp_path / "miner.json"
    run_in_miner_env(miner_python, MINER_SCORES, tmp_path, str(published), str(out), *map(str, jpegs))
    miner = json.loads(out.read_text())
    assert miner["transformers"] == MINER_TRANSFORMERS

    predicted = as_json(roadwork(settings.home, "predict", str(published), *map(str, jpegs), "--json"))
    assert [Path(row["image"]).name for row in predicted] == [p.name for p in jpegs]
    ours = [row["score"] for row in predicted]
    assert np.abs(np.array(miner["scores"]) - np.array(ours)).max() < 1e-4
    assert max(ours) - min(ours) > 0.01  # the scores depend on the image: a model, not a constant


def test_the_miners_processor_resizes_and_normalises_as_the_student_was_trained(
        miner_python, synth_data, tmp_path) -> None:
    model, processor = build_student("dinov2")
    save_student(model, processor, tmp_path / "student", {})
    jpegs = challenge_jpegs(synth_data, tmp_path / "challenges", n=6, seed=1)
    others = [tmp_path / "wide.png", tmp_path / "grey.png"]  # a resize and an RGB conversion
    Image.open(jpegs[0]).resize((320, 240)).save(others[0])
    Image.open(jpegs[1]).convert("L").save(others[1])
    images = [*jpegs, *others]

    out = tmp_path / "miner_pixels.npy"
    run_in_miner_env(miner_python, MINER_PIXELS, tmp_path, str(tmp_path / "student"), str(out), *map(str, images))
    miner = np.load(out)  # (B, 3, 224, 224)

    _, ours_processor, _ = load_student(tmp_path / "student")  # what training and evaluation feed the student
    ours = ours_processor(images=[Image.open(p) for p in images], return_tensors="np")["pixel_values"]
    assert miner.shape == ours.shape == (len(images), 3, 224, 224)
    assert np.abs(miner - ours).max() < 1e-5

    # and both are the plain recipe on a 224 px challenge: scale to [0, 1], ImageNet mean and std, no crop
    mean, std = np.array(IMAGE_MEAN).reshape(3, 1, 1), np.array(IMAGE_STD).reshape(3, 1, 1)
    for i, path in enumerate(jpegs):
        plain = (np.asarray(Image.open(path), dtype=np.float64).transpose(2, 0, 1) / 255.0 - mean) / std
        assert np.abs(miner[i] - plain).max() < 1e-5
