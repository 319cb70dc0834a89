"""A small client for any OpenAI-compatible chat-completions endpoint (Ollama, llama.cpp's server,
vLLM, OpenAI), standard library only.

``POST {base_url}/chat/completions`` with ``model``, ``messages``, ``temperature``, ``max_tokens``,
``seed`` and a ``response_format`` asking for JSON matching a schema. Replies are taken as real
servers send them:

* non-streamed (``choices[0].message.content``) or streamed (server-sent events of
  ``choices[0].delta.content`` chunks up to ``data: [DONE]``, or Ollama's JSON lines), whatever
  was asked for;
* a server that refuses the JSON schema (HTTP 400/422/500 naming ``response_format`` or the
  schema) is asked again in ``json_object`` mode, then without a response format; the client
  remembers what worked;
* :func:`parse_reply` takes the JSON object out of what the model wrote: ``<think>…</think>``
  reasoning dropped, Markdown code fences and prose around the object ignored, nesting depth
  bounded.

Every request has one **total deadline** (``timeout_s``, from connecting to the last byte; a
server that trickles bytes does not extend it) and :meth:`LlmClient.close` aborts requests in
flight, so a slow server never blocks shutdown. Redirects: 307/308 are followed (at most 3)
with the ``Authorization`` header only to the same host, port and scheme (never downgraded to
http); other redirects are reported. Every failure (refused connection, DNS, TLS, timeout,
HTTP error, a reply that is not the protocol) raises :class:`LlmError` naming the endpoint and
the problem; the caller falls back to the authored scene. The API key comes from the argument
or the environment variable ``api_key_env`` (default ``ENGAGE_LLM_API_KEY``) and is never logged.

>>> client = LlmClient("http://127.0.0.1:11434/v1", "llama3.2", timeout_s=2.0)
>>> client.url
'http://127.0.0.1:11434/v1/chat/completions'
>>> parse_reply('<think>hmm</think>```json\\n{"text": "Rain."}\\n```')
{'text': 'Rain.'}
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any, Mapping, Sequence

from engage.core.errors import EngageError

#: Replies larger than this are refused.
MAX_REPLY_BYTES = 256 * 1024
#: Deepest JSON nesting a reply may have.
MAX_DEPTH = 32
#: Redirects (307/308) followed per request.
MAX_REDIRECTS = 3
#: Default environment variable holding the API key.
API_KEY_ENV = "ENGAGE_LLM_API_KEY"

_FORMATS = ("json_schema", "json_object", "none")


class LlmError(EngageError):
    """The endpoint could not give a usable reply."""


class ReplyError(LlmError):
    """The model's reply holds no usable JSON object."""


class _Refused(LlmError):
    """The server refused the response format asked for."""


_THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_OPEN_THINK = re.compile(r"^\s*<(think|thinking|reasoning)>.*", re.IGNORECASE | re.DOTALL)
_FENCE = re.compile(r"```[A-Za-z0-9_-]*\s*\n?(.*?)```", re.DOTALL)


def _scan(text: str, start: int = 0, limit: int = MAX_DEPTH, whole: bool = False) -> tuple[int | None, bool]:
    """Scan JSON-ish text from ``start`` (strings respected): where the object opened there ends
    (None if it does not, or ``whole``: scan to the end), and whether nesting stayed within ``limit``."""
    depth = 0
    in_string = escape = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return None, False
        elif ch in "]}":
            depth -= 1
            if depth == 0 and ch == "}" and not whole:
                return i, True
    return None, True


def _depth_ok(text: str, limit: int = MAX_DEPTH) -> bool:
    return _scan(text, 0, limit, whole=True)[1]


def _first_object(text: str) -> str | None:
    """The first balanced ``{…}`` in ``text`` (strings respected), or None."""
    start = text.find("{")
    while start != -1:
        end, _ = _scan(text, start, 10**9)
        if end is not None:
            return text[start:end + 1]
        start = text.find("{", start + 1)
    return None


