"""A small client for any OpenAI-compatible chat-completions endpoint (Ollama, llama.cpp server,
vLLM, OpenAI), standard library only.

``POST {base_url}/chat/completions`` with ``model``, ``messages``, ``temperature`` and a
``response_format`` asking for JSON matching a schema; the reply's
``choices[0].message.content`` is returned as text. Every failure (connection refused, a timeout,
an HTTP error, a reply that is not the protocol) raises :class:`LlmError` with a message naming
the endpoint and the problem; the caller falls back to the authored scene. The API key comes
from the argument or ``$ENGAGE_LLM_API_KEY`` and is never logged.

>>> client = LlmClient("http://127.0.0.1:11434/v1", "llama3.2", timeout_s=2.0)
>>> client.url
'http://127.0.0.1:11434/v1/chat/completions'
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from typing import Any, Mapping, Sequence

from engage.core.errors import EngageError

#: Replies larger than this are refused unread.
MAX_REPLY_BYTES = 256 * 1024


class LlmError(EngageError):
    """The endpoint could not give a usable reply."""


class LlmClient:
    """An OpenAI-compatible chat-completions client (see the module docstring)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 20.0,
                 temperature: float = 0.7) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise LlmError(f"LLM endpoint must be an http(s) URL, got {base_url!r}")
        if not (timeout_s > 0):
            raise LlmError(f"LLM timeout must be positive, got {timeout_s!r}")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.timeout_s = float(timeout_s)
        self.temperature = float(temperature)
        self._key = api_key if api_key is not None else os.environ.get("ENGAGE_LLM_API_KEY")

    def complete(self, messages: Sequence[Mapping[str, str]], schema: Mapping[str, Any] | None = None) -> str:
        """Send ``messages``; return the reply text. Raises :class:`LlmError` on any failure."""
        body: dict[str, Any] = {"model": self.model, "messages": list(messages), "temperature": self.temperature,
                                "stream": False}
        if schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "scene_rewrite", "schema": dict(schema), "strict": True}}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode("utf-8"), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise LlmError(f"{self.url}: HTTP {exc.code} {exc.reason}") from None
        except (socket.timeout, TimeoutError):
            raise LlmError(f"{self.url}: no reply within {self.timeout_s:g} s") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise LlmError(f"{self.url}: no reply within {self.timeout_s:g} s") from None
            raise LlmError(f"{self.url}: cannot connect ({reason})") from None
        except (OSError, ValueError) as exc:
            raise LlmError(f"{self.url}: {type(exc).__name__}: {exc}") from None
        if len(raw) > MAX_REPLY_BYTES:
            raise LlmError(f"{self.url}: reply over {MAX_REPLY_BYTES // 1024} KB")
        try:
            doc = json.loads(raw.decode("utf-8"))
            content = doc["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LlmError(f"{self.url}: not a chat-completions reply ({type(exc).__name__}: {exc})") from None
        if not isinstance(content, str):
            raise LlmError(f"{self.url}: message content is {type(content).__name__}, not text")
        return content
