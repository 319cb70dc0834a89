"""Canon checks: does a rewritten scene keep to the story?

:func:`check_rewrite` takes a model's reply (already parsed JSON) and the authored scene with
what it must keep, and lists every problem; an empty list means the rewrite may play. The story
state it checks against is the state *after the scene's own effects*: a character who dies in
the scene is dead in its rewrite.

* **schema**: an object with exactly ``text`` (non-empty string, at most :data:`MAX_TEXT`
  characters), ``directives`` (``pacing`` slow/steady/fast, ``palette`` string,
  ``music_intensity`` 0..1, ``stakes`` low/medium/high), ``cast`` (names) and ``exits``
  (scene or choice ids);
* **the decision stands**: the directives are the ones the director asked for (a rewrite may
  change the words, never the pacing, stakes, palette or music);
* **dead characters stay dead**: a character the story's state says is dead (``<name>_alive``
  false, or a ``fate`` that kills them) is not in the cast (unless they die in this very
  scene), is never said to be alive (alive, unhurt, breathing, gets up …) in a sentence that
  names them or the one after, and, if they died before this scene, is named only in a sentence
  that remembers or mourns them (or in one of the writer's own sentences). A character who dies
  in the scene must still be named with their death (falls, shot, dies …). This holds even when
  the authored text names them;
* **no new named characters**: every cast name is in the allowed cast, and the text names no
  one the allowed cast, the authored text and ordinary English do not know - capitalised words
  in any position, in capitals, with accents or invisible characters; multi-word cast names
  are matched whole (and by their parts);
* **exits lead to real scenes**: every exit is one of the scene's real exits;
* **required beats present**: each beat phrase (the scene's ``beats`` tag, ``;``-separated) is in the text;
* **prose for the viewer, nothing else**: no instructions or notes to the model, no words
  addressed to the viewer or reader, no role markers, code, markup or links.

Names are compared case- and accent-insensitively (``Zoë`` = ``ZOE`` = ``zoe``).

>>> from engage.narrative.story import Scene
>>> s = Scene("tea", "Tea", "Tea with Tomas.", 0.2, "calm", 30.0, "amber", ("Lena", "Tomas"))
>>> reply = {"text": "Tea with Tomas; Marco walks in.", "cast": ["Lena", "Tomas"], "exits": [],
...          "directives": {"pacing": "slow", "palette": "amber", "music_intensity": 0.2, "stakes": "low"}}
>>> check_rewrite(reply, s, allowed_cast=("Lena", "Tomas"), exits=())
["text names 'Marco', who is not in the story's cast (allowed: Lena, Tomas)"]
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Iterable, Mapping, Sequence

from engage.core.safeload import finite_number

from .story import Scene

MAX_TEXT = 4000

#: The JSON schema the model is asked to follow.
REWRITE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text", "directives", "cast", "exits"],
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
        "directives": {
            "type": "object", "additionalProperties": False,
            "required": ["pacing", "palette", "music_intensity", "stakes"],
            "properties": {
                "pacing": {"enum": ["slow", "steady", "fast"]},
                "palette": {"type": "string"},
                "music_intensity": {"type": "number", "minimum": 0, "maximum": 1},
                "stakes": {"enum": ["low", "medium", "high"]},
            },
        },
        "cast": {"type": "array", "items": {"type": "string"}},
        "exits": {"type": "array", "items": {"type": "string"}},
    },
}

#: How far a reply's music intensity may be from the one asked for.
MUSIC_TOLERANCE = 0.05

# Instructions, role markers, markup and links: a scene is prose only.
_INJECTION = re.compile(
    r"(ignore (all |any )?(the |your )?(previous|prior|above|earlier) (instructions|rules|prompts?)|disregard (the|all|any|previous|your)|"
    r"system prompt|new instructions|you are now\b|you are (an? )?(ai|assistant|language model|chatbot)|as an ai\b|"
    r"<\|[a-z_]*\|>|\[/?inst\]|<</?sys>>|\b(system|assistant|developer|user)\s*:|```|https?://|www\.|"
    r"</?[a-z][a-z0-9]*(\s[^<>]*)?>|\{\{|\}\}|\$\{|^\s*#{1,6}\s|\*\*[^*]+\*\*|\bjson\b|\bschema\b|"
    r"\bprompt\b|\binstructions?\b|\bjailbreak|\bdo anything now\b|\b(chatgpt|openai|gpt-?\d|llama|claude|mistral|ollama)\b)",
    re.IGNORECASE | re.MULTILINE)
# Words addressed to the viewer or the model, or about the rewrite itself: not part of a scene.
_ADDRESS = re.compile(
    r"(\bdear (viewer|reader|audience|user|friend)s?\b|\b(viewers?|readers?|audiences?|players?|users?)\b|"
    r"\bthe (viewer|reader|audience|player|user)\b|\byou,? the (viewer|reader|audience|player)\b|"
    r"\b(language model|llm|ai model|the model|this model|as a model)\b|"
    r"\b(here is|here's|below is|i have|i've|i will|i'll|i can(?:not|'t)?|i'm sorry|i am sorry|sorry,? but|"
    r"i hope|hope you|let me know|feel free|happy to help|as requested|as you asked|certainly!|sure!|of course!)\b"
    r".{0,40}\b(rewrite|rewritten|rewriting|version|scene|text|request|help|story|enjoy|assist|you)\b|"
    r"\b(this|the|my) (rewrite|rewritten (scene|text|version)|revision|revised (scene|text|version))\b|"
    r"\b(in|for) this scene\b|\bscene (text|description|rewrite)\b|\b(note|n\.b|p\.s|disclaimer|warning|"
    r"translation|summary|output|response|answer|reply)\s*[:)\]-]|\((note|n\.b\.|ps|edit)\b|\[(note|edit|"
    r"scene|cut|music|sfx|stage)\b|\bstay tuned\b|\b(like and )?subscribe\b|\bclick (here|the)\b|"
    r"\bpacing\s*[:=]|\bmusic[_ ]intensity\b|\bstakes\s*[:=]|\bdirectives?\b|\btarget intensity\b|@[a-z0-9_]+\.[a-z]{2,})",
    re.IGNORECASE)

# Characters that should never be in prose: controls, zero-width and direction marks.
_INVISIBLE = re.compile("[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]")

_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’\-](?=[^\W\d_]))*")
_SENTENCE = re.compile(r"(?<=[.!?…])\s+|\n+|(?<=[.!?…][\"'”’])\s+")

# Saying a character is alive.
_LIFE = re.compile(
    r"\b(alive|aliveness|survives?|survived|surviving|survivor|unhurt|unharmed|uninjured|unscathed|"
    r"breath(e|es|ing)|breathing again|back to life|comes? (back|to)|came (back|to)|wakes?|woke|awakens?|"
    r"awake|revives?|revived|recovers?|recovered|(gets?|got|stands?|stood|sits?|sat|climbs?|climbed|"
    r"jumps?|jumped|springs?|sprang|picks? (him|her|them)sel(f|ves)) (up|back up)|"
    r"opens? (his|her|their) eyes|(is|was|are|were|seems?|looks?) (fine|okay|ok|well|safe|alright|all right)|"
    r"not dead|isn'?t dead|wasn'?t dead|never died|did(n'?t| not) die|lives on|lives|escapes|escaping|"
    r"smiles|smiling|laughs|laughing|grins|walks (in|away|out|back)|waves|winks|speaks|says|whispers|answers|"
    r"nods|hugs|returns|is back|comes home)\b",
    re.IGNORECASE)
# Remembering or mourning: how a dead character may still be named.
_MEMORY = re.compile(
    r"\b(dead|death|died|dies|dying|killed|murdered|slain|corpse|body|bodies|grave|graves|buried|burial|funeral|"
    r"coffin|mourn\w*|grie(f|ve|ves|ved|ving)|memor(y|ies)|remember\w*|recall\w*|ghost\w*|the late|loss|gone|"
    r"absence|absent|empty (chair|seat|desk)|photo\w*|picture|portrait|name on|used to|once|would have|"
    r"blood|bled|lifeless|no longer|never again|last words?|farewell|goodbye|in memory|remains)\b", re.IGNORECASE)
# How a character dies: a scene that kills someone keeps saying so.
_DEATH = re.compile(
    r"\b(dies|died|dying|dead|death|killed|kills|shot|shoots|stabbed|falls?|fell|fallen|thrown|collaps\w*|"
    r"crumpl\w*|slump\w*|lifeless|still|bleed\w*|blood\w*|last breath|goes limp|went limp|over the edge|"
    r"gone|drown\w*|crush\w*|struck|strikes)\b", re.IGNORECASE)
_PRONOUN_START = re.compile(r"^\W*(he|she|they|his|her|him|them|their)\b", re.IGNORECASE)

#: Ordinary words that may open a sentence (or stand capitalised in one) without naming anyone.
COMMON_WORDS = frozenset("""
a about above across after afterwards again against ago ahead all almost alone along already also although
always am among an and another any anybody anyone anything anyway anywhere are around as aside at away back
because before behind below beneath beside besides between beyond both but by can cannot could dawn day days
did do does doing done down during each early either else elsewhere enough even ever every everybody everyone
everything everywhere except far few first for from further god had half has have having he her here hers
herself him himself his how however i if in indeed inside instead into is it its itself just last later least
less like little long many maybe me meanwhile midnight might mine more moreover morning most mostly much must
my myself near nearly neither never nevertheless next night no nobody none noon nor not nothing now nowhere of
off often oh on once one only onto or other others otherwise ought our ours ourselves out outside over own
perhaps quite rather really right same seconds several shall she should silence since slowly so some somebody
someone something sometimes somewhere soon still such suddenly than that the their theirs them themselves then
there therefore these they this those though through throughout thus till to today together tomorrow tonight
too toward towards under underneath unless until up upon us very was we well were what whatever when whenever
where wherever whether which while who whoever whole whom whose why will with within without yes yesterday
yet you your yours yourself yourselves ah alas hush listen look quick quickly quietly softly carefully
gently sharply finally eventually instantly immediately minutes hours moments moment seconds later earlier
above below outside inside upstairs downstairs somewhere nothing everything rain thunder lightning wind snow
fog smoke fire water light darkness dark shadows shadow footsteps steps silence static music sparks glass
blood no not none nothing let lets please thank thanks good bad old new young great small big every each
another other radio phone door doors window windows wall walls floor roof street streets town city studio
room rooms hall corridor stairs lights lamp lamps tea coffee cold hot warm cool wet dry red blue green black
white grey gray gold golden silver dead alive slow fast fear hope love hate time sleep dreams dream morning
evening afternoon monday tuesday wednesday thursday friday saturday sunday january february march april may
june july august september october november december mr mrs ms miss sir madam lady lord doctor dr captain
officer sergeant inspector detective commander general professor father mother brother sister uncle aunt
son daughter husband wife friend friends man woman men women boy girl child children people someone everyone
he'd she'd they'd i'd we'd you'd he'll she'll they'll i'll we'll you'll he's she's it's that's there's
here's what's who's i'm you're we're they're i've you've we've they've isn't aren't wasn't weren't don't
doesn't didn't can't couldn't won't wouldn't shouldn't mustn't haven't hasn't hadn't
""".split())


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a name: ``"Zoë O’Neil"`` → ``"zoe o'neil"``.

    >>> fold("NÁDIA") == fold("Nadia")
    True
    """
    decomposed = unicodedata.normalize("NFKD", str(text))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain.replace("’", "'").casefold().strip()