def parse_reply(content: Any) -> dict[str, Any]:
    """The JSON object a model wrote, from its raw message text: ``<think>`` blocks dropped, code
    fences and surrounding prose ignored; :class:`ReplyError` when there is none, when it nests
    deeper than :data:`MAX_DEPTH`, or when it is too long.

    >>> parse_reply('Sure! Here it is: {"text": "Dawn."} Hope that helps.')
    {'text': 'Dawn.'}
    """
    if not isinstance(content, str):
        raise ReplyError(f"reply is {type(content).__name__}, not text")
    if len(content) > MAX_REPLY_BYTES:
        raise ReplyError(f"reply is over {MAX_REPLY_BYTES // 1024} KB")
    text = _THINK.sub("", content)
    if _OPEN_THINK.match(text):  # reasoning cut off before it closed: nothing after it
        raise ReplyError("reply is only an unfinished <think> block, no JSON object")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        stripped = candidate.strip()
        raw = stripped if stripped.startswith("{") else _first_object(candidate)
        if raw is None:
            continue
        if not _depth_ok(raw):
            raise ReplyError(f"reply nests JSON deeper than {MAX_DEPTH} levels")
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            obj = _first_object(candidate) if raw is stripped else None
            if obj is None or obj == raw:
                continue
            try:
                doc = json.loads(obj)
            except (ValueError, RecursionError):
                continue
        if isinstance(doc, dict):
            return doc
    raise ReplyError("reply is not JSON (no JSON object found in it)")


