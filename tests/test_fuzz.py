"""Every parser of outside input, fuzzed: a mutated file or packet is accepted or refused with a typed
error, never an unhandled exception. ``benchmarks/fuzz.py`` runs the same fuzzers by the hundred thousand,
with hang and memory limits; this runs a few hundred cases per parser on every test run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage.core.errors import EngageError
from support.fuzz_targets import TARGETS, mutate

#: the parsers fuzzed here
FUZZED = ["ble-hrm", "ble-pmd", "rr-file", "xdf", "csv", "e4-signal", "e4-ibi", "e4-tags", "pickle", "profile",
          "model-file", "story-toml", "story-yaml", "story-ink", "llm-reply"]


@pytest.mark.parametrize("name", FUZZED)
def test_a_mutated_input_is_accepted_or_refused_with_a_typed_error(name):
    target = TARGETS[name]
    seeds = target.seeds()
    if not seeds:
        pytest.skip(f"no seed inputs for {name} here")

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.integers(0, len(seeds) - 1), st.integers(0, len(seeds) - 1), st.randoms(use_true_random=False))
    def check(i, j, rnd):
        data = mutate(seeds[i], rnd, target.text, seeds[j])
        with tempfile.TemporaryDirectory() as tmp:
            try:
                target.run(data, Path(tmp))
            except EngageError:
                pass

    check()
