"""JSON CDR ingest over HTTP: `POST /cdr` as FreeSWITCH `mod_json_cdr` sends it.

mod_json_cdr posts one document per call leg when the leg is reported,
through libcurl, to the configured URL with `?uuid=<leg uuid>` appended.
This module is the HTTP server; it reads a body with
`collector.receivers.json_body` and makes it a record with
`collector.vendors.freeswitch.json_cdr`, where what the document means is.

The endpoint answers 200 only once the record is durable (committed, or
fsync'd to the spool); 503 with Retry-After when it is not, so that the
switch keeps the CDR and posts it again (the record key makes the repeat one
row); anything but 2xx makes mod_json_cdr retry and then write the CDR to
its err-log-dir. It only serves the configured networks: a connection from
anywhere else is closed as it is accepted, before a byte is read (and a
request on a connection whose address a reload removed gets 403). It checks
HTTP basic credentials when configured (401), refuses bodies over
`max_body_bytes` (413) and documents it cannot read (400, with a one-line
reason naming the field). A request with `Expect: 100-continue` that would
be refused gets that answer before its body is sent. A connection has
`header_timeout_ms` to deliver a request's headers and then
`body_timeout_ms` for its body (408): aiohttp itself would wait for ever.
Paused (the service is stopping), it reads no new request: the listener
stops accepting (connections wait in the listen backlog, which socket
activation keeps for the next process), an idle keep-alive connection is
closed without reading what may wait on it (an HTTP client posts again on
a new connection), and a request already being read or answered is
finished, answered once its record is durable, with `Connection: close`.
HTTP that aiohttp cannot parse is counted and logged once per interval,
never with a traceback. It never echoes, logs or counts a value taken from
a document: no number, address or URI reaches a response, a log line or a
label.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from aiohttp import HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError

from collector.logs import RateLimitedLog, get_logger
from collector.pipeline.intake import Intake
from collector.receivers.addresses import ClientTable, adopt
from collector.receivers.json_body import decode_body
from collector.receivers.json_config import JsonConfig
from collector.settings import parse_host_port
from collector.telemetry import PacketCounts, Telemetry
from collector.vendors.freeswitch.json_cdr import JsonCdrError, json_record

log = get_logger(__name__)

#: seconds a sender is asked to wait before posting again
RETRY_AFTER_S = 5
#: the realm named in WWW-Authenticate
AUTH_REALM = "cdr-collector"
_READ_CHUNK = 65536


@dataclass(frozen=True)
class _AllowedNetwork:
    """One entry of `json.allowed`, as the address table wants its peers."""

    address: str


def _allowed_networks(allowed: tuple[str, ...]) -> ClientTable[_AllowedNetwork]:
    return ClientTable(_AllowedNetwork(value) for value in allowed)


def _credentials_match(header: str | None, credentials: tuple[tuple[str, str], ...]) -> bool:
    """True when an `Authorization: Basic` header names one of the configured users."""
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    if not sep:
        return False
    found = False
    for known_user, known_password in credentials:
        # compare every entry in constant time, so timing tells nothing
        same = hmac.compare_digest(user, known_user.encode()) & hmac.compare_digest(
            password, known_password.encode()
        )
        found = found or same
    return found


class _LastResponse(web.Response):
    """`answer`, after which the connection closes at once.

    For a request refused before its body was sent: the server has nothing
    left to read, so it neither waits for the body nor keeps the connection.
    """

    def __init__(self, answer: web.Response, close_connection: Callable[[], None]) -> None:
        super().__init__(status=answer.status, body=answer.body, headers=answer.headers)
        self._close_connection = close_connection
        self.force_close()

    async def write_eof(self, data: bytes = b"") -> None:
        await super().write_eof(data)
        self._close_connection()  # the transport still sends what it has buffered


class _Guard(asyncio.Protocol):
    """One JSON connection, in front of the aiohttp protocol that serves it.

    At `connection_made` a peer outside `allowed` is aborted before a byte
    is read (so neither a slow nor a malformed request from it costs a parse
    or a log line); an allowed one gets aiohttp's protocol, to which every
    event is passed on. Until a request's headers are complete (from the
    connection's opening, or the end of its previous request) a timer runs:
    past `header_timeout_ms` the connection is closed, counted malformed
    when it had sent part of a request. Between requests, with nothing of
    the next one read, the connection is `idle`: that one a pause closes.
    """

    def __init__(self, receiver: JsonReceiver, serve: Callable[[], asyncio.Protocol]) -> None:
        self.receiver = receiver
        self.serve = serve
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.partial = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        receiver = self.receiver
        stream = cast(asyncio.Transport, transport)
        if receiver.paused:
            # accepted just before the listener closed: left unread, as the backlog is
            stream.close()
            return
        peer = stream.get_extra_info("peername")
        if not peer or receiver.networks.find(peer[0]) is None:
            receiver.count_forbidden()
            stream.abort()
            return
        self.transport = stream
        receiver.guards[stream] = self
        self.inner = inner = self.serve()
        inner.connection_made(stream)
        self.wait_for_headers()

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            if self.timer is not None:
                self.partial = True
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_waiting()
        if self.transport is not None:
            self.receiver.guards.pop(self.transport, None)
        if self.inner is not None:
            self.inner.connection_lost(exc)
            self.inner = None

    @property
    def idle(self) -> bool:
        """Waiting for a request of which nothing has been read yet."""
        return self.timer is not None and not self.partial

    def close(self) -> None:
        """Close the connection now, reading nothing more from it."""
        self.stop_waiting()
        if self.transport is not None:
            self.transport.close()

    def wait_for_headers(self) -> None:
        """Start the header timer (at the opening, and after each request)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.stop_waiting()
        self.partial = False
        delay = self.receiver.config.header_timeout_ms / 1000
        self.timer = asyncio.get_running_loop().call_later(delay, self._headers_too_slow)

    def stop_waiting(self) -> None:
        """A request's headers are in (or the connection is gone)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _headers_too_slow(self) -> None:
        self.timer = None
        if self.transport is not None:
            self.receiver.count_headers_too_slow(self.partial)
            self.transport.abort()


class _GuardedSite(web.BaseSite):
    """The JSON listener: aiohttp's server behind a `_Guard` per connection."""

    def __init__(
        self,
        runner: web.BaseRunner,
        receiver: JsonReceiver,
        sock: socket.socket | None,
        host: str,
        port: int,
    ) -> None:
        super().__init__(runner)
        self._receiver = receiver
        self._sock = sock
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    def stop_accepting(self) -> None:
        """Close the listening socket; open connections are left as they are."""
        if self._server is not None:
            self._server.close()

    async def start(self) -> None:
        await super().start()
        serve = self._runner.server
        assert serve is not None
        receiver = self._receiver
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(
                lambda: _Guard(receiver, serve), sock=self._sock, backlog=self._backlog
            )
        else:
            self._server = await loop.create_server(
                lambda: _Guard(receiver, serve),
                self._host,
                self._port,
                reuse_address=True,
                backlog=self._backlog,
            )


