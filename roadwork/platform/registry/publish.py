"""Publish an exported model to a local directory, switched atomically.

Layout of a target: `releases/<name>/` (one folder per published version) and `current`, a symbolic link to
the release being served. A new release is copied under a temporary name, verified against the source's
per-file sha256 manifest (`manifest.py`), renamed into `releases/`, then `current` is replaced by renaming a
new link over it (one atomic `rename`): a crash at any point leaves the old release serving, and a reader never
sees a half-copied model. An existing release is reused only after it verifies; otherwise it is rebuilt.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from roadwork.platform.registry import manifest
from roadwork.platform.registry.faults import fault_point

CURRENT = "current"
RELEASES = "releases"


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class Published:
    target: Path
    release: Path
    previous: Path | None  # the release `current` pointed at before, for undo
    remote: bool = False  # a Hub commit: recorded, never undone
    uri: str | None = None  # where a remote release lives, e.g. hf://owner/name@commit

    @property
    def location(self) -> str:
        return self.uri or str(self.release)


def serving(target: Path) -> Path | None:
    """The release directory `target/current` points at, or None."""
    link = Path(target) / CURRENT
    return link.resolve() if link.is_symlink() else None


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)


def share_read_only(root: Path) -> None:
    """Folders 0755 and files 0644 under `root` (itself included): the miner that loads a published model may run
    as another user. Artifacts are written 0600 in the home; a release must not inherit that."""
    root = Path(root)
    os.chmod(root, 0o755)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o644)


def switch_current(target: Path, release: Path) -> None:
    """Point `target/current` at `release` with one atomic rename."""
    tmp_link = target / f".{CURRENT}-{os.getpid()}-{os.urandom(4).hex()}"
    os.symlink(os.path.relpath(release, target), tmp_link)
    try:
        os.replace(tmp_link, target / CURRENT)
    except BaseException:
        tmp_link.unlink(missing_ok=True)
        raise
    _fsync_dir(target)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install_release(src: Path, target: Path, name: str) -> Path:
    """`target/releases/<name>`, verified: reused when it matches its manifest, else (re)built from `src`.

    `src` is verified against its own manifest first when it has one (an export always has); a source without
    one is hashed as it is. Raises `ArtifactError` when the source or the copy does not verify.
    """
    target = Path(target)
    releases = target / RELEASES
    releases.mkdir(parents=True, exist_ok=True)
    for stale in releases.glob(".tmp-*"):  # left by a crash during an earlier publish (callers hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    release = releases / name
    if release.exists() and manifest.problem(release) is None:
        share_read_only(release)  # a release published before its modes were set
        return release
    expected = manifest.read_manifest(src)
    if expected is None:
        expected = manifest.file_hashes(src)
    else:
        manifest.verify(src, expected)
    tmp = Path(tempfile.mkdtemp(dir=releases, prefix=f".tmp-{name}-{os.getpid()}-"))
    try:
        shutil.rmtree(tmp)
        _copy_tree(src, tmp)
        manifest.write_manifest(tmp, expected)
        share_read_only(tmp)
        manifest.verify(tmp, expected)
        manifest.discard(release)  # a partial or corrupt one is never reused; replaced only once ours verifies
        os.replace(tmp, release)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(releases)
    fault_point("after_release_copy")
    return release


def publish_local(src: Path, target: Path, name: str, before_switch: Callable[[], None] | None = None) -> Published:
    """Install `src` as `target/releases/<name>` (verified) and switch `target/current` to it.

    `before_switch` runs immediately before the switch (the caller's lock and lease checks): if it raises, the
    link is left as it was."""
    target = Path(target)
    if target.joinpath(CURRENT).exists() and not target.joinpath(CURRENT).is_symlink():
        raise PublishError(f"{target / CURRENT} exists and is not a link made by roadwork; refusing to replace it")
    previous = serving(target)
    release = install_release(src, target, name)
    if before_switch is not None:
        before_switch()
    switch_current(target, release)
    fault_point("after_link_switch")
    return Published(target=target, release=release, previous=previous)


def undo(published: Published) -> None:
    """Point `current` back where it was before `published` (or remove it if nothing was served)."""
    if published.remote:
        return
    if published.previous is not None:
        switch_current(published.target, published.previous)
    else:
        (published.target / CURRENT).unlink(missing_ok=True)


def run_reload_hook(command: str | None, published_dir: Path, timeout_s: float = 120) -> str:
    """Run the configured reload command (e.g. restart the miner); raises `PublishError` on failure."""
    if not command:
        return ""
    env = dict(os.environ, ROADWORK_PUBLISHED_DIR=str(published_dir))
    try:
        done = subprocess.run(
            shlex.split(command), env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PublishError(f"reload command failed to run: {exc}") from exc
    if done.returncode != 0:
        raise PublishError(f"reload command exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()
