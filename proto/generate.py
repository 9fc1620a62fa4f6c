"""Generate the Python stubs for proto/edgelab/v1 into edgelab/v1 (committed).

python proto/generate.py          # write the stubs
python proto/generate.py --check  # fail if the committed stubs are stale
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent
PACKAGE = Path("edgelab/v1")


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
