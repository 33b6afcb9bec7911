"""The Hub target, with the commit operations recorded instead of sent (the Hub is out of reach here)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from huggingface_hub import HfApi

from roadwork.settings import load_settings
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.registry import service as registry


class RecordingHubApi(HfApi):
    def __init__(self, fail: bool = False) -> None:
        super().__init__(endpoint="http://127.0.0.1:9", token="unused")
        self.repos, self.commits, self.fail = [], [], fail

    def create_repo(self, repo_id, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.repos.append((repo_id, kwargs))

    def create_commit(self, repo_id, operations, commit_message, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if self.fail:
            raise OSError("hub unreachable")
        files = {op.path_in_repo: open(op.path_or_fileobj, "rb").read() for op in operations}
        self.commits.append((repo_id, commit_message, files))
        return SimpleNamespace(oid=f"c{len(self.commits):039d}")


def _version(engine, settings, ckpt) -> repo.Version:  # noqa: ANN001
    return registry.register_version(engine, settings, ckpt.checkpoint_dir, config={}, metrics={},
                                     data_fingerprint=None, parent_id=None)


@pytest.fixture
def hub_settings(clean_env, home):  # noqa: ANN001, ANN201
    clean_env.setenv("ROADWORK_PUBLISH__HF_REPO", "team/roadwork")
    clean_env.setenv("ROADWORK_HF_TOKEN", "hf_secret_token")
    clean_env.setenv("ROADWORK_HOTKEY", "5Hk")
    return load_settings()


def test_each_deploy_is_one_commit_with_the_model_card(engine, hub_settings, tiny_checkpoint, monkeypatch) -> None:
    api = RecordingHubApi()
    monkeypatch.setattr(registry, "hub_api", lambda: api)
    v1, v2 = _version(engine, hub_settings, tiny_checkpoint), _version(engine, hub_settings, tiny_checkpoint)
    registry.deploy(engine, hub_settings, v1.id, actor="t")
    result = registry.deploy(engine, hub_settings, v2.id, actor="t")
    assert [c[1] for c in api.commits] == ["Roadwork Ops: deploy 0.1.0", "Roadwork Ops: deploy 0.2.0"]
    repo_id, _, files = api.commits[1]
    assert repo_id == "team/roadwork" and api.repos[0][1]["private"] is True
    assert {"model_card.json", "config.json", "model.safetensors", "modeling_roadwork.py"} <= set(files)
    card = json.loads(files["model_card.json"])
    assert card["version"] == "0.2.0" and card["submitted_by"] == "5Hk"
    assert any(p.startswith("hf://team/roadwork@") for p in result.published)
    registry.rollback(engine, hub_settings, reason="regression", actor="t")  # the same path republishes
    assert json.loads(api.commits[2][2]["model_card.json"])["version"] == "0.1.0"


def test_a_failed_hub_commit_leaves_the_previous_champion(engine, hub_settings, tiny_checkpoint, monkeypatch) -> None:
    api = RecordingHubApi()
    monkeypatch.setattr(registry, "hub_api", lambda: api)
    v1, v2 = _version(engine, hub_settings, tiny_checkpoint), _version(engine, hub_settings, tiny_checkpoint)
    registry.deploy(engine, hub_settings, v1.id, actor="t")
    api.fail = True
    with pytest.raises(registry.DeployError, match="hub unreachable"):
        registry.deploy(engine, hub_settings, v2.id, actor="t")
    with read_session(engine) as s:
        assert repo.alias_holder(s).id == v1.id
    card = json.loads((hub_settings.publish_dirs[0] / "current" / "model_card.json").read_text())
    assert card["version"] == "0.1.0"


def test_no_token_is_a_clear_error_that_never_shows_a_secret(engine, clean_env, home, tiny_checkpoint,
                                                            monkeypatch) -> None:
    clean_env.setenv("ROADWORK_PUBLISH__HF_REPO", "team/roadwork")
    settings = load_settings()
    monkeypatch.setattr(registry, "hub_api", lambda: RecordingHubApi())
    v = _version(engine, settings, tiny_checkpoint)
    with pytest.raises(registry.DeployError, match="needs a token"):
        registry.deploy(engine, settings, v.id, actor="t")
    with read_session(engine) as s:
        assert repo.alias_holder(s) is None
        assert "hf_secret" not in json.dumps([a.details for a in repo.list_audit(s)])
