"""EdgeLab's own error hierarchy: callers never catch `grpc.RpcError`."""

from __future__ import annotations


class EdgeLabError(Exception):
    """Base class of every error EdgeLab raises on purpose."""


class ConfigError(EdgeLabError):
    """A setting is missing or invalid; the message names the key."""


class InvalidArgument(ConfigError):
    """The other side refused a request's content (gRPC INVALID_ARGUMENT); the message names the field."""


class OutOfRange(InvalidArgument):
    """A position past the end of what exists, e.g. an artifact offset beyond its size (gRPC OUT_OF_RANGE)."""


class MissingExtraError(EdgeLabError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: pip install 'edgelab[{extra}]'")


class CoordinatorUnavailable(EdgeLabError):
    """The coordinator could not be reached (down, restarting, or wrong address)."""


class AuthError(EdgeLabError):
    """Bad fleet/agent/operator token, or an unknown agent."""


class PermissionDenied(AuthError):
    """A known credential that is no longer allowed, e.g. a revoked agent."""


class MessageTooLarge(EdgeLabError):
    """A gRPC message exceeded the configured maximum size."""


class NotFound(EdgeLabError):
    """An unknown job, agent or artifact."""


class LeaseLost(EdgeLabError):
    """The job's lease expired or belongs to a newer attempt; the result is not accepted."""


class ArtifactCorrupt(EdgeLabError):
    """An artifact's bytes do not hash to the expected sha256."""


class BackendUnavailable(EdgeLabError):
    """A backend cannot run on this device, e.g. `tensorrt backend unavailable: no CUDA device`."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend} backend unavailable: {reason}")
        self.backend = backend
        self.reason = reason
