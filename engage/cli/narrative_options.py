"""The story and narrative flags shared by ``engage live``, ``replay``, ``demo`` and ``story play``.

Each flag matches a key of a profile's ``[narrative]`` table
(:class:`~engage.narrative.config.NarrativeConfig`); a flag given on the command line wins.
"""

from __future__ import annotations

import argparse
from typing import Any

REWRITERS = ("none", "template", "llm")

EPILOG = """\
story and narrative (the same flags for live, replay, demo and story play; in a profile, the
[narrative] table takes the same names: story, overlay, rewriter, llm_url, llm_model, ...):
  --story night.ink.json --overlay night-tags.toml      a compiled ink story, tags added by name
  --rewriter llm --llm-url http://127.0.0.1:11434/v1 --llm-model llama3.2
                                                        rewrite scenes with a local model (Ollama)
  --osc 127.0.0.1:9000 --ws 127.0.0.1:8766              plans and the viewer's state to players
  the API key is read from $ENGAGE_LLM_API_KEY (or the variable --llm-api-key-env names)
"""


def add_narrative_arguments(parser: argparse.ArgumentParser, story: bool = True) -> None:
    """Add the narrative flags (``story=False``: the command takes the story as a positional)."""
    g = parser.add_argument_group(
        "story and narrative",
        "how the story is played: which story, how scenes are rewritten, where plans go. Every flag "
        "matches a key of a profile's [narrative] table and wins over it.")
    if story:
        g.add_argument("--story", help="the story: compiled ink JSON (.ink.json), TOML or YAML "
                                      "(default: the built-in story)")
    g.add_argument("--overlay", metavar="FILE.toml",
                   help="tags for the knots of a compiled ink story, by knot name (intensity, interruptible, "
                        "cut_to, fate points ...), without editing the story")
    g.add_argument("--rewriter", choices=REWRITERS, default=None,
                   help="rewrite each scene's text to the director's decision: none, template (the default: "
                        "a stage direction, offline) or llm (an OpenAI-compatible endpoint; needs --llm-url)")
    g.add_argument("--llm-url", metavar="URL", help="the endpoint up to /v1, e.g. http://127.0.0.1:11434/v1 "
                                                    "(Ollama), http://127.0.0.1:8080/v1 (llama.cpp), :8000/v1 (vLLM)")
    g.add_argument("--llm-model", metavar="NAME", help="the model name the server knows (default: llama3.2)")
    g.add_argument("--llm-api-key-env", metavar="VAR",
                   help="the environment variable holding the API key (default: ENGAGE_LLM_API_KEY); the key "
                        "itself never goes on the command line")
    g.add_argument("--llm-prompt", metavar="FILE", help="a system prompt (text file) replacing the built-in one")
    g.add_argument("--llm-max-tokens", type=int, metavar="N", help="most tokens per reply (default: 600)")
    g.add_argument("--llm-temperature", type=float, metavar="T", help="sampling temperature (default: 0.7)")
    g.add_argument("--llm-seed", type=int, metavar="N", help="sampling seed, for servers that honour it")
    g.add_argument("--llm-timeout", type=float, metavar="S",
                   help="total deadline of one request, connection to last byte (default: 20 s); a late "
                        "rewrite is dropped and the authored scene plays")
    g.add_argument("--osc", metavar="HOST:PORT", help="send every plan, the viewer's state (2 Hz) and the story's "
                                                      "end as OSC messages to HOST:PORT (UDP)")
    g.add_argument("--ws", metavar="HOST:PORT", help="serve plans, the viewer's state and the story's end on a "
                                                     "WebSocket at HOST:PORT (JSON messages)")
    g.add_argument("--ws-wait", type=float, metavar="S",
                   help="with --ws: before the story starts, wait up to S seconds for a player to connect")
    g.add_argument("--scenes-out", metavar="FILE.jsonl", help="write every scene plan as a JSON line here")


def narrative_config(args: argparse.Namespace, base: Any = None) -> Any:
    """The :class:`~engage.narrative.config.NarrativeConfig` of ``base`` (a profile's, or the
    defaults) with the flags given on the command line taking precedence."""
    from engage.narrative.config import NarrativeConfig

    cfg = base if base is not None else NarrativeConfig()
    return cfg.merged(
        story=getattr(args, "story", None), overlay=args.overlay, rewriter=args.rewriter, llm_url=args.llm_url,
        llm_model=args.llm_model, llm_api_key_env=args.llm_api_key_env, llm_prompt=args.llm_prompt,
        llm_max_tokens=args.llm_max_tokens, llm_temperature=args.llm_temperature, llm_seed=args.llm_seed,
        llm_timeout_s=args.llm_timeout, osc=args.osc, ws=args.ws, ws_wait_s=args.ws_wait, scenes_out=args.scenes_out)
