"""Per-file sha256 manifests of exported and released model folders.

A folder's manifest is a hidden JSON file in the folder itself (hidden files are neither published to the Hub
nor stored as blobs), listing every other file with its sha256. A folder is used only when its files are
exactly those of the manifest, with the same content: a half-copied or tampered folder is rebuilt or refused,
never served.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from roadwork.platform.registry.artifacts import ArtifactError, sha256_file

MANIFEST = ".roadwork-manifest.json"
FORMAT = "roadwork-files/1"


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every non-hidden file under `folder`, by relative path."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def write_manifest(folder: Path, files: dict[str, str] | None = None) -> dict[str, str]:
    """Write `folder`'s manifest (hashing its files unless `files` is given) through a temp file; returns it."""
    folder = Path(folder)
    files = file_hashes(folder) if files is None else files
    if not files:
        raise ArtifactError(f"{folder} holds no files to list in a manifest")
    tmp = folder / f"{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"format": FORMAT, "files": files}, indent=2, sort_keys=True))
    os.replace(tmp, folder / MANIFEST)
    return files


def read_manifest(folder: Path) -> dict[str, str] | None:
    """The manifest's files, or None when the folder has none (or an unreadable one)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), dict):
        return None
    return data["files"]


def problem(folder: Path, expected: dict[str, str] | None = None) -> str | None:
    """What is wrong with `folder` against `expected` (default: its own manifest), or None when it verifies."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder} does not exist"
    expected = read_manifest(folder) if expected is None else expected
    if expected is None:
        return f"{folder} has no manifest ({MANIFEST}): an unfinished copy"
    actual = file_hashes(folder)
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing or extra:
        return f"{folder} does not match its manifest: missing {missing}, unexpected {extra}"
    changed = sorted(rel for rel, sha in expected.items() if actual[rel] != sha)
    if changed:
        return f"{folder} is corrupt: {', '.join(changed)} do not match their sha256 in the manifest"
    return None


def verify(folder: Path, expected: dict[str, str] | None = None) -> Path:
    """`folder` after checking it; raises `ArtifactError` naming the problem."""
    issue = problem(folder, expected)
    if issue is not None:
        raise ArtifactError(issue)
    return Path(folder)


def discard(folder: Path) -> None:
    """Remove a folder that failed verification: renamed aside first (atomic), so nobody picks it up again."""
    folder = Path(folder)
    if not folder.exists():
        return
    trash = folder.with_name(f".trash-{folder.name}-{os.getpid()}-{os.urandom(4).hex()}")
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)
