"""ffmpeg's minterpolate as a process of its own, through PyAV, for the bench's headline where no ffmpeg
command is installed: ``python -m vidrestore.evaluate.minterpolate_run IN OUT FACTOR``."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[2].isdigit():
        sys.stderr.write("usage: python -m vidrestore.evaluate.minterpolate_run IN OUT FACTOR\n")
        return 2
    from vidrestore.evaluate.baselines import minterpolate_file

    minterpolate_file(Path(argv[0]), Path(argv[1]), int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
