import hashlib
import os
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


def test_chunk_that_fails_its_check_is_fetched_again_from_its_offset(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    offsets: list[int] = []

    def fetch(offset: int) -> Iterator[bytes]:
        offsets.append(offset)
        for i in range(offset, len(PAYLOAD), 4096):
            if i == 8192 and len(offsets) == 1:
                raise ArtifactCorrupt("chunk at byte 8192 failed its sha256 check")
            yield PAYLOAD[i : i + 4096]

    path = cache.ensure(REF, fetch)

    assert offsets == [0, 8192] and path.read_bytes() == PAYLOAD


def test_eviction_drops_least_recently_used_first_and_spares_kept_ones(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path, max_bytes=250)
    for i, name in enumerate(["old", "kept", "recent"]):
        (tmp_path / name).write_bytes(b"x" * 100)
        os.utime(tmp_path / name, ns=(i * 10**9, i * 10**9))
    (tmp_path / "d.partial").write_bytes(b"x" * 1000)  # an unfinished download is not the cache's to drop

    evicted = cache.evict(keep=["kept"])

    assert evicted == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.partial", "kept", "recent"]


def test_cache_hit_counts_as_a_use(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path, max_bytes=len(PAYLOAD) + 10)
    first = cache.ensure(REF, _fetcher(PAYLOAD, []))
    os.utime(first, ns=(0, 0))
    (tmp_path / "newer").write_bytes(b"y" * 100)

    cache.ensure(REF, _fetcher(PAYLOAD, []))  # a hit: now the most recently used
    evicted = cache.evict()

    assert evicted == ["newer"] and first.is_file()
