"""Artifact cache on the device: files named by sha256, verified, resumable downloads."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from edgelab.domain import ArtifactRef
from edgelab.errors import ArtifactCorrupt

# fetch(offset) streams the artifact's bytes from `offset` on.
Fetch = Callable[[int], Iterator[bytes]]


class ArtifactCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256

    def ensure(self, ref: ArtifactRef, fetch: Fetch) -> Path:
        """Return the cached file, downloading (or resuming) it first if needed.

        Bytes are hashed as they arrive (a resumed download re-hashes the partial file
        first); a file whose hash differs from `ref.sha256` is deleted and never cached.
        """
        final = self.path(ref.sha256)
        if final.is_file():
            return final
        partial = final.with_suffix(".partial")
        digest = hashlib.sha256()
        offset = 0
        if partial.is_file():
            with partial.open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
                    offset += len(block)
        with partial.open("ab") as out:
            for chunk in fetch(offset):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != ref.sha256:
            partial.unlink(missing_ok=True)
            raise ArtifactCorrupt(
                f"artifact {ref.name or ref.sha256}: got sha256 {digest.hexdigest()}, expected {ref.sha256}"
            )
        os.replace(partial, final)
        return final
