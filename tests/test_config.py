from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from roadwork.settings import Settings, SettingsError, describe_settings, load_settings


def test_defaults_live_under_home(clean_env, tmp_path: Path) -> None:
    clean_env.setenv("ROADWORK_HOME", str(tmp_path))
    s = load_settings()
    assert s.home == tmp_path.resolve()
    assert s.db_url == f"sqlite:///{tmp_path.resolve() / 'roadwork.db'}"
    assert s.publish_dirs == [tmp_path.resolve() / "publish"]
    assert s.dashboard_port == 8501


def test_file_then_env_priority_with_nested_merge(clean_env, tmp_path: Path) -> None:
    clean_env.setenv("ROADWORK_HOME", str(tmp_path))
    (tmp_path / "roadwork.yaml").write_text("dashboard_port: 9000\nscheduler:\n  heartbeat_s: 3\n  lease_timeout_s: 9\n")
    clean_env.setenv("ROADWORK_SCHEDULER__HEARTBEAT_S", "5")
    s = load_settings()
    assert s.dashboard_port == 9000
    assert s.scheduler.heartbeat_s == 5.0  # env beats the file
    assert s.scheduler.lease_timeout_s == 9.0  # the file's other keys in that section stay


def test_explicit_path_and_env_path(clean_env, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.yaml"
    other.write_text("model_name: team-x\n")
    assert load_settings(other).model_name == "team-x"
    clean_env.setenv("ROADWORK_SETTINGS", str(other))
    assert load_settings().model_name == "team-x"
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        ("dashbord_port: 9000\n", "dashbord_port"),
        ("dashboard_port: lots\n", "dashboard_port"),
        ("scheduler:\n  heartbeat_s: -1\n", "scheduler.heartbeat_s"),
        ("scheduler:\n  bogus: 1\n", "scheduler.bogus"),
        ("leaderboard:\n  source: myspace\n", "leaderboard.source"),
        ("scheduler:\n  crons:\n    train: 'every tuesday'\n", "scheduler.crons"),
        ("scheduler:\n  timeouts_s:\n    train: 0\n", "scheduler.timeouts_s"),
        ("gate:\n  policy: yolo\n", "gate.policy"),
        ("auth:\n  max_attempts_per_minute: 0\n", "auth.max_attempts_per_minute"),
        ("auth:\n  failure_window_s: -5\n", "auth.failure_window_s"),
        ("- a list\n", "mapping"),
        ("hf_token: abc\n", "hf_token"),
    ],
)
def test_bad_file_names_the_key(clean_env, tmp_path: Path, yaml_text: str, named: str) -> None:
    path = tmp_path / "roadwork.yaml"
    path.write_text(yaml_text)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert named in str(info.value)


def test_unknown_env_variable_is_named(clean_env) -> None:
    clean_env.setenv("ROADWORK_DASHBORD_PORT", "1")
    with pytest.raises(SettingsError, match="ROADWORK_DASHBORD_PORT"):
        load_settings()


def test_secrets_from_env_only_and_never_shown(clean_env, tmp_path: Path) -> None:
    clean_env.setenv("ROADWORK_HOME", str(tmp_path))
    clean_env.setenv("ROADWORK_HF_TOKEN", "hf_supersecret")
    clean_env.setenv("ROADWORK_DATABASE_URL", "postgresql+psycopg://ops:pa55word@db/roadwork")
    s = load_settings()
    assert s.token() == "hf_supersecret"
    shown = repr(s) + str(s.public_dict())
    assert "hf_supersecret" not in shown
    assert "pa55word" not in str(s.public_dict())


def test_hf_token_falls_back_to_standard_variable(clean_env) -> None:
    clean_env.setenv("HF_TOKEN", "hf_std")
    assert load_settings().token() == "hf_std"


def test_every_setting_has_a_description() -> None:
    missing = [key for key, _, desc in describe_settings() if not desc.strip()]
    assert not missing, f"settings without a description: {missing}"
    # and the walk really covers nested sections
    keys = {key for key, _, _ in describe_settings()}
    assert "scheduler.lease_timeout_s" in keys and "publish.local_dirs" in keys
    sections = [n for n, f in Settings.model_fields.items() if isinstance(f.annotation, type)
                and issubclass(f.annotation, BaseModel)]
    assert set(sections) <= keys


def test_readme_documents_every_setting() -> None:
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    missing = [key for key, default, _ in describe_settings() if default and f"`{key}`" not in readme]
    assert not missing, f"settings missing from the README's table: {missing}"
