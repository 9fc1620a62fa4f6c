"""Artifact cache on the device: files named by sha256, verified, resumable, evicted LRU by size."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

from edgelab.domain import ArtifactRef
from edgelab.errors import ArtifactCorrupt

log = logging.getLogger("edgelab.agent")

# fetch(offset) streams the artifact's bytes from `offset` on; it raises ArtifactCorrupt for a
# chunk that fails its own check, before yielding it, so everything yielded so far can be kept.
Fetch = Callable[[int], Iterator[bytes]]  # typing's, not collections.abc's: evaluated at import, on Python 3.8 too

PARTIAL_SUFFIX = ".partial"
CHUNK_RETRIES = 3


class ArtifactCache:
    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        root.mkdir(parents=True, exist_ok=True)

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
        if final.is_file():
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
                    for chunk in fetch(offset):
                        digest.update(chunk)
                        out.write(chunk)
                        offset += len(chunk)
                break
            except ArtifactCorrupt as exc:
                if retry == CHUNK_RETRIES:
                    raise
                log.warning("%s; fetching again from byte %d", exc, offset)
        if digest.hexdigest() != ref.sha256:
            partial.unlink(missing_ok=True)
            raise ArtifactCorrupt(
                f"artifact {ref.name or ref.sha256}: got sha256 {digest.hexdigest()}, expected {ref.sha256}"
            )
        os.replace(partial, final)
        return final

    def evict(self, keep: Iterable[str] = ()) -> list[str]:
        """Delete least-recently-used artifacts until the cache fits `max_bytes`; never those in `keep`."""
        if self.max_bytes is None:
            return []
        kept = set(keep)
        files = [p for p in self.root.iterdir() if p.is_file() and p.suffix != PARTIAL_SUFFIX]
        stats = {p: p.stat() for p in files}
        total = sum(st.st_size for st in stats.values())
        evicted = []
        for path in sorted(files, key=lambda p: stats[p].st_mtime_ns):
            if total <= self.max_bytes:
                break
            if path.name in kept:
                continue
            path.unlink(missing_ok=True)
            total -= stats[path].st_size
            evicted.append(path.name)
            log.info("evicted artifact %s (%d bytes) from the cache", path.name[:12], stats[path].st_size)
        return evicted
