"""The film's media folder and the plan → player cues: safe paths, cheap checks, warnings once, headlines
never cut mid-word, the media route (range requests, nothing outside the folder, a huge file streamed)."""

from __future__ import annotations

import logging
import os
import re
import resource
import threading
import time
from pathlib import Path

import pytest

from engage.core.errors import ConfigError
from engage.media import MediaLibrary, scene_cues, writer_tags
from engage.media.cues import headline_and_body, shorten, transition

WEBM = bytes.fromhex("1a45dfa3") + bytes(200)
OGG = b"OggS" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0" + bytes(200)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "film"
    (root / "clips").mkdir(parents=True)
    (root / "studio.webm").write_bytes(WEBM)
    (root / "studio.jpg").write_bytes(JPEG)
    (root / "rain.ogg").write_bytes(OGG)
    (root / "clips" / "archive.webm").write_bytes(WEBM)
    (root / "broken.webm").write_bytes(b"this is not a video at all")
    (root / "empty.ogg").write_bytes(b"")
    (root / ".hidden.webm").write_bytes(WEBM)
    (tmp_path / "secret.webm").write_bytes(WEBM)
    os.symlink(tmp_path / "secret.webm", root / "escape.webm")
    os.symlink(root / "studio.webm", root / "alias.webm")  # a link that stays inside is fine
    return root


def test_files_inside_the_folder_are_found_and_everything_leading_out_is_refused(folder, tmp_path):
    lib = MediaLibrary(folder)
    assert lib.locate("studio.webm") == (folder / "studio.webm").resolve()
    assert lib.locate("clips/archive.webm") is not None
    assert lib.locate("alias.webm") == (folder / "studio.webm").resolve()
    for bad in ("../secret.webm", "/etc/passwd", str(tmp_path / "secret.webm"), "clips/../../secret.webm",
                "escape.webm", ".hidden.webm", "clips/.", "a\x00b.webm", "..\\secret.webm", "C:/x.webm", "",
                "clips", "x" * 2000, None, 42):
        assert lib.locate(bad) is None, bad


def test_find_checks_kind_and_first_bytes_and_warns_once(folder, caplog):
    lib = MediaLibrary(folder)
    with caplog.at_level(logging.WARNING, logger="engage.media.library"):
        assert lib.find("studio.webm", "video", "studio").url == "/media/studio.webm"
        assert lib.find("rain.ogg", "audio").mime == "audio/ogg"
        for _ in range(3):  # a looping scene asks again and again: one warning
            assert lib.find("missing.webm", "video", "studio") is None
        assert lib.find("broken.webm", "video", "studio") is None
        assert lib.find("empty.ogg", "audio", "studio") is None
        assert lib.find("studio.jpg", "video", "studio") is None  # wrong kind
        assert lib.find("../secret.webm", "video", "studio") is None
        assert lib.find("escape.webm", "video", "studio") is None
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert text.count("'missing.webm'") == 1 and "of scene 'studio': not found in" in text
    assert "'broken.webm' of scene 'studio': not a webm file (its first bytes are 7468697320697320)" in text
    assert "'empty.ogg' of scene 'studio': the file is empty" in text
    assert "a video must be one of .webm" in text
    assert "'../secret.webm' of scene 'studio': refused: media must be named by a path inside" in text
    assert "'escape.webm' of scene 'studio': refused: not a regular file inside" in text
    assert all("the scene plays without it" in r.getMessage() for r in caplog.records)
    assert len(lib.warnings) == 6


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"--media .*nope: not a folder .*engage media make-sample DIR"):
        MediaLibrary(tmp_path / "nope")


