"""The project's own promises about how it is installed and tested."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command_against_the_constraints():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    test_command = next(b for b in blocks if "pytest" in b).strip()
    assert "-c constraints.txt" in test_command
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.replace(" && python -m pytest", "") in ci
    assert "python -m pytest" in ci


def test_constraints_pin_every_direct_dependency_exactly():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    names = {re.split(r"[<>=!~;\[ ]", w, maxsplit=1)[0].lower().replace("_", "-") for w in wanted}
    names.discard("tomli")  # only on Python < 3.11
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pinned[name.lower().replace("_", "-")] = version
    assert sorted(names - pinned.keys()) == []
