"""A film's media folder: the only files the player may be served, found safely and checked cheaply.

:class:`MediaLibrary` answers two questions for the server and the plan adapter: *where is the
file a writer's tag names* (:meth:`~MediaLibrary.find`), and *may this URL path be served*
(:meth:`~MediaLibrary.locate`). Both refuse anything outside the folder: an absolute path, a
``..`` segment, a hidden file, a link whose target leaves the folder, a name with a NUL or a
backslash. A file that is missing, empty, of an unknown kind or whose first bytes are not those of
its format is reported once, as a logged warning naming the scene and the file, and the scene plays
without it (its text still shows).

A ``media.toml`` in the folder may map media to a story that names none: a ``[scene.ID]`` table per
scene with the same keys as a writer's tags (``video``, ``image``, ``audio``, ``sfx``, ``transition``,
``motion``, ``loop``, ``text_mode``, ``speaker``, ``title``) and a ``[film]`` table (``title``,
``credits`` for the end card). The story's own tags win over it; files named after a scene
(``studio.webm``) fill in what neither names.

Nothing is read whole: a file is checked by its first bytes, and served by the dashboard's
``/media/…`` route in pieces (HTTP range requests), so a film of any size costs no memory.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "studio.webm").write_bytes(bytes.fromhex("1a45dfa3") + bytes(60))
>>> lib = MediaLibrary(root)
>>> lib.find("studio.webm", "video").url
'/media/studio.webm'
>>> lib.find("../etc/passwd", "video") is None, lib.locate("../etc/passwd") is None
(True, True)
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from engage.core.errors import ConfigError
from engage.core.safeload import LoadError, load_toml, read_bounded

log = logging.getLogger(__name__)

#: File extensions of each kind of media, and the MIME type each is served with.
EXTENSIONS: dict[str, dict[str, str]] = {
    "video": {".webm": "video/webm", ".mp4": "video/mp4", ".m4v": "video/mp4", ".ogv": "video/ogg",
              ".mov": "video/quicktime"},
    "image": {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
              ".gif": "image/gif", ".avif": "image/avif"},
    "audio": {".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg", ".mp3": "audio/mpeg",
              ".m4a": "audio/mp4", ".aac": "audio/aac", ".wav": "audio/wav", ".flac": "audio/flac",
              ".weba": "audio/webm"},
}
MIME_TYPES = {ext: mime for kinds in EXTENSIONS.values() for ext, mime in kinds.items()}

#: What the first bytes of each format look like (offset, bytes); a file that matches none of its
#: extension's signatures is reported as corrupt.
_SIGNATURES: dict[str, tuple[tuple[int, bytes], ...]] = {
    ".webm": ((0, b"\x1a\x45\xdf\xa3"),), ".weba": ((0, b"\x1a\x45\xdf\xa3"),),
    ".mp4": ((4, b"ftyp"),), ".m4v": ((4, b"ftyp"),), ".m4a": ((4, b"ftyp"),), ".mov": ((4, b"ftyp"), (4, b"moov"),
                                                                                         (4, b"wide"), (4, b"mdat")),
    ".ogv": ((0, b"OggS"),), ".ogg": ((0, b"OggS"),), ".oga": ((0, b"OggS"),), ".opus": ((0, b"OggS"),),
    ".jpg": ((0, b"\xff\xd8\xff"),), ".jpeg": ((0, b"\xff\xd8\xff"),), ".png": ((0, b"\x89PNG\r\n\x1a\n"),),
    ".webp": ((8, b"WEBP"),), ".gif": ((0, b"GIF8"),), ".avif": ((4, b"ftyp"),),
    ".mp3": ((0, b"ID3"), (0, b"\xff\xfb"), (0, b"\xff\xf3"), (0, b"\xff\xf2"), (0, b"\xff\xe3")),
    ".aac": ((0, b"\xff\xf1"), (0, b"\xff\xf9")), ".wav": ((8, b"WAVE"),), ".flac": ((0, b"fLaC"),),
}

#: The keys a scene's table in ``media.toml`` may hold (the same as a writer's tags).
MANIFEST_KEYS = ("video", "image", "audio", "sfx", "transition", "motion", "loop", "text_mode", "speaker", "title")
MANIFEST = "media.toml"
MAX_MANIFEST_BYTES = 1024 * 1024

#: How many distinct warnings are logged (the rest are counted in ``warnings_dropped``).
MAX_WARNINGS = 500
#: How many files a folder may hold before the scene-name index stops (the rest are still served by name).
MAX_INDEXED = 20_000


@dataclass(frozen=True)
class MediaItem:
    """A checked media file: its kind (video, image, audio), the URL the player fetches and its size."""

    name: str
    kind: str
    url: str
    path: Path
    size: int
    mime: str


def _safe_parts(name: object) -> tuple[str, ...] | None:
    """The segments of a relative media name, or None when the name could leave the folder or hide."""
    if not isinstance(name, str) or not name or len(name) > 1024:
        return None
    if "\x00" in name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    parts = PurePosixPath(name).parts
    if not parts or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    return parts


class MediaLibrary:
    """The media folder of a film (see the module docstring).

    Parameters
    ----------
    root : str or Path
        The folder. It must exist; :class:`~engage.core.errors.ConfigError` otherwise.

    Example
    -------
    >>> MediaLibrary("/no/such/folder")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    engage.core.errors.ConfigError: --media /no/such/folder: not a folder ...
    """

    def __init__(self, root: str | Path) -> None:
        given = Path(root)
        if not given.is_dir():
            raise ConfigError(f"--media {given}: not a folder (give the folder holding the film's clips, stills "
                              "and sounds; engage media make-sample DIR makes one)")
        self.root = given.resolve()
        self._lock = threading.Lock()
        self._checked: dict[tuple[str, str], MediaItem | None] = {}
        self._warned: set[str] = set()
        self.warnings: list[str] = []
        self.warnings_dropped = 0
        self._index: dict[str, dict[str, str]] | None = None
        self.film: dict[str, Any] = {}
        self.scenes: dict[str, dict[str, Any]] = {}
        self._read_manifest()

    def _read_manifest(self) -> None:
        """``media.toml``: ``[film]`` (title, credits) and a ``[scene.ID]`` table of tags per scene, checked."""
        path = self.root / MANIFEST
        if not path.is_file():
            return
        where = str(path)
        try:
            raw = read_bounded(path, MAX_MANIFEST_BYTES)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read it: {exc.strerror or exc}") from None
        if raw is None:
            raise ConfigError(f"{where}: over {MAX_MANIFEST_BYTES // 1024} kB; is it the right file?")
        try:
            doc = load_toml(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{where}: not valid TOML: {exc}") from None
        except LoadError as exc:  # the guarded loader every TOML file from outside goes through
            raise ConfigError(f"{where}: {exc.problem}") from None
        unknown = sorted(set(doc) - {"film", "scene"})
        if unknown:
            raise ConfigError(f"{where}: unknown table(s) {', '.join(unknown)} (expected [film] and [scene.ID])")
        film = doc.get("film", {})
        if not isinstance(film, dict) or any(not isinstance(v, str) for v in film.values()) or \
                set(film) - {"title", "credits"}:
            raise ConfigError(f"{where}: [film] may hold title and credits, as strings")
        scenes = doc.get("scene", {})
        if not isinstance(scenes, dict):
            raise ConfigError(f"{where}: 'scene' must be tables [scene.ID]")
        for scene, tags in scenes.items():
            if not isinstance(tags, dict):
                raise ConfigError(f"{where}: scene.{scene} must be a table")
            for key, value in tags.items():
                if key not in MANIFEST_KEYS:
                    raise ConfigError(f"{where}: scene.{scene}: unknown key {key!r} "
                                      f"(known: {', '.join(MANIFEST_KEYS)})")
                ok = isinstance(value, (str, bool, int, float)) or (
                    isinstance(value, list) and all(isinstance(v, str) for v in value))
                if not ok:
                    raise ConfigError(f"{where}: scene.{scene}.{key}: a string, number, boolean or list of strings")
        self.film = dict(film)
        self.scenes = {str(k): dict(v) for k, v in scenes.items()}

    def scene_tags(self, scene: str) -> dict[str, Any]:
        """The tags ``media.toml`` gives a scene (the story's own tags win over these)."""
        return dict(self.scenes.get(scene, {}))

    def __repr__(self) -> str:
        return f"MediaLibrary({str(self.root)!r})"

    # -- where files are -----------------------------------------------------------------------

    def locate(self, name: str) -> Path | None:
        """The file a relative name (a writer's tag, or a URL path under ``/media/``) means, or None when
        the name is refused (absolute, ``..``, hidden, NUL, backslash, a link out of the folder) or no
        regular file is there. Only the returned path may be served.

        >>> MediaLibrary(".").locate("/etc/passwd") is None
        True
        """
        parts = _safe_parts(name)
        if parts is None:
            return None
        candidate = self.root.joinpath(*parts)
        try:
            real = candidate.resolve(strict=True)  # follows links: the target must still be in the folder
            info = real.stat()
        except (OSError, RuntimeError, ValueError):
            return None
        if not real.is_relative_to(self.root) or not stat.S_ISREG(info.st_mode):
            return None
        return real

    def url(self, path: Path) -> str:
        """The URL path the dashboard serves ``path`` at (``/media/…``, each segment quoted)."""
        rel = path.relative_to(self.root).as_posix()
        return "/media/" + quote(rel, safe="/")

    def find(self, name: str, kind: str, scene: str | None = None) -> MediaItem | None:
        """The checked file a tag names, or None (and one logged warning naming ``scene`` and the file)
        when it is refused, missing, empty, of another kind or not what its extension says.

        >>> MediaLibrary(".").find("nothing-here.webm", "video", scene="studio") is None
        True
        """
        key = (str(name), kind)
        with self._lock:
            if key in self._checked:
                return self._checked[key]
        item, problem = self._check(str(name), kind)
        with self._lock:
            self._checked[key] = item
        if problem:
            self.warn(f"media: {kind} {name!r}" + (f" of scene {scene!r}" if scene else "") + f": {problem}; "
                      "the scene plays without it")
        return item

    def _check(self, name: str, kind: str) -> tuple[MediaItem | None, str | None]:
        ext = PurePosixPath(name).suffix.lower()
        if kind not in EXTENSIONS:
            return None, f"unknown kind {kind!r}"
        if ext not in EXTENSIONS[kind]:
            known = ", ".join(EXTENSIONS[kind])
            return None, f"a {kind} must be one of {known}"
        path = self.locate(name)
        if path is None:
            parts = _safe_parts(name)
            if parts is None:
                return None, f"refused: media must be named by a path inside {self.root} (no /, .., hidden files)"
            if os.path.lexists(self.root.joinpath(*parts)):
                return None, f"refused: not a regular file inside {self.root} (a link leading out of it?)"
            return None, f"not found in {self.root}"
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError as exc:
            return None, f"cannot be read: {exc.strerror or exc}"
        if size == 0:
            return None, "the file is empty"
        signatures = _SIGNATURES.get(ext, ())
        if signatures and not any(head[o:o + len(sig)] == sig for o, sig in signatures):
            return None, f"not a {ext[1:]} file (its first bytes are {head[:8].hex()}); is it damaged?"
        return MediaItem(name, kind, self.url(path), path, size, EXTENSIONS[kind][ext]), None

    def warn(self, message: str) -> None:
        """Log ``message`` as a warning the first time it is seen (a scene that loops must not flood the log)."""
        with self._lock:
            if message in self._warned:
                return
            if len(self._warned) >= MAX_WARNINGS:  # a page sending endless made-up errors
                self.warnings_dropped += 1
                return
            self._warned.add(message)
            self.warnings.append(message)
        log.warning("%s", message)

    # -- files named after scenes --------------------------------------------------------------

    def for_scene(self, scene: str, kind: str) -> MediaItem | None:
        """The file of ``kind`` named after a scene (``studio.webm``, ``studio.jpg``, ``studio.ogg``, at the
        top of the folder or in a ``video/``, ``images/``, ``audio/`` subfolder), or None. A writer's tag
        wins over this convention.
        """
        index = self._scene_index()
        name = index.get(kind, {}).get(scene)
        return self.find(name, kind, scene) if name else None

    def _scene_index(self) -> dict[str, dict[str, str]]:
        with self._lock:
            if self._index is not None:
                return self._index
        index: dict[str, dict[str, str]] = {k: {} for k in EXTENSIONS}
        seen = 0
        for folder in ("", "video", "videos", "clips", "image", "images", "stills", "audio", "sound", "sounds"):
            base = self.root / folder if folder else self.root
            try:
                entries = sorted(os.scandir(base), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                seen += 1
                if seen > MAX_INDEXED:
                    break
                if entry.name.startswith("."):
                    continue
                stem, ext = os.path.splitext(entry.name)
                for kind, exts in EXTENSIONS.items():
                    if ext.lower() in exts:
                        index[kind].setdefault(stem, f"{folder}/{entry.name}" if folder else entry.name)
        with self._lock:
            self._index = index
        return index
