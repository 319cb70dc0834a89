"""A local OpenAI-compatible chat-completions server for the tests: a real HTTP server process on
loopback that answers the way Ollama, llama.cpp's server or vLLM do (``tests/fixtures/llm``), with
a rewrite made from the request instead of a model (no weights exist here).

    python tests/support/openai_server.py --shape vllm --wrap think --stream [--refuse-schema]
        [--hostile 3] [--delay 0.2] [--log requests.jsonl] [--port 0]

The first line it prints is ``listening on http://127.0.0.1:PORT/v1``. For each request it reads
the scene the client sent (the user message's JSON: scene, directives, beats) and writes a valid
rewrite: the authored text followed by one sentence, the directives copied. ``--wrap`` chooses
how the model "writes" it (bare JSON, in a code fence, after a ``<think>`` block); ``--stream``
sends it as server-sent events even when not asked; ``--refuse-schema`` answers HTTP 400 (in the
shape's own error format) to a ``json_schema`` response format, as servers without structured
output do; ``--hostile N`` makes every Nth reply revive a dead character (or, when nobody is dead,
bring in a new one); ``--log`` appends each
request (path, headers that matter, body) as a JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llm"
SENTENCE = " The rain keeps on against the glass."


def rewrite_for(body: dict, hostile: bool = False) -> dict:
    """A rewrite the canon checks accept: the authored text plus one sentence, directives copied."""
    # the first user message holds the request (later ones are "your reply was rejected" retries)
    request = json.loads(next(m["content"] for m in body["messages"] if m["role"] == "user"))
    scene = request["scene"]
    text = scene["text"] + SENTENCE
    if hostile:  # bring back the dead, or bring in someone the story does not know
        dead = request.get("dead_characters")
        text = scene["text"] + (f" {dead[0]} sits up, alive after all." if dead else " Marco walks in, smiling.")
    return {"text": text, "directives": request["directives"], "cast": [], "exits": []}


def wrapped(reply: dict, how: str) -> str:
    raw = json.dumps(reply, ensure_ascii=False)
    if how == "fenced":
        return "Here is the scene:\n```json\n" + json.dumps(reply, indent=2, ensure_ascii=False) + "\n```\n"
    if how == "think":
        return "<think>\nThe director wants this pacing; keep the beats, add no names.\n</think>\n\n" + raw
    return raw


def make_handler(args, state):
    shape = args.shape
    template = (FIXTURES / f"{shape}.json").read_text()
    stream_template = (FIXTURES / f"{shape}.stream.txt").read_text()
    error_body = (FIXTURES / f"{shape}.error.json").read_text().strip().encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a) -> None:
            pass

        def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length))
            with state["lock"]:
                state["n"] += 1
                n = state["n"]
            if args.log:
                with open(args.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"path": self.path, "authorization": self.headers.get("Authorization"),
                                        "response_format": (body.get("response_format") or {}).get("type"),
                                        "stream": body.get("stream"), "model": body.get("model"),
                                        "max_tokens": body.get("max_tokens"), "seed": body.get("seed")}) + "\n")
            if not self.path.endswith("/chat/completions"):
                self._send(404, b'{"error":{"message":"not found"}}')
                return
            fmt = (body.get("response_format") or {}).get("type")
            if args.refuse_schema and fmt == "json_schema":
                self._send(400, error_body)
                return
            if args.delay:
                time.sleep(args.delay)
            hostile = bool(args.hostile) and n % args.hostile == 0
            content = wrapped(rewrite_for(body, hostile), args.wrap)
            if args.stream or body.get("stream"):
                lines = stream_template.split("\n\n")
                out = []
                for block in lines:
                    if "CONTENT" in block:
                        step = 24
                        for i in range(0, len(content), step):
                            out.append(block.replace('"CONTENT"', json.dumps(content[i:i + step])))
                    elif block.strip():
                        out.append(block)
                payload = ("\n\n".join(out) + "\n\n").encode()
                self._send(200, payload, "text/event-stream")
                return
            self._send(200, template.replace('"CONTENT"', json.dumps(content)).encode())

    return Handler


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--shape", choices=["ollama", "llamacpp", "vllm"], default="ollama")
    ap.add_argument("--wrap", choices=["plain", "fenced", "think"], default="plain")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--refuse-schema", action="store_true")
    ap.add_argument("--hostile", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--log")
    args = ap.parse_args(argv)
    state = {"n": 0, "lock": threading.Lock()}
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args, state))
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
