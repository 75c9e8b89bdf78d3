"""``make bench``: ``uv run python bench/run.py [--customers N] [--events M] [--large]``."""

import sys
from pathlib import Path


def _main() -> None:
    # Run as a script, Python puts bench/ first on the path: put the project root there
    # instead, so the benchmark's modules import as the ``bench`` package.
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    from bench.suite import main

    main()


if __name__ == "__main__":
    _main()
