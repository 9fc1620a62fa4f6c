import functools
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import agent.cache
from agent.backends import engine_cache
from agent.backends.engine_cache import CacheKey
from agent.cache import RUNNING_SUFFIX, ArtifactCache
from agent.client import AgentClient
from coordinator.client import ControlClient
from coordinator.server import Coordinator
from edgelab.domain import ArtifactRef
from edgelab.errors import ArtifactCorrupt
from tests.factories import CAPS

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


@pytest.mark.integration
def test_a_partial_file_longer_than_the_artifact_is_downloaded_again_from_the_start(
    tmp_path: Path, coordinator: Coordinator
) -> None:
    artifact = tmp_path / "m.onnx"
    artifact.write_bytes(PAYLOAD)
    ref = ControlClient(coordinator.address).upload(artifact, format="onnx")
    agent = AgentClient(coordinator.address)
    agent.register("pi", CAPS, None)
    cache = ArtifactCache(tmp_path / "cache")
    cache.path(ref.sha256).with_suffix(".partial").write_bytes(PAYLOAD + b"junk")  # the coordinator: OUT_OF_RANGE

    path = cache.ensure(ref, functools.partial(agent.fetch, ref.sha256))

    assert path.read_bytes() == PAYLOAD and not path.with_suffix(".partial").exists()


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


def test_truncated_cached_artifact_is_downloaded_again_not_reused(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    cache.path(REF.sha256).write_bytes(PAYLOAD[:4096])  # a power cut after the rename, before the bytes landed
    offsets: list[int] = []

    path = cache.ensure(REF, _fetcher(PAYLOAD, offsets))

    assert offsets == [0] and path.read_bytes() == PAYLOAD


def test_same_size_damage_is_caught_by_the_hash_when_cheap(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    cache.path(REF.sha256).write_bytes(b"X" + PAYLOAD[1:])  # right size, wrong bytes
    offsets: list[int] = []

    path = cache.ensure(REF, _fetcher(PAYLOAD, offsets))

    assert offsets == [0] and path.read_bytes() == PAYLOAD


def test_after_an_unclean_start_even_large_hits_are_rehashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent.cache, "HASH_ON_HIT_MAX_BYTES", 100)  # PAYLOAD is "large" now
    clean = ArtifactCache(tmp_path)
    clean.path(REF.sha256).write_bytes(b"X" + PAYLOAD[1:])
    offsets: list[int] = []
    assert clean.ensure(REF, _fetcher(PAYLOAD, offsets)).read_bytes()[:1] == b"X"  # large: size only
    clean.close()
    assert not tmp_path.with_name(tmp_path.name + RUNNING_SUFFIX).exists()

    ArtifactCache(tmp_path)  # an agent that is then killed (power cut): its marker stays
    after_crash = ArtifactCache(tmp_path)
    path = after_crash.ensure(REF, _fetcher(PAYLOAD, offsets))

    assert after_crash.unclean_start and offsets == [0] and path.read_bytes() == PAYLOAD


def test_bytes_are_fsynced_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd: int) -> None:
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        fsync(fd)

    def recording_replace(src: object, dst: object) -> None:
        events.append("rename")
        replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)

    ArtifactCache(tmp_path).ensure(REF, _fetcher(PAYLOAD, []))

    assert "fsync-file" in events and "rename" in events
    rename = events.index("rename")
    assert "fsync-file" in events[:rename] and "fsync-dir" in events[rename:]


def test_engines_are_evicted_under_the_same_budget(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    (engines / "tensorrt").mkdir(parents=True)
    cache = ArtifactCache(tmp_path / "artifacts", max_bytes=2500, engines=engines)
    old_engine = engines / "tensorrt" / "a.engine"
    new_engine = engines / "tensorrt" / "b.engine"
    for i, path in enumerate([old_engine, cache.path("f" * 64), new_engine]):
        path.write_bytes(b"x" * 1000)
        engine_cache.store(path) if path.suffix == ".engine" else None
        os.utime(path, ns=(i * 10**9, i * 10**9))

    evicted = cache.evict(keep=["f" * 64])

    assert evicted == ["tensorrt/a.engine"]
    assert not old_engine.exists() and not old_engine.with_name("a.engine.sha256").exists()
    assert new_engine.exists() and cache.path("f" * 64).exists()


def test_an_unpacked_savedmodel_is_evicted_whole(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    saved = engines / "savedmodel-abc"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"x" * 600)
    (saved / "variables" / "variables.data-00000-of-00001").write_bytes(b"x" * 600)
    os.utime(saved, ns=(0, 0))
    cache = ArtifactCache(tmp_path / "artifacts", max_bytes=1000, engines=engines)
    cache.path("f" * 64).write_bytes(b"x" * 500)

    assert cache.evict() == ["savedmodel-abc"] and not saved.exists()  # never half a SavedModel left to reuse


def test_engine_cache_hit_is_verified_against_what_was_stored(tmp_path: Path) -> None:
    key = CacheKey("onnxruntime", {"model_sha256": "m", "calibration_sha256": "c"})
    path = key.path(tmp_path, ".int8.onnx")
    assert not engine_cache.lookup(path)
    path.write_bytes(b"engine bytes" * 100)
    assert not engine_cache.lookup(path) and not path.exists()  # no record of what was stored: not trusted

    path.write_bytes(b"engine bytes" * 100)
    engine_cache.store(path)
    assert engine_cache.lookup(path)
    path.write_bytes(b"engine bytes" * 50)  # truncated

    assert not engine_cache.lookup(path) and not path.exists()
