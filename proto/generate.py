"""Generate the Python stubs for proto/edgelab/v1 into edgelab/v1 (committed).

python proto/generate.py          # write the stubs
python proto/generate.py --check  # fail if the committed stubs are stale

The pinned grpcio-tools writes stubs that refuse to import on any protobuf or grpcio older than
itself. Agents run on devices whose newest wheels are far older (Python 3.8 on JetPack 5:
grpcio 1.70, protobuf 5.29; Debian's own python3-grpcio/python3-protobuf on a Pi Zero), so the
output is made version-neutral: the runtime-version guards go, and so does the client-side
`_registered_method=True` argument (grpcio >= 1.62 only). What remains, the `_builder` calls,
works on protobuf >= 3.20, the floor pyproject.toml declares; tests/edgelab/test_generated_code.py
and the emulated old-stack device import them on the floor versions.
"""

from __future__ import annotations

import filecmp
import re
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent
PACKAGE = Path("edgelab/v1")
# The generated guards, matched whole: `_runtime_version.ValidateProtobufRuntimeVersion(...)` with its
# import, and the grpcio block from `GRPC_GENERATED_VERSION = ...` to its `raise RuntimeError(...)`.
VERSION_GUARDS = (
    re.compile(r"^from google\.protobuf import runtime_version as _runtime_version\n", re.M),
    re.compile(r"^_runtime_version\.ValidateProtobufRuntimeVersion\(\n(?:    .*\n)*?\)\n", re.M),
    re.compile(r"^GRPC_GENERATED_VERSION = .*?\n    \)\n", re.M | re.S),
    re.compile(r",\n\s*_registered_method=True(?=\))"),
)


def generate(out_dir: Path) -> None:
    """Run protoc on every .proto below proto/edgelab/v1, writing into out_dir."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for path in (out_dir / PACKAGE).glob("*.py"):
        path.write_text(version_neutral(path.read_text()))


def version_neutral(code: str) -> str:
    """Generated code without the guards that pin it to the generator's protobuf/grpcio versions."""
    for guard in VERSION_GUARDS:
        code = guard.sub("", code)
    return code


def stale_files() -> list[str]:
    """Names of generated files whose committed copy differs from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = {p.name: p for p in (Path(tmp) / PACKAGE).iterdir() if p.is_file()}
        committed = REPO_ROOT / PACKAGE
        return sorted(
            name
            for name, path in fresh.items()
            if not (committed / name).exists() or not filecmp.cmp(path, committed / name, shallow=False)
        )


def main() -> None:
    if "--check" in sys.argv:
        stale = stale_files()
        if stale:
            raise SystemExit(f"stale generated code, run `python proto/generate.py`: {stale}")
        print("generated code is up to date")
        return
    generate(REPO_ROOT)
    print(f"wrote {REPO_ROOT / PACKAGE}")


if __name__ == "__main__":
    main()
