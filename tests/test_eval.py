"""vidrestore eval: metrics, protocol bookkeeping, baselines, sources, the runner and the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidrestore.errors import InputError, UsageError
from vidrestore.evaluate import baselines as B
from vidrestore.evaluate import metrics as M
from vidrestore.evaluate import protocols as P


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


# ---------------------------------------------------------------- metrics


def test_identical_frames_score_cap_and_one():
    a = _texture(32, 40)
    assert M.psnr(a, a) == M.PSNR_CAP_DB == 100.0
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
def test_psnr_matches_gaussian_noise_level(sigma):
    rng = np.random.default_rng(1)
    clean = np.full((120, 160, 3), 0.5)
    noisy = clean + rng.normal(0.0, sigma, clean.shape)
    expected = 10 * math.log10(1 / sigma**2)
    assert M.psnr(noisy, clean) == pytest.approx(expected, abs=0.05)


def test_psnr_uint8_is_scaled_to_unit_range():
    a = np.zeros((16, 16, 3), np.uint8)
    b = np.full((16, 16, 3), 51, np.uint8)  # difference 0.2 everywhere -> MSE 0.04 -> 13.98 dB
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(1 / 0.04), abs=1e-9)
    # the MSE is over all pixels and all 3 channels: one channel off halves... a third of it
    c = a.copy()
    c[..., 0] = 51
    assert M.psnr(a, c) == pytest.approx(10 * math.log10(3 / 0.04), abs=1e-9)


def _ssim_bruteforce(x: np.ndarray, y: np.ndarray) -> float:
    """Straight from the definition: every 11x11 window fully inside the frame, per channel."""
    r = np.arange(11) - 5.0
    g = np.exp(-(r**2) / (2 * 1.5**2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for ch in range(3):
        a, b = x[..., ch], y[..., ch]
        acc = []
        for i in range(a.shape[0] - 10):
            for j in range(a.shape[1] - 10):
                pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va = (w * (pa - ma) ** 2).sum()
                vb = (w * (pb - mb) ** 2).sum()
                cov = (w * (pa - ma) * (pb - mb)).sum()
                acc.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
        vals.append(np.mean(acc))
    return float(np.mean(vals))


def test_ssim_matches_definition():
    rng = np.random.default_rng(2)
    x = rng.random((18, 23, 3))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    assert M.ssim(x, y) == pytest.approx(_ssim_bruteforce(x, y), abs=1e-9)
    assert M.ssim(x, y) < 0.99


def test_ssim_drops_with_noise_and_rejects_tiny_or_mismatched_frames():
    a = _texture(48, 64)
    rng = np.random.default_rng(3)
    light = np.clip(a + rng.normal(0, 5, a.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert 1.0 > M.ssim(a, light) > M.ssim(a, heavy)
    with pytest.raises(UsageError):
        M.ssim(a[:8, :8], a[:8, :8])
    with pytest.raises(UsageError):
        M.psnr(a, a[:, :32])


def test_summaries_split_key_and_inter_and_average_clips():
    frames = [M.FrameScore(30.0, 0.9, True), M.FrameScore(20.0, 0.7, False), M.FrameScore(24.0, 0.8, False)]
    clip = M.ClipScores.from_frames(frames)
    assert (clip.key.psnr, clip.key.count) == (30.0, 1)
    assert clip.inter.psnr == pytest.approx(22.0) and clip.inter.ssim == pytest.approx(0.75)
    assert clip.all.psnr == pytest.approx(74 / 3) and clip.all.count == 3
    other = M.ClipScores.from_frames([M.FrameScore(40.0, 1.0, False)])
    mean = M.mean_over_clips([clip, other])
    assert mean.inter.psnr == pytest.approx(31.0)  # each clip weighs the same
    assert mean.key.psnr == pytest.approx(30.0) and mean.key.count == 1  # empty groups are left out
    assert other.to_json()["key"] == {"psnr": None, "ssim": None, "frames": 0}


# ---------------------------------------------------------------- protocols


def test_joint_plan_bookkeeping():
    plan = P.make_plan("joint", 40, stride=8, exposure=7)
    assert (plan.factor, plan.mode) == (8, "joint")
    assert [i.centre for i in plan.inputs] == [3, 11, 19, 27, 35]
    assert plan.inputs[0].sources == (0, 1, 2, 3, 4, 5, 6)
    assert plan.inputs[-1].sources == tuple(range(32, 39))
    keys = [t for t in plan.targets if t.is_key]
    inter = [t for t in plan.targets if not t.is_key]
    assert [(t.output, t.source) for t in keys] == [(0, 3), (8, 11), (16, 19), (24, 27), (32, 35)]
    assert len(inter) == 4 * 7  # nothing scored after the last input
    first = [t for t in inter if t.input_index == 0]
    assert [(t.output, t.source, t.step) for t in first] == [(k, 3 + k, k) for k in range(1, 8)]
    assert [t.time for t in first] == [k / 8 for k in range(1, 8)]
    # every source frame between the first and the last centre is the truth of exactly one target
    assert sorted(t.source for t in plan.targets) == list(range(3, 36))
    assert plan.num_outputs == 40 and plan.sources_used == 39


def test_interp_and_deblur_plans():
    plan = P.make_plan("interp", 17, stride=4)
    assert (plan.factor, plan.mode, plan.exposure) == (4, "interp", 1)
    assert [i.sources for i in plan.inputs] == [(0,), (4,), (8,), (12,), (16,)]
    assert sorted(t.source for t in plan.targets if not t.is_key) == [s for s in range(17) if s % 4]
    assert all(t.output == t.source for t in plan.targets)  # the output grid is the source grid here

    deblur = P.make_plan("deblur", 30, stride=8, exposure=5)
    assert (deblur.factor, deblur.mode) == (1, "deblur")
    assert [i.centre for i in deblur.inputs] == [2, 10, 18, 26]
    assert [(t.output, t.source, t.is_key) for t in deblur.targets] == \
        [(0, 2, True), (1, 10, True), (2, 18, True), (3, 26, True)]
    every = P.make_plan("deblur", 10, stride=1, exposure=3)  # a blurry frame at every position
    assert [i.centre for i in every.inputs] == list(range(1, 9))


def test_plan_rejects_bad_settings():
    with pytest.raises(UsageError):
        P.make_plan("joint", 40, stride=8, exposure=6)  # even: not centred on a frame
    with pytest.raises(UsageError):
        P.make_plan("joint", 40, stride=4, exposure=5)  # longer than the frame interval
    with pytest.raises(UsageError):
        P.make_plan("sideways", 40)
    with pytest.raises(InputError):
        P.make_plan("joint", 14, stride=8, exposure=7)  # needs 15
    assert P.make_plan("joint", 15, stride=8, exposure=7).num_inputs == 2
    with pytest.raises(InputError):
        P.make_plan("interp", 4, stride=4)


def test_make_inputs_averages_the_exposure_window():
    source = [np.full((4, 5, 3), 10 * i, np.uint8) for i in range(20)]
    plan = P.make_plan("joint", 20, stride=4, exposure=3)
    inputs = P.make_inputs(plan, source)
    assert [int(f[0, 0, 0]) for f in inputs] == [10 * i.centre for i in plan.inputs]
    assert P.average_frames([np.zeros((1, 1, 3), np.uint8), np.full((1, 1, 3), 3, np.uint8)])[0, 0, 0] == 2
    interp = P.make_plan("interp", 20, stride=4)
    assert [int(f[0, 0, 0]) for f in P.make_inputs(interp, source)] == [0, 40, 80, 120, 160]


# ---------------------------------------------------------------- baselines


def _translating(n: int, step: int, h: int = 48, w: int = 64):
    """Frames of a texture moving ``step`` pixels left per input; ``at(x)`` renders any offset."""
    tex = _texture(h + 32, w + step * n + 32, seed=5)

    def at(offset: float) -> np.ndarray:
        o = int(round(offset))
        return np.ascontiguousarray(tex[16 : 16 + h, 16 + o : 16 + o + w])

    return [at(step * j) for j in range(n)], at


@pytest.mark.parametrize("name", B.BASELINES)
def test_baseline_shapes_and_key_frames(name):
    inputs, _ = _translating(3, 4)
    out = list(B.run_baseline(name, inputs, 4))
    assert len(out) == 12
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in out)
    for j in range(3):
        assert np.array_equal(out[4 * j], inputs[j])  # key frames are the inputs
    assert all(np.array_equal(f, inputs[-1]) for f in out[9:])  # nothing after the last input


def test_repeat_and_blend_are_exact_on_flat_frames():
    a, b = np.zeros((12, 12, 3), np.uint8), np.full((12, 12, 3), 100, np.uint8)
    rep = list(B.run_baseline("repeat", [a, b], 4))
    assert [int(f[0, 0, 0]) for f in rep[:4]] == [0, 0, 100, 100]
    blend = list(B.run_baseline("blend", [a, b], 4))
    assert [int(f[0, 0, 0]) for f in blend[:4]] == [0, 25, 50, 75]
    assert len(list(B.run_baseline("blend", [a, b], 1))) == 2
    with pytest.raises(UsageError):
        B.run_baseline("magic", [a, b], 2)


def test_dis_flow_recovers_translation_better_than_blend():
    inputs, at = _translating(2, 8, 64, 96)  # DIS needs a few pyramid levels: not smaller than this
    dis = list(B.run_baseline("dis-flow", inputs, 4))
    blend = list(B.run_baseline("blend", inputs, 4))
    c = np.s_[8:-8, 12:-12]  # away from the borders that come into view
    for k in (1, 2, 3):
        truth = at(8 * k / 4)
        p_dis, p_blend = M.psnr(dis[k][c], truth[c]), M.psnr(blend[k][c], truth[c])
        assert p_dis > p_blend + 10, (k, p_dis, p_blend)
        assert p_dis > 35


def test_minterpolate_output_is_aligned_to_the_time_grid():
    inputs, at = _translating(4, 8, 64, 96)
    raw = B.minterpolate_raw(inputs, 4)
    assert set(range(13)) <= set(raw)  # every output up to the last input
    for j in range(4):  # at the input times the filter gives the inputs back (up to RGB<->YUV rounding)
        assert np.abs(raw[4 * j].astype(int) - inputs[j]).max() <= 3
    c = np.s_[8:-8, 12:-12]
    for idx in (1, 2, 3, 5, 6, 7, 9):
        # the content encodes time: the frame at output idx shows the texture at offset 8*idx/4
        scores = {o: M.psnr(raw[idx][c], at(o)[c]) for o in range(0, 25)}
        assert max(scores, key=scores.get) == 2 * idx, (idx, scores)
    out = list(B.run_baseline("minterpolate", inputs, 4))
    assert len(out) == 16
    assert all(np.array_equal(out[i], raw[i]) for i in range(13) if i % 4)


# ---------------------------------------------------------------- sources, runner, CLI


def _write_video(path, frames, rate=30):
    from vidrestore.io.clips import write_video

    return write_video(path, frames, rate, pix_fmt="yuv444p", crf=0)


def _write_pngs(folder, frames):
    import cv2

    folder.mkdir(parents=True)
    for i, arr in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(arr, cv2.COLOR_RGB2BGR))
    return folder


def _pan(n: int, step: int = 2, h: int = 48, w: int = 64, seed: int = 7):
    tex = _texture(h + 8, w + step * n + 8, seed=seed)
    return [np.ascontiguousarray(tex[4 : 4 + h, 4 + step * i : 4 + step * i + w]) for i in range(n)]


def test_sources_discover_videos_frame_folders_and_mixed(tmp_path):
    from vidrestore.evaluate.sources import discover, load_clip, parse_size

    frames = _pan(6)
    _write_pngs(tmp_path / "frames" / "shot_a", frames)
    _write_video(tmp_path / "frames" / "shot_b.mp4", frames)
    (tmp_path / "frames" / "notes.txt").write_text("ignored")
    entries = discover(tmp_path / "frames")
    assert [(e.name, e.kind) for e in entries] == [("shot_a", "frames"), ("shot_b", "video")]
    assert [e.kind for e in discover(tmp_path / "frames" / "shot_a")] == ["frames"]
    a = load_clip(entries[0], max_frames=4)
    assert len(a.frames) == 4 and all(np.array_equal(x, y) for x, y in zip(a.frames, frames))  # PNG: lossless
    b = load_clip(entries[1], size=(32, 24))
    assert len(b.frames) == 6 and b.size == (32, 24)
    assert parse_size("640x360") == (640, 360)
    with pytest.raises(UsageError):
        parse_size("640by360")
    with pytest.raises(InputError):
        discover(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError):
        discover(tmp_path / "empty")


def test_runner_scores_exactly_what_the_protocol_says(tmp_path):
    """The blend baseline on an interp run, recomputed by hand from the frames."""
    from vidrestore.evaluate.runner import EvalConfig, evaluate, iter_source_clips

    frames = _pan(9)
    _write_pngs(tmp_path / "clip", frames)
    cfg = EvalConfig(protocol="interp", stride=4, exposure=1, methods=("repeat", "blend"))
    report = evaluate((c for c, _ in iter_source_clips(tmp_path / "clip", cfg)), cfg)
    blend = report.methods["blend"].clips["clip"]
    expected = []
    for j in (0, 4):
        a, b = frames[j].astype(np.float32), frames[j + 4].astype(np.float32)
        for k in (1, 2, 3):
            pred = np.clip(np.rint((1 - k / 4) * a + (k / 4) * b), 0, 255).astype(np.uint8)
            expected.append(M.psnr(pred, frames[j + k]))
    assert blend.inter.count == 6 and blend.inter.psnr == pytest.approx(np.mean(expected), abs=1e-9)
    assert blend.key.count == 3 and blend.key.psnr == M.PSNR_CAP_DB  # interp: key frames are the inputs
    rep = report.methods["repeat"].clips["clip"]
    assert rep.inter.psnr < blend.inter.psnr
    data = report.to_json()
    assert data["clips"][0]["scored_inter"] == 6 and data["settings"]["factor"] == 4


def test_joint_protocol_feeds_blurred_inputs_to_every_method(tmp_path):
    from vidrestore.evaluate.protocols import average_frames
    from vidrestore.evaluate.runner import EvalConfig, iter_source_clips

    frames = _pan(12)
    _write_pngs(tmp_path / "clip", frames)
    cfg = EvalConfig(protocol="joint", stride=4, exposure=3, methods=("repeat",))
    clip, plan = next(iter_source_clips(tmp_path / "clip", cfg))
    assert len(clip.inputs) == 3 and np.array_equal(clip.inputs[1], average_frames(frames[4:7]))
    assert [t.source for t in clip.targets if t.is_key] == [1, 5, 9]
    assert all(np.array_equal(truth, frames[t.source]) for t, truth in zip(clip.targets, clip.truths))


def test_model_is_scored_through_the_engine(tiny_weights, tmp_path):
    import torch

    from vidrestore import runtime
    from vidrestore.config import RunOptions
    from vidrestore.engine import Engine, EngineConfig
    from vidrestore.evaluate.runner import EvalConfig, ModelMethod, prepare_source, score_method
    from vidrestore.evaluate.sources import SourceClip
    from vidrestore.weights import load_model

    frames = _pan(11)
    cfg = EvalConfig(protocol="joint", stride=4, exposure=3, methods=("model",),
                     run=RunOptions(weights=str(tiny_weights), device="cpu"))
    clip, _ = prepare_source(SourceClip("c", tuple(frames)), cfg)
    scores, _, kept = score_method(ModelMethod(cfg).run, clip, keep=range(clip.num_outputs))
    cpu = torch.device("cpu")
    rt = runtime.Runtime(load_model(str(tiny_weights), cpu), cpu, torch.float32, str(tiny_weights))
    engine = Engine(rt, EngineConfig(factor=4, mode="joint"))
    direct = list(engine.process(list(clip.inputs), cuts=[False] * len(clip.inputs)))
    assert len(direct) == len(kept) == clip.num_outputs
    assert all(np.array_equal(direct[i], kept[i]) for i in range(len(direct)))
    manual = [M.psnr(direct[t.output], truth) for t, truth in zip(clip.targets, clip.truths) if not t.is_key]
    assert scores.inter.psnr == pytest.approx(np.mean(manual), abs=1e-9)


def _cli(args):
    from click.testing import CliRunner

    from vidrestore.cli import main

    return CliRunner().invoke(main, args)


def test_cli_synthetic_json_and_saved_frames(tiny_weights, tmp_path):
    import json

    import cv2

    res = _cli(["eval", "--synthetic", "--count", "2", "--resize", "48x40", "--stride", "4", "--weights",
                str(tiny_weights), "--device", "cpu", "--save-frames", str(tmp_path / "png"), "--crop", "32", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["settings"]["protocol"] == "joint" and data["settings"]["exposure"] == 3
    # the run options sit among the settings, as before they were shared: what was loaded, where, how
    s = data["settings"]
    assert (s["weights"], s["device"], s["dtype"], s["batch"], s["ensemble"], s["tile"]) == (
        str(tiny_weights), "cpu", "float32", 1, 1, None)
    assert "run" not in s and len(s["weights_sha256"]) == 64
    assert list(data["methods"]) == ["model", "repeat", "blend", "dis-flow", "minterpolate"]
    assert [c["name"] for c in data["clips"]] == ["synthetic-000", "synthetic-001"]
    for m in data["methods"].values():
        for clip in ("synthetic-000", "synthetic-001"):
            sc = m["clips"][clip]
            assert (sc["key"]["frames"], sc["inter"]["frames"], sc["all"]["frames"]) == (1, 3, 4)
            assert 5 < sc["inter"]["psnr"] < 100 and 0 < sc["inter"]["ssim"] <= 1
        assert m["mean"]["inter"]["frames"] == 6
    # key frames of every baseline are the blurry inputs: one score for all of them
    keys = {m["mean"]["key"]["psnr"] for n, m in data["methods"].items() if n != "model"}
    assert len(keys) == 1
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert [p.name for p in pngs][:2] == ["synthetic-000_in0001_key.png", "synthetic-000_in0001_t2of4.png"]
    img = cv2.imread(str(pngs[1]))
    assert img.shape[1] == 7 * 32 + 6 * 4  # input, 5 methods, ground truth side by side
    assert data["saved_frames"] == [str(p) for p in pngs]


def test_cli_interp_on_a_folder_of_videos_prints_a_table(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    _write_video(clips / "a.mp4", _pan(7, seed=1))
    _write_video(clips / "b.mp4", _pan(7, seed=2))
    res = _cli(["eval", str(clips), "--protocol", "interp", "--stride", "2", "--methods", "repeat,blend,dis",
                "--max-frames", "5", "--per-clip"])
    assert res.exit_code == 0, res.output
    assert "interp protocol: stride 2" in res.stdout
    lines = [line.strip() for line in res.stdout.splitlines()]
    for method in ("repeat", "blend", "dis-flow"):
        assert any(line.startswith(method + " ") for line in lines), method
    assert "per clip" in res.stdout
    assert any(line.startswith("a ") for line in lines) and any(line.startswith("b ") for line in lines)


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["eval"], 2, "either SOURCE or --synthetic"),
        (["eval", "nowhere.mp4"], 3, "no such file"),
        (["eval", "--synthetic", "--exposure", "4"], 2, "odd"),
        (["eval", "--synthetic", "--methods", "model,magic"], 2, "unknown magic"),
        (["eval", "--synthetic", "--stride", "32"], 2, "2x to 16x"),
        (["eval", "--synthetic", "--model-mode", "deblur"], 2, "--protocol deblur"),
        (["eval", "--synthetic", "--weights", "/nonexistent/w.safetensors"], 5, "/nonexistent/w.safetensors"),
    ],
)
def test_cli_bad_arguments_are_one_line_errors(args, code, message):
    res = _cli(args)
    assert res.exit_code == code, res.output
    assert message in res.output and "Traceback" not in res.output


def test_cut_clips_script_feeds_eval(tmp_path):
    import importlib.util
    from pathlib import Path

    from vidrestore.evaluate.sources import discover, load_clip

    script = Path(__file__).resolve().parents[1] / "scripts" / "cut_clips.py"
    spec = importlib.util.spec_from_file_location("cut_clips", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not mod.DEFAULT_SRC.is_dir():
        pytest.skip(f"no real clips at {mod.DEFAULT_SRC}")
    assert mod.main(["--out", str(tmp_path / "mp4"), "--frames", "3", "--size", "64x36"]) == 0
    assert mod.main(["--out", str(tmp_path / "png"), "--frames", "3", "--size", "64x36", "--format", "png"]) == 0
    for kind in ("mp4", "png"):
        entries = discover(tmp_path / kind)
        assert len(entries) == len(list(mod.DEFAULT_SRC.glob("*.mp4")))
        clip = load_clip(entries[0])
        assert len(clip.frames) == 3 and clip.size == (64, 36)


def test_interp_all_is_the_frames_the_method_made(tiny_weights):
    """In the interp protocol the key frames are the sharp inputs passed through (their PSNR capped, not earned):
    "all" is the in-between frames, not a mean with capped scores in it."""
    import json

    res = _cli(["eval", "--synthetic", "--count", "1", "--resize", "48x40", "--stride", "4", "--protocol", "interp",
                "--methods", "model,blend", "--weights", str(tiny_weights), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    for m in json.loads(res.stdout)["methods"].values():
        assert m["mean"]["all"] == m["mean"]["inter"] and m["mean"]["all"]["psnr"] < 100