class _ServerLog:
    """Stands in for the logger aiohttp's server reports to.

    aiohttp reports a request it cannot parse (request line, header, chunk
    framing) with `logger.exception`, an ERROR and a traceback for every bad
    request a client sends. Here such client errors count malformed and log
    one line per interval naming the error class. Anything else it reports
    is a failure in this process: counted and logged the same way,
    rate-limited, as the other receivers log theirs.
    """

    def __init__(self, receiver: JsonReceiver) -> None:
        self.receiver = receiver

    def exception(self, msg: str, *args: Any, exc_info: Any = None, **_kwargs: Any) -> None:
        self._report(exc_info)

    def error(self, msg: str, *args: Any, exc_info: Any = None, **_kwargs: Any) -> None:
        self._report(exc_info)

    def warning(self, msg: str, *args: Any, **_kwargs: Any) -> None:
        receiver = self.receiver  # its text may quote a request: logged without it
        receiver._limited.warning("json_server", "HTTP server warning", listener=receiver.listener)

    def debug(self, msg: str, *args: Any, exc_info: Any = None, **_kwargs: Any) -> None:
        # aiohttp reports a first request that is not HTTP at all at debug level
        if isinstance(exc_info, HttpProcessingError):
            self.receiver.count_bad_http(exc_info)

    def info(self, msg: str, *args: Any, **_kwargs: Any) -> None:
        pass

    def _report(self, exc_info: Any) -> None:
        if not isinstance(exc_info, BaseException):  # None or True: the exception being handled
            exc_info = sys.exc_info()[1]
        if isinstance(exc_info, HttpProcessingError):
            self.receiver.count_bad_http(exc_info)
        else:
            self.receiver.count_internal(exc_info)


