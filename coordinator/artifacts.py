"""Content-addressed artifact files: <root>/<sha[:2]>/<sha>, written atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgelab.constants import ARTIFACT_CHUNK_BYTES
from edgelab.domain import ArtifactRef
from edgelab.errors import InvalidArgument, NotFound, OutOfRange


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise NotFound(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put_chunks(self, chunks: Iterable[bytes], *, name: str, format: str) -> ArtifactRef:
        """Hash while writing to a temp file, then rename into place (no half-written artifact)."""
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            final = self.path(digest.hexdigest())
            final.parent.mkdir(exist_ok=True)
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ArtifactRef(sha256=digest.hexdigest(), size_bytes=size, format=format, name=name)

    def read_chunks(self, sha256: str, offset: int = 0) -> Iterator[tuple[int, bytes, int]]:
        """Yield (offset, data, total_size) from `offset` on: nothing at `offset` == total_size, InvalidArgument
        for a negative offset and OutOfRange for one past the end (checked before anything is read)."""
        path = self.path(sha256)
        if not path.is_file():
            raise NotFound(f"artifact {sha256} is not in the store")
        total = path.stat().st_size
        if offset < 0:
            raise InvalidArgument(f"offset: {offset} is negative")
        if offset > total:
            raise OutOfRange(f"offset: {offset} is past the end of artifact {sha256[:12]} ({total} bytes)")
        with path.open("rb") as f:
            f.seek(offset)
            while chunk := f.read(ARTIFACT_CHUNK_BYTES):
                yield offset, chunk, total
                offset += len(chunk)
