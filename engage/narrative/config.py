"""One narrative configuration for every command that plays a story.

``engage live``, ``replay``, ``demo`` and ``story play`` read the same settings, from a
profile's ``[narrative]`` table and from the matching flags (a flag wins over the profile):

=====================  ========================  ==========================================================
profile key            flag                      meaning
=====================  ========================  ==========================================================
``story``              ``--story FILE``          ink JSON (``.ink.json``), TOML or YAML story
``overlay``            ``--overlay FILE``        a TOML sidecar adding tags to a compiled ink story's knots
``rewriter``           ``--rewriter``            ``none`` | ``template`` (default) | ``llm``
``llm_url``            ``--llm-url URL``         an OpenAI-compatible endpoint, up to ``/v1``
``llm_model``          ``--llm-model NAME``      the model the server knows (default ``llama3.2``)
``llm_api_key_env``    ``--llm-api-key-env VAR`` the environment variable holding the API key
``llm_prompt``         ``--llm-prompt FILE``     a system prompt replacing the built-in one
``llm_max_tokens``     ``--llm-max-tokens N``    most tokens per reply (default 600)
``llm_temperature``    ``--llm-temperature T``   sampling temperature (default 0.7)
``llm_seed``           ``--llm-seed N``          sampling seed, for servers that honour it
``llm_timeout_s``      ``--llm-timeout S``       total deadline of one request (default 20 s)
``osc``                ``--osc HOST:PORT``       send plans and the viewer's state as OSC (UDP)
``ws``                 ``--ws HOST:PORT``        serve plans and the viewer's state on a WebSocket
``ws_wait_s``          ``--ws-wait S``           before the story starts, wait up to S s for a WebSocket player
``scenes_out``         ``--scenes-out FILE``     write every plan as a JSON line
=====================  ========================  ==========================================================

Paths in a profile are relative to the profile's folder. Loading checks everything before any
device is touched: an unknown key, a wrong type or a bad value raises
:class:`~engage.core.errors.ConfigError` naming the key; the API key itself never appears in a
profile or on the command line.

>>> cfg = NarrativeConfig.from_table({"rewriter": "llm", "llm_url": "http://127.0.0.1:11434/v1"}, "rig.toml")
>>> cfg.rewriter, cfg.llm_model
('llm', 'llama3.2')
>>> NarrativeConfig.from_table({"rewrite": "llm"}, "rig.toml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
engage.core.errors.ConfigError: rig.toml: [narrative]: unknown key 'rewrite' (did you mean 'rewriter'?) ...
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from engage.core.errors import ConfigError
from engage.core.safeload import finite_number

REWRITERS = ("none", "template", "llm")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_host_port(value: str, what: str = "address") -> tuple[str, int]:
    """``"HOST:PORT"`` (``[::1]:9000`` for IPv6, or a bare ``PORT`` on 127.0.0.1) → ``(host, port)``.

    >>> parse_host_port("127.0.0.1:9000"), parse_host_port("9001"), parse_host_port("[::1]:80")
    (('127.0.0.1', 9000), ('127.0.0.1', 9001), ('::1', 80))
    """
    text = str(value).strip()
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\s\[\]]+):(\d{1,5})|(\d{1,5})", text)
    if not m:
        raise ConfigError(f"{what} {value!r}: expected HOST:PORT (e.g. 127.0.0.1:9000)")
    host = m.group(1) or m.group(3) or "127.0.0.1"
    port = int(m.group(2) or m.group(4) or m.group(5))
    if not 0 <= port <= 65535:
        raise ConfigError(f"{what} {value!r}: port must be within 0..65535")
    return host, port


def _str(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError("must be a non-empty string")
    return v


def _path(v: Any) -> str:
    return _str(v)


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return v
    return check


def _url(v: Any) -> str:
    text = _str(v)
    if not text.startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL such as http://127.0.0.1:11434/v1")
    return text


def _env(v: Any) -> str:
    text = _str(v)
    if not _ENV.match(text):
        raise ValueError("must be the name of an environment variable (letters, digits, _), not the key itself")
    return text


def _number(lo: float, hi: float, integer: bool = False, lo_open: bool = False) -> Callable[[Any], float]:
    def check(v: Any):
        if not finite_number(v):
            raise ValueError("must be a number")
        if integer and (not float(v).is_integer()):
            raise ValueError("must be a whole number")
        if (v <= lo if lo_open else v < lo) or v > hi:
            raise ValueError(f"must be within {'(' if lo_open else '['}{lo:g}, {hi:g}]")
        return int(v) if integer else float(v)
    return check


def _address(v: Any) -> str:
    try:
        parse_host_port(_str(v))
    except ConfigError as exc:
        raise ValueError(str(exc).replace("address ", "", 1)) from None
    return v


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "story": _path, "overlay": _path, "rewriter": _choice(REWRITERS), "llm_url": _url, "llm_model": _str,
    "llm_api_key_env": _env, "llm_prompt": _path, "llm_max_tokens": _number(1, 1_000_000, integer=True),
    "llm_temperature": _number(0, 2), "llm_seed": _number(-2**63, 2**63 - 1, integer=True),
    "llm_timeout_s": _number(0, 3600, lo_open=True), "osc": _address, "ws": _address,
    "ws_wait_s": _number(0, 3600), "scenes_out": _path,
}
_PATHS = ("story", "overlay", "llm_prompt", "scenes_out")


@dataclass(frozen=True)
class NarrativeConfig:
    """How a session plays its story (see the module docstring for every key)."""

    story: str | None = None
    overlay: str | None = None
    rewriter: str = "template"
    llm_url: str | None = None
    llm_model: str = "llama3.2"
    llm_api_key_env: str = "ENGAGE_LLM_API_KEY"
    llm_prompt: str | None = None
    llm_max_tokens: int = 600
    llm_temperature: float = 0.7
    llm_seed: int | None = None
    llm_timeout_s: float = 20.0
    osc: str | None = None
    ws: str | None = None
    ws_wait_s: float = 0.0
    scenes_out: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            try:
                _CHECKS[f.name](value)
            except ValueError as exc:
                raise ConfigError(f"narrative: {f.name} {exc} (got {_show(value)})") from None
        if self.rewriter == "llm" and not self.llm_url:
            raise ConfigError("narrative: rewriter 'llm' needs an endpoint: llm_url in the profile's [narrative] "
                              "table or --llm-url (e.g. http://127.0.0.1:11434/v1 for Ollama)")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], source: str = "<profile>", base: Path | None = None) -> "NarrativeConfig":
        """Build from a profile's ``[narrative]`` table; paths are made relative to ``base``."""
        where = f"{source}: [narrative]"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: must be a table, got {type(table).__name__}")
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in _CHECKS:
                close = difflib.get_close_matches(str(key), list(_CHECKS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{where}: unknown key {str(key)[:40]!r}{hint} (allowed: {', '.join(_CHECKS)})")
            try:
                values[key] = _CHECKS[key](value)
            except ValueError as exc:
                raise ConfigError(f"{where}: {key} {exc} (got {_show(value)})") from None
            if key in _PATHS and base is not None and not Path(value).is_absolute():
                values[key] = str(Path(base) / value)
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def merged(self, **flags: Any) -> "NarrativeConfig":
        """A copy with the flags that were given (not None) taking precedence."""
        given = {k: v for k, v in flags.items() if v is not None}
        unknown = set(given) - set(_CHECKS)
        if unknown:
            raise ConfigError(f"narrative: unknown setting(s) {sorted(unknown)}")
        return replace(self, **given)

    def open_story(self, default: str | Path | None = None) -> Any:
        """The story player (:func:`~engage.narrative.story.open_story`) of ``story`` (else ``default``)."""
        from .story import open_story

        path = self.story or default
        if path is None:
            raise ConfigError("narrative: no story given")
        return open_story(path, overlay=self.overlay)

    def make_rewriter(self, cast: Any = ()) -> Any:
        """The :class:`~engage.narrative.rewriter.RewriteService` of ``rewriter`` (None for ``none``)."""
        from .rewriter import LlmRewriter, RewriteService, TemplateRewriter, read_prompt

        if self.rewriter == "none":
            return None
        if self.rewriter == "template":
            return RewriteService(TemplateRewriter(), cast=cast)
        from .llm import LlmClient, LlmError

        try:
            client = LlmClient(self.llm_url, self.llm_model, timeout_s=self.llm_timeout_s,
                               temperature=self.llm_temperature, max_tokens=self.llm_max_tokens, seed=self.llm_seed,
                               api_key_env=self.llm_api_key_env)
        except LlmError as exc:
            raise ConfigError(f"narrative: {exc}") from None
        prompt = read_prompt(self.llm_prompt) if self.llm_prompt else None
        return RewriteService(LlmRewriter(client, system_prompt=prompt), cast=cast)

    def describe(self) -> str:
        """One line saying what the session will do with its story."""
        parts = [f"rewriter {self.rewriter}" + (f" ({self.llm_model} at {self.llm_url})" if self.rewriter == "llm" else "")]
        if self.overlay:
            parts.append(f"overlay {self.overlay}")
        if self.osc:
            parts.append(f"OSC to {self.osc}")
        if self.ws:
            parts.append(f"WebSocket on {self.ws}")
        return ", ".join(parts)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def story_cast(player: Any) -> tuple[str, ...]:
    """Every name in the casts of a story's scenes (the allowed cast of its rewrites)."""
    story = getattr(player, "story", None)
    scenes = getattr(story, "scenes", None)
    names: list[str] = []
    if isinstance(scenes, Mapping):
        for s in scenes.values():
            names.extend(c for c in s.cast if c not in names)
    cast_of = getattr(player, "cast", None)
    if cast_of is not None and not callable(cast_of):
        names.extend(c for c in cast_of if c not in names)
    return tuple(names)
