"""Windows of neighbours, scene-cut scores, padding and tiles (pure bookkeeping, no model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import moving_pattern, real_frames
from vidrestore.config import DEFAULT_SCENE_THRESHOLD
from vidrestore.tiler import Canvas, crop_to, pad_to_multiple, tile_grid
from vidrestore.windows import SceneDetector, plan_window, scene_score, scene_thumbnail


def cuts_at(*idx: int):
    return lambda j: j in idx


def test_window_interior_and_ends():
    no_cut = cuts_at()
    assert plan_window(3, 10, no_cut).frames == (2, 3, 4, 5)
    w0 = plan_window(0, 10, no_cut)
    assert w0.frames == (0, 0, 1, 2) and w0.interpolate
    w8 = plan_window(8, 10, no_cut)
    assert w8.frames == (7, 8, 9, 9) and w8.interpolate
    last = plan_window(9, 10, no_cut)
    assert last.frames == (8, 9, 9, 9) and not last.interpolate
    single = plan_window(0, 1, no_cut)
    assert single.frames == (0, 0, 0, 0) and not single.interpolate


def test_window_never_crosses_a_cut():
    cut = cuts_at(5)  # cut between frames 4 and 5
    before = plan_window(4, 10, cut)
    assert before.frames == (3, 4, 4, 4) and not before.interpolate
    assert plan_window(3, 10, cut).frames == (2, 3, 4, 4)
    after = plan_window(5, 10, cut)
    assert after.frames == (5, 5, 6, 7) and after.interpolate
    for c in range(10):
        w = plan_window(c, 10, cut)
        assert all((f >= 5) == (c >= 5) for f in w.frames), w


@pytest.mark.parametrize("h,w", [(48, 64), (45, 67), (5, 3), (1, 9), (17, 1)])
def test_pad_to_multiple_and_crop_back(h, w):
    x = torch.rand(2, 3, h, w)
    y = pad_to_multiple(x, 8)
    assert y.shape[-2] % 8 == 0 and y.shape[-1] % 8 == 0
    assert y.shape[-2] - h < 8 and y.shape[-1] - w < 8
    assert torch.equal(crop_to(y, h, w), x)


def test_padding_is_a_reflection():
    x = torch.arange(5 * 6, dtype=torch.float32).reshape(1, 1, 5, 6)
    y = pad_to_multiple(x, 8)
    assert torch.equal(y[0, 0, :5, 6], x[0, 0, :, 4])  # column 6 mirrors column 4
    assert torch.equal(y[0, 0, 5, :6], x[0, 0, 3, :])  # row 5 mirrors row 3


@pytest.mark.parametrize("h,w,tile,overlap",
                         [(96, 160, 64, 16), (48, 48, 64, 16), (200, 120, 64, 32), (64, 256, 40, 8)])
def test_tile_cores_cover_every_pixel_once(h, w, tile, overlap):
    tiles = tile_grid(h, w, tile, overlap, 8)
    cover = np.zeros((h, w), dtype=int)
    for t in tiles:
        assert t.h % 8 == 0 and t.w % 8 == 0 and t.h <= max(tile + 8, h) and t.y0 + t.h <= h and t.x0 + t.w <= w
        assert (t.h, t.w) == (tiles[0].h, tiles[0].w)  # same size: they batch together
        assert t.y0 <= t.cy0 < t.cy1 <= t.y0 + t.h and t.x0 <= t.cx0 < t.cx1 <= t.x0 + t.w
        cover[t.cy0:t.cy1, t.cx0:t.cx1] += 1
    assert (cover == 1).all()


def test_scene_score_separates_motion_from_cuts():
    street = real_frames("01_dog.mp4", 6, 96, 54)
    cups = real_frames("02_cups.mp4", 6, 96, 54)
    motion = [scene_score(scene_thumbnail(a), scene_thumbnail(b)) for a, b in zip(street, street[1:])]
    motion += [scene_score(scene_thumbnail(a), scene_thumbnail(b)) for a, b in zip(cups, cups[1:])]
    cut = scene_score(scene_thumbnail(street[-1]), scene_thumbnail(cups[0]))
    assert max(motion) < DEFAULT_SCENE_THRESHOLD < cut
    assert scene_score(scene_thumbnail(street[0]), scene_thumbnail(street[0])) == 0.0


def test_scene_detector_flags_the_first_frame_after_a_cut():
    frames = real_frames("01_dog.mp4", 4, 96, 54) + real_frames("03_blocks.mp4", 4, 96, 54)
    det = SceneDetector(DEFAULT_SCENE_THRESHOLD)
    assert [det(f) for f in frames] == [False] * 4 + [True] + [False] * 3
    off = SceneDetector(None)
    assert not any(off(f) for f in frames)


def test_thumbnail_accepts_16_bit():
    f8 = moving_pattern(1, 64, 48)[0]
    f16 = f8.astype(np.uint16) * 257
    assert np.allclose(scene_thumbnail(f8), scene_thumbnail(f16), atol=1e-5)


def test_canvas_pastes_tile_cores_into_host_frames():
    """Cores pasted tile by tile give the whole quantized frame, cropped from the padding, on the host."""
    h, w = 37, 50
    x = torch.rand(2, 3, 40, 56)
    tiles = tile_grid(40, 56, 24, 8, 8)
    assert len(tiles) > 1
    canvas = Canvas(2, h, w, np.uint8)
    for t in tiles:
        canvas.paste(0, x[..., t.y0:t.y0 + t.h, t.x0:t.x0 + t.w], t)
    want = (x[..., :h, :w].clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    got = np.stack(canvas.split())
    assert got.shape == (2, h, w, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