class JsonReceiver:
    """Serves `POST /cdr`, answering each CDR once it is durable."""

    #: the configuration section this receiver reloads from
    section = "json"

    def __init__(
        self,
        config: JsonConfig,
        intake: Intake,
        telemetry: Telemetry,
        listener: str = "json",
    ) -> None:
        self.config = config
        self.intake = intake
        self.telemetry = telemetry
        self.listener = listener
        self.counts = PacketCounts(telemetry, listener)
        self.networks = _allowed_networks(config.allowed)
        self.paused = False
        self._socket: socket.socket | None = None
        self._runner: web.AppRunner | None = None
        self._site: _GuardedSite | None = None
        self._addresses: list[tuple[str, int]] = []
        self._limited = RateLimitedLog(log)
        #: the guard of each open connection, by transport (for the header timer)
        self.guards: dict[asyncio.BaseTransport, _Guard] = {}

    # --- lifecycle ---------------------------------------------------------
    def bind(self, inherited: list[socket.socket] | None = None) -> None:
        """Adopt a listening socket passed by systemd for `listen`, if there is one.

        Otherwise aiohttp creates it at start: a host name there is bound on
        every address it resolves to, as aiohttp does.
        """
        host, port = parse_host_port(self.config.listen)
        self._socket = adopt(inherited or (), socket.SOCK_STREAM, host, port)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) of the HTTP listener (the port the kernel chose included)."""
        return list(self._addresses)

    @property
    def port(self) -> int | None:
        """The bound port, once started."""
        return self._addresses[0][1] if self._addresses else None

    async def start(self) -> None:
        """Listen on `listen` (or the adopted socket) and serve POST /cdr."""
        app = web.Application(
            client_max_size=self.config.max_body_bytes, middlewares=[self._header_timer]
        )
        app.router.add_post("/cdr", self._post, expect_handler=self._expect)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, logger=_ServerLog(self))
        await runner.setup()
        host, port = parse_host_port(self.config.listen)
        site = _GuardedSite(runner, self, self._socket, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._site = site
        server = getattr(site, "_server", None)
        for sock in getattr(server, "sockets", None) or []:
            self._addresses.append(sock.getsockname()[:2])

    def pause(self) -> None:
        """Read no new request: stop accepting, close idle connections; requests being
        read or answered are finished (see the module docstring)."""
        self.paused = True
        if self._site is not None:
            self._site.stop_accepting()
        for guard in list(self.guards.values()):
            if guard.idle:
                guard.close()

    async def stop(self) -> None:
        """Close the listener and its connections. Idempotent; safe without start."""
        self.paused = True
        self._site = None
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def reload(self, config: JsonConfig) -> None:
        """Take new allowed networks, credentials, source name and body limit."""
        if config.listen != self.config.listen:
            log.warning("json.listen changed: takes effect at the next restart")
        self.networks = _allowed_networks(config.allowed)
        self.config = config

    # --- per connection ----------------------------------------------------
    def count_forbidden(self) -> None:
        """A connection or request from an address outside `allowed`."""
        self._count("unknown", "unknown_client")
        self._limited.warning(
            "json_forbidden", "CDR post from an address not allowed", listener=self.listener
        )

    def count_headers_too_slow(self, partial: bool) -> None:
        """A connection closed for not sending a request's headers in time."""
        if partial:
            self._count(self.config.source, "malformed")
            self._limited.warning(
                "json_slow_headers",
                "HTTP request headers not complete in time: connection closed",
                listener=self.listener,
            )
        else:
            self._limited.info("json_idle", "idle HTTP connection closed", listener=self.listener)

    def count_bad_http(self, exc: HttpProcessingError) -> None:
        """A request aiohttp could not parse (answered 400 by aiohttp): a line per kind
        of parser error and interval."""
        self._count(self.config.source, "malformed")
        error_class = type(exc).__name__  # one of aiohttp's few parser errors
        self._limited.warning(
            "json_bad_http:" + error_class,
            "malformed HTTP request refused",
            listener=self.listener,
            error_class=error_class,
        )

    def count_internal(self, exc: object) -> None:
        """A failure aiohttp caught in this process's handling of a request."""
        self._count("unknown", "malformed")
        self._limited.warning(
            "json_internal",
            "JSON request handling failed",
            listener=self.listener,
            error_class=type(exc).__name__ if isinstance(exc, BaseException) else None,
        )

    @web.middleware
    async def _header_timer(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        """Stops the connection's header timer while a request is handled, restarts it
        after its answer is written.

        The answer is written here rather than after the middleware, so that
        the connection is never idle (see `_Guard.idle`) while it still owes
        one; paused, the answer closes the connection.
        """
        guard = self.guards.get(request.transport) if request.transport is not None else None
        if guard is not None:
            guard.stop_waiting()
        try:
            response: web.StreamResponse = await handler(request)
            if self.paused:
                response.force_close()
            # a client gone meanwhile is aiohttp's to notice, as for any answer
            with contextlib.suppress(ConnectionError):
                await response.prepare(request)
                await response.write_eof()
            return response
        finally:
            if guard is not None:
                guard.wait_for_headers()

    # --- per request -------------------------------------------------------
    def _count(self, source: str, outcome: str) -> None:
        self.counts.count(source, outcome)

    @staticmethod
    def _unavailable(text: str) -> web.Response:
        return web.Response(
            status=503, text=text + "\n", headers={"Retry-After": str(RETRY_AFTER_S)}
        )

    def _refusal(self, request: web.Request) -> web.Response | None:
        """The answer to a request refused on its headers alone, or None to go on."""
        config = self.config
        source = config.source
        if not request.remote or self.networks.find(request.remote) is None:
            # the connection was let in before a reload took its address off the list
            self.count_forbidden()
            return web.Response(status=403, text="forbidden\n")
        if config.credentials and not _credentials_match(
            request.headers.get("Authorization"), config.credentials
        ):
            self._count(source, "bad_authenticator")
            self._limited.warning(
                "json_auth", "CDR post without valid credentials", listener=self.listener
            )
            return web.Response(
                status=401,
                text="authentication required\n",
                headers={"WWW-Authenticate": f'Basic realm="{AUTH_REALM}"'},
            )
        if self.paused:
            return self._unavailable("shutting down, post again later")
        declared = request.content_length
        if declared is not None and declared > config.max_body_bytes:
            return self._too_large(source)
        return None

    async def _expect(self, request: web.Request) -> web.Response | None:
        """`Expect: 100-continue` (curl sends it before a large body): go on, or refuse now.

        A request that would be refused gets its final answer instead of 100
        Continue, so that the body is never sent; the connection then closes,
        as the unsent body leaves it out of step.
        """
        refusal = self._refusal(request)
        if refusal is not None:
            return _LastResponse(refusal, request.protocol.force_close)
        if request.version != HttpVersion11:
            return None  # an HTTP/1.0 client does not wait for 100 Continue
        if request.headers.get("Expect", "").strip().lower() != "100-continue":
            return _LastResponse(
                web.Response(status=417, text="expectation not supported\n"),
                request.protocol.force_close,
            )
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
        return None

    async def _post(self, request: web.Request) -> web.Response:
        config = self.config
        source = config.source
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        limit = config.max_body_bytes
        body = bytearray()
        try:
            async with asyncio.timeout(config.body_timeout_ms / 1000):
                async for chunk in request.content.iter_chunked(_READ_CHUNK):
                    body += chunk
                    if len(body) > limit:
                        return self._too_large(source)
        except TimeoutError:
            self._count(source, "malformed")
            self._limited.warning(
                "json_slow_body", "CDR post body not complete in time", source=source
            )
            # the rest of the body may never come: answer and close, without lingering for it
            return _LastResponse(
                web.Response(status=408, text="request body not complete in time\n"),
                request.protocol.force_close,
            )
        except (web.RequestPayloadError, HttpProcessingError) as exc:
            self._count(source, "malformed")
            self._limited.warning(
                "json_bad_body",
                "CDR post body unreadable",
                source=source,
                error_class=type(exc).__name__,
            )
            return _LastResponse(
                web.Response(status=400, text="bad request body\n"), request.protocol.force_close
            )
        received_at = datetime.now(UTC)
        try:
            document = decode_body(bytes(body), request.content_type)
            record = json_record(document, source, received_at)
        except JsonCdrError as exc:
            self._count(source, "malformed")
            self._limited.warning(
                "json_malformed", "CDR post refused", source=source, reason=exc.reason
            )
            return web.Response(status=400, text=f"bad CDR: {exc.reason}\n")

        loop = asyncio.get_running_loop()
        durable: asyncio.Future[bool] = loop.create_future()

        def ack(stored: bool) -> None:
            if not durable.done():
                durable.set_result(stored)

        if not self.intake.accept(record, received_at, ack):
            self._count(source, "overloaded")
            self._limited.warning(
                "overloaded", "writer queue full: CDR post refused", source=source
            )
            return self._unavailable("busy, post again later")
        if not await durable:
            self._count(source, "not_durable")
            return self._unavailable("not stored, post again later")
        self._count(source, "accepted")
        return web.json_response({"status": "stored"})

    def _too_large(self, source: str) -> web.Response:
        self._count(source, "malformed")
        self._limited.warning(
            "json_too_large", "CDR post larger than max_body_bytes refused", source=source
        )
        return web.Response(status=413, text="request body too large\n")