def dead_characters(facts: Mapping[str, Any]) -> set[str]:
    """Names whose ``<name>_alive`` fact is false (``nadia_alive`` → ``Nadia``).

    >>> sorted(dead_characters({"nadia_alive": False, "tomas_alive": True, "knows_code": False}))
    ['Nadia']
    """
    out = set()
    for key, value in facts.items():
        key = str(key)
        if key.lower().endswith("_alive") and len(key) > len("_alive") and value is False:
            out.add(key[: -len("_alive")].replace("_", " ").title())
    return out


_DEATH_OUTCOMES = {"dies", "dead", "killed", "death", "murdered", "executed", "drowned", "shot", "perishes"}


def fated_dead(fates: Iterable[Mapping[str, Any]]) -> set[str]:
    """Characters whose fate (``{character, outcome}``) is a death."""
    return {str(f.get("character")) for f in fates if isinstance(f, Mapping) and isinstance(f.get("character"), str)
            and fold(str(f.get("outcome", ""))) in _DEATH_OUTCOMES}


def required_beats(scene: Scene) -> list[str]:
    """The beat phrases the scene must keep (its ``beats`` tag, ``;``-separated)."""
    raw = (scene.tags or {}).get("beats")
    if isinstance(raw, str):
        return [b.strip() for b in raw.split(";") if b.strip()]
    if isinstance(raw, (list, tuple)):
        return [str(b).strip() for b in raw if str(b).strip()]
    return []


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s.strip()]


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _base(word: str) -> str:
    return re.sub(r"['’]s?$", "", word)


