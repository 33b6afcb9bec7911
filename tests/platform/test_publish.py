from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from roadwork.platform.registry import manifest, publish
from roadwork.platform.registry.artifacts import ArtifactError


def _release(tmp_path: Path, name: str, content: str) -> Path:
    src = tmp_path / f"src-{name}"
    src.mkdir()
    (src / "model.safetensors").write_text(content)
    (src / "config.json").write_text("{}")
    return src


def test_publish_switches_current_and_keeps_releases(tmp_path: Path) -> None:
    target = tmp_path / "target"
    first = publish.publish_local(_release(tmp_path, "a", "A"), target, "0.1.0")
    assert first.previous is None
    assert (target / "current" / "model.safetensors").read_text() == "A"
    second = publish.publish_local(_release(tmp_path, "b", "B"), target, "0.2.0")
    assert second.previous == first.release
    assert (target / "current" / "model.safetensors").read_text() == "B"
    publish.undo(second)
    assert (target / "current" / "model.safetensors").read_text() == "A"


def test_crash_mid_copy_leaves_the_old_release_serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "target"
    publish.publish_local(_release(tmp_path, "a", "A"), target, "0.1.0")

    def crash_after_first_file(src, dst):  # noqa: ANN001 - copytree's copy_function signature
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        raise OSError("disk unplugged mid-publish")

    def crashing_copy_tree(src: Path, dst: Path) -> None:
        shutil.copytree(src, dst, copy_function=crash_after_first_file)

    monkeypatch.setattr(publish, "_copy_tree", crashing_copy_tree)
    with pytest.raises(OSError, match="unplugged"):
        publish.publish_local(_release(tmp_path, "b", "B"), target, "0.2.0")
    assert (target / "current" / "model.safetensors").read_text() == "A"
    assert not (target / "releases" / "0.2.0").exists()

    monkeypatch.undo()  # the next publish works and cleans what the crash left behind
    publish.publish_local(_release(tmp_path, "c", "C"), target, "0.2.0")
    assert (target / "current" / "model.safetensors").read_text() == "C"
    assert not list((target / "releases").glob(".tmp-*"))


def test_crash_before_the_link_switch_leaves_old_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "target"
    publish.publish_local(_release(tmp_path, "a", "A"), target, "0.1.0")

    real_replace = publish.os.replace

    def crash_on_link_switch(src, dst) -> None:  # noqa: ANN001
        if Path(dst).name == "current":
            raise OSError("power cut before the link switch")
        real_replace(src, dst)

    monkeypatch.setattr(publish.os, "replace", crash_on_link_switch)
    with pytest.raises(OSError, match="power cut"):
        publish.publish_local(_release(tmp_path, "b", "B"), target, "0.2.0")
    monkeypatch.undo()
    assert (target / "releases" / "0.2.0").exists()  # copied, but never switched to
    assert (target / "current" / "model.safetensors").read_text() == "A"
    assert not list(target.glob(".current-*"))  # the temporary link was cleaned up


def test_refuses_to_replace_a_real_directory(tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "current").mkdir(parents=True)
    with pytest.raises(publish.PublishError, match="not a link"):
        publish.publish_local(_release(tmp_path, "a", "A"), target, "0.1.0")


def test_reload_hook_gets_the_published_dir_and_failures_raise(tmp_path: Path) -> None:
    marker = tmp_path / "reloaded"
    publish.run_reload_hook(f"sh -c 'echo $ROADWORK_PUBLISHED_DIR > {marker}'", tmp_path / "x")
    assert marker.read_text().strip() == str(tmp_path / "x")
    with pytest.raises(publish.PublishError, match="exited 3"):
        publish.run_reload_hook("sh -c 'exit 3'", tmp_path)
    assert publish.run_reload_hook(None, tmp_path) == ""


def test_a_half_copied_or_changed_release_is_rebuilt_not_reused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    release = target / "releases" / "0.1.0"
    release.mkdir(parents=True)
    (release / "model.safetensors").write_text("half")  # under its final name, with no manifest
    publish.publish_local(_release(tmp_path, "a", "A"), target, "0.1.0")
    assert (target / "current" / "model.safetensors").read_text() == "A"
    assert manifest.problem(release) is None

    (release / "model.safetensors").write_text("tampered")
    publish.publish_local(_release(tmp_path, "b", "A"), target, "0.1.0")
    assert (target / "current" / "model.safetensors").read_text() == "A"


def test_a_source_that_does_not_match_its_manifest_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    publish.publish_local(_release(tmp_path, "a", "A"), target, "0.1.0")
    src = _release(tmp_path, "b", "B")
    manifest.write_manifest(src)
    (src / "model.safetensors").write_text("bit rot")
    with pytest.raises(ArtifactError, match="model.safetensors do not match"):
        publish.publish_local(src, target, "0.2.0")
    assert (target / "current" / "model.safetensors").read_text() == "A"
    assert not (target / "releases" / "0.2.0").exists()
