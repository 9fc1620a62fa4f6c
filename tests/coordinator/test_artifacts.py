import hashlib
from pathlib import Path

import pytest

from coordinator.artifacts import ArtifactStore
from edgelab.constants import ARTIFACT_CHUNK_BYTES
from edgelab.errors import NotFound


def test_content_addressed_and_resumable(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    payload = bytes(range(256)) * 10_000  # 2.5 MB: several chunks

    chunks = (payload[i : i + ARTIFACT_CHUNK_BYTES] for i in range(0, len(payload), ARTIFACT_CHUNK_BYTES))

    ref = store.put_chunks(chunks, name="m.onnx", format="onnx")
    tail = b"".join(data for _, data, _ in store.read_chunks(ref.sha256, offset=1000))

    assert ref.sha256 == hashlib.sha256(payload).hexdigest()
    assert ref.size_bytes == len(payload) and ref.name == "m.onnx"
    assert store.path(ref.sha256).read_bytes() == payload
    assert tail == payload[1000:]
    assert not list((tmp_path / "artifacts").glob(".upload-*"))


def test_failed_upload_leaves_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")

    def broken():  # type: ignore[no-untyped-def]
        yield b"partial"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        store.put_chunks(broken(), name="x", format="onnx")
    assert [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("bad", ["../../etc/passwd", "abc", "g" * 64])
def test_only_sha256_names_are_served(tmp_path: Path, bad: str) -> None:
    store = ArtifactStore(tmp_path / "artifacts")

    with pytest.raises(NotFound):
        list(store.read_chunks(bad))
