"""The dashboard server: a FastAPI app (pages, a JSON API, a WebSocket) run by uvicorn on a background thread.

Routes: ``/`` the operator's dashboard, ``/player`` the player page, ``/api/state`` a JSON snapshot,
``/api/stats`` the feed's counters, ``/ws`` the live feed (``?topics=plan,event`` to receive
less; the player also sends the viewer's choices on it), ``/static/…`` the pages' scripts and
styles (code only, no data), ``/media/…`` the film's clips, stills and sounds from the ``--media``
folder only (:class:`~engage.media.MediaLibrary` refuses any path leading out of it), served in
pieces with HTTP range requests so a file of any size is streamed, never read whole.

Security: the server binds 127.0.0.1 unless told otherwise, and any other address needs a token.
With a token, the pages, the API and the WebSocket each require it (``?token=…`` or an
``Authorization: Bearer …`` header), compared in constant time; it is never logged (uvicorn's
access log, which would print query strings, is off). Without a token (loopback only) requests
must name a loopback host, so a web page elsewhere cannot reach the feed through DNS rebinding,
and a WebSocket from a page of another origin is refused.

>>> server = DashboardServer(port=0)                                          # doctest: +SKIP
>>> server.start(); print(server.url)                                       # doctest: +SKIP
http://127.0.0.1:41234/
>>> Session([source], clock, story=story, observers=[server.observer]).run()  # doctest: +SKIP
>>> server.stop()                                                           # doctest: +SKIP
"""

import asyncio
import errno
import hmac
import ipaddress
import logging
import re
import socket
import threading
import time
from importlib import resources
from typing import Any
from urllib.parse import quote, urlsplit

from engage.core.errors import ConfigError

from .feed import DashboardFeed, parse_topics

log = logging.getLogger(__name__)

_LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    h = host.strip().strip("[]").lower()
    if h in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _host_of(header: str | None) -> str:
    """The host part of a Host header (``127.0.0.1:8765`` → ``127.0.0.1``, ``[::1]:80`` → ``::1``)."""
    if not header:
        return ""
    try:
        return urlsplit("//" + header).hostname or ""
    except ValueError:
        return ""


class _Guard:
    """The one place requests are allowed in or not."""

    def __init__(self, token: str | None) -> None:
        self.token = token.encode("utf-8") if token else None

    def allowed(self, query_token: str | None, authorization: str | None, host: str | None) -> bool:
        if self.token is None:
            return is_loopback(_host_of(host))  # no token: only loopback names (DNS rebinding)
        given = query_token
        if not given and authorization and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        if not given:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.token)


#: Loggers that may print a request line (uvicorn's, and the websockets library's at debug level).
_REQUEST_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "websockets", "websockets.server")
_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)


class _RedactToken(logging.Filter):
    """Blanks ``token=…`` (and the token itself) in every record of the request loggers, at any log level."""

    def __init__(self, token: str | None) -> None:
        super().__init__()
        self.secrets = [t for t in {token, quote(token or "", safe="")} if t]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the logging module's business
            return True
        clean = _TOKEN_IN_TEXT.sub(r"\1***", text)
        for secret in self.secrets:
            clean = clean.replace(secret, "***")
        if clean != text:
            record.msg, record.args = clean, None
        return True


#: the names of the pages' scripts and styles: letters, digits, '-', '_' and one extension
_STATIC_NAME = re.compile(r"[A-Za-z0-9_-]+\.[a-z]+")


def _static(name: str) -> bytes:
    return resources.files("engage.dashboard").joinpath("static", name).read_bytes()