def _mentions(name: str, folded_text: str) -> bool:
    """Whether ``name`` (whole, or a distinctive word of a multi-word name) is in the folded text."""
    whole = fold(name)
    if not whole:
        return False
    parts = [whole] + [p for p in whole.split() if len(p) > 2 and p not in COMMON_WORDS] if " " in whole else [whole]
    return any(re.search(rf"(?<![\w]){re.escape(p)}(?![\w])", folded_text) for p in parts)


def names_in(text: str, known: Iterable[str] = ()) -> set[str]:
    """Capitalised words in any position (or words in capitals) that ordinary English and
    ``known`` (names and words the story already uses, compared folded) do not explain, with
    multi-word ``known`` names removed whole first.

    >>> sorted(names_in("Marco walks in. Then ZOË and Inspector Harlow.", known=["Inspector Harlow"]))
    ['Marco', 'ZOË']
    """
    known_folded = {fold(k) for k in known if isinstance(k, str)}
    folded = fold(text)
    for k in sorted((k for k in known_folded if " " in k), key=len, reverse=True):
        folded = re.sub(rf"(?<![\w]){re.escape(k)}(?![\w])", " ", folded)
    known_words = set()
    for k in known_folded:
        known_words.update(k.split())
    out = set()
    remaining = set(_words(folded))
    for w in _words(text):
        base = _base(w)
        if not base[:1].isupper() or len(base) < 2:
            continue
        f = fold(base)
        if f not in remaining and fold(w) not in remaining:
            continue  # part of a known multi-word name
        if f in COMMON_WORDS or f in known_words:
            continue
        out.add(base)
    return out


