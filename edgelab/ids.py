"""Ids people type: a job or agent id, or a unique prefix of one (the CLI's arguments, the dashboard's links)."""

from __future__ import annotations

from edgelab.errors import EdgeLabError, NotFound

AMBIGUOUS_SHOWN = 10  # candidates an ambiguous prefix lists


def resolve_id(prefix: str, candidates: dict[str, str], what: str) -> str:
    """The id that `prefix` names among `candidates` (id -> a label for the error): itself, or the one id it
    starts; NotFound for none, an error listing them for several."""
    if prefix in candidates:
        return prefix
    matches = [i for i in candidates if prefix and i.startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFound(f"unknown {what} {prefix!r}")
    listed = ", ".join(f"{i} ({candidates[i]})" for i in matches[:AMBIGUOUS_SHOWN])
    more = f" and {len(matches) - AMBIGUOUS_SHOWN} more" if len(matches) > AMBIGUOUS_SHOWN else ""
    raise EdgeLabError(f"{what} id prefix {prefix!r} is ambiguous: {len(matches)} match: {listed}{more}")
