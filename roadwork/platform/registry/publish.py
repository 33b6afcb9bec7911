"""Publish an exported model to a local directory, switched atomically.

Layout of a target: `releases/<name>/` (one folder per published version) and `current`, a symbolic link to
the release being served. A new release is copied under a temporary name, renamed into `releases/`, then
`current` is replaced by renaming a new link over it (one atomic `rename`): a crash at any point leaves the
old release serving, and a reader never sees a half-copied model.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

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


def publish_local(src: Path, target: Path, name: str) -> Published:
    """Copy `src` to `target/releases/<name>` (if not there yet) and switch `target/current` to it."""
    target = Path(target)
    releases = target / RELEASES
    releases.mkdir(parents=True, exist_ok=True)
    if target.joinpath(CURRENT).exists() and not target.joinpath(CURRENT).is_symlink():
        raise PublishError(f"{target / CURRENT} exists and is not a link made by roadwork; refusing to replace it")
    for stale in releases.glob(".tmp-*"):  # left by a crash during an earlier publish
        shutil.rmtree(stale, ignore_errors=True)
    previous = serving(target)
    release = releases / name
    if not release.exists():
        tmp = Path(tempfile.mkdtemp(dir=releases, prefix=f".tmp-{name}-"))
        try:
            shutil.rmtree(tmp)
            _copy_tree(src, tmp)
            os.replace(tmp, release)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    switch_current(target, release)
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
