"""`roadwork distill`: a stock-architecture student of a registered teacher, registered as its own version.

The platform's half of distillation: it picks the teacher version, reads the teacher's data and split, renders
validator-style copies of the images with the challenge replay's own renderer (level, rotation, crop,
distortions, JPEG 75, the cache re-save of real rows), hands everything to the trainer's loop
(`roadwork.trainer.student.distill`), registers the student (kind `student` in its config, parent = the teacher,
the teacher's data fingerprint), and evaluates it on the validation split and on the very replays (n, seed, data)
its teacher was evaluated on, so the two are compared challenge for challenge.

Contract with the packaging and deploy code: a student version's artifact is a student folder
(`save_student`), its `parent_id` is the teacher's id, and its config has a top-level
`"student": {"kind", "teacher", "teacher_id", "threshold", "epochs"}`.

What the Models page compares besides MCC is measured here, once, and stored in the student's metrics under
`"distill"` (the dashboard loads no model): `"size"` {teacher, student: {parameters, weights_mb}} (every
parameter of the loaded model; the bytes of the folder's safetensors files, MB = 10^6 bytes) and `"latency_ms"`
{teacher, student} (CPU milliseconds per image at batch 1, preprocessing included, the median of a few runs after
a warm-up, on one validator-style render), with the measurement's setup under `"latency_setup"`.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import Engine

from roadwork.clock import utcnow
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.evaluation.challenge import (
    decode_jpeg,
    render_jpeg,
    sample_params,
    source_pool,
)
from roadwork.platform.evaluation.challenge.stream import REAL as REAL_POOL
from roadwork.platform.evaluation.replay import evaluate_replay
from roadwork.platform.evaluation.validation import (
    checkpoint_train_config,
    data_splits,
    evaluate_version,
)
from roadwork.platform.registry.service import checkout, register_version
from roadwork.settings import Settings
from roadwork.trainer.data.records import BadImageError, Record, decode_image
from roadwork.trainer.student.distill import (
    DistillConfig,
    DistillResult,
    DistillSet,
    distill_student,
    teacher_targets,
)
from roadwork.trainer.student.model import (
    DEFAULT_STUDENT,
    build_student,
    save_student,
    student_spec,
)

STUDENT_KEY = "student"  # the top-level key of a student version's config
FOOTPRINT_KEY = "distill"  # the key of the student's metrics holding size and latency of both models
LATENCY_RUNS = 5  # timed runs per model (after one warm-up); the median is stored
MB = 1_000_000


def default_teacher(engine: Engine) -> repo.Version:
    """The newest version that is not a student; NotFoundError when there is none."""
    with read_session(engine) as session:
        teacher = next((v for v in repo.list_versions(session) if not repo.is_student(v)), None)
    if teacher is None:
        raise repo.NotFoundError("no version to distill: train one first (`roadwork train`)")
    return teacher


def validator_renders(records: Sequence[Record], copies: int, seed: int, *, cache_resave: bool = True,
                      ) -> tuple[list[Image.Image], list[int]]:
    """`copies` validator-style challenges of every record (decoded as the miner decodes them) and their labels.

    Deterministic: copy c of record i is drawn from `default_rng([seed, i, c])`. Real rows start from the
    validator cache's JPEG re-save when `cache_resave`, as replays do; undecodable records are skipped."""
    images, labels = [], []
    for i, record in enumerate(records):
        try:
            image = decode_image(record.image_bytes)
        except BadImageError:
            continue
        resaved = cache_resave and source_pool(record.source) == REAL_POOL
        for c in range(copies):
            params = sample_params(np.random.default_rng([seed, i, c]), image.width, image.height,
                                   cache_resave=resaved)
            images.append(decode_jpeg(render_jpeg(image, params)))
            labels.append(record.label)
    return images, labels


def distill_set(records: Sequence[Record], copies: int, seed: int, cache_resave: bool) -> DistillSet:
    """The records' own images plus `copies` validator renders of each."""
    images, labels = [], []
    for record in records:
        try:
            images.append(decode_image(record.image_bytes))
        except BadImageError:
            continue
        labels.append(record.label)
    rendered, rendered_labels = validator_renders(records, copies, seed, cache_resave=cache_resave)
    return DistillSet(images + rendered, np.array(labels + rendered_labels, dtype=np.int64))


def distill_config(settings: Settings, epochs: int | None = None) -> DistillConfig:
    """The loop's knobs from `settings.distill`, `epochs` overriding."""
    values = settings.distill.model_dump(exclude={"student"})  # the kind is not a knob of the loop
    if epochs is not None:
        values["epochs"] = epochs
    return DistillConfig(**values)


def model_size(model: Any, folder: Path) -> dict[str, Any]:
    """{parameters: every parameter of the loaded `model`, weights_mb: the safetensors files under `folder`}."""
    weights = sum(f.stat().st_size for f in Path(folder).rglob("*.safetensors") if f.is_file())
    return {"parameters": int(sum(p.numel() for p in model.parameters())), "weights_mb": round(weights / MB, 3)}


