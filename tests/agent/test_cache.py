import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cache import ArtifactCache
from edgelab.domain import ArtifactRef
from edgelab.errors import ArtifactCorrupt

PAYLOAD = b"model-bytes-" * 1000
REF = ArtifactRef(hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD), "onnx", "m.onnx")


def _fetcher(data: bytes, offsets: list[int]):  # type: ignore[no-untyped-def]
    def fetch(offset: int) -> Iterator[bytes]:
        offsets.append(offset)
        for i in range(offset, len(data), 4096):
            yield data[i : i + 4096]

    return fetch


def test_download_is_cached_by_hash(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    offsets: list[int] = []

    first = cache.ensure(REF, _fetcher(PAYLOAD, offsets))
    second = cache.ensure(REF, _fetcher(PAYLOAD, offsets))

    assert first == second and first.read_bytes() == PAYLOAD
    assert offsets == [0]  # the second call never touched the network


def test_interrupted_download_resumes_from_the_partial_file(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    cache.path(REF.sha256).with_suffix(".partial").write_bytes(PAYLOAD[:5000])
    offsets: list[int] = []

    path = cache.ensure(REF, _fetcher(PAYLOAD, offsets))

    assert offsets == [5000] and path.read_bytes() == PAYLOAD


def test_corrupt_bytes_are_detected_and_not_cached(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    corrupted = PAYLOAD[:100] + b"X" + PAYLOAD[101:]

    with pytest.raises(ArtifactCorrupt, match="expected"):
        cache.ensure(REF, _fetcher(corrupted, []))
    assert list(tmp_path.iterdir()) == []
