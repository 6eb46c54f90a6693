"""Weights files crafted to hurt: huge declared sizes, deep JSON, foreign dtypes, pickles, truncation and
unreadable folders all end as one WeightsError line (exit 5), before any large allocation."""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import vidrestore.weights as W
from conftest import write_clip
from vidrestore.cli import main
from vidrestore.errors import WeightsError
from vidrestore.model.prior_net import build_prior_model, prior_config_to_json


def tiny_tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.contiguous().clone() for k, v in build_prior_model("tiny").state_dict().items()}


def save(path: Path, tensors: dict[str, torch.Tensor], config: dict | None = None) -> Path:
    from safetensors.torch import save_file

    cfg = json.loads(prior_config_to_json(build_prior_model("tiny").config))
    cfg.update(config or {})
    save_file(tensors, str(path), metadata={W.META_CONFIG: json.dumps(cfg), W.META_FORMAT: "1"})
    return path


def raw_file(path: Path, header: bytes, data: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def one_line_exit(res, code: int, pattern: str) -> None:
    assert res.exit_code == code, res.output
    err = res.stderr if hasattr(res, "stderr") else res.output
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("vidrestore: error:"), err
    assert pattern in lines[0] and "Traceback" not in err, err


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("config, pattern", [
    ({"blocks": [1, 0, 1, 200000]}, "blocks .* out of range"),
    ({"channels": [20000, 40000, 80000]}, "channels .* out of range"),
    ({"channels": [8, 12]}, "channels must be three"),
    ({"window": 10**9 + 1}, "window .* out of range"),
    ({"head": True}, "head must be a whole number"),
    ({"window": "5"}, "window must be a whole number$"),
    ({"channels": "abc"}, "channels must be a list of whole numbers$"),
    ({"view_attention": 1}, "view_attention must be true or false$"),
    ({"refine": -1}, "refine must be >= 1"),
    ({"widths": [8] * 7, "blocks": [1] * 7}, "widths .* out of range"),
    ({"widths": 8}, "invalid 'vidrestore.config'"),
])
def test_out_of_range_config_refused_before_building(tmp_path, config, pattern, monkeypatch):
    path = save(tmp_path / "huge.safetensors", tiny_tensors(), config)
    import vidrestore.model.prior_net as P

    def no_build(*a, **k):
        raise AssertionError("a model was built from an out-of-range config")

    monkeypatch.setattr(P.PriorNet, "__init__", no_build)
    with pytest.raises(WeightsError, match=pattern) as err:
        W.model_from_file(path)
    assert "\n" not in str(err.value)


def test_config_within_bounds_but_not_the_files_tensors_allocates_nothing(tmp_path):
    """Built for real, this config would take gigabytes: it is compared on the meta device first."""
    path = save(tmp_path / "big.safetensors", tiny_tensors(),
                {"channels": [1024, 1024, 1024], "widths": [1024] * 4, "blocks": [64] * 4, "head": 1024})
    before = peak_rss_mb()
    with pytest.raises(WeightsError, match="do not fit the 'tiny' model: .*missing"):
        W.model_from_file(path)
    assert peak_rss_mb() - before < 300


def test_shapes_checked_against_the_header_before_reading(tmp_path, monkeypatch):
    tensors = tiny_tensors()
    first = sorted(tensors)[0]
    tensors[first] = torch.zeros(tensors[first].numel() + 1)
    path = save(tmp_path / "shape.safetensors", tensors)

    def no_read(*a, **k):
        raise AssertionError("tensors read before the header was checked")

    monkeypatch.setattr(W, "read_tensors", no_read)
    with pytest.raises(WeightsError, match="wrong shape"):
        W.model_from_file(path)


def test_the_tiny_file_still_loads(tmp_path):
    path = save(tmp_path / "ok.safetensors", tiny_tensors())
    model = W.model_from_file(path)
    assert model.config.name == "tiny"


def test_metadata_is_never_echoed_at_length(tmp_path):
    """A 5 MB name, or a 5 MB unknown field, gives an error line of a sensible length."""
    for config in ({"name": "x" * 5_000_000}, {"y" * 5_000_000: 1}):
        path = save(tmp_path / "long.safetensors", tiny_tensors(), config)
        with pytest.raises(WeightsError) as err:
            W.model_from_file(path)
        assert len(str(err.value)) < 300 + len(str(path)), len(str(err.value))


def test_a_deeply_nested_config_is_a_weights_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "deep_config.safetensors"
    save_file(tiny_tensors(), str(path), metadata={W.META_CONFIG: "[" * 100_000 + "]" * 100_000, W.META_FORMAT: "1"})
    with pytest.raises(WeightsError, match="nested too deeply"):
        W.model_from_file(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_weights_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "w.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(WeightsError, match="not a regular file"):
        W.locate(str(fifo))


def deep_header(depth: int = 20000) -> bytes:
    text = b'{"__metadata__": {}, "x": ' + b"[" * depth + b"]" * depth + b"}"
    return text + b" " * (-len(text) % 8)


def test_deeply_nested_header_is_a_weights_error(tmp_path):
    path = raw_file(tmp_path / "deep.safetensors", deep_header())
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        W.read_metadata(path)


def test_cli_weights_info_and_enhance_on_a_deep_header(tmp_path, make_clip):
    path = raw_file(tmp_path / "deep.safetensors", deep_header())
    runner = CliRunner()
    one_line_exit(runner.invoke(main, ["weights", "info", str(path)]), 5, "not a valid safetensors file")
    clip = make_clip(n=3)
    res = runner.invoke(main, ["enhance", str(clip), "-o", str(tmp_path / "out.mp4"), "--weights", str(path),
                               "--device", "cpu"])
    one_line_exit(res, 5, "not a valid safetensors file")
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("dtype", [torch.int32, torch.float64, torch.uint8])
def test_foreign_dtype_names_the_tensor(tmp_path, dtype):
    tensors = tiny_tensors()
    key = sorted(tensors)[1]
    tensors[key] = tensors[key].to(dtype)
    path = save(tmp_path / "dtype.safetensors", tensors)
    with pytest.raises(WeightsError, match=f"tensor '{key}' has dtype"):
        W.model_from_file(path)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_tensors_accepted(tmp_path, dtype):
    path = save(tmp_path / "half.safetensors", {k: v.to(dtype) for k, v in tiny_tensors().items()})
    assert W.model_from_file(path).config.name == "tiny"


def test_header_data_size_must_match_the_shape(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 8]}}).encode()
    path = raw_file(tmp_path / "lie.safetensors", header + b" " * (-len(header) % 8), b"\0" * 8)
    with pytest.raises(WeightsError, match="not a valid safetensors file .*offset"):
        W.read_metadata(path)


