"""Hard-negative mining against the real registry, and the next training run oversampling the mined set."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from roadwork.settings import load_settings
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform import mining
from roadwork.platform.registry import service as registry
from roadwork.platform.training import train_and_register
from roadwork.trainer.data.records import decode_image, read_records
from roadwork.trainer.eval.predict import Predictor
from tests.conftest import tiny_config


@pytest.fixture
def champion(engine, settings, tiny_checkpoint, synth_data):  # noqa: ANN001, ANN201
    """The tiny checkpoint registered and deployed; the home's default dataset is the synthetic one."""
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    (settings.datasets_dir / "synth").symlink_to(synth_data, target_is_directory=True)
    version = registry.register_version(engine, settings, tiny_checkpoint.checkpoint_dir, config={}, metrics={},
                                        data_fingerprint=None, parent_id=None, actor="test")
    registry.deploy(engine, settings, version.id, actor="test", reason="champion")
    return version


def _settings(clean_env, mistakes: int, uncertain: int):  # noqa: ANN001, ANN202
    clean_env.setenv("ROADWORK_MINING__CONFIDENT_MISTAKES", str(mistakes))
    clean_env.setenv("ROADWORK_MINING__UNCERTAIN", str(uncertain))
    return load_settings()


def test_select_hard_is_pure_and_deterministic() -> None:
    answers = np.array([0.875, 0.125, 0.625, 0.375, 0.75, 0.5])  # exact in binary: ties are real ties
    labels = [0, 1, 1, 0, 1, None]
    chosen = mining.select_hard(labels, answers, n_mistakes=5, n_uncertain=2)
    # Wrong: 0 and 1, equally confident (ties break by index). Closest to 0.5 of the rest: 5, then 2 and 3 tied.
    assert chosen == [(0, "confident_mistake"), (1, "confident_mistake"), (5, "uncertain"), (2, "uncertain")]
    assert mining.select_hard(labels, answers, 0, 0) == []


def test_mining_a_labelled_pool(engine, clean_env, champion, synth_data, settings) -> None:
    settings = _settings(clean_env, mistakes=5, uncertain=7)
    info = mining.mine_hard_negatives(engine, settings, actor="test")  # pool: the champion's training data
    records, report = read_records(synth_data)
    assert info.source_version_id == champion.id and info.pool == str(synth_data.resolve())
    assert info.n_scored == len(records) and info.skipped == sum(report.skipped.values()) > 0

    by_id = {r.id: r for r in records}
    answers = Predictor.load(registry.checkout(settings, champion)).predict(
        [decode_image(r.image_bytes) for r in records])
    score = dict(zip([r.id for r in records], answers, strict=True))
    wrong = {rid for rid, a in score.items() if int(a >= 0.5) != by_id[rid].label}

    with read_session(engine) as s:
        items = mining.set_items(s, info.id)
        assert mining.hard_negative_ids(s, info.id) == [i.record_id for i in items]
        assert [x.id for x in mining.list_sets(s)] == [info.id]
    mistakes = [i for i in items if i.reason == "confident_mistake"]
    uncertain = [i for i in items if i.reason == "uncertain"]
    assert items == mistakes + uncertain and info.n_items == len(items)
    assert len(mistakes) == min(5, len(wrong)) == info.n_confident_mistakes and len(uncertain) == 7
    assert all(i.record_id in wrong and i.label == by_id[i.record_id].label for i in mistakes)

    distance = {rid: abs(a - 0.5) for rid, a in score.items()}
    d_mistakes = [distance[i.record_id] for i in mistakes]
    assert d_mistakes == sorted(d_mistakes, reverse=True)
    assert all(d >= distance[r] - 1e-12 for d in d_mistakes[-1:] for r in wrong - {i.record_id for i in mistakes})
    d_uncertain = [distance[i.record_id] for i in uncertain]
    assert d_uncertain == sorted(d_uncertain)
    others = set(score) - {i.record_id for i in items}
    assert max(d_uncertain) <= min(distance[r] for r in others) + 1e-12
    for item in items:
        assert item.score == pytest.approx(score[item.record_id])
        rec = by_id[item.record_id]
        assert item.conditions == {k: v for k, v in (("weather", rec.weather), ("daytime", rec.daytime),
                                                      ("scene", rec.scene)) if v is not None} or None


