"""Artifact cache on the device: files named by sha256, verified, resumable, durable, evicted LRU by size.

A file is renamed into place only after its bytes are on disk (fsync, then the directory's
fsync after the rename): a power cut on an SD card leaves the old state or the new one, never a
truncated file under a good name. A hit is checked before use: its size always, its sha256 when
the file is small enough to read back cheaply, and every file once after an unclean start (the
marker a running agent keeps beside the cache was still there). The engines the backends build
(`engines`, see `agent.backends.engine_cache`) are evicted under the same byte budget.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Iterator

from edgelab.domain import ArtifactRef
from edgelab.errors import ArtifactCorrupt, OutOfRange

log = logging.getLogger("edgelab.agent")

# fetch(offset) streams the artifact's bytes from `offset` on; it raises ArtifactCorrupt for a
# chunk that fails its own check, before yielding it, so everything yielded so far can be kept.
Fetch = Callable[[int], Iterator[bytes]]  # typing's, not collections.abc's: evaluated at import, on Python 3.8 too

PARTIAL_SUFFIX = ".partial"
CHUNK_RETRIES = 3
SIDECAR_SUFFIX = ".sha256"  # beside a cached engine: its sha256 and size (agent.backends.engine_cache)
RUNNING_SUFFIX = ".running"  # <root>.running, beside the cache, while an agent uses it; a crash leaves it behind
HASH_ON_HIT_MAX_BYTES = 64 << 20  # re-hash a hit up to this size (well under a second on a Pi 4); size only above


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(str(directory), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_replace(src: Path | str, dst: Path | str) -> None:
    """os.replace that survives a power cut: the bytes are fsynced before the rename, the rename after it."""
    fd = os.open(str(src), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(str(src), str(dst))
    _fsync_dir(Path(dst).parent)


def durable_write(path: Path, data: bytes) -> None:
    """Write a small file atomically and durably (a temporary file beside it, fsynced, renamed)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    try:
        with tmp.open("wb") as f:
            f.write(data)
        durable_replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class ArtifactCache:
    def __init__(self, root: Path, max_bytes: int | None = None, engines: Path | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.engines = engines  # the backends' engine cache: evicted under the same budget
        root.mkdir(parents=True, exist_ok=True)
        self._marker = marker = root.with_name(root.name + RUNNING_SUFFIX)
        self.unclean_start = marker.exists()  # the last agent did not close the cache: re-hash every hit once
        if self.unclean_start:
            log.warning("the artifact cache was not closed cleanly: every cached artifact is re-hashed on first use")
        marker.touch()
        self._verified: set[str] = set()

    def close(self) -> None:
        """A clean shutdown: the next start trusts cached sizes (and re-hashes only small files)."""
        with contextlib.suppress(FileNotFoundError):
            self._marker.unlink()

    def path(self, sha256: str) -> Path:
        return self.root / sha256

    def ensure(self, ref: ArtifactRef, fetch: Fetch) -> Path:
        """Return the cached file, downloading (or resuming) it first if needed.

        Bytes are hashed as they arrive (a resumed download re-hashes the partial file
        first). A chunk that fails its check is fetched again from its offset (up to
        CHUNK_RETRIES times); a whole file whose hash differs from `ref.sha256` is deleted
        and never cached.
        """
        final = self.path(ref.sha256)
        if final.is_file() and self._sound(final, ref):
            os.utime(final)  # the mtime is the last use: eviction is least-recently-used
            return final
        partial = final.with_suffix(PARTIAL_SUFFIX)
        digest = hashlib.sha256()
        offset = 0
        if partial.is_file():
            with partial.open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
                    offset += len(block)
        for retry in range(CHUNK_RETRIES + 1):
            try:
                with partial.open("ab") as out:
                    try:
                        for chunk in fetch(offset):
                            digest.update(chunk)
                            out.write(chunk)
                            offset += len(chunk)
                    finally:
                        out.flush()
                        os.fsync(out.fileno())  # what a resumed download re-reads must be what was hashed
                break
            except ArtifactCorrupt as exc:
                if retry == CHUNK_RETRIES:
                    raise
                log.warning("%s; fetching again from byte %d", exc, offset)
            except OutOfRange as exc:  # a partial file longer than the artifact is no prefix of it: start over
                if retry == CHUNK_RETRIES:
                    raise
                log.warning("%s; downloading again from byte 0", exc)
                partial.unlink()
                digest, offset = hashlib.sha256(), 0
        if digest.hexdigest() != ref.sha256:
            partial.unlink(missing_ok=True)
            raise ArtifactCorrupt(
                f"artifact {ref.name or ref.sha256}: got sha256 {digest.hexdigest()}, expected {ref.sha256}"
            )
        durable_replace(partial, final)
        self._verified.add(final.name)
        return final

    def _sound(self, path: Path, ref: ArtifactRef) -> bool:
        """Whether a cached file is the artifact: its size always, its sha256 when small or after an unclean start
        (once per file and agent run). A file that fails is deleted, so the caller downloads it again."""
        size = path.stat().st_size
        why = ""
        if ref.size_bytes and size != ref.size_bytes:
            why = f"{size} bytes, expected {ref.size_bytes}"
        elif path.name not in self._verified and (self.unclean_start or size <= HASH_ON_HIT_MAX_BYTES):
            got = file_sha256(path)
            if got != ref.sha256:
                why = f"sha256 {got}"
        if why:
            log.warning("cached artifact %s is damaged (%s); downloading it again", path.name[:12], why)
            path.unlink()
            return False
        self._verified.add(path.name)
        return True

    def evict(self, keep: Iterable[str] = ()) -> list[str]:
        """Delete least-recently-used artifacts and engines until both fit `max_bytes`; never artifacts in `keep`.

        Call it between jobs: an engine directory holds nothing in use then. An engine goes with its sidecar.
        """
        if self.max_bytes is None:
            return []
        kept = set(keep)
        files = [p for p in self.root.iterdir() if p.is_file() and p.suffix != PARTIAL_SUFFIX and p.name not in kept]
        total = sum(p.stat().st_size for p in self.root.iterdir() if p.is_file() and p.name in kept)
        sizes, mtimes = {}, {}
        if self.engines is not None and self.engines.is_dir():
            for path in self.engines.rglob("*"):
                if path.is_dir() and (path / "saved_model.pb").is_file():  # an unpacked SavedModel: one unit
                    files.append(path)
                    sizes[path] = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                    mtimes[path] = path.stat().st_mtime_ns
                elif (
                    path.is_file()
                    and not path.name.endswith(SIDECAR_SUFFIX)
                    and not any((parent / "saved_model.pb").is_file() for parent in path.parents)
                ):
                    files.append(path)
        for path in files:
            if path in sizes:
                continue
            st = path.stat()
            sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
            sizes[path] = st.st_size + (sidecar.stat().st_size if sidecar.is_file() else 0)
            mtimes[path] = st.st_mtime_ns
        total += sum(sizes.values())
        evicted = []
        for path in sorted(files, key=lambda p: mtimes[p]):
            if total <= self.max_bytes:
                break
            if path.is_dir():
                shutil.rmtree(str(path), ignore_errors=True)
            for gone in (path, path.with_name(path.name + SIDECAR_SUFFIX)):
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    gone.unlink()
            total -= sizes[path]
            name = path.name if path.parent == self.root else str(path.relative_to(self.engines or path.parent))
            evicted.append(name)
            log.info("evicted %s (%d bytes) from the cache", name[:40], sizes[path])
        return evicted
