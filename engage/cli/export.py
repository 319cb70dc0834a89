"""``engage export``: an XDF recording as FIF, EDF or BrainVision through MNE-Python."""

from __future__ import annotations

import argparse

from .common import FORMATTER

ORDER = 32


def register(sub) -> None:
    e = sub.add_parser(
        "export", formatter_class=FORMATTER, help="an XDF recording as FIF, EDF or BrainVision (through MNE)",
        description="Writes an XDF recording (LabRecorder, engage record, engage live --record) as a file the\n"
                    "EEG tools read: FIF (MNE-Python), EDF, BrainVision. The regularly sampled streams go on\n"
                    "the grid of the fastest one (its samples as they are, the others interpolated; holes\n"
                    "are BAD_no_data annotations); markers and engage events become annotations, labelled\n"
                    "with the marker text or the event type, and are also written to NAME_events.tsv\n"
                    "with each event's JSON. An engage recording contributes its raw streams (--derived:\n"
                    "its derived ones too). Needs MNE-Python: pip install -e \".[mne]\".",
        epilog="examples:\n  engage export session.xdf --to fif          # session_raw.fif + session_events.tsv\n"
               "  engage export session.xdf --to edf -o out/s01.edf\n"
               "  engage export session.xdf --to brainvision --streams EEG --streams Markers\n"
               "then: mne.io.read_raw_fif('session_raw.fif').annotations")
    e.add_argument("file", help="the XDF recording")
    e.add_argument("--to", choices=["fif", "edf", "brainvision"], help="the format (default: from -o, else fif)")
    e.add_argument("-o", "--output", help="the file to write (default: beside the recording)")
    e.add_argument("--streams", action="append", metavar="NAME_OR_TYPE", help="only these streams (repeat)")
    e.add_argument("--derived", action="store_true", help="also an engage recording's derived streams")
    e.add_argument("--overwrite", action="store_true", help="replace an existing file (default: move it to _old1)")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engage.io import export

    out = export(args.file, args.output, args.to, args.streams, args.derived, args.overwrite)
    print(f"engage export: wrote {out} (markers also in {out.name.split('.')[0].removesuffix('_raw')}_events.tsv)")
    return 0
