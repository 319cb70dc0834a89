"""Print what this test run is made of: Python, the CPU features NumPy dispatches to (results of
floating-point code can differ between CPUs), every installed package with its version, and the
ones that differ from constraints.txt."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path


def main() -> None:
    print(f"python {platform.python_version()} on {platform.machine()} {platform.system()}")
    try:
        from numpy._core._multiarray_umath import __cpu_features__  # type: ignore[attr-defined]

        simd = [k for k in ("AVX2", "FMA3", "AVX512F", "AVX512_SKX", "AVX512_ICL", "NEON") if __cpu_features__.get(k)]
        print(f"cpu features numpy uses: {' '.join(simd) or 'baseline only'}")
    except ImportError:
        pass
    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()}
    print("installed: " + " ".join(f"{n}=={v}" for n, v in sorted(installed.items())))
    pinned = {}
    constraints = Path(__file__).resolve().parents[1] / "constraints.txt"
    for line in constraints.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pinned[name.strip().lower().replace("_", "-")] = version.strip()
    drift = [f"{n} {pinned[n]} -> {v}" for n, v in sorted(installed.items()) if n in pinned and pinned[n] != v]
    print(f"differs from constraints.txt: {', '.join(drift) if drift else 'nothing'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
