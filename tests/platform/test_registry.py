from __future__ import annotations

from pathlib import Path

import pytest

from roadwork.settings import load_settings
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.registry import publish
from roadwork.platform.registry import service as registry
from roadwork.platform.registry.artifacts import ArtifactError
from roadwork.platform.registry.lock import deploy_lock


def _register(engine, settings, ckpt, parent=None) -> repo.Version:  # noqa: ANN001
    return registry.register_version(
        engine, settings, ckpt.checkpoint_dir, config={"name": "tiny"}, metrics=ckpt.metrics,
        data_fingerprint=ckpt.data_fingerprint, parent_id=parent, actor="test",
    )


def _serving_version(settings) -> str:  # noqa: ANN001
    card = (settings.publish_dirs[0] / publish.CURRENT / "model_card.json").read_text()
    import json

    return json.loads(card)["version"]


def test_register_stores_content_addressed_artifacts(engine, settings, tiny_checkpoint) -> None:
    v = _register(engine, settings, tiny_checkpoint)
    assert v.version == "0.1.0" and v.code_revision
    files = registry.store(settings).manifest(v.artifact_sha256)
    assert set(files) == {"model.safetensors", "roadwork.json"}
    again = _register(engine, settings, tiny_checkpoint)  # same content: same blobs, new version
    assert again.artifact_sha256 == v.artifact_sha256 and again.version == "0.2.0"


def test_deploy_then_rollback_republishes_the_first(engine, settings, tiny_checkpoint) -> None:
    v1 = _register(engine, settings, tiny_checkpoint)
    v2 = _register(engine, settings, tiny_checkpoint, parent=v1.id)
    first = registry.deploy(engine, settings, v1.version, actor="t", reason="first")
    assert first.previous is None and 0.0 <= first.smoke_score <= 1.0
    registry.deploy(engine, settings, v2.version, actor="t", reason="second")
    assert _serving_version(settings) == "0.2.0"

    back = registry.rollback(engine, settings, reason="v2 regressed on rain", actor="t")
    assert back.version.id == v1.id and back.previous.id == v2.id
    assert _serving_version(settings) == "0.1.0"
    with read_session(engine) as s:
        assert repo.alias_holder(s).id == v1.id
        events = repo.alias_history(s)
    assert [e.action for e in events] == ["rollback", "deploy", "deploy"]
    assert events[0].reason == "v2 regressed on rain" and events[0].published_to


def test_model_card_follows_the_competition_schema(engine, clean_env, home, tiny_checkpoint) -> None:
    clean_env.setenv("ROADWORK_HOTKEY", "5Hotkey")
    settings = load_settings()
    v = _register(engine, settings, tiny_checkpoint)
    registry.deploy(engine, settings, v.id, actor="t")
    import json

    card = json.loads((settings.publish_dirs[0] / "current" / "model_card.json").read_text())
    assert set(card) == {"model_name", "description", "version", "submitted_by", "submission_time"}
    assert card["version"] == "0.1.0" and card["submitted_by"] == "5Hotkey"
    assert isinstance(card["submission_time"], int)
    config = json.loads((settings.publish_dirs[0] / "current" / "config.json").read_text())
    assert config["id2label"] == {"0": "None", "1": "Roadwork"}


def test_rollback_needs_a_reason_and_a_previous_holder(engine, settings, tiny_checkpoint) -> None:
    v1 = _register(engine, settings, tiny_checkpoint)
    with pytest.raises(ValueError, match="reason"):
        registry.rollback(engine, settings, reason=" ", actor="t")
    with pytest.raises(registry.DeployError, match="no champion"):
        registry.rollback(engine, settings, reason="x", actor="t")
    registry.deploy(engine, settings, v1.id, actor="t")
    with pytest.raises(registry.DeployError, match="no other holder"):
        registry.rollback(engine, settings, reason="x", actor="t")


@pytest.mark.parametrize("failure", ["reload_hook", "smoke", "second_target"])
def test_a_failed_deploy_leaves_the_previous_champion_serving(
    failure, engine, clean_env, home, tiny_checkpoint, monkeypatch
) -> None:
    clean_env.setenv("ROADWORK_PUBLISH__LOCAL_DIRS", f'["{home / "pub-a"}", "{home / "pub-b"}"]')
    settings = load_settings()
    v1 = _register(engine, settings, tiny_checkpoint)
    v2 = _register(engine, settings, tiny_checkpoint)
    registry.deploy(engine, settings, v1.id, actor="t")

    if failure == "reload_hook":
        clean_env.setenv("ROADWORK_PUBLISH__RELOAD_COMMAND", "sh -c 'exit 1'")
        settings = load_settings()
    elif failure == "smoke":
        monkeypatch.setattr(registry, "smoke_predict", lambda _d: (_ for _ in ()).throw(RuntimeError("NaN out")))
    else:
        real = publish.publish_local

        def fail_on_b(src, target, name):  # noqa: ANN001
            if Path(target).name == "pub-b":
                raise OSError("target b is full")
            return real(src, target, name)

        monkeypatch.setattr(publish, "publish_local", fail_on_b)

    with pytest.raises(registry.DeployError, match="champion unchanged"):
        registry.deploy(engine, settings, v2.id, actor="t")
    for target in settings.publish_dirs:
        assert _serving_version(settings.model_copy(update={"publish": settings.publish.model_copy(
            update={"local_dirs": [target]})})) == "0.1.0"
    with read_session(engine) as s:
        assert repo.alias_holder(s).id == v1.id
        assert [a.action for a in repo.list_audit(s, 1)] == ["deploy_failed"]


def test_a_corrupt_artifact_is_never_published(engine, settings, tiny_checkpoint) -> None:
    v = _register(engine, settings, tiny_checkpoint)
    store = registry.store(settings)
    blob = store.path(store.manifest(v.artifact_sha256)["model.safetensors"])
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(registry.DeployError, match="corrupt"):
        registry.deploy(engine, settings, v.id, actor="t")
    with pytest.raises(ArtifactError):
        store.verify(store.manifest(v.artifact_sha256)["model.safetensors"])
    assert not (settings.publish_dirs[0] / "current").exists()


def test_a_deploy_while_another_holds_the_lock_fails_clearly(engine, clean_env, home, tiny_checkpoint) -> None:
    clean_env.setenv("ROADWORK_PUBLISH__LOCK_WAIT_S", "0.3")
    settings = load_settings()
    v1 = _register(engine, settings, tiny_checkpoint)
    with deploy_lock(engine, settings, "deploy by another operator"):
        with pytest.raises(registry.DeployBusyError, match=r"in progress \(deploy by another operator"):
            registry.deploy(engine, settings, v1.id, actor="t")
        assert registry.champion(engine, settings) is None
        assert not (settings.publish_dirs[0] / "current").exists()
    assert registry.deploy(engine, settings, v1.id, actor="t").version.id == v1.id
    assert registry.champion(engine, settings).id == v1.id