class LlmClient:
    """An OpenAI-compatible chat-completions client (see the module docstring).

    Parameters
    ----------
    base_url : str
        The endpoint up to ``/v1`` (``http://127.0.0.1:11434/v1`` for Ollama).
    model : str
        The model name the server knows.
    api_key : str, optional
        The key; default: the environment variable ``api_key_env``.
    timeout_s : float
        Total deadline of one request, connection to last byte.
    temperature, max_tokens, seed :
        Sampling settings sent with every request (``seed`` only when given).
    stream : bool
        Ask for a streamed reply (the reply is read whole either way).
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 20.0,
                 temperature: float = 0.7, max_tokens: int | None = 600, seed: int | None = None,
                 stream: bool = False, api_key_env: str = API_KEY_ENV) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise LlmError(f"LLM endpoint must be an http(s) URL, got {base_url!r}")
        parts = urllib.parse.urlsplit(base_url)
        if not parts.hostname:
            raise LlmError(f"LLM endpoint {base_url!r} has no host")
        try:
            parts.port
        except ValueError:
            raise LlmError(f"LLM endpoint {base_url!r} has an invalid port") from None
        if not (isinstance(timeout_s, (int, float)) and timeout_s > 0 and timeout_s < float("inf")):
            raise LlmError(f"LLM timeout must be a positive number of seconds, got {timeout_s!r}")
        if max_tokens is not None and not (isinstance(max_tokens, int) and max_tokens > 0):
            raise LlmError(f"LLM max_tokens must be a positive integer, got {max_tokens!r}")
        if not (isinstance(temperature, (int, float)) and 0 <= temperature <= 2):
            raise LlmError(f"LLM temperature must be within [0, 2], got {temperature!r}")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = str(model)
        self.timeout_s = float(timeout_s)
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
        self.seed = seed
        self.stream = bool(stream)
        self.api_key_env = api_key_env
        self._key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.format = "json_schema"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False

    # -- public ----------------------------------------------------------------------------------

    def complete(self, messages: Sequence[Mapping[str, str]], schema: Mapping[str, Any] | None = None) -> str:
        """Send ``messages``; return the reply text. Raises :class:`LlmError` on any failure."""
        if self._closed:
            raise LlmError(f"{self.url}: the client is closed")
        formats = _FORMATS[_FORMATS.index(self.format):] if schema is not None else ("none",)
        last: LlmError | None = None
        for fmt in formats:
            try:
                content = self._request(self._body(messages, schema, fmt))
            except _Refused as exc:
                last = exc
                continue
            if schema is not None:
                self.format = fmt
            return content
        raise LlmError(f"{self.url}: the server refused every response format ({last})")

    def close(self) -> None:
        """Abort every request in flight (they raise :class:`LlmError`) and refuse new ones."""
        self._closed = True
        with self._lock:
            socks = list(self._open)
        for s in socks:
            _abort(s)

    # -- the request -----------------------------------------------------------------------------

    def _body(self, messages, schema, fmt: str) -> bytes:
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages],
                                "temperature": self.temperature, "stream": self.stream}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.seed is not None:
            body["seed"] = int(self.seed)
        if fmt == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "scene_rewrite", "schema": dict(schema), "strict": True}}
        elif fmt == "json_object":
            body["response_format"] = {"type": "json_object"}
        return json.dumps(body).encode("utf-8")

    def _request(self, body: bytes) -> str:
        deadline = time.monotonic() + self.timeout_s
        url = self.url
        send_key = True
        for _ in range(MAX_REDIRECTS + 1):
            status, headers, raw = self._post(url, body, deadline, send_key)
            if status in (307, 308):
                location = headers.get("location")
                if not location:
                    raise LlmError(f"{url}: HTTP {status} redirect without a Location")
                target = urllib.parse.urljoin(url, location)
                if not target.startswith(("http://", "https://")):
                    raise LlmError(f"{url}: redirected to {target!r}, not an http(s) URL")
                send_key = send_key and _same_origin(url, target)
                url = target
                continue
            if status in (301, 302, 303):
                raise LlmError(f"{url}: HTTP {status}: the endpoint moved to {headers.get('location')!r}; give that "
                               "URL (engage does not turn a POST into a GET)")
            if status >= 400:
                message = _error_message(raw)
                if status in (400, 422, 500, 501) and _about_format(message):
                    raise _Refused(f"HTTP {status}: {message}")
                raise LlmError(f"{url}: HTTP {status}" + (f": {message}" if message else ""))
            return _content(url, headers, raw)
        raise LlmError(f"{self.url}: more than {MAX_REDIRECTS} redirects")

    def _post(self, url: str, body: bytes, deadline: float, send_key: bool) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise LlmError(f"{url}: invalid port") from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                   "Content-Length": str(len(body)), "Host": parts.netloc, "Connection": "close"}
        if self._key and send_key:
            headers["Authorization"] = f"Bearer {self._key}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LlmError(f"{url}: no reply within {self.timeout_s:g} s")
        timer = None
        conn: http.client.HTTPConnection | None = None
        try:
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(host, port, timeout=remaining, context=ssl.create_default_context())
            else:
                conn = http.client.HTTPConnection(host, port, timeout=remaining)
            conn.connect()
            sock = conn.sock
            with self._lock:
                self._open.add(sock)
            if self._closed:
                raise LlmError(f"{url}: the client is closed")
            # The total deadline: whatever the server does, the socket is shut when it passes.
            timer = threading.Timer(max(0.0, deadline - time.monotonic()), _abort, (sock,))
            timer.daemon = True
            timer.start()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            raw = bytearray()
            while True:
                chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
                if not chunk:
                    break
                raw += chunk
                if len(raw) > MAX_REPLY_BYTES:
                    raise LlmError(f"{url}: reply over {MAX_REPLY_BYTES // 1024} KB")
                if time.monotonic() > deadline:
                    raise TimeoutError
            if time.monotonic() > deadline:
                raise TimeoutError
            if response.length:  # the connection closed before Content-Length bytes came
                raise LlmError(f"{url}: the reply was cut off ({response.length} of its bytes never came)")
            return response.status, {k.lower(): v for k, v in response.getheaders()}, bytes(raw)
        except LlmError:
            raise
        except (socket.timeout, TimeoutError):
            raise LlmError(f"{url}: no reply within {self.timeout_s:g} s") from None
        except ssl.SSLError as exc:
            raise LlmError(f"{url}: TLS error ({exc.reason or exc})") from None
        except socket.gaierror as exc:
            raise LlmError(f"{url}: cannot resolve {host!r} ({exc.strerror or exc})") from None
        except ConnectionRefusedError:
            raise LlmError(f"{url}: cannot connect (connection refused)") from None
        except (http.client.HTTPException, OSError, ValueError, UnicodeError) as exc:
            if self._closed:
                raise LlmError(f"{url}: aborted, the client was closed") from None
            if time.monotonic() >= deadline:
                raise LlmError(f"{url}: no reply within {self.timeout_s:g} s") from None
            raise LlmError(f"{url}: {type(exc).__name__}: {exc or 'connection failed'}") from None
        finally:
            if timer is not None:
                timer.cancel()
            if conn is not None:
                sock = conn.sock
                with self._lock:
                    self._open.discard(sock)
                try:
                    conn.close()
                except OSError:
                    pass


def _abort(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)

    def port(p):
        try:
            return p.port or (443 if p.scheme == "https" else 80)
        except ValueError:
            return None

    return (pa.scheme == pb.scheme and (pa.hostname or "").lower() == (pb.hostname or "").lower()
            and port(pa) == port(pb))


def _error_message(raw: bytes) -> str:
    """The message of an error reply (OpenAI, vLLM, llama.cpp and Ollama shapes), shortened."""
    text = raw[:4096].decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:200]
    if isinstance(doc, dict):
        err = doc.get("error", doc)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or err.get("error")
        else:
            msg = err
        if msg is not None:
            return " ".join(str(msg).split())[:200]
    return " ".join(text.split())[:200]


def _about_format(message: str) -> bool:
    low = message.lower()
    return any(w in low for w in ("response_format", "json_schema", "json schema", "schema", "grammar",
                                  "guided", "structured output", "json_object"))


def _content(url: str, headers: Mapping[str, str], raw: bytes) -> str:
    """The message text of a chat-completions reply, streamed (SSE or JSON lines) or not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LlmError(f"{url}: reply is not UTF-8 (byte {exc.start})") from None
    kind = headers.get("content-type", "").lower()
    stripped = text.lstrip()
    if "text/event-stream" in kind or stripped.startswith(("data:", "event:", ":")):
        return _from_events(url, text)
    if "ndjson" in kind or ("\n{" in stripped.strip() and stripped.startswith("{") and _is_json_lines(stripped)):
        return _from_json_lines(url, stripped)
    if not _depth_ok(text, 64):
        raise LlmError(f"{url}: reply nests JSON too deeply")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise LlmError(f"{url}: not a chat-completions reply (not JSON: {exc})") from None
    return _message(url, doc)