def test_pickle_and_cut_files_still_clear(tmp_path, make_clip):
    pickled = tmp_path / "model.safetensors"
    torch.save(build_prior_model("tiny").state_dict(), pickled)
    with pytest.raises(WeightsError, match="safetensors"):
        W.model_from_file(pickled)
    good = save(tmp_path / "good.safetensors", tiny_tensors())
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(WeightsError, match=r"^not a valid safetensors file \("):
        W.model_from_file(cut)
    clip = make_clip(n=3)
    for bad, pattern in ((pickled, "not a valid safetensors file ("), (cut, "not a valid safetensors file (")):
        res = CliRunner().invoke(main, ["enhance", str(clip), "-o", str(tmp_path / "o.mp4"), "--weights", str(bad),
                                        "--device", "cpu"])
        one_line_exit(res, 5, pattern)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to drop to another uid")
def test_weights_in_an_unreadable_folder_is_exit_5(shared_dir):
    secret = shared_dir / "secret"
    secret.mkdir()
    weights = save(secret / "w.safetensors", tiny_tensors())
    secret.chmod(0o700)  # root's: uid 65534 cannot look inside
    work = shared_dir / "work"
    work.mkdir()
    work.chmod(0o777)
    clip = write_clip(shared_dir / "in.mp4", n=3)
    clip.chmod(0o644)
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "vidrestore"]
    env = {**os.environ, "HOME": str(work), "HF_HUB_OFFLINE": "1"}
    for args in (["weights", "info", str(weights)],
                 ["enhance", str(clip), "-o", str(work / "o.mp4"), "--weights", str(weights), "--device", "cpu"]):
        proc = subprocess.run(cmd + args, capture_output=True, text=True, env=env, timeout=120)
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert proc.returncode == 5, proc.stderr
        assert lines[-1].startswith("vidrestore: error:") and "Traceback" not in proc.stderr, proc.stderr
        assert "w.safetensors" in lines[-1] and "Permission denied" in lines[-1], proc.stderr
    assert not (work / "o.mp4").exists()
