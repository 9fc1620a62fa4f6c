"""gRPC edge conventions in one place: channel options, credential metadata and error <-> status-code mapping.

Servicers raise EdgeLab errors and `server_errors` turns them into status codes; clients
wrap calls in `client_errors`, which turns status codes back into EdgeLab errors, so
callers never see `grpc.RpcError`. Credentials travel as call metadata under the keys below,
never in a message (the coordinator's `coordinator.auth` checks them before any handler runs).
"""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Tuple, TypeVar

import grpc

from edgelab.config import ClientTls, ServerTls
from edgelab.constants import GRPC_MAX_MESSAGE_BYTES
from edgelab.errors import (
    ArtifactCorrupt,
    AuthError,
    ConfigError,
    CoordinatorUnavailable,
    EdgeLabError,
    InvalidArgument,
    LeaseLost,
    MessageTooLarge,
    NotFound,
    OutOfRange,
    PermissionDenied,
)

# Call metadata that carries credentials (gRPC metadata keys are lower case; values printable ASCII).
OPERATOR_TOKEN_KEY = "edgelab-operator-token"  # every ControlService call
FLEET_TOKEN_KEY = "edgelab-fleet-token"  # AgentService.Register
AGENT_ID_KEY = "edgelab-agent-id"  # every other AgentService call, with AGENT_TOKEN_KEY
AGENT_TOKEN_KEY = "edgelab-agent-token"
Metadata = Tuple[Tuple[str, str], ...]  # typing's: evaluated at import, on Python 3.8 too

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    # gRPC's own reconnect backoff grows to 120 s; agents already back off, so a restarted
    # coordinator should be redialled within seconds.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]

# What grpcio's server answers (RESOURCE_EXHAUSTED) when its `maximum_concurrent_rpcs` is reached.
SERVER_BUSY = "Concurrent RPC limit exceeded!"

_TO_STATUS: list[tuple[type[Exception], grpc.StatusCode]] = [
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (AuthError, grpc.StatusCode.UNAUTHENTICATED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (OutOfRange, grpc.StatusCode.OUT_OF_RANGE),
    (LeaseLost, grpc.StatusCode.FAILED_PRECONDITION),
    (ArtifactCorrupt, grpc.StatusCode.DATA_LOSS),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
    (KeyError, grpc.StatusCode.INVALID_ARGUMENT),
]

_FROM_STATUS: dict[grpc.StatusCode, type[EdgeLabError]] = {
    grpc.StatusCode.UNAUTHENTICATED: AuthError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: LeaseLost,
    grpc.StatusCode.DATA_LOSS: ArtifactCorrupt,
    grpc.StatusCode.UNAVAILABLE: CoordinatorUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: CoordinatorUnavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: MessageTooLarge,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
}

F = TypeVar("F", bound=Callable[..., Any])  # typing's, not collections.abc's: evaluated at import, on Python 3.8 too


def abort(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    """End the call with the status code of `exc` (an EdgeLab error, ValueError or KeyError); re-raise anything else."""
    # A KeyError out of message decoding is a value the contract does not know (e.g. an enum number).
    message = f"invalid or unknown value: {exc.args[0]}" if isinstance(exc, KeyError) and exc.args else str(exc)
    for cls, code in _TO_STATUS:
        if isinstance(exc, cls):
            context.abort(code, message)
    raise exc


def server_errors(method: F) -> F:
    """Decorate a servicer method (unary or server-streaming) to map EdgeLab errors to status codes."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from method(self, request, context)
            except (EdgeLabError, ValueError, KeyError) as exc:
                abort(context, exc)

        return stream  # type: ignore[return-value]

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except (EdgeLabError, ValueError, KeyError) as exc:
            abort(context, exc)

    return unary  # type: ignore[return-value]


@contextmanager
def client_errors(target: str) -> Iterator[None]:
    """Translate `grpc.RpcError` raised inside the block into EdgeLab errors."""
    try:
        yield
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        cls = _FROM_STATUS.get(code, EdgeLabError)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and details == SERVER_BUSY:
            cls = CoordinatorUnavailable  # the server's concurrent-call bound, not a message too large: retry
        if cls is CoordinatorUnavailable:
            raise CoordinatorUnavailable(f"coordinator at {target} unreachable: {details}") from exc
        if cls is MessageTooLarge:
            raise MessageTooLarge(
                f"message refused by the {GRPC_MAX_MESSAGE_BYTES >> 20} MiB gRPC size limit ({target}): {details}"
            ) from exc
        raise cls(details or code.name) from exc


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from exc


def channel_credentials(tls: ClientTls) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca, "tls_ca"),
        private_key=_read(tls.key, "tls_client_key"),
        certificate_chain=_read(tls.cert, "tls_client_cert"),
    )


def server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    key, cert = _read(tls.key, "tls_key"), _read(tls.cert, "tls_cert")
    assert key is not None and cert is not None
    client_ca = _read(tls.client_ca, "tls_client_ca")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def open_channel(target: str, tls: ClientTls | None = None) -> grpc.Channel:
    """A channel with EdgeLab's options: TLS (and mTLS) when `tls` is given, else plaintext."""
    if tls is None:
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.secure_channel(target, channel_credentials(tls), options=CHANNEL_OPTIONS)
