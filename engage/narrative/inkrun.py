"""The ink runtime (bink) behind a budget: one story, played line by line, in a worker process.

:class:`InkRunner` drives a bink story at the level the narrative needs (read up to the next
choice point, list the choices, peek without committing, jump to a knot, read the variables) and
turns every runtime failure into an :class:`InkRunError`. After a failure the story is rebuilt
from its JSON, so a runtime left "in the middle of a continue" is never used again.

Run as a script (``python inkrun.py --memory-mb N``), this module is the worker process of
:class:`~engage.narrative.ink.InkPlayer`: it limits its own address space (``RLIMIT_AS``, POSIX),
reads one JSON request per line on stdin and answers one JSON line on stdout. A story that
allocates without end (a list literal of thousands of items, a function calling itself) hits
the limit inside the worker, which dies alone; the player reports a :class:`StoryError`. A story
that loops without output is stopped by the per-line time budget; one that hangs a single
runtime call is killed by the player's per-request deadline.

This file imports only the standard library and bink, so the worker starts in a tenth of a
second and runs nothing of engage's.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

#: Longest time the runtime may take to produce one line; a scene's lines at most.
MAX_LINE_S = 2.0
MAX_READ_S = 6.0
MAX_LINES = 20_000
_SLICE_MS = 50.0


class InkRunError(Exception):
    """The story failed while it was played (the message says how)."""


def _python(value: Any) -> Any:
    """A variable's value as JSON-safe Python (ink lists become sorted item names)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        items = list(value)
    except TypeError:
        return str(value)
    return sorted(str(i) for i in items)


