"""Server-wide guards in front of every servicer: what peers may hold open, and bytes that do not decode.

A gRPC sync server runs each call on a worker thread for the call's whole life, and that thread waits
for the client's messages: a unary call's single request as much as an upload's chunks. A client that
sends a call's headers and then nothing holds a thread for as long as it likes. `StreamGuard`:

- serves unary-request methods as client streams of one message, so a call is authenticated from its
  metadata (coordinator.auth, an outer interceptor) before anything waits for its message, and the
  wait is watched: an unauthenticated header-only call costs nothing;
- cancels a call that waits more than `idle_s` for its next message (a request, an upload chunk);
- bounds, per peer host, the calls waiting for their request at once, and the client streams
  (uploads) of all peers together and of each peer host; beyond that, UNAVAILABLE at once ("busy").

A well-behaved client's request arrives with its headers, so it never meets the bounds; a stalled one
holds a thread for at most `idle_s`. The server's pool is sized with the upload bound on top, so the
short calls (register, heartbeat, lease, report) always find a free thread.

`DecodeGuard`: a request that protobuf cannot decode is INVALID_ARGUMENT, decided here instead of
inside grpcio. grpcio's own path (INTERNAL "Exception deserializing request!") never frees the call
(grpcio 1.85: about 19 kB per request, its C call and Python RPC state), so undecodable requests
would grow the coordinator without bound; through this guard they cost nothing that stays.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

log = logging.getLogger("edgelab.coordinator")

Continuation = Callable[[grpc.HandlerCallDetails], "grpc.RpcMethodHandler | None"]

STREAM_IDLE_S = 15.0  # a call that waits this long for its client's next message is cancelled
MAX_STREAMS = 8  # client streams (uploads) open at once, all peers together
MAX_STREAMS_PER_PEER = 2  # ... and from one peer host
MAX_WAITING_PER_PEER = 64  # unary calls from one peer host still waiting for their request message


def peer_host(peer: str) -> str:
    """'ipv4:10.0.0.5:53211' -> 'ipv4:10.0.0.5', 'ipv6:[::1]:53211' -> 'ipv6:[::1]' (the port is per connection)."""
    host, _, port = peer.rpartition(":")
    return host if host and port.isdigit() else peer


class StreamGuard(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    def __init__(
        self,
        *,
        max_streams: int = MAX_STREAMS,
        max_per_peer: int = MAX_STREAMS_PER_PEER,
        max_waiting_per_peer: int = MAX_WAITING_PER_PEER,
        idle_s: float = STREAM_IDLE_S,
    ) -> None:
        self.max_streams = max_streams
        self.max_per_peer = max_per_peer
        self.max_waiting_per_peer = max_waiting_per_peer
        self.idle_s = idle_s
        self._uploads_busy = f"busy: {max_streams} uploads in progress (at most {max_per_peer} per peer); retry later"
        self._waiting_busy = (
            f"busy: {max_waiting_per_peer} calls from this host are waiting for their request; retry later"
        )
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()  # client streams per peer host
        self._waiting: Counter[str] = Counter()  # unary calls waiting for their request, per peer host
        self._last_message: dict[grpc.ServicerContext, float] = {}  # every call waiting on its client
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, daemon=True, name="stream-watchdog")
        self._watchdog.start()

    def close(self) -> None:
        self._stop.set()
        self._watchdog.join()

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        options = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            unary_unary = handler.unary_unary
            return grpc.stream_unary_rpc_method_handler(
                lambda requests, context: unary_unary(self._request(requests, context), context), **options
            )
        if handler.unary_stream is not None:
            unary_stream = handler.unary_stream
            return grpc.stream_stream_rpc_method_handler(
                lambda requests, context: unary_stream(self._request(requests, context), context), **options
            )
        if handler.stream_unary is None:
            return handler  # no stream-stream method exists; add its branch with the first one
        stream_unary = handler.stream_unary

        def upload(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            with self._admitted(self._open, context, self._uploads_full, self._uploads_busy):
                return stream_unary(self._touching(requests, context), context)

        return grpc.stream_unary_rpc_method_handler(upload, **options)

    def _request(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        """The one request message of a unary call, waited for under the watchdog."""
        with self._admitted(self._waiting, context, self._waiting_full, self._waiting_busy):
            request = next(requests, None)
        if request is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call ended without its request message")
        return request

    def _uploads_full(self, host: str) -> bool:
        return sum(self._open.values()) >= self.max_streams or self._open[host] >= self.max_per_peer

    def _waiting_full(self, host: str) -> bool:
        return self._waiting[host] >= self.max_waiting_per_peer

    @contextmanager
    def _admitted(
        self, counts: Counter[str], context: grpc.ServicerContext, full: Callable[[str], bool], busy: str
    ) -> Iterator[None]:
        """Count the call against its peer host in `counts` and watch it for idleness while inside; refused
        at once with UNAVAILABLE `busy` when `full(host)` (checked under the lock) says the bound is reached."""
        host = peer_host(context.peer())
        with self._lock:
            refused = full(host)
            if not refused:
                counts[host] += 1
                self._last_message[context] = time.monotonic()
        if refused:
            context.abort(grpc.StatusCode.UNAVAILABLE, busy)
        try:
            yield
        finally:
            with self._lock:
                _release(counts, host)
                del self._last_message[context]

    def _touching(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        for message in requests:
            with self._lock:
                self._last_message[context] = time.monotonic()
            yield message

    def _watch(self) -> None:
        """Cancel calls idle for `idle_s`: their thread, blocked waiting for a message, gets an error at once."""
        while not self._stop.wait(min(self.idle_s / 4, 1.0)):
            cutoff = time.monotonic() - self.idle_s
            with self._lock:
                idle = [context for context, last in self._last_message.items() if last < cutoff]
            for context in idle:
                log.warning("cancelling a call from %s: no message received for %.0f s", context.peer(), self.idle_s)
                context.cancel()

    @property
    def open_streams(self) -> int:
        with self._lock:
            return sum(self._open.values())

    @property
    def waiting_calls(self) -> int:
        with self._lock:
            return sum(self._waiting.values())


def _release(counts: Counter[str], host: str) -> None:
    counts[host] -= 1
    if not counts[host]:
        del counts[host]


class CallSlots(grpc.ServerInterceptor):  # type: ignore[misc]
    """At most `slots` unary calls run at once; the others wait for a slot in arrival order.

    The server's pool has a thread per waiting call (long-polls, uploads) on top of the short calls',
    so a burst could otherwise run hundreds of handlers at once, all contending for the GIL and the
    store's lock: the pool then spends its time handing the lock around. A call that waits (a
    long-poll) gives its slot back while it waits (`released`).
    """

    def __init__(self, slots: int) -> None:
        # Tokens in a SimpleQueue rather than a threading.Semaphore: its blocking get is in C, the same
        # hand-off as the thread pool's own work queue; a Python-level semaphore with hundreds of
        # waiters costs more than the calls it orders.
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(slots):
            self._tokens.put(None)

    @contextmanager
    def slot(self) -> Iterator[None]:
        self._tokens.get()
        try:
            yield
        finally:
            self._tokens.put(None)

    @contextmanager
    def released(self) -> Iterator[None]:
        self._tokens.put(None)
        try:
            yield
        finally:
            self._tokens.get()

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # streams wait on the network: StreamGuard bounds them instead
        behaviour = handler.unary_unary

        def in_slot(request: Any, context: grpc.ServicerContext) -> Any:
            with self.slot():
                return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            in_slot, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


class _Undecodable:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _abort_undecodable(context: grpc.ServicerContext, request: _Undecodable) -> None:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"undecodable request message: {request.reason}")


class DecodeGuard(grpc.ServerInterceptor):  # type: ignore[misc]
    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        deserialize = handler.request_deserializer

        def safe_deserialize(data: bytes) -> Any:
            try:
                return deserialize(data)
            except Exception as exc:  # protobuf's DecodeError, or anything else the bytes provoke
                return _Undecodable(f"{type(exc).__name__}: {exc}")

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                _abort_undecodable(context, request)
            return request

        def checked_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            for request in requests:
                yield checked(request, context)

        options = {"request_deserializer": safe_deserialize, "response_serializer": handler.response_serializer}
        if handler.unary_unary is not None:
            unary_unary = handler.unary_unary
            return grpc.unary_unary_rpc_method_handler(
                lambda request, context: unary_unary(checked(request, context), context), **options
            )
        if handler.unary_stream is not None:
            unary_stream = handler.unary_stream
            return grpc.unary_stream_rpc_method_handler(
                lambda request, context: unary_stream(checked(request, context), context), **options
            )
        if handler.stream_unary is not None:
            stream_unary = handler.stream_unary
            return grpc.stream_unary_rpc_method_handler(
                lambda requests, context: stream_unary(checked_stream(requests, context), context), **options
            )
        assert handler.stream_stream is not None
        stream_stream = handler.stream_stream
        return grpc.stream_stream_rpc_method_handler(
            lambda requests, context: stream_stream(checked_stream(requests, context), context), **options
        )