def create_app(feed: DashboardFeed, token: str | None = None) -> Any:
    """The FastAPI application serving ``feed`` (see the module docstring)."""
    from fastapi import FastAPI, Request, WebSocket
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

    from engage.media import MIME_TYPES
    from starlette.websockets import WebSocketDisconnect

    guard = _Guard(token)
    app = FastAPI(title="engage dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    denied = JSONResponse({"error": "a valid token is required (open the URL engage printed)"}, status_code=403)

    def ok(request: Request) -> bool:
        return guard.allowed(request.query_params.get("token"), request.headers.get("authorization"),
                             request.headers.get("host"))

    page_headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
                    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; "
                                               "img-src 'self' data:; style-src 'self'; script-src 'self'"}

    @app.get("/", response_class=HTMLResponse)
    def dashboard(request: Request) -> Response:
        if not ok(request):
            return denied
        return HTMLResponse(_static("dashboard.html"), headers=page_headers)

    @app.get("/player", response_class=HTMLResponse)
    def player(request: Request) -> Response:
        if not ok(request):
            return denied
        return HTMLResponse(_static("player.html"), headers=page_headers)

    @app.get("/api/state")
    def state(request: Request) -> Response:
        if not ok(request):
            return denied
        return Response(feed.state_json(), media_type="application/json", headers={"Cache-Control": "no-store"})

    @app.get("/api/stats")
    def stats(request: Request) -> Response:
        if not ok(request):
            return denied
        return JSONResponse(feed.stats(), headers={"Cache-Control": "no-store"})

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    types = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        kind = name.rsplit(".", 1)[-1]
        if kind not in types or not _STATIC_NAME.fullmatch(name):
            return Response(status_code=404)
        try:
            body = _static(name)
        except (OSError, ValueError):  # absent, or a name the file system refuses
            return Response(status_code=404)
        return Response(body, media_type=types[kind], headers={"Cache-Control": "no-store"})

    media_headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
                     "Cross-Origin-Resource-Policy": "same-origin"}

    @app.api_route("/media/{name:path}", methods=["GET", "HEAD"])
    def media(name: str, request: Request) -> Response:
        if not ok(request):
            return denied
        library = feed.film.media
        path = library.locate(name) if library is not None else None
        mime = MIME_TYPES.get(path.suffix.lower()) if path is not None else None
        if path is None or mime is None:
            return Response(status_code=404)
        return FileResponse(path, media_type=mime, headers=media_headers)  # Range: 206 with the bytes asked for

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        headers = websocket.headers
        origin = headers.get("origin")
        same_origin = origin is None or urlsplit(origin).netloc.lower() == (headers.get("host") or "").lower()
        if not same_origin or not guard.allowed(websocket.query_params.get("token"), headers.get("authorization"),
                                                headers.get("host")):
            await websocket.close(code=1008)  # policy violation
            return
        await websocket.accept()
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def notify() -> None:
            loop.call_soon_threadsafe(wake.set)

        sub = feed.subscribe(parse_topics(websocket.query_params.get("topics")), notify=notify)

        async def receive() -> None:
            try:
                while True:
                    msg = await websocket.receive()
                    if msg["type"] == "websocket.disconnect":
                        return
                    feed.client_message(sub, msg.get("text"))
            except (WebSocketDisconnect, RuntimeError, OSError):
                return  # the page went away mid-message

        receiver = asyncio.create_task(receive())
        try:
            await websocket.send_text("[" + feed.snapshot_message(sub) + "]")
            while not receiver.done():
                waiter = asyncio.create_task(wake.wait())
                # a snapshot asked for too soon waits for its turn (rate-limited per client)
                due = feed.snapshot_due_in(sub) if sub.resync else None
                await asyncio.wait({waiter, receiver}, timeout=due or None, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                wake.clear()
                if sub.resync and feed.snapshot_due_in(sub) <= 0:
                    await websocket.send_text("[" + feed.snapshot_message(sub) + "]")
                batch = sub.drain()
                if batch:
                    await websocket.send_text("[" + ",".join(batch) + "]")
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the page went away
        finally:
            receiver.cancel()
            feed.unsubscribe(sub)

    return app


class DashboardServer:
    """The dashboard: a :class:`DashboardFeed` (:attr:`observer`, pass it to ``Session(observers=…)``) served
    by FastAPI + uvicorn on a background thread.

    ``host`` defaults to 127.0.0.1; any other address needs ``token`` (else :class:`ConfigError`).
    ``port=0`` picks a free port. ``story`` (optional) lets the page show the scenes that may come next.
    ``media`` (a :class:`~engage.media.MediaLibrary`) is the film's media folder, ``choice_window_s`` how
    long the viewer is given to choose (see :class:`DashboardFeed` for the other options).

    >>> DashboardServer(host="0.0.0.0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    engage.core.errors.ConfigError: dashboard on 0.0.0.0: an address other than 127.0.0.1 needs a token (--token ...
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, token: str | None = None, story: Any = None,
                 **feed_options: Any) -> None:
        if not isinstance(port, int) or not (0 <= port <= 65535):
            raise ConfigError(f"dashboard port must be 0..65535, got {port!r}")
        token = token or None
        host = host.strip().strip("[]") or "127.0.0.1"  # "[::1]" as written in a URL
        if not is_loopback(host) and token is None:
            raise ConfigError(f"dashboard on {host}: an address other than 127.0.0.1 needs a token "
                              f"(--token SECRET), so that only people you give it to can watch")
        if token is not None and (not token.isprintable() or any(c.isspace() for c in token)):
            raise ConfigError("dashboard token: use printable characters without spaces")
        self.host = host
        self.port = port
        self.token = token
        self.feed = DashboardFeed(story=story, **feed_options)
        self.app = create_app(self.feed, token)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._redact = _RedactToken(token)

    @property
    def observer(self) -> DashboardFeed:
        """The :class:`~engage.session.SessionObserver` to pass to ``Session(observers=[…])``."""
        return self.feed

    def _base(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def _with_token(self, url: str) -> str:
        return f"{url}?token={quote(self.token, safe='')}" if self.token else url

    @property
    def url(self) -> str:
        """The dashboard page (with ``?token=`` when a token is set)."""
        return self._with_token(self._base() + "/")

    @property
    def player_url(self) -> str:
        """The player page (with ``?token=`` when a token is set)."""
        return self._with_token(self._base() + "/player")

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            family = infos[0][0]
        except socket.gaierror as exc:
            raise ConfigError(f"dashboard: cannot use host {self.host!r}: {exc.strerror or exc}") from None
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart right after a stop
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {self.port} on {self.host} is busy; choose another with --port") from None
            raise ConfigError(f"dashboard: cannot listen on {self.host}:{self.port}: "
                              f"{exc.strerror or exc}") from None
        sock.setblocking(False)
        return sock

    def start(self, timeout: float = 10.0) -> "DashboardServer":
        """Serve on a background thread; returns once the server accepts connections."""
        import uvicorn

        if self._thread is not None:
            return self
        sock = self._bind()
        self.port = sock.getsockname()[1]
        for name in _REQUEST_LOGGERS:
            logging.getLogger(name).addFilter(self._redact)
        config = uvicorn.Config(self.app, log_config=None, log_level="warning", access_log=False, lifespan="off",
                                ws_max_size=65536, ws_ping_interval=20.0, timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        self._server, self._socket = server, sock
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="engage-dashboard",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"dashboard: the server on {self.host}:{self.port} did not start")
            time.sleep(0.02)
        log.info("dashboard serving on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop serving (open pages see the connection close); safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        for name in _REQUEST_LOGGERS:
            logging.getLogger(name).removeFilter(self._redact)

    def __enter__(self) -> "DashboardServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
