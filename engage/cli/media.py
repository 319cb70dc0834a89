"""``engage media``: the film's media folder - make the sample film's, check a folder against a story."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engage.core.errors import ConfigError

from .common import FORMATTER

ORDER = 40

EXAMPLES = """\
examples:
  engage media make-sample film/            # the sample film's stills, clips and sounds (a few minutes)
  engage live --profile simulated --story engage/narrative/stories/last_broadcast.ink.json \\
      --media film/ --dashboard             # watch it: open the player URL it prints
  engage media check film/ --story engage/narrative/stories/last_broadcast.ink.json

A scene's media come from the story's tags (ink: # video: clip.webm, # image:, # audio: bed.ogg, stem.ogg,
# sfx: bang.ogg @ 2.5, # transition: cut | crossfade 2), else from the folder's media.toml
([scene.ID] tables with the same keys), else from files named after the scene (studio.webm, studio.jpg,
studio.ogg). Clips: WebM (VP8/VP9) or MP4; sounds: Ogg (Opus/Vorbis), MP3, WAV.
"""


def register(sub) -> None:
    p = sub.add_parser("media", formatter_class=FORMATTER,
                       help="a film's media folder: make the sample film's, check one",
                       description="The clips, stills and sounds the player page plays for each scene.",
                       epilog=EXAMPLES)
    msub = p.add_subparsers(dest="media_command", metavar="WHAT")
    make = msub.add_parser("make-sample", formatter_class=FORMATTER, epilog=EXAMPLES,
                           help="make the media of the sample film The Last Broadcast (needs ffmpeg)",
                           description="Draws a still per scene, makes a looping clip of it with ffmpeg, synthesises\n"
                                       "ambience, music stems and sound effects, and writes media.toml mapping\n"
                                       "them to the story's 24 scenes. All made by code in engage; MIT licensed.\n"
                                       "A few minutes on a laptop (each clip is encoded with ffmpeg).")
    make.add_argument("folder", help="where to write (created)")
    make.add_argument("--scenes", help="only these scenes, comma-separated (default: all)")
    make.set_defaults(func=run_make)
    check = msub.add_parser("check", formatter_class=FORMATTER, epilog=EXAMPLES,
                            help="list what each scene of a story gets from a media folder, and what is missing")
    check.add_argument("folder")
    check.add_argument("--story", help="the story (default: the sample ink story)")
    check.set_defaults(func=run_check)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_make(args: argparse.Namespace) -> int:
    from engage.media.sample import SCENES, make_sample_film

    scenes = [s.strip() for s in args.scenes.split(",") if s.strip()] if args.scenes else None
    if scenes:
        unknown = sorted(set(scenes) - set(SCENES))
        if unknown:
            raise ConfigError(f"--scenes: no scene {', '.join(map(repr, unknown))} in The Last Broadcast "
                              f"(scenes: {', '.join(SCENES)})")
    t0 = time.monotonic()

    def say(line: str) -> None:
        print(f"engage media: [{time.monotonic() - t0:5.1f} s] {line}", file=sys.stderr, flush=True)

    out = make_sample_film(args.folder, progress=say, scenes=scenes)
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    print(f"{out}: {len(scenes or SCENES)} scenes, {size / 1e6:.1f} MB")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from engage.media import MediaLibrary, scene_cues
    from engage.narrative.ink import sample_ink_path
    from engage.narrative.story import GraphPlayer, StoryError, open_story

    library = MediaLibrary(args.folder)
    try:
        player = open_story(args.story or sample_ink_path())
    except StoryError as exc:
        raise ConfigError(str(exc)) from None
    if isinstance(player, GraphPlayer):
        scenes = [(s.id, s.title, s.text, dict(s.tags)) for s in player.story.scenes.values()]
    else:
        scenes = [(k, k, "", player._knot_tags(k)) for k in player.knots]
    bare = 0
    for scene_id, title, text, tags in scenes:
        cues = scene_cues({"scene": scene_id, "title": title, "text": text}, tags, library)
        got = [f"video {cues['video']['url']}" if cues["video"] else "",
               f"image {cues['image']['url']}" if cues["image"] else "",
               f"{len(cues['audio'])} sound(s)" if cues["audio"] else "",
               f"{len(cues['sfx'])} sfx" if cues["sfx"] else ""]
        got = [g for g in got if g]
        bare += not (cues["video"] or cues["image"])
        print(f"{scene_id:<18} {', '.join(got) or 'text only'}")
    for warning in library.warnings:
        print(f"  warning: {warning}")
    print(f"{len(scenes)} scenes, {bare} without a picture, {len(library.warnings)} problem(s)")
    return 1 if library.warnings else 0
