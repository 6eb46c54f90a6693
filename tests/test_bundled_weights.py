"""The default weights shipped inside the package (the flow-prior network): found offline, checksum-verified, and
sane on real frames. Nothing here depends on which file is bundled: a newly trained one passes the same checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import make_engine, reds_rgb
from vidrestore.cli import main
from vidrestore.model.prior_net import PriorNet
from vidrestore.prior import window_prior
from vidrestore.weights import DEFAULT_WEIGHTS, load_model, locate


@pytest.fixture(scope="module")
def bundled():
    return load_model(DEFAULT_WEIGHTS, torch.device("cpu"))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean().clamp_min(1e-12)))


def test_default_weights_are_bundled_and_verified_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    path, _ = locate(DEFAULT_WEIGHTS)
    assert Path(path).is_file() and Path(path).suffix == ".safetensors"
    result = CliRunner().invoke(main, ["weights", "verify"])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output.lower()


def _u8(x: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [0, 1] -> HxWx3 uint8, for the prior."""
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def run(model, window: torch.Tensor, times: torch.Tensor):
    """The network on one window [1, 4, 3, H, W] with its classical prior, as the engine gives it."""
    prior = window_prior([_u8(window[0, i]) for i in range(4)])
    with torch.no_grad():
        return model(window, times, prior)


def test_the_default_is_the_flow_prior_network(bundled):
    assert isinstance(bundled, PriorNet) and not bundled.training


def test_static_scene_comes_back_unchanged(bundled):
    """Four copies of one sharp real frame: the key and every in-between frame stay that frame."""
    img = reds_rgb(0)[:96, :128].copy()
    frame = torch.from_numpy(img).permute(2, 0, 1).float().div(255).unsqueeze(0)
    window = frame.unsqueeze(1).expand(1, 4, 3, *frame.shape[-2:])
    key, inter = run(bundled, window, torch.tensor([0.25, 0.5, 0.75]))
    assert _psnr(key.clamp(0, 1), frame) > 38
    for j in range(3):
        assert _psnr(inter[:, j].clamp(0, 1), frame) > 38


def test_enhance_with_bundled_weights_from_another_directory(make_clip, tmp_path, monkeypatch):
    clip = make_clip("in.mp4", n=6, size=(64, 48))
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(main, ["enhance", str(clip), "-o", "out.mp4", "--fps-x", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    import av

    with av.open(str(work / "out.mp4")) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert n == 12


def test_tiled_output_matches_whole_frame_output(bundled):
    """Tiles with overlapping context leave no seams: scored against the truth, tiled and whole-frame
    interpolation of real frames are at most 0.1 dB apart."""
    frames = [reds_rgb(i) for i in range(0, 10)]
    inputs, truth = frames[0::2], frames[1::2]

    def score(**tiles) -> float:
        engine = make_engine(bundled, factor=2, mode="interp", scene_threshold=None, **tiles)
        out = list(engine.process(inputs))
        made = out[1:-1:2]  # the frames between inputs (the last one repeats the last input)
        mse = [np.mean((m.astype(np.float64) - t.astype(np.float64)) ** 2) for m, t in zip(made, truth)]
        return float(np.mean([10 * np.log10(255**2 / max(e, 1e-12)) for e in mse]))

    whole = score()
    tiled = score(tile=128, tile_overlap=48)
    assert abs(whole - tiled) <= 0.1


def _reds_tensor(index: int) -> torch.Tensor:
    """Shared REDS frame ``index`` as [1, 3, H, W] in [0, 1]."""
    return torch.from_numpy(reds_rgb(index).copy()).permute(2, 0, 1).float()[None] / 255


def _pan(src: torch.Tensor, v: tuple[int, int], k: float, top: int, left: int) -> torch.Tensor:
    """A 96x64 view of ``src`` moved by k * v output pixels, area-sampled 2:1 (as sharp as a camera's frame):
    [3, 64, 96]. ``2 * k * v`` must be whole."""
    import torch.nn.functional as F

    dx, dy = round(2 * k * v[0]), round(2 * k * v[1])
    return F.avg_pool2d(src[:, :, top - dy:top - dy + 128, left - dx:left - dx + 192], 2)[0]


def test_windows_with_replicated_neighbours_give_the_same_in_between_frame(bundled):
    """At the ends of a video and next to a scene cut the pipeline repeats F(i) for F(i-1), or F(i+1) for F(i+2).
    On a blurred pan of a real frame such windows must give the full window's in-between frame, well ahead of
    the blend (the outer frames only feed the key frame's restoration). The key frame is not checked here: a
    network that does not deblur yet passes any bound an identity passes."""
    src = _reds_tensor(5)
    crop = (slice(None), slice(8, -8), slice(8, -8))
    for v in ((4, 0), (3, 2)):
        def sharp(k: float, v=v) -> torch.Tensor:
            return _pan(src, v, k, top=40, left=80)

        def blurry(k: int) -> torch.Tensor:  # 7 of 8 sub-frames per frame interval, 8-bit
            return (torch.stack([sharp(k + o / 8) for o in range(-3, 4)]).mean(0) * 255).round() / 255

        x = torch.stack([blurry(k) for k in (-1, 0, 1, 2)])[None]
        blend = 0.5 * (x[0, 1] + x[0, 2])
        results = {}
        for name, order in (("full", [0, 1, 2, 3]), ("start", [1, 1, 2, 3]), ("end", [0, 1, 2, 2]),
                            ("both", [1, 1, 2, 2])):
            _, inter = run(bundled, x[:, order], torch.tensor([0.5]))
            results[name] = inter[0, 0].clamp(0, 1)
        blend_psnr = _psnr(blend[crop], sharp(0.5)[crop])
        for name, inter in results.items():
            torch.testing.assert_close(inter, results["full"], atol=1e-4, rtol=0)
            assert _psnr(inter[crop], sharp(0.5)[crop]) > blend_psnr + 2, (v, name)
