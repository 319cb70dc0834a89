"""Device profiles: a TOML file that says which sensors a session uses and how to reach them.

A profile has an optional ``[profile]`` table and one ``[sensor.NAME]`` table per sensor; the
sensor's ``kind`` says what it is and which keys it takes (every key is documented in
``sensors/README.md``; :data:`KINDS` lists them in code)::

    [profile]
    description = "Polar H10 chest strap"
    viewer = "viewer-1"                 # default viewer of every sensor
    include = ["webcam"]                # other profiles (built-in names or paths) merged in

    [sensor.chest]
    kind = "ble-hrm"
    address = "A0:9E:1A:12:34:56"       # or device_name = "Polar H10 12345678"
    polar_ecg = true

Loading validates everything before any device is touched: an unknown kind or key, a value of
the wrong type or out of range, a missing required key, a sensor name used twice (also across
included profiles) or an include cycle raises :class:`~engage.core.errors.ConfigError` naming
the file, the sensor table and the key, with the allowed keys or kinds. What comes back is typed
dataclasses (:class:`Profile` holding :class:`WebcamSensor`, :class:`BleHrmSensor`,
:class:`LslSensor`, :class:`SimulatedSensor`); turning them into running sources is the job of
``engage live`` (sensors never import the signal layer that the webcam's face analyzer lives in).

Built-in profiles ship inside the package (``engage/sensors/data/*.toml``; the top-level
``sensors/`` folder of a checkout holds symlinks to them), so ``--profile polar-h10`` works from
a pip-installed engage too.

>>> p = load_profile("simulated")
>>> [(s.name, s.kind) for s in p.sensors]
[('viewer', 'simulated')]
>>> profile_from_text('[sensor.cam]\\nkind = "webcam"\\nfsp = 30\\n', "rig.toml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
engage.core.errors.ConfigError: rig.toml: [sensor.cam]: unknown key 'fsp' (allowed: ...)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Union

from engage.core.errors import ConfigError
from engage.core.event import GROUP_VIEWER
from engage.core.safeload import LoadError, load_toml

__all__ = [
    "KINDS", "LSL_STREAM_TYPES", "BleHrmSensor", "LslSensor", "Profile", "SensorSpec", "SimulatedSensor",
    "WebcamSensor", "builtin_profile_path", "builtin_profiles", "load_profile", "profile_from_text",
]

#: A profile larger than this is refused before parsing.
MAX_PROFILE_BYTES = 256 * 1024
#: How deep ``include`` may nest.
MAX_INCLUDE_DEPTH = 8
#: Engage stream types an LSL stream may be mapped to (``maps_to``), with the channel name the
#: consumers of that type look up (``channel`` renames the device's channel to it).
#: (Several streams of one type for one viewer - ``several = "all"`` - only for the types nothing
#: is derived from per viewer: see ``_finish_lsl``.)
LSL_STREAM_TYPES: dict[str, str | None] = {
    "ECG": "ecg", "EDA": "eda", "PPG": "ppg", "EEG": None, "EMG": None, "Respiration": "rsp",
    "Markers": None, "RR": "rr_s", "HeartRate": "hr_bpm", "Face": None, "Gaze": None,
}

#: ``maps_to`` types whose streams may be bound several at once for one viewer (``several = "all"``).
SEVERAL_ALLOWED = ("Markers", "EEG", "EMG")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$")


# ---------------------------------------------------------------------------------------------
# The typed result
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SensorSpec:
    """What every sensor has: its name (the ``[sensor.NAME]`` table), kind, viewer, whether the
    session may start without it, and the profile file it came from."""

    name: str
    kind: str
    viewer: str = "viewer-1"
    required: bool = False
    origin: str = ""

    def describe(self) -> str:
        """One line: what this sensor is and where it is."""
        return self.kind


@dataclass(frozen=True)
class WebcamSensor(SensorSpec):
    """A camera (``device`` index or ``url``) or a video ``file`` played as one, through the face pipeline."""

    device: int | None = None
    url: str | None = None
    file: str | None = None
    fps: float = 30.0
    width: int = 640
    height: int = 480
    screen_width_cm: float = 53.0
    screen_height_cm: float = 30.0
    viewing_distance_cm: float = 60.0
    camera_above_cm: float = 0.0
    gaze_margin_deg: float = 12.0
    task: str | None = None
    #: several people in front of one camera: up to ``faces`` viewers, ids ``<viewer>-face-1`` … (issue 21)
    faces: int = 1
    #: a face appearing mid-session: a ``new`` viewer, or ``refuse`` it (the viewers of the first frame only)
    new_faces: str = "new"

    def describe(self) -> str:
        if self.file is not None:
            return f"webcam, video file {self.file}"
        return f"webcam, camera {self.device}" if self.url is None else f"webcam, {self.url}"


@dataclass(frozen=True)
class BleHrmSensor(SensorSpec):
    """A Bluetooth heart-rate strap by MAC ``address``, by advertised ``device_name`` (the first
    strap found whose name starts with it), or, with neither, the first strap found advertising Heart Rate."""

    address: str | None = None
    device_name: str | None = None
    polar_ecg: bool = False
    wait_s: float = 15.0
    connect_timeout_s: float = 10.0

    @property
    def target(self) -> str:
        return self.address or self.device_name or ""

    def describe(self) -> str:
        return f"ble-hrm, {self.target or 'any heart-rate strap'}" + (", Polar ECG" if self.polar_ecg else "")


@dataclass(frozen=True)
class LslSensor(SensorSpec):
    """Any LSL stream, selected by ``predicate`` (``type=EDA,hostname=lab-pc``) and mapped to an
    engage stream type (``maps_to``); ``channel`` names the device channel to use as that type's channel.

    When the predicate matches several streams: ``viewer_from`` (``name``, ``source_id`` or
    ``hostname``, narrowed by the regular expression ``viewer_pattern``) gives each its own viewer;
    ``several = "all"`` binds them all for one viewer (marker and EEG streams only: the pipeline
    would merge anything it derives from); otherwise the sensor refuses, naming the candidates.
    ``from_engage`` lets it bind streams engage itself publishes (a ``replay --to-lsl``)."""

    predicate: str = ""
    maps_to: str = ""
    expected_rate: float | None = None
    channel: str | None = None
    wait_s: float = 5.0
    viewer_from: str | None = None
    viewer_pattern: str | None = None
    several: str | None = None
    from_engage: bool = False

    def describe(self) -> str:
        per = f", one viewer per {self.viewer_from}" if self.viewer_from else ""
        return f"lsl, {self.predicate} as {self.maps_to}{per}"

    def selector(self):
        """The :class:`~engage.sensors.lsl.StreamSelector` this sensor binds streams with."""
        from .lsl import StreamSelector

        return StreamSelector(self.predicate, viewer=self.viewer, viewer_from=self.viewer_from,
                              viewer_pattern=self.viewer_pattern, several=self.several,
                              from_engage=self.from_engage)


@dataclass(frozen=True)
class SimulatedSensor(SensorSpec):
    """The simulated viewer (:class:`~engage.sensors.simulated.SimulatedViewer`): a seed and
    optional trait overrides (the others drawn from the seed)."""

    seed: int = 0
    traits: tuple[tuple[str, float], ...] = ()
    ecg_rate: float = 250.0
    eda_rate: float = 16.0
    face_rate: float = 30.0
    ppg_rate: float = 64.0
    wears: tuple[str, ...] = ("ecg", "eda", "face")
    faults: Any = None  # a SensorFaults, or None: every sensor works

    def describe(self) -> str:
        worn = "" if self.wears == ("ecg", "eda", "face") else f", wearing {', '.join(self.wears) or 'nothing'}"
        return f"simulated viewer, seed {self.seed}{worn}{', with sensor faults' if self.faults else ''}"


Sensor = Union[WebcamSensor, BleHrmSensor, LslSensor, SimulatedSensor]


@dataclass(frozen=True)
class Profile:
    """A validated profile: its name, description, file and sensors (includes merged, in order)."""

    name: str
    description: str
    path: str
    sensors: tuple[Sensor, ...] = field(default_factory=tuple)
    viewer: str = "viewer-1"
    #: The profile's ``[group]`` table as written (checked by :class:`engage.events.group.GroupConfig`);
    #: empty when the profile has none (several viewers then each get their own pipeline and events,
    #: and the film follows the first).
    group: dict = field(default_factory=dict, hash=False, compare=False)

    #: The profile's ``[narrative]`` table as written (checked by the narrative layer,
    #: :class:`engage.narrative.config.NarrativeConfig`); paths in it are relative to ``path``'s folder.
    narrative: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def declared_viewers(self) -> list[str]:
        """The viewers the sensors name, in order (not those found at run time: an LSL sensor's
        ``viewer_from``, a webcam's faces)."""
        out: dict[str, None] = {}
        for s in self.sensors:
            if getattr(s, "viewer_from", None) is None and getattr(s, "faces", 1) == 1:
                out[s.viewer] = None
        return list(out)

    @property
    def simulated_only(self) -> bool:
        return bool(self.sensors) and all(isinstance(s, SimulatedSensor) for s in self.sensors)


# ---------------------------------------------------------------------------------------------
# Key checkers: each returns the value or raises ValueError with a short phrase
# ---------------------------------------------------------------------------------------------


def _string(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"must be a string, got {_kind_of(v)}")
    if not v.strip():
        raise ValueError("must not be empty")
    if any(ord(c) < 32 for c in v):
        raise ValueError("must not contain control characters")
    if len(v) > 1024:
        raise ValueError("is longer than 1024 characters")
    return v


def _name(v: Any) -> str:
    v = _string(v)
    if not _NAME.match(v):
        raise ValueError("must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, got {_kind_of(v)}")
    return v


def _number(lo: float, hi: float, integer: bool = False, lo_open: bool = False) -> Callable[[Any], float]:
    def check(v: Any):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            raise ValueError(f"must be {'an integer' if integer else 'a number'}, got {_kind_of(v)}")
        if isinstance(v, int) and abs(v) > 2 ** 63:  # math.isfinite would overflow on it
            raise ValueError(f"must be >= {lo:g} and <= {hi:g}, got an integer of {len(str(abs(v)))} digits")
        if not math.isfinite(v):
            raise ValueError(f"must be a finite number, got {v}")
        if v < lo or v > hi or (lo_open and v == lo):
            raise ValueError(f"must be {'>' if lo_open else '>='} {lo:g} and <= {hi:g}, got {v!r}")
        return int(v) if integer else float(v)
    return check


def _address(v: Any) -> str:
    v = _string(v)
    if not _MAC.match(v):
        raise ValueError(f"must be a Bluetooth MAC address like A0:9E:1A:12:34:56, got {v!r}")
    return v.upper()


def _maps_to(v: Any) -> str:
    v = _string(v)
    if v not in LSL_STREAM_TYPES:
        raise ValueError(f"unknown stream type {v!r} (use one of {', '.join(LSL_STREAM_TYPES)})")
    return v


def _predicate(v: Any) -> str:
    from .lsl import parse_predicate

    v = _string(v)
    try:
        parse_predicate(v)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return v


def _one_of_values(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        v = _string(v)
        if v not in choices:
            raise ValueError(f"must be one of {', '.join(repr(c) for c in choices)}, got {v!r}")
        return v
    return check


def _regex(v: Any) -> str:
    v = _string(v)
    try:
        re.compile(v)
    except re.error as exc:
        raise ValueError(f"is not a regular expression ({exc})") from None
    return v


def _kind_of(v: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
             dict: "a table"}
    return f"{names.get(type(v), type(v).__name__)} ({v!r})" if not isinstance(v, (list, dict)) \
        else names[type(v)]


def _checked(where: str, table: dict, allowed: dict[str, Callable[[Any], Any]]) -> dict[str, Any]:
    """Each key of ``table`` checked and converted by its entry in ``allowed``; an unknown key or a bad
    value is a ConfigError naming ``where`` and the key."""
    values: dict[str, Any] = {}
    for k, v in table.items():
        check = allowed.get(k)
        if check is None:
            raise ConfigError(f"{where}: unknown key {k!r} (allowed: {', '.join(allowed)})")
        try:
            values[k] = check(v)
        except ValueError as exc:
            raise ConfigError(f"{where}: {k} {exc}") from None
    return values


_COMMON: dict[str, Callable[[Any], Any]] = {"kind": _string, "viewer": _name, "required": _bool}

#: Every sensor kind with its keys (beyond ``kind``, ``viewer``, ``required``) and their checkers.
KINDS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "webcam": {
        "device": _number(0, 255, integer=True), "url": _string, "file": _string,
        "fps": _number(1, 240), "width": _number(16, 8192, integer=True), "height": _number(16, 8192, integer=True),
        "screen_width_cm": _number(1, 1000), "screen_height_cm": _number(1, 1000),
        "viewing_distance_cm": _number(5, 2000), "camera_above_cm": _number(-500, 500),
        "gaze_margin_deg": _number(0, 45), "task": _string,
        "faces": _number(1, 16, integer=True), "new_faces": _one_of_values(("new", "refuse")),
    },
    "ble-hrm": {
        "address": _address, "device_name": _string, "polar_ecg": _bool,
        "wait_s": _number(0, 600), "connect_timeout_s": _number(0.1, 120),
    },
    "lsl": {
        "predicate": _predicate, "type": _string, "stream_name": _string, "source_id": _string, "hostname": _string,
        "maps_to": _maps_to, "expected_rate": _number(0, 1e6), "channel": _string, "wait_s": _number(0, 600),
        "viewer_from": _one_of_values(("name", "source_id", "hostname")), "viewer_pattern": _regex,
        "several": _one_of_values(("refuse", "viewer", "all")), "from_engage": _bool,
    },
    "simulated": {
        "seed": _number(0, 2**32 - 1, integer=True), "traits": lambda v: v,
        "ecg_rate": _number(50, 2000), "eda_rate": _number(1, 1000, lo_open=False), "face_rate": _number(1, 240),
        "ppg_rate": _number(10, 1000), "wears": lambda v: v, "faults": lambda v: v,
    },
}
_CLASSES = {"webcam": WebcamSensor, "ble-hrm": BleHrmSensor, "lsl": LslSensor, "simulated": SimulatedSensor}
_PROFILE_KEYS: dict[str, Callable[[Any], Any]] = {"name": _name, "description": _string, "viewer": _name,
                                                   "include": lambda v: v}


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _data_dir() -> Path:
    return Path(str(resources.files("engage.sensors").joinpath("data")))


def builtin_profiles() -> list[str]:
    """Names of the profiles shipped with engage.

    >>> "polar-h10" in builtin_profiles()
    True
    """
    return sorted(p.stem for p in _data_dir().glob("*.toml"))


def builtin_profile_path(name: str) -> Path:
    """The file of a built-in profile; :class:`ConfigError` listing them when there is none."""
    path = _data_dir() / f"{name}.toml"
    if not _NAME.match(name) or not path.is_file():
        raise ConfigError(f"no profile {name!r}: not a file, and not a built-in profile "
                          f"(built-in: {', '.join(builtin_profiles())})")
    return path


def _resolve(spec: str | Path, relative_to: Path | None = None) -> Path:
    spec_s = str(spec)
    candidates = []
    if relative_to is not None:
        candidates.append(relative_to / spec_s)
        if not spec_s.endswith(".toml"):
            candidates.append(relative_to / f"{spec_s}.toml")
    candidates.append(Path(spec_s))
    for c in candidates:
        if c.is_file():
            return c
    if spec_s.endswith(".toml") or "/" in spec_s or "\\" in spec_s:
        raise ConfigError(f"{spec_s}: profile file not found")
    return builtin_profile_path(spec_s)


def _resolve_include(spec: str, base: Path | None) -> Path:
    """An ``include`` entry: a profile file in the including profile's folder (or below it), or a built-in
    name. Nothing outside that folder is read, so a profile cannot make engage open (and quote in its
    errors) any file the user can read."""
    if base is None or not (spec.endswith(".toml") or "/" in spec or "\\" in spec):
        if base is not None:
            for name in (spec, f"{spec}.toml"):
                if (base / name).is_file():
                    return _inside(base / name, base)
        return builtin_profile_path(spec)
    if Path(spec).is_absolute():
        raise ConfigError("an include is a path relative to the profile's folder or a built-in name, "
                          "not an absolute path")
    return _inside(base / spec, base)


def _inside(path: Path, folder: Path) -> Path:
    """``path`` with its links followed, if that stays in ``folder`` or is one of engage's built-in profiles."""
    real, root = path.resolve(), folder.resolve()
    if not (real.is_relative_to(root) or real.parent == _data_dir().resolve()):
        raise ConfigError(f"refused: it leads outside the profile's folder ({root})")
    if not real.is_file():
        raise ConfigError(f"{path}: profile file not found")
    return real


def load_profile(spec: str | Path) -> Profile:
    """Load and validate a profile: a path to a TOML file, or a built-in name (``polar-h10``).

    >>> load_profile("lab-rig").name
    'lab-rig'
    """
    return _load(_resolve(spec), chain=())


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_PROFILE_BYTES:
            raise ConfigError(f"{path}: {size} bytes is over the {MAX_PROFILE_BYTES // 1024} KB limit for a profile")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read profile: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _load(path: Path, chain: tuple[Path, ...]) -> Profile:
    key = path.resolve()
    if key in chain:
        cycle = " -> ".join(str(p) for p in (*chain, key))
        raise ConfigError(f"{path}: include cycle: {cycle}")
    if len(chain) >= MAX_INCLUDE_DEPTH:
        raise ConfigError(f"{path}: includes nested more than {MAX_INCLUDE_DEPTH} deep")
    return profile_from_text(_read(path), str(path), base=path.parent, chain=(*chain, key), default_name=path.stem)


def profile_from_text(text: str, source: str = "<string>", base: Path | None = None,
                      chain: tuple[Path, ...] = (), default_name: str | None = None) -> Profile:
    """Parse and validate a profile from TOML text; ``source`` names it in every error.
    ``include`` entries are resolved against ``base`` (then as built-in names).

    >>> profile_from_text('[sensor.s]\\nkind = "simulated"\\nseed = 4\\n').sensors[0].seed
    4
    """
    if not isinstance(text, str):
        raise ConfigError(f"{source}: profile text must be a str, got {type(text).__name__}")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PROFILE_BYTES:
        raise ConfigError(f"{source}: over the {MAX_PROFILE_BYTES // 1024} KB limit for a profile")
    try:  # the shared guarded loader: nesting and dotted keys measured before tomllib sees them
        doc = load_toml(text)
    except LoadError as exc:
        raise ConfigError(f"{source}: {exc.problem}") from None
    unknown = [k for k in doc if k not in ("profile", "sensor", "group", "narrative")]
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {unknown[0]!r} (allowed: [profile], [sensor.NAME], "
                          "[group], [narrative])")
    group = doc.get("group", {})
    if not isinstance(group, dict):
        raise ConfigError(f"{source}: 'group' must be a table ([group]), got {_kind_of(group)}")
    narrative = doc.get("narrative", {})
    if not isinstance(narrative, dict):
        raise ConfigError(f"{source}: 'narrative' must be a table ([narrative]), got {_kind_of(narrative)}")
    head = doc.get("profile", {})
    if not isinstance(head, dict):
        raise ConfigError(f"{source}: 'profile' must be a table ([profile]), got {_kind_of(head)}")
    meta = _checked(f"{source}: [profile]", head, _PROFILE_KEYS)
    viewer = meta.get("viewer", "viewer-1")
    if viewer == GROUP_VIEWER:
        raise ConfigError(f"{source}: [profile]: viewer {GROUP_VIEWER!r} is the id of the group itself; give each "
                          "person another id")
    sensors: list[Sensor] = []
    origins: dict[str, str] = {}

    def add(s: Sensor) -> None:
        if s.name in origins:
            raise ConfigError(f"{source}: sensor name {s.name!r} is used twice ([sensor.{s.name}] in "
                              f"{origins[s.name]} and in {s.origin}); give each sensor its own name")
        origins[s.name] = s.origin
        sensors.append(s)

    includes = meta.get("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) and i.strip() for i in includes):
        raise ConfigError(f"{source}: [profile]: include must be a list of profile names or paths, "
                          f"got {_kind_of(includes)}")
    merged_group: dict = {}  # an included profile's [group], its keys overridden by this profile's
    for inc in includes:
        try:
            path = _resolve_include(inc, base)
        except ConfigError as exc:
            raise ConfigError(f"{source}: [profile]: include {inc!r}: {exc}") from None
        included = _load(path, chain)
        for s in included.sensors:
            add(s)
        merged_group.update(included.group)
    table = doc.get("sensor", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: 'sensor' must be tables [sensor.NAME], got {_kind_of(table)}")
    for name, body in table.items():
        add(_sensor(source, name, body, viewer))
    if not sensors:
        raise ConfigError(f"{source}: no sensors (add a [sensor.NAME] table with a kind: {', '.join(KINDS)})")
    pname = meta.get("name") or default_name or "profile"
    return Profile(name=pname, description=meta.get("description", ""), path=source, sensors=tuple(sensors),
                   viewer=viewer, group={**merged_group, **group}, narrative=narrative)


def _sensor(source: str, name: str, body: Any, viewer: str) -> Sensor:
    where = f"{source}: [sensor.{name}]"
    try:
        _name(name)
    except ValueError as exc:
        raise ConfigError(f"{where}: the sensor name {exc}") from None
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: must be a table of keys, got {_kind_of(body)}")
    if "kind" not in body:
        raise ConfigError(f"{where}: missing required key 'kind' (one of {', '.join(KINDS)})")
    kind = body["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError(f"{where}: unknown sensor kind {kind!r} (known kinds: {', '.join(KINDS)})")
    allowed = {**_COMMON, **KINDS[kind]}
    values = _checked(where, body, allowed)
    values.pop("kind")
    if "viewer" in values and "viewer_from" in values:
        raise ConfigError(f"{where}: give either viewer or viewer_from, not both")
    values.setdefault("viewer", viewer)
    if values["viewer"] == GROUP_VIEWER:
        raise ConfigError(f"{where}: viewer {GROUP_VIEWER!r} is the id of the group itself; give each person "
                          "another id")
    finish = {"webcam": _finish_webcam, "ble-hrm": _finish_ble, "lsl": _finish_lsl, "simulated": _finish_simulated}
    values = finish[kind](where, values)
    return _CLASSES[kind](name=name, kind=kind, origin=source, **values)


def _one_of(where: str, values: dict, keys: tuple[str, ...], default: tuple[str, Any] | None = None) -> None:
    given = [k for k in keys if k in values]
    if len(given) > 1:
        raise ConfigError(f"{where}: give only one of {', '.join(keys)} (got {', '.join(given)})")
    if not given:
        if default is None:
            raise ConfigError(f"{where}: missing required key: one of {', '.join(keys)}")
        values[default[0]] = default[1]


def _finish_webcam(where: str, values: dict) -> dict:
    _one_of(where, values, ("device", "url", "file"), default=("device", 0))
    return values


def _finish_ble(where: str, values: dict) -> dict:
    given = [k for k in ("address", "device_name") if k in values]
    if len(given) > 1:
        raise ConfigError(f"{where}: give only one of address, device_name (got both); neither means the "
                          "first heart-rate strap a scan finds")
    return values


def _finish_lsl(where: str, values: dict) -> dict:
    parts = [(k, values.pop(k)) for k in ("type", "stream_name", "source_id", "hostname") if k in values]
    if "predicate" in values and parts:
        raise ConfigError(f"{where}: give either predicate or type/stream_name/source_id/hostname, not both")
    if "predicate" not in values:
        if not parts:
            raise ConfigError(f"{where}: missing required key: predicate, or one of type, stream_name, source_id, "
                              "hostname")
        for k, v in parts:
            if "," in v or "=" in v or "'" in v:
                raise ConfigError(f"{where}: {k} must not contain ',', '=' or quotes (use predicate for XPath)")
        try:
            values["predicate"] = _predicate(",".join(f"{'name' if k == 'stream_name' else k}={v}" for k, v in parts))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if "maps_to" not in values:
        lsl_type = dict(parts).get("type")
        if lsl_type in LSL_STREAM_TYPES:
            values["maps_to"] = lsl_type
        else:
            raise ConfigError(f"{where}: missing required key 'maps_to' (the engage stream type: "
                              f"{', '.join(LSL_STREAM_TYPES)})")
    several, by = values.get("several"), values.get("viewer_from")
    if several == "viewer" and by is None:
        raise ConfigError(f"{where}: several = \"viewer\" needs viewer_from (name, source_id or hostname): "
                          "what tells the viewers apart")
    if by is not None and several not in (None, "viewer"):
        raise ConfigError(f"{where}: viewer_from gives one viewer per stream; it cannot go with several = {several!r}")
    if "viewer_pattern" in values and by is None:
        raise ConfigError(f"{where}: viewer_pattern needs viewer_from (the property it is matched against)")
    if several == "all" and values["maps_to"] not in SEVERAL_ALLOWED:
        raise ConfigError(f"{where}: several = \"all\" would merge {values['maps_to']} streams into one viewer's "
                          f"features; it is for {', '.join(SEVERAL_ALLOWED)} (use viewer_from for one viewer per "
                          "stream, or a narrower predicate)")
    return values


def _simulated_faults(where: str, table: Any):
    """``[sensor.NAME.faults]`` → a :class:`~engage.sensors.simulated.SensorFaults`."""
    from .simulated import SensorFaults

    if not isinstance(table, dict):
        raise ConfigError(f"{where}: faults must be a table (never, dropouts, dropout_rate_per_hour, "
                          f"dropout_median_s), got {_kind_of(table)}")
    values = _checked(f"{where}: faults", table, {
        "never": lambda v: v, "dropouts": lambda v: v, "dropout_rate_per_hour": _number(0, 3600),
        "dropout_median_s": _number(0, 86400, lo_open=True)})
    never = values.get("never", [])
    if not isinstance(never, list) or not all(isinstance(k, str) for k in never):
        raise ConfigError(f"{where}: faults.never must be an array of sensor names, got {_kind_of(never)}")
    dropouts = values.get("dropouts", [])
    if not isinstance(dropouts, list) or not all(isinstance(d, list) and len(d) == 3 and isinstance(d[0], str)
                                                 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                         for x in d[1:]) for d in dropouts):
        raise ConfigError(f"{where}: faults.dropouts must be an array of [sensor, start_s, duration_s], "
                          f"e.g. [[\"face\", 120, 30]]")
    try:
        return SensorFaults(never=tuple(never), dropouts=tuple((d[0], float(d[1]), float(d[2])) for d in dropouts),
                            **{k: values[k] for k in ("dropout_rate_per_hour", "dropout_median_s") if k in values})
    except (ConfigError, OverflowError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _finish_simulated(where: str, values: dict) -> dict:
    from .simulated import SENSOR_KINDS, ViewerTraits

    if "wears" in values:
        wears = values["wears"]
        if (not isinstance(wears, list) or not all(isinstance(k, str) and k in SENSOR_KINDS for k in wears)
                or len(set(wears)) != len(wears)):
            raise ConfigError(f"{where}: wears must be an array of distinct sensors among "
                              f"{', '.join(SENSOR_KINDS)}, got {wears!r}")
        values["wears"] = tuple(wears)
    if "faults" in values:
        values["faults"] = _simulated_faults(where, values["faults"])
    traits = values.pop("traits", None)
    if traits is None:
        return values
    allowed = [f.name for f in fields(ViewerTraits)]
    if not isinstance(traits, dict):
        raise ConfigError(f"{where}: traits must be a table of numbers ({', '.join(allowed)}), got {_kind_of(traits)}")
    out = []
    for k, v in traits.items():
        if k not in allowed:
            raise ConfigError(f"{where}: traits: unknown key {k!r} (allowed: {', '.join(allowed)})")
        try:
            x = _number(0, 1e4)(v)
        except ValueError as exc:
            raise ConfigError(f"{where}: traits.{k} {exc}") from None
        if x <= 0 and k != "noise":
            raise ConfigError(f"{where}: traits.{k} must be > 0, got {v!r}")
        out.append((k, x))
    values["traits"] = tuple(out)
    return values