def test_mining_an_unlabelled_image_folder(engine, clean_env, champion, tmp_path) -> None:
    settings = _settings(clean_env, mistakes=5, uncertain=2)
    pool = tmp_path / "pool"
    (pool / "night").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "night/b.jpeg", "c.png"):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(buf, "PNG" if name.endswith("png")
                                                                               else "JPEG")
        (pool / name).write_bytes(buf.getvalue())
    (pool / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (pool / "notes.txt").write_text("not an image")

    info = mining.mine_hard_negatives(engine, settings, pool=pool, version_ref=champion.id, actor="test")
    assert info.n_scored == 3 and info.skipped == 1 and info.n_items == 2 and info.n_confident_mistakes == 0
    with read_session(engine) as s:
        items = mining.set_items(s, info.id)
    assert {i.reason for i in items} == {"uncertain"} and all(i.label is None and i.conditions is None for i in items)
    assert {i.record_id for i in items} <= {"a.jpg", "night/b.jpeg", "c.png"}


def test_an_empty_result_is_a_set_of_zero_items(engine, clean_env, champion, synth_data) -> None:
    info = mining.mine_hard_negatives(engine, _settings(clean_env, 0, 0), pool=synth_data)
    assert info.n_items == 0
    with read_session(engine) as s:
        assert mining.set_items(s, info.id) == [] and mining.get_set(s, info.id).n_items == 0
        with pytest.raises(repo.NotFoundError):
            mining.set_items(s, info.id + 1)


def test_mine_job_skips_without_a_champion_then_mines(engine, clean_env, home, tiny_checkpoint, synth_data) -> None:
    assert mining.mine_job() == {"skipped": "no champion yet"}
    clean_env.setenv("ROADWORK_MINING__POOL", str(synth_data))
    settings = _settings(clean_env, 3, 4)
    version = registry.register_version(engine, settings, tiny_checkpoint.checkpoint_dir, config={}, metrics={},
                                        data_fingerprint=None, parent_id=None, actor="test")
    registry.deploy(engine, settings, version.id, actor="test")
    result = mining.mine_job()
    assert result["version"] == version.label and result["n_items"] == result["confident_mistakes"] + 4
    assert result["pool"] == str(synth_data.resolve())


def test_next_training_oversamples_the_champions_newest_set(engine, clean_env, champion, synth_data) -> None:
    settings = _settings(clean_env, 5, 5)
    mined = mining.mine_hard_negatives(engine, settings)
    logs: list[str] = []
    version, result = train_and_register(engine, settings, tiny_config(epochs=1), data_path=synth_data,
                                         show_progress=False, log=logs.append, calibration_replay=0)
    assert version.hard_negative_set_id == mined.id and version.parent_id == champion.id
    with read_session(engine) as s:
        assert repo.get_version(s, version.id).hard_negative_set_id == mined.id
        ids = mining.hard_negative_ids(s, mined.id)
    assert result.hard_negative_ids == sorted(ids)
    assert any("oversampling" in line and f"x{settings.mining.oversample}" in line for line in logs)
    assert any(f"hard negatives: set {mined.id}" in line for line in logs)

    plain, plain_result = train_and_register(engine, settings, tiny_config(epochs=1), data_path=synth_data,
                                             show_progress=False, log=logs.append, calibration_replay=0,
                                             use_latest_hard_negatives=False)
    assert plain.hard_negative_set_id is None and plain_result.hard_negative_ids == []
    with pytest.raises(repo.NotFoundError):
        train_and_register(engine, settings, tiny_config(epochs=1), data_path=synth_data, show_progress=False,
                           log=logs.append, calibration_replay=0, hard_negative_set_id=mined.id + 99)
