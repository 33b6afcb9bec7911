"""Content-addressed artifact store: blobs named by their sha256, a JSON manifest per model version.

Every blob is written to a temp file and renamed into place, and verified (re-hashed) before it is loaded or
published, so a truncated or tampered file is caught instead of served.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

CHUNK = 1 << 20


class ArtifactError(RuntimeError):
    """A blob is missing or its content does not match its sha256."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"

    def path(self, sha: str) -> Path:
        return self.blobs / sha[:2] / sha

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self.path(sha).exists():
            self._install(sha, lambda fh: fh.write(data))
        return sha

    def put_file(self, src: Path) -> str:
        sha = sha256_file(src)
        if not self.path(sha).exists():
            with open(src, "rb") as source:
                self._install(sha, lambda fh: shutil.copyfileobj(source, fh, CHUNK))
        return sha

    def _install(self, sha: str, write) -> None:  # noqa: ANN001 - write(fh)
        dest = self.path(sha)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            if sha256_file(Path(tmp)) != sha:
                raise ArtifactError(f"content changed while storing blob {sha}")
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def verify(self, sha: str) -> Path:
        """The blob's path after re-hashing it; raises `ArtifactError` if missing or corrupt."""
        path = self.path(sha)
        if not path.exists():
            raise ArtifactError(f"artifact blob {sha} is missing from {self.blobs}")
        actual = sha256_file(path)
        if actual != sha:
            raise ArtifactError(f"artifact blob {sha} is corrupt (content hashes to {actual})")
        return path

    # A model version is a directory of files: stored as one manifest blob listing each file's sha256.
    def put_dir(self, src: Path) -> str:
        files = {
            str(p.relative_to(src)): self.put_file(p)
            for p in sorted(src.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        }
        if not files:
            raise ArtifactError(f"nothing to store in {src}")
        manifest = {"format": "roadwork-manifest/1", "files": files}
        return self.put_bytes(json.dumps(manifest, indent=2, sort_keys=True).encode())

    def manifest(self, sha: str) -> dict[str, str]:
        data = json.loads(self.verify(sha).read_bytes())
        if data.get("format") != "roadwork-manifest/1":
            raise ArtifactError(f"artifact {sha} is not a manifest")
        return data["files"]

    def materialize(self, sha: str, dest: Path) -> Path:
        """Copy a manifest's verified files into `dest` (built beside it, then renamed).

        An existing copy is reused only when every file still hashes to the manifest; a corrupt or partial copy
        is replaced by a fresh one from the blobs (and a corrupt blob raises `ArtifactError`).
        """
        files = self.manifest(sha)
        dest = Path(dest)
        if self._copy_intact(dest, sha, files):
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
        try:
            for rel, blob in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.verify(blob), tmp / rel)
            (tmp / ".complete").write_text(sha)
            if dest.exists():  # a bad copy: moved aside atomically, then removed
                trash = dest.with_name(f".trash-{dest.name}-{os.getpid()}-{os.urandom(4).hex()}")
                os.replace(dest, trash)
                shutil.rmtree(trash, ignore_errors=True)
            try:
                os.replace(tmp, dest)
            except OSError:  # another process put its copy there first: use it if it is intact
                if not self._copy_intact(dest, sha, files):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    @staticmethod
    def _copy_intact(dest: Path, sha: str, files: dict[str, str]) -> bool:
        try:
            if (dest / ".complete").read_text() != sha:
                return False
        except OSError:
            return False
        present = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and p.name != ".complete"}
        return present == set(files) and all(sha256_file(dest / rel) == blob for rel, blob in files.items())