def check_schema(reply: Any) -> list[str]:
    """Problems of the reply's shape (see :data:`REWRITE_SCHEMA`)."""
    if not isinstance(reply, dict):
        return [f"reply must be a JSON object, got {type(reply).__name__}"]
    problems = []
    required = set(REWRITE_SCHEMA["required"])
    for k in sorted(required - set(reply)):
        problems.append(f"missing key {k!r}")
    for k in sorted((str(k) for k in set(reply) - required)):
        problems.append(f"unknown key {k[:40]!r}")
    text = reply.get("text")
    if "text" in reply and (not isinstance(text, str) or not text.strip()):
        problems.append("text must be a non-empty string")
    elif isinstance(text, str) and len(text) > MAX_TEXT:
        problems.append(f"text is {len(text)} characters, over {MAX_TEXT}")
    d = reply.get("directives")
    if "directives" in reply:
        if not isinstance(d, dict):
            problems.append("directives must be an object")
        else:
            props = REWRITE_SCHEMA["properties"]["directives"]["properties"]
            for k in sorted(set(props) - set(d)):
                problems.append(f"directives: missing {k!r}")
            for k in sorted(str(k) for k in set(d) - set(props)):
                problems.append(f"directives: unknown key {k[:40]!r}")
            for k in ("pacing", "stakes"):
                if k in d and (not isinstance(d[k], str) or d[k] not in props[k]["enum"]):
                    problems.append(f"directives.{k} must be one of {props[k]['enum']}, got {_short(d[k])}")
            if "palette" in d and not isinstance(d["palette"], str):
                problems.append("directives.palette must be a string")
            m = d.get("music_intensity")
            if "music_intensity" in d and not (finite_number(m) and 0 <= m <= 1):
                problems.append(f"directives.music_intensity must be a number within [0, 1], got {_short(m)}")
    for k in ("cast", "exits"):
        if k in reply and not (isinstance(reply[k], list) and all(isinstance(x, str) for x in reply[k])):
            problems.append(f"{k} must be an array of strings")
    return problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _names(values: Iterable[Any]) -> list[str]:
    return [v for v in values if isinstance(v, str) and v.strip()]