class InkRunner:
    """One compiled ink story (JSON text), played by bink.

    ``tracked`` are the knots and stitches whose visits are counted (the player gives them visit
    counts): each line reports which of them it entered, so a scene knows the knot it comes
    from. ``tagged`` names those whose own tags start a new scene when the story runs into
    them without a choice. ``variables`` are the global variable names to report.
    """

    def __init__(self, text: str, tracked: list[str], tagged: list[str], variables: list[str]) -> None:
        self.text = text
        self.tracked = list(tracked)
        self.tagged = set(tagged)
        self.variables = list(variables)
        self._story = None
        self._errors: list[str] = []
        self._carry: list | None = None
        self._build()

    # -- the runtime -------------------------------------------------------------------------

    def _build(self) -> None:
        try:
            from bink.story import Story
        except ImportError as exc:  # pragma: no cover - bink is a dependency
            raise InkRunError(f"the ink runtime 'bink' is not installed ({exc})") from None
        self._story = None
        try:
            story = Story(self.text)
            story.set_allow_external_function_fallbacks(True)
            story.set_error_handler(lambda message, is_error: self._errors.append(message) if is_error else None)
        except (RuntimeError, ValueError, OSError) as exc:
            raise InkRunError(f"the ink runtime refused the story: {exc}") from None
        self._story = story
        self._carry = None
        self._errors = []

    def call(self, op: str, *args: Any) -> Any:
        """Run one operation (a method name below); any failure rebuilds the story and raises
        :class:`InkRunError`."""
        method = getattr(self, f"op_{op}", None)
        if method is None:
            raise InkRunError(f"unknown operation {op!r}")
        if self._story is None:
            self._build()
        try:
            return method(*args)
        except InkRunError:
            self._recover()
            raise
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeError) as exc:
            self._recover()
            raise InkRunError(f"ink runtime error: {exc}") from None
        except MemoryError:
            self._story = None
            raise InkRunError("the ink runtime ran out of memory") from None

    def _recover(self) -> None:
        try:
            self._build()
        except InkRunError:
            self._story = None

    def _check_errors(self) -> None:
        if self._errors:
            errors, self._errors = self._errors, []
            raise InkRunError("; ".join(f"ink runtime error: {e}" for e in errors[:5]))

    def _line(self, deadline: float) -> str:
        start = time.monotonic()
        story = self._story
        while not story.continue_async(_SLICE_MS):
            now = time.monotonic()
            if now - start > MAX_LINE_S:
                raise InkRunError(f"the story produced no line within {MAX_LINE_S:g} s: an endless loop of diverts "
                                  "with no text or choice")
            if now > deadline:
                raise InkRunError(f"a scene took over {MAX_READ_S:g} s to play")
        self._check_errors()
        return story.get_current_text()

    def facts(self) -> dict[str, Any]:
        out = {}
        for name in self.variables:
            try:
                out[name] = _python(self._story.get_variable(name))
            except (RuntimeError, ValueError):
                continue
        return out

    def _visits(self) -> list[int]:
        count = self._story.get_visit_count_at_path_string
        return [count(p) for p in self.tracked]

    def _read(self) -> dict[str, Any]:
        """Continue to the next choice point (or a tagged knot, or the end)."""
        story = self._story
        before = self.facts()
        start = story.get_current_path()
        lines: list[list] = []
        if self._carry is not None:
            lines.append(self._carry[:3])
            self._carry = None
        deadline = time.monotonic() + MAX_READ_S
        visits = self._visits()
        while story.can_continue():
            text = self._line(deadline)
            tags = [str(t) for t in story.get_current_tags()]
            now = self._visits()
            entered = [p for p, a, b in zip(self.tracked, visits, now) if b > a]
            visits = now
            split = next((p for p in entered if p in self.tagged), None)
            if split is not None and lines:
                self._carry = [text, tags, entered, split]
                break
            lines.append([text, tags, entered])
            if len(lines) > MAX_LINES:
                raise InkRunError(f"a scene produced over {MAX_LINES} lines without a choice (a loop?)")
        self._check_errors()
        state = self.facts()
        changes = {k: v for k, v in state.items() if k not in before or before[k] != v}
        if self._carry is not None:
            choices: list | None = None
            carry = self._carry[3]
        else:
            carry = None
            c = story.get_current_choices()
            choices = [[str(c[i]), [str(t) for t in c.get_tags(i)]] for i in range(len(c))]
        return {"start": start, "lines": lines, "choices": choices, "carry": carry, "state": state,
                "changes": changes}

    # -- operations ----------------------------------------------------------------------------

    def op_tags(self, paths: list[str]) -> dict[str, list[str]]:
        out = {}
        for p in paths:
            try:
                out[p] = [str(t) for t in self._story.get_tags_for_content_at_path(p)]
            except RuntimeError:
                out[p] = []
        return out

    def op_begin(self) -> dict[str, Any]:
        try:
            self._story.reset_state()
        except RuntimeError:  # e.g. left "in the middle of a continue": a fresh runtime starts clean
            self._build()
        self._carry = None
        return self._read()

    def op_follow(self, index: int | None) -> dict[str, Any]:
        if index is not None:
            self._story.choose_choice_index(int(index))
        elif self._carry is None and self._story.can_continue() is False:
            raise InkRunError("nothing follows here")
        return self._read()

    def op_cut(self, path: str) -> dict[str, Any]:
        self._carry = None
        self._story.choose_path_string(str(path))
        return self._read()

    def _peek(self, run) -> dict[str, Any]:
        saved = self._story.save_state()
        carry = self._carry
        try:
            return run()
        finally:
            self._story.load_state(saved)
            self._carry = carry
            self._errors = []

    def op_peek(self, index: int | None) -> dict[str, Any]:
        return self._peek(lambda: self.op_follow(index))

    def op_peek_cut(self, path: str) -> dict[str, Any]:
        return self._peek(lambda: self.op_cut(path))

    def op_facts(self) -> dict[str, Any]:
        return self.facts()

    def op_ping(self) -> str:
        return "pong"


def _limit_memory(megabytes: int) -> None:
    """Cap this process's address space at what it uses now plus ``megabytes`` (POSIX only)."""
    try:
        import os
        import resource

        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError):
        used = 0
    try:
        import resource

        limit = used + megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass  # not POSIX: the player's per-request deadline is the only budget


def main(argv: list[str]) -> int:
    memory = 384  # engage.narrative.ink.MEMORY_MB passes its own
    if "--memory-mb" in argv:
        memory = int(argv[argv.index("--memory-mb") + 1])
    _limit_memory(memory)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    runner: InkRunner | None = None
    for raw in stdin:
        cpu = time.thread_time()
        try:
            request = json.loads(raw)
            op, args = request["op"], request.get("args", [])
            if op == "init":
                runner = InkRunner(*args)
                result: Any = True
            elif runner is None:
                raise InkRunError("no story loaded")
            else:
                result = runner.call(op, *args)
            reply = {"ok": result}
        except InkRunError as exc:
            reply = {"error": str(exc)}
        except MemoryError:
            reply = {"error": "the ink runtime ran out of memory", "fatal": True}
        except Exception as exc:  # noqa: BLE001 - a worker never dies on a bad request
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        reply["cpu"] = time.thread_time() - cpu  # what the request cost here, for benchmarks
        try:
            stdout.write(json.dumps(reply, ensure_ascii=False).encode("utf-8") + b"\n")
            stdout.flush()
        except (BrokenPipeError, OSError):
            return 0
        if reply.get("fatal"):
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
