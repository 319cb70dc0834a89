"""liblsl's own log lines through Python's logging, at the level the user set.

liblsl (the C++ library under pylsl) logs with loguru straight to the process's stderr, in its
own format, where its lines interleave with a command's timeline. Neither liblsl 1.18 nor pylsl
1.18 offers a log callback; what liblsl does offer is a log *file* in its configuration
(``[log] file = …``, which also takes its lines off stderr) and a way to hand it that
configuration before it starts (``pylsl.set_config_content``). :func:`route_liblsl_log` gives it
the write end of a pipe as that file (``/dev/fd/N``) and a reader thread turns every line into a
record of the ``liblsl`` logger: formatted like every other engage log line (``--log-format
json`` too), filtered by ``--log-level``, and liblsl's own verbosity set to match, so it does not
even format what would be dropped; a warning said again within :data:`REPEAT_S` is logged at DEBUG.
Nothing is written to disk.

It has to run before anything in the process uses liblsl (liblsl reads its configuration once); a
user's own ``lsl_api.cfg`` is kept, only its ``[log]`` section is replaced, and one that names a log
file of its own is left alone. Where ``/dev/fd`` does not exist (Windows) liblsl keeps writing to
stderr, at the level that matches.

>>> import logging
>>> liblsl_verbosity(logging.WARNING), liblsl_verbosity(logging.DEBUG)
(-1, 9)
>>> parse_line("2026-12-06 10:39:15.040 (   0.360s) [R_x      ]  data_receiver.cpp:375    ERR| broke off")
(40, 'broke off', 'data_receiver.cpp:375', 'R_x')
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
import time

__all__ = ["liblsl_verbosity", "parse_line", "route_liblsl_log", "user_config"]

log = logging.getLogger("liblsl")

#: A loguru line: date, time, (uptime), [thread], file:line, verbosity| message.
_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \(\s*[\d.]+s\) \[\s*(?P<thread>[^\]]*?)\s*\]\s+"
                   r"(?P<where>\S+:\d+)\s+(?P<v>[A-Z]+|-?\d+)\| ?(?P<msg>.*)$")
_LEVELS = {"FATL": logging.CRITICAL, "ERR": logging.ERROR, "WARN": logging.WARNING, "INFO": logging.INFO}
_STATE: dict[str, object] = {}
_LOCK = threading.Lock()


def liblsl_verbosity(level: int) -> int:
    """liblsl's (loguru's) verbosity for a Python logging level: WARNING → -1 (warnings and errors), INFO → 0,
    DEBUG → 9 (everything liblsl says), ERROR → -2, CRITICAL → -3."""
    if level <= logging.DEBUG:
        return 9
    if level <= logging.INFO:
        return 0
    if level <= logging.WARNING:
        return -1
    return -2 if level <= logging.ERROR else -3


def parse_line(line: str) -> tuple[int, str, str, str] | None:
    """One line of liblsl's log → (Python logging level, message, ``file:line``, thread); None for any other
    line (loguru's preamble, a message's continuation)."""
    m = _LINE.match(line.rstrip("\r\n"))
    if m is None:
        return None
    v = m.group("v")
    level = _LEVELS.get(v, logging.DEBUG)
    return level, m.group("msg").rstrip(), m.group("where"), m.group("thread")


def user_config() -> tuple[str | None, str]:
    """The liblsl configuration file liblsl itself would read (``$LSLAPICFG``, ``./lsl_api.cfg``,
    ``~/lsl_api/lsl_api.cfg``, ``/etc/lsl_api/lsl_api.cfg``: the first readable) and its text."""
    for path in (os.environ.get("LSLAPICFG"), "lsl_api.cfg", os.path.expanduser("~/lsl_api/lsl_api.cfg"),
                 "/etc/lsl_api/lsl_api.cfg"):
        if path and os.path.isfile(path):
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    return path, f.read()
            except OSError:
                continue
    return None, ""


def _without_log_section(text: str) -> tuple[str, bool]:
    """``text`` (INI) without its ``[log]`` section; and whether that section named a log file."""
    kept, in_log, has_file = [], False, False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            in_log = stripped[1:-1].strip().lower() == "log"
        if in_log:
            if stripped.split("=", 1)[0].strip().lower() == "file" and "=" in stripped:
                has_file = True
            continue
        kept.append(line)
    return "\n".join(kept), has_file


#: A line liblsl says again from the same thread within this many seconds is logged at DEBUG (every outlet made on
#: a machine without multicast repeats the same three warnings).
REPEAT_S = 60.0
_SAID: dict[tuple[str, str], float] = {}


def _emit(level: int, message: str, where: str, thread: str) -> None:
    if not message:
        return
    now = time.monotonic()
    key = (thread, message)
    if level < logging.ERROR and now - _SAID.get(key, -REPEAT_S) < REPEAT_S:
        level = logging.DEBUG
    else:
        _SAID[key] = now
        if len(_SAID) > 1000:
            _SAID.clear()
    if log.isEnabledFor(level):
        log.log(level, "%s", message, extra={"liblsl_source": where, "liblsl_thread": thread})


def _read(fd: int) -> None:
    """The reader thread: every line liblsl writes → a ``liblsl`` log record (a continuation line gets the level
    of the line it continues)."""
    level = logging.INFO
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as pipe:
        for line in pipe:
            got = parse_line(line)
            if got is not None:
                level = got[0]
                _STATE["lines"] = int(_STATE.get("lines", 0)) + 1
                _emit(*got)
            elif line.startswith("File verbosity level"):
                _STATE["opened"].set()  # type: ignore[union-attr]
            elif line.strip() and not line.startswith("date       time"):
                _emit(level, line.strip(), "", "")


def _load_config_quietly(pylsl) -> None:
    """Make liblsl read its configuration now, its stderr caught meanwhile and its lines logged (anything else
    caught is written back to stderr)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr to catch
        pylsl.protocol_version()
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            pylsl.protocol_version()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        for raw in caught.read().decode("utf-8", "replace").splitlines(keepends=True):
            got = parse_line(raw)
            if got is not None:
                _emit(*got)
            elif raw.strip():
                sys.stderr.write(raw)  # not liblsl's: written back where it was going


