"""``enhance`` with the bundled default weights gives the decoded frames recorded for them.

The pin is of the default weights' output: when the bundled default changes, re-record it on purpose
(``python scripts/make_pin_assets.py record``). The record (``tests/assets/pinned_outputs.npz``) holds, per
output frame, the sha256 of the decoded planes and a fixed sample of them (every 8th row and column). Frames
must be identical; where they are not (a different CPU's vector width can reorder float sums), the sample
may differ by at most one code value on at most 0.1% of its pixels.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_pin_assets", REPO / "scripts" / "make_pin_assets.py")
pins = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pins)


@pytest.mark.parametrize("name,src,args", pins.CASES, ids=[c[0] for c in pins.CASES])
def test_enhance_output_is_pinned(tmp_path: Path, name: str, src: Path, args: list[str]) -> None:
    record = np.load(pins.RECORD)
    dst = tmp_path / f"{name}.mkv"
    pins.run_enhance(src, args, dst)
    hashes, samples = pins.fingerprint(pins.decoded_planes(dst))
    want_hashes = record[f"{name}/sha256"]
    want = record[f"{name}/samples"]
    assert len(hashes) == len(want_hashes)
    if list(hashes) == list(want_hashes):
        return
    got = np.stack(samples).astype(np.int32)
    diff = np.abs(got - want.astype(np.int32))
    assert diff.max() <= 1, f"a sampled pixel moved by {diff.max()} code values"
    assert (diff > 0).mean() <= 1e-3, f"{(diff > 0).mean():.4%} of sampled pixels changed"
