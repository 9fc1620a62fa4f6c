"""Authentication at the door: one server interceptor checks every call's metadata before its handler runs.

- ControlService: the operator token (`edgelab-operator-token`), when the coordinator has one;
- AgentService.Register: the fleet token (`edgelab-fleet-token`), when the coordinator has one;
- every other AgentService call: the agent id and token Register handed out (`edgelab-agent-id`,
  `edgelab-agent-token`), always;
- any other method: refused (nothing is served unauthenticated by accident).

Missing or wrong credentials and an unknown agent are UNAUTHENTICATED, a revoked agent PERMISSION_DENIED
(gRPC's convention: "who are you" vs "you may not"). The check runs on the call's worker thread before the
handler and before the call's first message is read (coordinator.guards.StreamGuard serves unary requests
as one-message streams for that), so a refused call holds nothing, even one that never sends its request. The verified
agent id reaches the handler through `authenticated_agent_id()`, never from the request.
"""

from __future__ import annotations

import contextvars
import ipaddress
import secrets
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc

from coordinator.store import Store
from edgelab.errors import AuthError
from edgelab.rpc import AGENT_ID_KEY, AGENT_TOKEN_KEY, FLEET_TOKEN_KEY, OPERATOR_TOKEN_KEY, abort
from edgelab.v1 import agent_pb2, control_pb2

AGENT_SERVICE = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
CONTROL_SERVICE = control_pb2.DESCRIPTOR.services_by_name["ControlService"].full_name
REGISTER = f"/{AGENT_SERVICE}/Register"
HEALTH_SERVICE = "grpc.health.v1.Health"  # open: load balancers and probes carry no credentials

_AGENT_ID: contextvars.ContextVar[str] = contextvars.ContextVar("edgelab_authenticated_agent_id")


def authenticated_agent_id() -> str:
    """The agent the interceptor authenticated for this call; AuthError when none did (a handler served without
    the interceptor fails closed instead of trusting anything the caller sent)."""
    agent_id = _AGENT_ID.get(None)
    if agent_id is None:
        raise AuthError("this call carries no authenticated agent")
    return agent_id


def is_loopback(host: str) -> bool:
    """Whether listening on `host` reaches this machine only ("localhost", 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name or "": it may be reachable from elsewhere
        return False


def _require_token(metadata: Mapping[str, str], key: str, expected: str | None, what: str, hint: str) -> None:
    if not expected:
        return  # this coordinator is open to it (loopback only: see coordinator.server)
    given = metadata.get(key)
    if given is None:
        raise AuthError(f"missing {what} token: send it as call metadata {key!r} ({hint})")
    if not secrets.compare_digest(expected.encode(), given.encode()):
        raise AuthError(f"bad {what} token ({hint})")


class Authenticator(grpc.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, store: Store, *, fleet_token: str | None, operator_token: str | None) -> None:
        self._store = store
        self._fleet_token = fleet_token
        self._operator_token = operator_token
        self._guarded: dict[str, Any] = {}  # method path -> its handler behind the check

    def authenticate(self, method: str, metadata: Mapping[str, str]) -> str | None:
        """Check `method`'s credentials in `metadata`; the agent id for agent calls, None for the others."""
        service = method.lstrip("/").partition("/")[0]
        if service == HEALTH_SERVICE:
            return None
        if service == CONTROL_SERVICE:
            hint = "edgelab: --operator-token or EDGELAB_OPERATOR_TOKEN"
            _require_token(metadata, OPERATOR_TOKEN_KEY, self._operator_token, "operator", hint)
            return None
        if method == REGISTER:
            hint = "edgelab agent run: --fleet-token or EDGELAB_FLEET_TOKEN"
            _require_token(metadata, FLEET_TOKEN_KEY, self._fleet_token, "fleet", hint)
            return None
        if service == AGENT_SERVICE:
            agent_id, token = metadata.get(AGENT_ID_KEY), metadata.get(AGENT_TOKEN_KEY)
            if not agent_id or token is None:
                raise AuthError(
                    f"missing agent credentials: send call metadata {AGENT_ID_KEY!r} and {AGENT_TOKEN_KEY!r} "
                    "as Register returned them"
                )
            self._store.authenticate_agent(agent_id, token)
            return agent_id
        raise AuthError(f"{method} accepts no credentials")

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED
            return None
        guarded = self._guarded.get(details.method)
        if guarded is None:  # built once per method: the credentials are read from each call's context
            guarded = self._guarded[details.method] = self._guard(handler, details.method)
        return guarded

    def _guard(self, handler: Any, method: str) -> Any:
        kind = f"{'stream' if handler.request_streaming else 'unary'}_{'stream' if handler.response_streaming else 'unary'}"
        behaviour: Callable[..., Any] = getattr(handler, kind)

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
            try:
                agent_id = self.authenticate(method, metadata)
            except AuthError as exc:
                abort(context, exc)
            # The handler (and, for a server stream, each step of it) runs in a context holding the agent id.
            call = contextvars.copy_context()
            if agent_id is not None:
                call.run(_AGENT_ID.set, agent_id)
            result = call.run(behaviour, request, context)
            return _steps_in(call, result) if handler.response_streaming else result

        make = getattr(grpc, f"{kind}_rpc_method_handler")
        return make(
            guarded, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


def _steps_in(call: contextvars.Context, responses: Iterator[Any]) -> Iterator[Any]:
    while True:
        try:
            yield call.run(next, responses)
        except StopIteration:
            return