def route_liblsl_log(level: int | None = None) -> bool:
    """Send liblsl's log lines through the ``liblsl`` logger (see the module docstring).

    Parameters
    ----------
    level
        The Python logging level to keep (default: the ``liblsl`` logger's effective level, i.e. the one
        ``engage --log-level`` set); liblsl's own verbosity is set to match.

    Returns
    -------
    bool
        Whether liblsl's lines now come through logging: False when liblsl was already in use in this process
        (it reads its configuration once), when the user's ``lsl_api.cfg`` names a log file of its own, or on a
        system without ``/dev/fd`` (then liblsl's stderr verbosity still follows ``level``).

    Examples
    --------
    >>> route_liblsl_log()  # doctest: +SKIP
    True
    """
    with _LOCK:
        if "routed" in _STATE:
            return bool(_STATE["routed"])
        _STATE["routed"] = routed = _route(level if level is not None else log.getEffectiveLevel())
        return routed


def _route(level: int) -> bool:
    import pylsl

    path, text = user_config()
    base, own_file = _without_log_section(text)
    if own_file:
        log.debug("liblsl logs to the file %s names; left as it is", path)
        return False
    verbosity = liblsl_verbosity(level)
    if not os.path.isdir("/dev/fd"):
        pylsl.set_config_content(f"{base}\n[log]\nlevel = {verbosity}\n")
        return False
    read_fd, write_fd = os.pipe()
    _STATE["opened"] = threading.Event()
    threading.Thread(target=_read, args=(read_fd,), name="engage-liblsl-log", daemon=True).start()
    pylsl.set_config_content(f"{base}\n[log]\nlevel = {verbosity}\nfile = /dev/fd/{write_fd}\n")
    # liblsl reads its configuration on first use; use it now, with stderr caught for that moment: loguru announces
    # the new log file on stderr before it turns stderr off
    _load_config_quietly(pylsl)
    if not _STATE["opened"].wait(2.0):  # type: ignore[union-attr]
        log.debug("liblsl was configured before engage could route its log; its lines go where they went")
        os.close(write_fd)
        return False
    os.close(write_fd)  # liblsl holds its own descriptor of the pipe
    return True