def check_rewrite(reply: Any, authored: Scene, allowed_cast: Iterable[Any] = (), exits: Sequence[Any] = (),
                  facts: Mapping[str, Any] | None = None, beats: Sequence[str] | None = None,
                  directives: Mapping[str, Any] | None = None, dying: Iterable[str] = (),
                  dead: Iterable[str] = ()) -> list[str]:
    """Every problem of ``reply`` as a rewrite of ``authored`` (empty: it may play).

    ``facts`` is the story state after the scene's own effects; ``dead`` adds characters known
    dead otherwise (fates), ``dying`` names those who die in this scene; ``directives`` are the
    director's (the reply must repeat them).
    """
    problems = check_schema(reply)
    if problems:
        return problems
    text: str = reply["text"]
    allowed = set(_names(allowed_cast)) | set(_names(authored.cast))
    allowed_folded = {fold(a) for a in allowed}
    dying_set = {fold(d) for d in _names(dying)}
    dead_names = dead_characters(facts or {}) | set(_names(dead)) | {d for d in _names(dying)}
    dead_by_fold = {fold(d): d for d in dead_names}
    allowed_text = ", ".join(sorted(allowed)) or "nobody"

    if directives:
        d = reply["directives"]
        for key in ("pacing", "stakes", "palette"):
            if key in directives and d.get(key) != directives[key]:
                problems.append(f"directives.{key} is {d.get(key)!r} but the director asked for {directives[key]!r}; "
                                "a rewrite may change the words, not the decision")
        m = directives.get("music_intensity")
        if isinstance(m, (int, float)) and abs(float(d["music_intensity"]) - float(m)) > MUSIC_TOLERANCE:
            problems.append(f"directives.music_intensity is {d['music_intensity']} but the director asked for "
                            f"{float(m):.2f}; a rewrite may change the words, not the decision")

    if _INVISIBLE.search(text):
        problems.append("text carries invisible or control characters")

    for name in reply["cast"]:
        f = fold(name)
        if f in dead_by_fold and f not in dying_set:
            problems.append(f"cast revives {dead_by_fold[f]!r}, who is dead in this story")
        elif f not in allowed_folded and f not in dying_set:
            problems.append(f"cast adds {name[:40]!r}, who is not in the story's cast (allowed: {allowed_text})")

    authored_sentences = {fold(" ".join(s.split())) for s in _sentences(authored.text)}
    sentences = _sentences(text)
    folded_sentences = [fold(s) for s in sentences]
    for f_name, name in sorted(dead_by_fold.items()):
        mentioned_at = [i for i, s in enumerate(folded_sentences) if _mentions(name, s)]
        for i in mentioned_at:
            own = fold(" ".join(sentences[i].split())) in authored_sentences
            after = sentences[i + 1] if i + 1 < len(sentences) and _PRONOUN_START.match(sentences[i + 1]) else ""
            life = _LIFE.search(sentences[i]) or (_LIFE.search(after) if after else None)
            if own:
                continue
            if life and f_name not in dying_set:
                problems.append(f"text says {name!r} is alive ({life.group(0)!r}), who is dead in this story")
                break
            if f_name in dying_set:
                continue
            if not _MEMORY.search(sentences[i]):
                problems.append(f"text brings back {name!r}, who is dead in this story (named without a death or "
                                "a memory)")
                break
        if f_name in dying_set and _mentions(name, fold(authored.text)):
            # the scene kills them: the rewrite keeps them and their death, and never revives them
            if not mentioned_at:
                problems.append(f"text leaves out {name!r}, who dies in this scene")
            elif not any(_DEATH.search(sentences[i]) or
                         (i + 1 < len(sentences) and _PRONOUN_START.match(sentences[i + 1])
                          and _DEATH.search(sentences[i + 1])) for i in mentioned_at):
                problems.append(f"text leaves out how {name!r} dies in this scene")
            tail = " ".join(sentences[max(mentioned_at):]) if mentioned_at else ""
            revival = _REVIVAL.search(tail)
            if revival:
                problems.append(f"text says {name!r} is alive ({revival.group(0)!r}), who dies in this scene")

    known = list(allowed) + list(dead_names) + _words(authored.text) + _words(authored.title)
    for name in sorted(names_in(text, known)):
        problems.append(f"text names {name[:40]!r}, who is not in the story's cast (allowed: {allowed_text})")
    real = {e for e in exits if isinstance(e, str)}
    for e in reply["exits"]:
        if e not in real:
            problems.append(f"exit {e[:40]!r} is not a scene this one leads to (real exits: "
                            f"{', '.join(sorted(real)) or 'none'})")
    for beat in (beats if beats is not None else required_beats(authored)):
        if fold(beat) not in fold(text):
            problems.append(f"required beat {beat!r} is missing from the text")
    authored_folded = fold(authored.text)
    m = _first_new(_INJECTION, text, authored_folded)
    if m:
        problems.append(f"text carries instructions or markup ({m.strip()[:40]!r}); a scene is prose only")
    m = _first_new(_ADDRESS, text, authored_folded)
    if m:
        problems.append(f"text speaks to the viewer or the model, or about itself ({m.strip()[:40]!r}); "
                        "a scene is prose only")
    return problems


def _first_new(pattern: re.Pattern, text: str, authored_folded: str) -> str | None:
    """The first match of ``pattern`` in ``text`` that the writer's own text does not contain."""
    for m in pattern.finditer(text):
        if fold(m.group(0).strip()) not in authored_folded:
            return m.group(0)
    return None


# After a death in the scene: words that undo it.
_REVIVAL = re.compile(
    r"\b(alive|survives?|survived|unhurt|unharmed|uninjured|unscathed|breath(es|ing)|back to life|"
    r"not dead|isn'?t dead|never died|did(n'?t| not) die|opens? (his|her|their) eyes|wakes?( up)?|woke|"
    r"(gets?|got|stands?|stood|sits?|sat|climbs?|climbed) (back )?up|recovers?|recovered|"
    r"(is|was|seems?|looks?) (fine|okay|ok|safe|alright|all right)|lives on)\b", re.IGNORECASE)