def _message(url: str, doc: Any) -> str:
    try:
        if isinstance(doc, dict) and "choices" not in doc and isinstance(doc.get("message"), dict):
            content = doc["message"]["content"]  # Ollama's own /api/chat shape
        else:
            content = doc["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LlmError(f"{url}: not a chat-completions reply (no choices[0].message.content: "
                       f"{type(exc).__name__})") from None
    if not isinstance(content, str):
        raise LlmError(f"{url}: message content is {type(content).__name__}, not text")
    return content


def _is_json_lines(text: str) -> bool:
    try:
        json.loads(text)
        return False
    except ValueError:
        return True


def _from_events(url: str, text: str) -> str:
    parts: list[str] = []
    done = False
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        if not data:
            continue
        try:
            doc = json.loads(data) if _depth_ok(data, 64) else None
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            raise LlmError(f"{url}: a streamed chunk is not JSON: {data[:60]!r}")
        if "error" in doc:
            raise LlmError(f"{url}: the server reported an error mid-stream: {_error_message(data.encode())}")
        try:
            choice = doc["choices"][0] if doc.get("choices") else None
        except (KeyError, IndexError, TypeError):
            choice = None
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") or choice.get("message") or {}
        piece = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(piece, str):
            parts.append(piece)
        if choice.get("finish_reason") not in (None, ""):
            done = True
    if not parts:
        raise LlmError(f"{url}: the streamed reply carried no content")
    if not done:
        raise LlmError(f"{url}: the streamed reply ended before it finished")
    return "".join(parts)


def _from_json_lines(url: str, text: str) -> str:
    parts: list[str] = []
    done = False
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            raise LlmError(f"{url}: a streamed line is not JSON: {line[:60]!r}") from None
        if not isinstance(doc, dict):
            continue
        message = doc.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            parts.append(message["content"])
        elif isinstance(doc.get("choices"), list) and doc["choices"]:
            delta = doc["choices"][0].get("delta") if isinstance(doc["choices"][0], dict) else None
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                parts.append(delta["content"])
        if doc.get("done") is True:
            done = True
    if not done:
        raise LlmError(f"{url}: the streamed reply ended before it finished")
    return "".join(parts)