def test_files_named_after_scenes_are_used_when_no_tag_names_one(folder):
    lib = MediaLibrary(folder)
    cues = scene_cues({"scene": "studio", "title": "Studio", "text": "Night."}, {}, lib)
    assert cues["video"] == {"url": "/media/studio.webm", "loop": True}
    assert cues["image"]["url"] == "/media/studio.jpg" and cues["text"] == "subtitles"
    assert scene_cues({"scene": "archive", "title": "A", "text": ""}, {}, lib)["video"]["url"] == \
        "/media/clips/archive.webm"
    # a tag wins over the name, and a tag naming a missing file leaves the scene without video (text only)
    tagged = scene_cues({"scene": "studio", "title": "S", "text": "x"}, {"video": "clips/archive.webm"}, lib)
    assert tagged["video"]["url"] == "/media/clips/archive.webm"
    gone = scene_cues({"scene": "studio", "title": "S", "text": "x"}, {"video": "gone.webm", "image": "gone.jpg"}, lib)
    assert gone["video"] is None and gone["image"] is None and gone["text"] == "card" and gone["headline"] == "S"


def test_cues_read_every_writer_tag(folder):
    lib = MediaLibrary(folder)
    plan = {"scene": "x", "title": "Studio", "text": "Night falls.", "directives": {"pacing": "fast"},
            "tags": {"audio": "rain.ogg, studio.webm, missing.ogg", "sfx": "rain.ogg @ 2.5, rain.ogg",
                     "transition": "cut", "speaker": "Lena", "image": "studio.jpg", "motion": "left", "loop": "false",
                     "video": "studio.webm"}}
    cues = scene_cues(plan, None, lib)
    assert cues["audio"] == ["/media/rain.ogg"]  # a video file is no audio stem; a missing one is left out
    assert cues["sfx"] == [{"url": "/media/rain.ogg", "at": 2.5}, {"url": "/media/rain.ogg", "at": 0.0}]
    assert cues["transition"] == {"type": "cut", "seconds": 0.0} and cues["speaker"] == "Lena"
    assert cues["image"] == {"url": "/media/studio.jpg", "motion": "left"} and cues["video"]["loop"] is False
    assert scene_cues({**plan, "tags": {}}, None, None)["transition"] == {"type": "crossfade", "seconds": 0.35}


def test_writer_tags_merge_story_tags_and_plan_fields():
    media = [{"kind": "video", "src": "a.webm", "options": {}}]
    tags = writer_tags({"media": media, "tags": {"sfx": "b.ogg"}, "speaker": "Lena"}, {"video": "old.webm", "act": 1})
    assert tags == {"video": "old.webm", "act": 1, "sfx": "b.ogg", "speaker": "Lena", "media": media}


def test_cues_read_the_scene_plan_contracts_media_list(folder):
    """A plan written to the scene-plan contract lists its media cues ({kind, src, options}); they win over the
    story's tags and media.toml, and their options say loop, cut, crossfade, when and how loud."""
    lib = MediaLibrary(folder)
    plan = {"scene": "studio", "title": "Studio", "text": "x", "directives": {"pacing": "slow"}, "tags": {},
            "media": [{"kind": "video", "src": "clips/archive.webm", "options": {"loop": False, "crossfade": 3}},
                      {"kind": "audio", "src": "rain.ogg", "options": {"loop": True, "volume": 0.4}},
                      {"kind": "sfx", "src": "rain.ogg", "options": {"at": 2.5}},
                      {"kind": "sfx", "src": "rain.ogg", "options": {"at": 4}},
                      {"kind": "image", "src": "studio.jpg", "options": {"motion": "right"}}]}
    cues = scene_cues(plan, {"video": "studio.webm"}, lib)
    assert cues["video"] == {"url": "/media/clips/archive.webm", "loop": False}
    assert cues["transition"] == {"type": "crossfade", "seconds": 3.0}
    assert cues["audio"] == ["/media/rain.ogg"] and cues["image"] == {"url": "/media/studio.jpg", "motion": "right"}
    assert cues["sfx"] == [{"url": "/media/rain.ogg", "at": 2.5}, {"url": "/media/rain.ogg", "at": 4.0}]
    cut = {**plan, "media": [{"kind": "video", "src": "studio.webm", "options": {"cut": True}}]}
    assert scene_cues(cut, None, lib)["transition"] == {"type": "cut", "seconds": 0.0}


