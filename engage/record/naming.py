"""Where a recording goes: LabRecorder's file-name conventions.

* **BIDS names** from the participant, session, task, run (and optional acquisition and
  modality): ``sub-P001/ses-S001/eeg/sub-P001_ses-S001_task-rest_run-001_eeg.xdf`` under a
  study root, LabRecorder's BIDS template ``sub-%p/ses-%s/%m/sub-%p_ses-%s_task-%b[_acq-%a]_run-%r_%m.xdf``
  with the run zero-padded to three digits, as LabRecorder writes it.
* **Legacy templates** with the same placeholders (``exp%n/block_%b.xdf``: ``%n`` the run).
* **Never overwrite**: an existing file is renamed to ``<name>_old1.xdf`` (``_old2`` … when
  taken), LabRecorder's way, unless the caller asks to overwrite; :class:`Target` can put it
  back when nothing was recorded after all.

>>> bids_path("study", "P001", "S001", "rest", 1).as_posix()
'study/sub-P001/ses-S001/eeg/sub-P001_ses-S001_task-rest_run-001_eeg.xdf'
>>> expand_template("exp%n/%p_block_%b.xdf", participant="P3", task="memory", run=2)
'exp002/P3_block_memory.xdf'
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from engage.core.errors import ConfigError

log = logging.getLogger(__name__)

#: LabRecorder's BIDS template (``[_acq-%a]`` only when an acquisition is given).
BIDS_TEMPLATE = "sub-%p/ses-%s/%m/sub-%p_ses-%s_task-%b[_acq-%a]_run-%r_%m.xdf"
_LABEL = re.compile(r"^[A-Za-z0-9]+$")


def _label(what: str, value: str) -> str:
    value = str(value).strip()
    if not _LABEL.match(value):
        raise ConfigError(f"{what} {value!r}: a BIDS label is letters and digits only (e.g. P001, rest)")
    return value


def expand_template(template: str, participant: str = "P001", session: str = "S001", task: str = "Default",
                    run: int = 1, acquisition: str = "", modality: str = "eeg") -> str:
    """Replace LabRecorder's placeholders: ``%p`` participant, ``%s`` session, ``%b`` task (block),
    ``%a`` acquisition, ``%m`` modality, ``%r`` and ``%n`` the run (three digits); ``[…]`` keeps its
    content only when the acquisition is given."""
    if run < 0:
        raise ConfigError(f"run {run}: must be 0 or more")
    text = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1) if acquisition else "", template)
    for key, value in (("%p", participant), ("%s", session), ("%b", task), ("%a", acquisition), ("%m", modality)):
        text = text.replace(key, value)
    run_text = f"{run:03d}"
    return text.replace("%r", run_text).replace("%n", run_text)


def bids_path(root: str | os.PathLike, participant: str, session: str = "S001", task: str = "Default", run: int = 1,
              acquisition: str = "", modality: str = "eeg") -> Path:
    """The BIDS-style file of a recording under ``root`` (see the module docstring); labels are checked."""
    parts = dict(participant=_label("participant", participant), session=_label("session", session),
                 task=_label("task", task), acquisition=_label("acquisition", acquisition) if acquisition else "",
                 modality=_label("modality", modality).lower(), run=int(run))
    return Path(root) / expand_template(BIDS_TEMPLATE, **parts)


@dataclass
class Target:
    """The file a recording goes to, made free first: ``renamed`` is where an existing file was moved
    (``None`` if there was none, or it was overwritten)."""

    path: Path
    renamed: Path | None = None

    def restore(self) -> None:
        """Nothing was recorded: remove the new file and put the old one back where it was."""
        try:
            self.path.unlink(missing_ok=True)
            if self.renamed is not None:
                os.replace(self.renamed, self.path)
                self.renamed = None
        except OSError as exc:
            log.warning("%s: could not restore: %s", self.path, exc)


def free_target(path: str | os.PathLike, overwrite: bool = False) -> Target:
    """Make ``path`` free for a new recording: create its folder, and move an existing file to
    ``<stem>_old<N><suffix>`` (the first free N) unless ``overwrite``. A folder in the way, or a
    rename that fails, is a :class:`ConfigError` naming the file.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); (d / "s.xdf").write_bytes(b"XDF:")
    4
    >>> free_target(d / "s.xdf").renamed.name
    's_old1.xdf'
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a file to record into")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{path.parent}: cannot create the folder: {exc.strerror or exc}") from None
    if not path.exists() or overwrite:
        return Target(path)
    n = 1
    while (old := path.with_name(f"{path.stem}_old{n}{path.suffix}")).exists():
        n += 1
    try:
        os.replace(path, old)
    except OSError as exc:
        raise ConfigError(f"{path}: exists and cannot be moved to {old.name}: {exc.strerror or exc}") from None
    log.info("%s existed: moved to %s", path, old)
    return Target(path, old)