def cpu_latency_ms(predict: Callable[[list[Image.Image]], Any], image: Image.Image,
                   runs: int = LATENCY_RUNS) -> float:
    """Milliseconds `predict([image])` takes (batch 1, its preprocessing included): the median of `runs` timed
    calls after one untimed warm-up call."""
    predict([image])
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predict([image])
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 3)


def footprint(teacher: Any, teacher_dir: Path, student: Any, student_dir: Path,
              image: Image.Image | None) -> dict[str, Any]:
    """Size and CPU latency of the teacher and the student predictors (`trainer.eval.predict.Predictor`), as
    stored under the student's metrics["distill"]; latency None without an image to time."""
    import torch

    size = {"teacher": model_size(teacher.model, teacher_dir), "student": model_size(student.model, student_dir)}
    latency = {"teacher": None, "student": None}
    if image is not None:
        latency = {"teacher": cpu_latency_ms(teacher.predict, image), "student": cpu_latency_ms(student.predict, image)}
    setup = {"device": "cpu", "batch": 1, "runs": LATENCY_RUNS, "statistic": "median", "warm_up": 1,
             "image_px": None if image is None else list(image.size), "torch_threads": torch.get_num_threads(),
             "preprocessing": True}
    return {"size": size, "latency_ms": latency, "latency_setup": setup}


def stored_footprint(student: repo.Version) -> dict[str, Any]:
    """What `footprint` stored in a student's metrics (empty for versions distilled before it was measured)."""
    value = (student.metrics or {}).get(FOOTPRINT_KEY)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class DistillOutcome:
    student: repo.Version
    teacher: repo.Version
    result: DistillResult
    evaluations: list[repo.Evaluation]  # the student's: validation first, then one per teacher replay
    teacher_evaluations: list[repo.Evaluation]  # the teacher's, paired with the above (same dataset keys)


def teacher_replays(engine: Engine, teacher_id: int) -> list[tuple[int, int, str | None]]:
    """(n, seed, data path) of every distinct replay the teacher was evaluated on, newest first."""
    with read_session(engine) as session:
        evaluations = repo.evaluations_of(session, teacher_id)
    seen: list[tuple[int, int, str | None]] = []
    for e in evaluations:
        replay = e.metrics.get("replay") if e.kind == "replay" else None
        if replay:
            key = (int(replay["n"]), int(replay["seed"]), replay.get("data_path"))
            if key not in seen:
                seen.append(key)
    return seen


def _latest_by_dataset(engine: Engine, version_id: int) -> dict[str, repo.Evaluation]:
    with read_session(engine) as session:
        evaluations = repo.evaluations_of(session, version_id)
    latest: dict[str, repo.Evaluation] = {}
    for e in evaluations:  # newest first
        latest.setdefault(e.dataset, e)
    return latest