def test_media_toml_maps_media_to_a_story_that_names_none(folder):
    (folder / "media.toml").write_text('[film]\ntitle = "The Film"\n[scene.studio]\nvideo = "clips/archive.webm"\n'
                                       'audio = ["rain.ogg"]\nsfx = ["rain.ogg @ 1.5"]\ntransition = "cut"\n')
    lib = MediaLibrary(folder)
    assert lib.film == {"title": "The Film"}
    cues = scene_cues({"scene": "studio", "title": "S", "text": "t"}, {}, lib)
    assert cues["video"]["url"] == "/media/clips/archive.webm" and cues["audio"] == ["/media/rain.ogg"]
    assert cues["sfx"] == [{"url": "/media/rain.ogg", "at": 1.5}] and cues["transition"]["type"] == "cut"
    # the story's own tag wins
    assert scene_cues({"scene": "studio", "title": "S", "text": "t"}, {"video": "studio.webm"}, lib)["video"]["url"] \
        == "/media/studio.webm"
    for bad, message in (('[scene.studio]\nvidoe = "x.webm"\n', "unknown key 'vidoe'"),
                         ("[scene.studio]\nvideo = {a = 1}\n", "scene.studio.video: a string"),
                         ("[other]\n", "unknown table"), ("not toml [", "not valid TOML"),
                         ('[film]\ntitle = 3\n', "[film] may hold title and credits"),
                         # through the guarded TOML loader, as profiles and stories: a dotted table name like this
                         # costs tomllib quadratic time (a 200 kB file of them took 23 GB)
                         ("[scene." + "a." * 200 + "a]\n", "202 dotted parts"),
                         ("# " + "x" * 1024 * 1024 + "\n", "over 1024 kB")):
        (folder / "media.toml").write_text(bad)
        with pytest.raises(ConfigError, match=re.escape(message)):
            MediaLibrary(folder)


@pytest.mark.parametrize("title,text,tag,expected", [
    ("The Telegraph Bell", "Three rings. Nobody moves.", None, ("The Telegraph Bell", "Three rings. Nobody moves.")),
    # an ink scene's title is the start of its text: the first sentence becomes the headline, said once
    ("Midnight at Radio Kestrel. Lena reads the weather to a sleeping", "Midnight at Radio Kestrel. Lena reads the "
     "weather to a sleeping town while Tomas sorts the record shelf.", None,
     ("Midnight at Radio Kestrel.", "Lena reads the weather to a sleeping town while Tomas sorts the record shelf.")),
    ("x", "Whatever.", "The Studio", ("The Studio", "Whatever.")),
    ("", "", None, ("", "")),
    ("A woman called Nadia asks for a song nobody has played since the war and", "A woman called Nadia asks for a "
     "song nobody has played since the war and she cries while the needle drops onto it.", None,
     ("A woman called Nadia asks for a song nobody has played since the…", "A woman called Nadia asks for a song "
      "nobody has played since the war and she cries while the needle drops onto it.")),
])
def test_headlines_are_never_cut_mid_word(title, text, tag, expected):
    assert headline_and_body(title, text, tag) == expected


def test_a_bracketed_direction_is_for_the_operator_not_the_audience():
    cues = scene_cues({"scene": "studio", "title": "Midnight at Radio Kestrel. Lena reads the weather to a sleep",
                       "text": "[pacing fast, music 0.80, stakes high] Midnight at Radio Kestrel. Lena reads the "
                               "weather to a sleeping town.", "rewritten": True, "rewritten_by": "template"}, {}, None)
    assert cues["headline"] == "Midnight at Radio Kestrel."
    assert cues["body"] == "Lena reads the weather to a sleeping town."
    assert cues["direction"] == "pacing fast, music 0.80, stakes high"
    assert scene_cues({"scene": "x", "title": "X", "text": "No [direction] here."}, {}, None)["body"] == \
        "No [direction] here."


