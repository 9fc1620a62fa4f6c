"""`edgelab` and `python -m edgelab`: the device commands first, the operator CLI only when asked for.

`edgelab agent run|probe` needs only the agent's dependencies and runs on Python 3.8+; every
other command is the operator CLI (typer, rich, pydantic: extra `coordinator`, Python 3.10+).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

OPERATOR_EXTRA = "pip install 'edgelab[coordinator]'"


def main(argv: Sequence[str] | None = None) -> None:
    args: list[str] = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["agent"]:
        from agent.cli import main as agent_main

        sys.exit(agent_main(args[1:]))
    if sys.version_info < (3, 10):
        sys.exit(
            f"edgelab: Python {sys.version.split()[0]} runs the device commands only (`edgelab agent run|probe`); "
            f"the operator commands need Python 3.10+ and {OPERATOR_EXTRA}"
        )
    try:
        from edgelab.app.cli import app
    except ModuleNotFoundError as exc:
        sys.exit(
            f"edgelab: {exc.name} is not installed: the operator commands need {OPERATOR_EXTRA}; "
            "`edgelab agent run|probe` work without it"
        )
    app(args, prog_name="edgelab")


if __name__ == "__main__":
    main()