def distill_version(
    engine: Engine,
    settings: Settings,
    teacher_ref: str | int | None = None,
    student_kind: str | None = None,
    epochs: int | None = None,
    *,
    pretrained: str | None = None,
    replay_n: int | None = None,
    replay_seed: int = 0,
    actor: str = "cli",
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> DistillOutcome:
    """Distil `teacher_ref` (default: the newest version that is not a student) into a `student_kind` student,
    register it and evaluate it on the validation split and on the teacher's replays.

    When the teacher has no replay evaluation yet, both run on one replay of `replay_n` challenges
    (default `evaluation.champion_replay_challenges`) with seed `replay_seed`, so that they are compared."""
    from roadwork.trainer.eval.predict import Predictor, StudentPredictor
    from roadwork.trainer.model.backbones import TinySizes

    kind = student_kind or settings.distill.student or DEFAULT_STUDENT
    student_spec(kind)  # an unknown kind fails before anything is read
    config = distill_config(settings, epochs)
    if teacher_ref is None:
        teacher = default_teacher(engine)
    else:
        with read_session(engine) as session:
            teacher = repo.get_version(session, teacher_ref)
    teacher_dir = checkout(settings, teacher)
    train_config = checkpoint_train_config(teacher_dir)
    data = data_splits(settings, train_config, None)
    resave = settings.evaluation.cache_resave
    log(f"distilling {teacher.label} into a {kind} student: {len(data.train)} training and {len(data.val)} "
        f"validation rows, each with {config.render_copies} validator renders")
    train_set = distill_set(data.train, config.render_copies, config.seed, resave)
    val_set = distill_set(data.val, config.render_copies, config.seed + 1, resave)
    teacher_predictor = Predictor.load(teacher_dir)
    train_set.soft = teacher_targets(teacher_predictor, train_set.images)

    import torch

    torch.manual_seed(config.seed)
    model, processor = build_student(kind, pretrained=pretrained, image_size=config.image_size,
                                     tiny=None if pretrained else TinySizes(image_size=config.image_size))
    result = distill_student(model, processor, train_set, val_set, config, show_progress=show_progress, log=log)

    student_info = {"kind": kind, "teacher": teacher.label, "teacher_id": teacher.id,
                    "threshold": result.threshold, "epochs": config.epochs}
    run_dir = settings.home / "runs" / f"distill-{utcnow().strftime('%Y%m%dT%H%M%S%fZ')}"
    student_dir = run_dir / "student"
    save_student(result.model, processor, student_dir, {
        "teacher": teacher.label, "teacher_id": teacher.id, "threshold": result.threshold,
        "distill_config": config.to_dict(), "pretrained": pretrained, "data_fingerprint": data.fingerprint,
        "history": result.history, "train_config": train_config.to_dict(),
    })

    served = StudentPredictor.load(student_dir)  # the student as the stock pipeline serves it, on the CPU
    sample = validator_renders(data.val[:8], 1, config.seed + 2, cache_resave=resave)[0][:1]
    measured = footprint(teacher_predictor, teacher_dir, served, student_dir, sample[0] if sample else None)
    metrics = result.metrics | {"history": result.history, "n_train": result.n_train, "n_val": result.n_val,
                                "train_seconds": round(result.seconds, 2), FOOTPRINT_KEY: measured}
    student = register_version(
        engine, settings, student_dir,
        config={STUDENT_KEY: student_info, "distill": config.to_dict(), "pretrained": pretrained,
                "data": {"path": str(data.path)}},
        metrics=metrics, data_fingerprint=teacher.data_fingerprint or data.fingerprint, parent_id=teacher.id,
        actor=actor,
    )
    (run_dir / "version.json").write_text(json.dumps({"id": student.id, "version": student.version}))
    log(f"registered {student.label} (id {student.id}), student of {teacher.label}")

    evaluations = [evaluate_version(engine, settings, student.id)]
    replays = teacher_replays(engine, teacher.id)
    if not replays:
        n = replay_n or settings.evaluation.champion_replay_challenges
        log(f"{teacher.label} has no replay evaluation: running both on a {n}-challenge replay (seed {replay_seed})")
        evaluate_replay(engine, settings, teacher.id, n=n, seed=replay_seed)
        replays = [(n, replay_seed, None)]
    for n, seed, data_path in replays:
        path = Path(data_path) if data_path and data_path != str(data.path) else None
        evaluations.append(evaluate_replay(engine, settings, student.id, n=n, seed=seed, data_path=path))
    teacher_latest = _latest_by_dataset(engine, teacher.id)
    if not any(e.dataset in teacher_latest for e in evaluations[:1]):
        evaluate_version(engine, settings, teacher.id)
        teacher_latest = _latest_by_dataset(engine, teacher.id)
    paired = [teacher_latest[e.dataset] for e in evaluations if e.dataset in teacher_latest]
    return DistillOutcome(student, teacher, result, evaluations, paired)


def expected_score(evaluation: repo.Evaluation | None) -> float | None:
    """The expected validator score (mean final score over random orderings) of a replay evaluation."""
    if evaluation is None:
        return None
    return ((evaluation.metrics.get("expected_reward") or {}).get("final_score") or {}).get("mean")


def comparison_rows(outcome: DistillOutcome) -> list[dict[str, Any]]:
    """One row per evaluation of the student: dataset, n, MCC and expected validator score of student and teacher
    on the same data (None where the teacher has no such evaluation)."""
    teacher = {e.dataset: e for e in outcome.teacher_evaluations}
    rows = []
    for e in outcome.evaluations:
        t = teacher.get(e.dataset)
        replay = e.metrics.get("replay") or {}
        label = f"replay seed {replay.get('seed')}" if e.kind == "replay" else e.kind
        rows.append({"evaluation": label, "kind": e.kind, "dataset": e.dataset, "n": e.n, "student_mcc": e.mcc,
                     "teacher_mcc": t.mcc if t else None,
                     "student_expected_score": expected_score(e), "teacher_expected_score": expected_score(t)})
    return rows


def footprint_rows(outcome: DistillOutcome) -> list[dict[str, Any]]:
    """Teacher and student side by side: parameters, weights MB and CPU milliseconds per image (batch 1,
    preprocessing included), as measured at distill time (None where not measured)."""
    stored = stored_footprint(outcome.student)
    size, latency = stored.get("size") or {}, stored.get("latency_ms") or {}
    rows = []
    for role, version in (("teacher", outcome.teacher), ("student", outcome.student)):
        own = size.get(role) or {}
        rows.append({"model": role, "version": version.label, "parameters": own.get("parameters"),
                     "weights_mb": own.get("weights_mb"), "cpu_ms_per_image": latency.get(role)})
    return rows