def test_shorten_and_transition_edge_cases():
    assert shorten("word " * 40, 20) == "word word word word…"
    assert shorten("Supercalifragilisticexpialidocious", 10) == "Supercalif…"
    assert transition({"transition": "crossfade 99"}, None) == {"type": "crossfade", "seconds": 10.0}
    assert transition({"transition": "crossfade nonsense"}, "slow") == {"type": "crossfade", "seconds": 2.4}
    assert transition({"crossfade": 3}, None) == {"type": "crossfade", "seconds": 3.0}
    assert transition({"transition": ""}, "steady") == {"type": "crossfade", "seconds": 1.2}


# ------------------------------------------------------------------------------------ the server route

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from engage.dashboard import DashboardFeed, create_app  # noqa: E402


def client(folder: Path, token: str | None = None) -> TestClient:
    feed = DashboardFeed(media=MediaLibrary(folder))
    return TestClient(create_app(feed, token), base_url="http://127.0.0.1:8765")


def test_media_route_serves_ranges_and_refuses_everything_outside(folder):
    c = client(folder)
    r = c.get("/media/studio.webm")
    assert r.status_code == 200 and r.content == WEBM and r.headers["content-type"] == "video/webm"
    assert r.headers["accept-ranges"] == "bytes" and r.headers["x-content-type-options"] == "nosniff"
    part = c.get("/media/studio.webm", headers={"Range": "bytes=4-9"})
    assert part.status_code == 206 and part.content == WEBM[4:10]
    assert part.headers["content-range"] == f"bytes 4-9/{len(WEBM)}"
    assert c.head("/media/clips/archive.webm").status_code == 200
    for bad in ("/media/..%2fsecret.webm", "/media/%2e%2e/secret.webm", "/media/escape.webm", "/media/.hidden.webm",
                "/media/clips", "/media/nothing.webm", "/media/%2fetc%2fpasswd", "/media/clips/..%2f..%2fsecret.webm",
                "/media/notes.txt"):
        assert c.get(bad).status_code == 404, bad
    assert client(folder, token="s3cret").get("/media/studio.webm").status_code == 403
    assert client(folder, token="s3cret").get("/media/studio.webm?token=s3cret").status_code == 200
    no_media = TestClient(create_app(DashboardFeed()), base_url="http://127.0.0.1:8765")
    assert no_media.get("/media/studio.webm").status_code == 404


def test_a_huge_file_is_streamed_not_read_whole(folder):
    """A 4 GB file (sparse: it takes no disk) served by the real server: a range from its end comes back at once,
    and reading 200 MB of it through the server leaves the server's memory where it was."""
    from engage.dashboard import DashboardServer

    huge = folder / "huge.webm"
    with open(huge, "wb") as f:
        f.write(WEBM)
        f.truncate(4 * 1024 ** 3)
    server = DashboardServer(port=0, media=MediaLibrary(folder)).start()
    try:
        url = f"http://127.0.0.1:{server.port}/media/huge.webm"
        t0 = time.monotonic()
        r = httpx.get(url, headers={"Range": "bytes=4294967000-4294967295"})
        assert r.status_code == 206 and len(r.content) == 296 and time.monotonic() - t0 < 5
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        got = 0
        with httpx.stream("GET", url, timeout=60) as s:
            assert s.headers["content-length"] == str(4 * 1024 ** 3)
            for chunk in s.iter_bytes():
                got += len(chunk)
                if got >= 200 * 1024 ** 2:
                    break
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert got >= 200 * 1024 ** 2 and grown_mb < 100, grown_mb
    finally:
        server.stop()
    assert threading.active_count() < 50
