import subprocess
import sys

from tests.conftest import REPO


def test_committed_stubs_match_the_protos() -> None:
    completed = subprocess.run(
        [sys.executable, "proto/generate.py", "--check"], cwd=REPO, capture_output=True, text=True, check=False
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
