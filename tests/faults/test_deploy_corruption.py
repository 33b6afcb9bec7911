"""Corrupt or half-written files in the cache, an export or a release: repaired from the blob store, or refused
with a clear error; never published as the champion."""

from __future__ import annotations

import shutil

from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.registry import manifest, publish
from roadwork.platform.registry import service as registry
from roadwork.platform.registry.artifacts import sha256_file
from tests.faults.checks import assert_consistent
from tests.faults.conftest import register, run_cli

WEIGHTS = "model.safetensors"


def _flip_last_byte(path) -> None:  # noqa: ANN001
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _served_weights(settings) -> set[str]:  # noqa: ANN001
    return {sha256_file(target / publish.CURRENT / WEIGHTS) for target in settings.publish_dirs}


def test_a_corrupt_cache_file_is_rebuilt_from_the_blobs(engine, two_targets, tiny_checkpoint) -> None:
    settings = two_targets
    v1, v2 = register(engine, settings, tiny_checkpoint)  # same content: one cache folder for both
    registry.deploy(engine, settings, v1.version, actor="t")
    good = _served_weights(settings)
    cached = settings.home / "cache" / v1.artifact_sha256 / WEIGHTS
    _flip_last_byte(cached)

    registry.deploy(engine, settings, v2.version, actor="t")  # exports v2 from the cache
    assert _served_weights(settings) == good
    store = registry.store(settings)
    assert sha256_file(cached) == store.manifest(v1.artifact_sha256)[WEIGHTS]  # the cache itself was repaired
    assert assert_consistent(engine, settings).id == v2.id


def test_a_corrupt_or_partial_export_is_rebuilt(engine, two_targets, tiny_checkpoint) -> None:
    settings = two_targets
    v1, v2 = register(engine, settings, tiny_checkpoint)
    registry.deploy(engine, settings, v1.version, actor="t")
    good = _served_weights(settings)
    registry.deploy(engine, settings, v2.version, actor="t")
    export_v1 = settings.home / "exports" / registry.release_name(v1)
    _flip_last_byte(export_v1 / WEIGHTS)
    shutil.rmtree(settings.publish_dirs[1] / publish.RELEASES / registry.release_name(v1))  # b copies the export

    registry.rollback(engine, settings, reason="test", actor="t")
    assert manifest.problem(export_v1) is None
    assert _served_weights(settings) == good

    # The operator's case: an export of 3 files and no manifest (a crash mid-export), then a deploy of it.
    registry.deploy(engine, settings, v2.version, actor="t")
    export_v1_files = sorted(p for p in export_v1.iterdir() if not p.name.startswith("."))
    shutil.rmtree(export_v1)
    export_v1.mkdir()
    for src in export_v1_files[:3]:
        (export_v1 / src.name).write_bytes(b"partial")
    for target in settings.publish_dirs:
        shutil.rmtree(target / publish.RELEASES / registry.release_name(v1))
    registry.deploy(engine, settings, v1.version, actor="t")
    assert manifest.problem(export_v1) is None and (export_v1 / "roadwork.json").exists()
    assert _served_weights(settings) == good
    assert assert_consistent(engine, settings).id == v1.id


def test_a_corrupt_release_is_rebuilt_before_the_link_switches(engine, two_targets, tiny_checkpoint) -> None:
    settings = two_targets
    v1, v2 = register(engine, settings, tiny_checkpoint)
    registry.deploy(engine, settings, v1.version, actor="t")
    good = _served_weights(settings)
    registry.deploy(engine, settings, v2.version, actor="t")
    release_a = settings.publish_dirs[0] / publish.RELEASES / registry.release_name(v1)
    _flip_last_byte(release_a / WEIGHTS)
    (settings.publish_dirs[1] / publish.RELEASES / registry.release_name(v1) / "config.json").unlink()

    registry.rollback(engine, settings, reason="test", actor="t")
    assert _served_weights(settings) == good
    assert assert_consistent(engine, settings).id == v1.id


def test_a_corrupt_blob_is_refused_with_exit_2_and_the_champion_stays(engine, two_targets, tiny_checkpoint) -> None:
    settings = two_targets
    v1, v2 = register(engine, settings, tiny_checkpoint)
    registry.deploy(engine, settings, v1.version, actor="t")
    store = registry.store(settings)
    _flip_last_byte(store.path(store.manifest(v1.artifact_sha256)[WEIGHTS]))
    shutil.rmtree(settings.home / "cache")  # nothing left to export from but the corrupt blob

    done = run_cli("deploy", v2.version)
    assert done.returncode == 2, done.stderr
    assert "champion unchanged" in done.stderr and "corrupt" in done.stderr and "Traceback" not in done.stderr
    assert assert_consistent(engine, settings).id == v1.id
    assert not (settings.home / "exports" / registry.release_name(v2)).exists()
    with read_session(engine) as s:
        assert repo.list_audit(s, 1)[0].action == "deploy_failed"
