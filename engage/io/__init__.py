"""Recordings into the tools labs analyse with: MNE-Python (``read_raw``) and FIF, EDF, BrainVision files
(``export``). Needs the optional extra: ``pip install -e ".[mne]"``.

>>> raw = read_raw("session.xdf")                              # doctest: +SKIP
>>> raw.annotations.description[:3]                            # doctest: +SKIP
array(['stim 0', 'boredom.onset', 'stim 1'], dtype='<U13')
>>> export("session.xdf", "session.fif")                       # doctest: +SKIP
"""

from .xdf_mne import EXPORT_FORMATS, export, read_raw

__all__ = ["EXPORT_FORMATS", "export", "read_raw"]
