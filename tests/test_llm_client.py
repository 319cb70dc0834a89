"""The LLM client against real sockets on loopback: replies in the shapes Ollama, llama.cpp's server and
vLLM send (tests/fixtures/llm, served by tests/support/openai_server.py as its own process), a server
that refuses a JSON schema, streamed replies, a trickling server (one total deadline), redirects (no
credentials to another host), every network failure typed, and an exit that a slow server never holds up."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.narrative.llm import LlmClient, LlmError, ReplyError, parse_reply
from engage.narrative.rewriter import LlmRewriter
from engage.narrative.story import Scene

ROOT = Path(__file__).resolve().parent
SERVER = ROOT / "support" / "openai_server.py"
SCENE = Scene("tea", "Tea", "Tea in chipped mugs. Tomas talks about his father.", 0.15, "calm", 35.0, "amber",
              ("Lena", "Tomas"))
CONTEXT = {"target_intensity": 0.25, "facts": {"tomas_alive": True}, "cast": ("Lena", "Tomas")}


class OpenAIServer:
    """tests/support/openai_server.py run as a separate process on a free loopback port."""

    def __init__(self, tmp_path: Path, *flags: str) -> None:
        self.log = tmp_path / f"requests-{time.monotonic_ns()}.jsonl"
        self.proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0", "--log", str(self.log), *flags],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), line
        self.url = line.split()[-1]

    def requests(self) -> list[dict]:
        return [json.loads(x) for x in self.log.read_text().splitlines()] if self.log.exists() else []

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(*flags):
        servers.append(OpenAIServer(tmp_path, *flags))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.mark.parametrize("shape", ["ollama", "llamacpp", "vllm"])
@pytest.mark.parametrize("wrap", ["plain", "fenced", "think"])
@pytest.mark.parametrize("stream", [False, True])
def test_replies_as_real_servers_send_them_are_accepted(serve, shape, wrap, stream):
    server = serve("--shape", shape, "--wrap", wrap, *(["--stream"] if stream else []))
    rw = LlmRewriter(LlmClient(server.url, "m", timeout_s=10.0, stream=stream))
    r = rw.rewrite(SCENE, CONTEXT)
    assert r is not None and r.ai_generated and r.text.endswith("The rain keeps on against the glass.")
    assert r.directives["pacing"] == "slow" and rw.rejected == 0


@pytest.mark.parametrize("shape", ["ollama", "llamacpp", "vllm"])
def test_a_server_that_refuses_the_schema_is_asked_in_json_object_mode(serve, shape):
    server = serve("--shape", shape, "--refuse-schema")
    client = LlmClient(server.url, "m", timeout_s=10.0)
    rw = LlmRewriter(client)
    assert rw.rewrite(SCENE, CONTEXT) is not None and rw.rewrite(SCENE, CONTEXT) is not None
    asked = [r["response_format"] for r in server.requests()]
    assert asked == ["json_schema", "json_object", "json_object"]  # remembered after the first refusal
    assert client.format == "json_object"


def test_max_tokens_seed_and_the_api_key_from_its_environment_variable(serve, monkeypatch):
    server = serve()
    monkeypatch.setenv("MY_LLM_KEY", "k-987")
    client = LlmClient(server.url, "m", timeout_s=10.0, max_tokens=321, seed=5, api_key_env="MY_LLM_KEY")
    assert LlmRewriter(client).rewrite(SCENE, CONTEXT) is not None
    req = server.requests()[0]
    assert (req["max_tokens"], req["seed"], req["authorization"]) == (321, 5, "Bearer k-987")
    assert "k-987" not in repr(client.__dict__.get("url"))


def test_hostile_replies_from_the_server_process_are_refused(serve):
    server = serve("--hostile", "1")  # every reply revives the dead
    rw = LlmRewriter(LlmClient(server.url, "m", timeout_s=10.0))
    ctx = {**CONTEXT, "facts": {"tomas_alive": False}}
    assert rw.rewrite(SCENE, ctx) is None and rw.rejected == 1 and len(server.requests()) == 2


# -- the network, hostile ------------------------------------------------------------------------

class Raw:
    """A TCP server on loopback whose handler gets the raw socket."""

    def __init__(self, handle, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}/v1"
        self.handle = handle
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn) -> None:
        try:
            self.handle(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def _read_request(conn) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next((line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
                      b"0"))
    while len(body) < length:
        body += conn.recv(65536)
    return head


def _call_in_thread(fn, limit_s):
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    start = time.monotonic()
    t.start()
    t.join(limit_s)
    return out, time.monotonic() - start, t.is_alive()


def test_a_trickling_server_cannot_stretch_the_deadline():
    def trickle(conn, stop):
        _read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        while not stop.is_set():
            conn.sendall(b" ")
            time.sleep(0.1)

    server = Raw(trickle)
    try:
        client = LlmClient(server.url, "m", timeout_s=1.0)
        out, took, alive = _call_in_thread(lambda: client.complete([{"role": "user", "content": "x"}]), 8.0)
        assert not alive, "the request outlived its deadline"
        assert isinstance(out.get("error"), LlmError) and "no reply within 1 s" in str(out["error"])
        assert took < 3.0
    finally:
        server.close()


def test_headers_trickled_byte_by_byte_are_bounded_too():
    def trickle(conn, stop):
        _read_request(conn)
        for ch in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10000:
            if stop.is_set():
                return
            conn.sendall(bytes([ch]))
            time.sleep(0.05)

    server = Raw(trickle)
    try:
        client = LlmClient(server.url, "m", timeout_s=1.0)
        out, took, alive = _call_in_thread(lambda: client.complete([{"role": "user", "content": "x"}]), 8.0)
        assert not alive and isinstance(out.get("error"), LlmError) and took < 3.0
    finally:
        server.close()


class Recording(BaseHTTPRequestHandler):
    seen: list = []
    location = ""
    status = 200

    def do_POST(self):  # noqa: N802 - http.server API
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append({"auth": self.headers.get("Authorization"), "method": "POST"})
        self._answer()

    def do_GET(self):  # noqa: N802 - http.server API
        type(self).seen.append({"auth": self.headers.get("Authorization"), "method": "GET"})
        self._answer()

    def _answer(self):
        if type(self).status in (301, 302, 303, 307, 308):
            self.send_response(type(self).status)
            self.send_header("Location", type(self).location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": '{"ok": 1}'}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def _http(handler, host="127.0.0.1"):
    server = ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_no_credentials_cross_a_redirect_to_another_host(status):
    other = type("Other", (Recording,), {"seen": [], "status": 200})
    first = type("First", (Recording,), {"seen": [], "status": status})
    target, target_url = _http(other, host="127.0.0.2")  # another host (loopback)
    origin, origin_url = _http(first)
    first.location = target_url + "/v1/chat/completions"
    try:
        client = LlmClient(origin_url + "/v1", "m", api_key="secret-key", timeout_s=5.0)
        try:
            client.complete([{"role": "user", "content": "x"}])
        except LlmError as exc:
            assert status in (301, 302, 303) and "moved to" in str(exc)
        assert first.seen[0]["auth"] == "Bearer secret-key"
        assert all(s["auth"] is None for s in other.seen), other.seen
        if status in (307, 308):
            assert other.seen == [{"auth": None, "method": "POST"}]
    finally:
        target.shutdown()
        origin.shutdown()


def test_a_redirect_within_the_same_origin_keeps_the_key():
    first = type("Same", (Recording,), {"seen": [], "status": 307})
    server, url = _http(first)
    first.location = "/v2/chat/completions"
    try:
        calls = []
        orig = first._answer

        def answer(self):
            calls.append(self.path)
            if self.path.startswith("/v2"):
                type(self).status = 200
            orig(self)

        first._answer = answer
        assert LlmClient(url + "/v1", "m", api_key="k", timeout_s=5.0).complete([{"role": "user", "content": "x"}])
        assert [s["auth"] for s in first.seen] == ["Bearer k", "Bearer k"] and calls == ["/v1/chat/completions",
                                                                                           "/v2/chat/completions"]
    finally:
        server.shutdown()


def _respond_with(raw: bytes):
    def handle(conn, stop):
        _read_request(conn)
        conn.sendall(raw)
    return handle


@pytest.mark.parametrize("raw, words", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"choices\"", "cut off"),
    (b"garbage\r\n\r\n", "BadStatusLine"),
    (b"", "RemoteDisconnected"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!", "not JSON"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", r"no choices\[0\]\.message\.content"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n\xff\xfe\x00bad!!", "not UTF-8"),
    (b"HTTP/1.1 500 Internal\r\nContent-Length: 27\r\n\r\n{\"error\": {\"message\": \"x\"}}", "HTTP 500: x"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 14\r\n\r\ndata: {\"a\":1}\n", "no content"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 401\r\n\r\n" + b"[" * 200 + b"]" * 200 + b"\n", "too deeply"),
])
def test_every_network_failure_is_an_llm_error(raw, words):
    server = Raw(_respond_with(raw))
    try:
        with pytest.raises(LlmError, match=words):
            LlmClient(server.url, "m", timeout_s=3.0).complete([{"role": "user", "content": "x"}])
    finally:
        server.close()


def test_refused_unresolvable_and_bad_urls_are_llm_errors():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(LlmError, match="connection refused"):
        LlmClient(f"http://127.0.0.1:{port}/v1", "m", timeout_s=2.0).complete([{"role": "user", "content": "x"}])
    with pytest.raises(LlmError, match="cannot resolve|cannot connect|Error"):
        LlmClient("http://no-such-host.invalid/v1", "m", timeout_s=2.0).complete([{"role": "user", "content": "x"}])
    for bad in ("file:///etc/passwd", "http://", "http://h:99999/v1", 3):
        with pytest.raises(LlmError):
            LlmClient(bad, "m")  # type: ignore[arg-type]


def test_close_aborts_a_request_in_flight():
    hold = threading.Event()

    def stall(conn, stop):
        _read_request(conn)
        hold.wait(30)

    server = Raw(stall)
    try:
        client = LlmClient(server.url, "m", timeout_s=30.0)
        t = threading.Timer(0.3, client.close)
        t.start()
        out, took, alive = _call_in_thread(lambda: client.complete([{"role": "user", "content": "x"}]), 10.0)
        assert not alive and isinstance(out.get("error"), LlmError) and took < 5.0
    finally:
        hold.set()
        server.close()


EXIT_SCRIPT = """
import socket, sys, time
from engage.narrative.llm import LlmClient
from engage.narrative.rewriter import LlmRewriter, RewriteService
from engage.narrative.story import Scene
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)  # accepts, never answers
port = s.getsockname()[1]
scene = Scene("a", "A", "Rain.", 0.2, "calm", 30.0, "grey")
service = RewriteService(LlmRewriter(LlmClient(f"http://127.0.0.1:{port}/v1", "m", timeout_s=60.0)))
service.prepare(1, [scene], {"target_intensity": 0.5})
time.sleep(0.5)
print("leaving", flush=True)
"""


def test_a_slow_server_never_holds_up_the_exit():
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start
    assert r.returncode == 0 and "leaving" in r.stdout, r.stderr
    assert took < 15.0, f"exit took {took:.1f} s"


# -- the reply parser ------------------------------------------------------------------------------

def test_reply_parser_cases():
    assert parse_reply('{"text": "a"}') == {"text": "a"}
    assert parse_reply('<think>{"text": "no"}</think>\n{"text": "yes"}') == {"text": "yes"}
    assert parse_reply('Sure!\n```json\n{"text": "b"}\n```\nDone.') == {"text": "b"}
    assert parse_reply('noise {"text": "c \\" } {"} more') == {"text": 'c " } {'}
    for bad in ("", "no json here", "<think>only thinking", "[1, 2]", '{"a": ' + "[" * 100 + "]" * 100 + "}"):
        with pytest.raises(ReplyError):
            parse_reply(bad)
    with pytest.raises(ReplyError):
        parse_reply(None)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=20),
                              lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                              max_leaves=20).map(json.dumps),
                 st.tuples(st.sampled_from(["", "<think>x</think>", "```json\n", "Sure: "]), st.text(max_size=100),
                           st.sampled_from(["", "```", "}", "{"])).map("".join)))
def test_the_reply_parser_returns_an_object_or_a_reply_error(text):
    try:
        assert isinstance(parse_reply(text), dict)
    except ReplyError:
        pass
