"""Weights: safetensors round trip, corruption and checksum checks, known names, Hub cache (offline), CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import vidrestore.weights as W
from vidrestore.cli import main
from vidrestore.errors import WeightsError
from vidrestore.model.prior_net import PriorNet, build_prior_model, prior_config_from_dict, prior_config_to_json

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> tuple[Path, str, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_prior_model("tiny")
    with torch.no_grad():  # make every tensor distinctive so a round trip cannot pass by accident
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    sha = W.save_weights(model, path, {"train.step": "123", "train.data": "synthetic"})
    return path, sha, model


@pytest.fixture()
def weights_file(tiny_file, tmp_path) -> tuple[Path, str]:
    """A private copy of the tiny weights that a test may damage."""
    path, sha, _ = tiny_file
    dst = tmp_path / "copy.safetensors"
    shutil.copyfile(path, dst)
    return dst, sha


@pytest.fixture()
def no_hub_env(monkeypatch, tmp_path):
    """An empty Hub cache and offline mode, so that no test can reach the network."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def fill_hub_cache(cache: Path, repo_id: str, filename: str, src: Path, commit: str = COMMIT) -> Path:
    """The layout huggingface_hub writes: blobs/<sha256>, snapshots/<commit>/<file> -> blob, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    blob = repo / "blobs" / hashlib.sha256(src.read_bytes()).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, blob)
    link = repo / "snapshots" / commit / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return link


# --- safetensors round trip ---------------------------------------------------------------------


def test_round_trip_keeps_tensors_and_metadata(tiny_file):
    path, sha, model = tiny_file
    assert sha == W.sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    meta = W.read_metadata(path)
    assert prior_config_from_dict(json.loads(meta[W.META_CONFIG])) == model.config
    assert "vidrestore.options" not in meta  # the flow-prior network has no inference options
    assert meta[W.META_FORMAT] == "1"
    assert meta[W.META_VERSION]
    assert meta["train.step"] == "123" and meta["train.data"] == "synthetic"

    loaded = W.load_model(str(path), "cpu")
    assert not loaded.training
    assert loaded.config == model.config
    ref, got = model.state_dict(), loaded.state_dict()
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key

    as64 = W.load_model(str(path), torch.device("cpu"), torch.float64)
    assert next(as64.parameters()).dtype == torch.float64


def test_saved_bytes_are_canonical(tiny_file, tmp_path):
    """The header's keys are sorted and aligned, so the same model and metadata give the same sha256 in
    any process (safetensors itself writes them in hash-map order, which varies between processes)."""
    import json
    import struct

    path, sha, model = tiny_file
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8 : 8 + n])
    assert list(header) == sorted(header)
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])
    again = W.save_weights(model, tmp_path / "again.safetensors", {"train.data": "synthetic", "train.step": "123"})
    assert again == sha


def test_save_rejects_reserved_metadata(tmp_path):
    model = build_prior_model("tiny")
    with pytest.raises(ValueError):
        W.save_weights(model, tmp_path / "x.safetensors", {W.META_CONFIG: "{}"})
    assert not list(tmp_path.iterdir())


def test_save_overwrites_atomically(tiny_file, tmp_path):
    _, _, model = tiny_file
    dst = tmp_path / "w.safetensors"
    dst.write_bytes(b"old")
    sha = W.save_weights(model, dst)
    assert W.sha256_file(dst) == sha
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


# --- corrupt files, checksums, metadata ----------------------------------------------------------


def test_truncated_file_rejected(weights_file):
    path, _ = weights_file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        W.load_model(str(path), "cpu")


def test_trailing_bytes_rejected(weights_file):
    path, _ = weights_file
    path.write_bytes(path.read_bytes() + b"\0" * 16)
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        W.load_model(str(path), "cpu")


@pytest.mark.parametrize("offset", [0, 3, 9, 40])
def test_flipped_header_bytes_rejected(weights_file, offset):
    path, _ = weights_file
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError):
        W.load_model(str(path), "cpu")


@pytest.mark.parametrize("content", [b"", b"short", b"PK\x03\x04" + os.urandom(200)])
def test_not_safetensors_rejected(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="safetensors"):
        W.load_model(str(path), "cpu")


def test_flipped_data_byte_caught_by_checksum(weights_file):
    path, sha = weights_file
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # a tensor value: still a well-formed file, only the checksum can tell
    path.write_bytes(bytes(data))
    W.read_metadata(path)  # the structure is intact
    with pytest.raises(WeightsError, match="checksum mismatch"):
        W.load_model(str(path), "cpu", expected_sha256=sha)
    with pytest.raises(WeightsError, match="checksum mismatch"):
        W.verify_file(path, sha)


def test_expected_sha256_accepts_the_right_file(weights_file):
    path, sha = weights_file
    assert W.verify_file(path, sha.upper()) == sha
    W.load_model(str(path), "cpu", expected_sha256=sha)
    with pytest.raises(WeightsError, match="64 hex"):
        W.verify_file(path, "abc")


def test_missing_metadata_rejected(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in build_prior_model("tiny").state_dict().items()}, str(path))
    with pytest.raises(WeightsError, match="vidrestore.config"):
        W.load_model(str(path), "cpu")


@pytest.mark.parametrize(
    "meta, message",
    [
        ({W.META_CONFIG: "{not json"}, "invalid 'vidrestore.config'"),
        ({W.META_CONFIG: json.dumps({"arch": "prior", "name": "tiny", "bogus": 1})}, "invalid 'vidrestore.config'"),
        ({W.META_CONFIG: json.dumps(["prior"])}, "invalid 'vidrestore.config'"),
        ({W.META_FORMAT: "99"}, "unsupported weights format"),
    ],
)
def test_invalid_metadata_rejected(tmp_path, meta, message):
    from safetensors.torch import save_file

    model = build_prior_model("tiny")
    full = {W.META_CONFIG: prior_config_to_json(model.config), W.META_FORMAT: "1", **meta}
    path = tmp_path / "bad-meta.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=full)
    with pytest.raises(WeightsError, match=message):
        W.load_model(str(path), "cpu")


def test_state_dict_mismatch_rejected(tmp_path):
    from safetensors.torch import save_file

    model = build_prior_model("tiny")
    meta = {W.META_CONFIG: prior_config_to_json(model.config), W.META_FORMAT: "1"}
    sd = {k: v.contiguous().clone() for k, v in model.state_dict().items()}
    first = sorted(sd)[0]

    missing = dict(sd)
    del missing[first]
    save_file(missing, str(tmp_path / "a.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="1 missing"):
        W.load_model(str(tmp_path / "a.safetensors"), "cpu")

    extra = {**sd, "extra.weight": torch.zeros(3)}
    save_file(extra, str(tmp_path / "b.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="1 unexpected"):
        W.load_model(str(tmp_path / "b.safetensors"), "cpu")

    shaped = {**sd, first: torch.zeros(sd[first].numel() + 1)}
    save_file(shaped, str(tmp_path / "c.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="wrong shape"):
        W.load_model(str(tmp_path / "c.safetensors"), "cpu")

    bad = {**sd}
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
    bad[key] = sd[key].clone().view(-1).index_fill(0, torch.tensor([0]), float("nan")).view(sd[key].shape)
    save_file(bad, str(tmp_path / "d.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="NaN"):
        W.load_model(str(tmp_path / "d.safetensors"), "cpu")


# --- resolving specs and the table of known weights ----------------------------------------------


@pytest.fixture()
def known(monkeypatch, tmp_path):
    """A private table of known weights in a private folder; returns a function adding one entry."""
    folder = tmp_path / "bundled"
    folder.mkdir()
    table: dict = {}
    monkeypatch.setattr(W, "MODELS", table)
    monkeypatch.setattr(W, "WEIGHTS_DIR", folder)

    def add(name: str, location: str, sha: str, src: Path | None = None) -> None:
        table[name] = W.Known(location, sha)
        if src is not None:
            shutil.copyfile(src, folder / location)
    return add


def test_missing_paths_and_unknown_names(tmp_path, no_hub_env, known):
    with pytest.raises(WeightsError, match="weights file not found"):
        W.locate(str(tmp_path / "nope.safetensors"))
    with pytest.raises(WeightsError, match="weights file not found"):
        W.load_model("some/dir/model.safetensors", "cpu")
    with pytest.raises(WeightsError, match="unknown weights 'nosuchname'"):
        W.locate("nosuchname")
    with pytest.raises(WeightsError, match="directory"):
        W.locate(str(tmp_path))
    with pytest.raises(WeightsError, match="no weights given"):
        W.locate("  ")


def test_a_named_file_is_verified(weights_file, no_hub_env, known):
    path, sha = weights_file
    known("good", "good.safetensors", sha, path)
    known("lost", "lost.safetensors", sha)
    assert W.locate("good") == (W.WEIGHTS_DIR / "good.safetensors", sha)
    assert W.load_model("good", "cpu").config.name == "tiny"
    with pytest.raises(WeightsError, match="not installed"):
        W.load_model("lost", "cpu")

    damaged = W.WEIGHTS_DIR / "good.safetensors"
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0x01
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch for weights 'good'"):
        W.load_model("good", "cpu")
    # a path is not checked against the table (only expected_sha256 checks it)
    W.load_model(str(damaged), "cpu")


def test_the_table_of_known_weights_is_sound():
    """Each name is bundled beside the module or lives at an hf:// location, with a checksum that matches."""
    assert W.DEFAULT_WEIGHTS in W.MODELS
    bundled = sorted(p.name for p in W.WEIGHTS_DIR.glob("*.safetensors"))
    assert bundled == [f"{W.DEFAULT_WEIGHTS}.safetensors"]
    for name, entry in W.MODELS.items():
        assert len(entry.sha256) == 64 and entry.sha256 == entry.sha256.lower()
        if entry.location.startswith(W.hub.PREFIX):
            W.hub.parse(entry.location)
        else:
            assert entry.sha256 == W.sha256_file(W.WEIGHTS_DIR / entry.location), name


# --- the Hugging Face Hub: cache layout, offline mode, errors -----------------------------------


def test_hf_spec_parsing():
    loc = W.hub.parse("hf://owner/repo/sub/dir/w.safetensors@v1.0")
    assert (loc.repo_id, loc.filename, loc.revision) == ("owner/repo", "sub/dir/w.safetensors", "v1.0")
    assert W.hub.parse("hf://o/r/w.safetensors").revision is None
    assert str(loc) == "hf://owner/repo/sub/dir/w.safetensors@v1.0"
    for bad in ("hf://owner/repo", "hf://owner//w.safetensors", "hf://o/r/w.safetensors@", "hf://o/r/../w"):
        with pytest.raises(WeightsError):
            W.hub.parse(bad)


def test_hub_cache_offline(weights_file, no_hub_env, known):
    path, sha = weights_file
    cached = fill_hub_cache(no_hub_env, "owner/repo", "tiny.safetensors", path)

    got, want = W.locate("hf://owner/repo/tiny.safetensors")  # offline from HF_HUB_OFFLINE=1
    assert got.samefile(cached) and W.sha256_file(got) == sha and want is None
    assert W.locate(f"hf://owner/repo/tiny.safetensors@{COMMIT}", offline=True)[0].samefile(cached)
    assert W.load_model("hf://owner/repo/tiny.safetensors", "cpu").config.name == "tiny"

    known("hubbed", "hf://owner/repo/tiny.safetensors", sha)
    known("wrongsum", f"hf://owner/repo/tiny.safetensors@{COMMIT}", "0" * 64)
    known("elsewhere", "hf://owner/other/tiny.safetensors", sha)
    found, want = W.locate("hubbed")
    assert found.samefile(cached) and want == sha and W.local_path("hubbed").samefile(cached)
    assert W.load_model("hubbed", "cpu").config.name == "tiny"
    with pytest.raises(WeightsError, match="checksum mismatch"):
        W.load_model("wrongsum", "cpu")
    assert W.local_path("elsewhere") is None
    with pytest.raises(WeightsError, match="offline"):
        W.load_model("elsewhere", "cpu")
    with pytest.raises(WeightsError, match="offline"):
        W.locate("hf://owner/repo/other.safetensors")


def test_hub_empty_cache_offline(no_hub_env):
    with pytest.raises(WeightsError, match="not in the Hugging Face cache"):
        W.locate("hf://owner/repo/tiny.safetensors")
    with pytest.raises(WeightsError, match="not in the Hugging Face cache"):
        W.locate("hf://owner/repo/tiny.safetensors@main", offline=True)


def test_hub_unreachable_is_a_weights_error(monkeypatch, tmp_path, weights_file):
    import huggingface_hub
    from huggingface_hub.utils import LocalEntryNotFoundError

    cache = tmp_path / "c"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    calls = []

    def unreachable(repo_id, filename, **kw):
        calls.append((repo_id, filename, kw))
        raise LocalEntryNotFoundError("connection error and no cached file")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(WeightsError, match="unreachable"):
        W.locate("hf://owner/repo/w.safetensors@v2")
    repo_id, filename, kw = calls[0]
    assert (repo_id, filename) == ("owner/repo", "w.safetensors")
    assert kw["revision"] == "v2" and kw["local_files_only"] is False and kw["cache_dir"] == str(cache)

    def refused(repo_id, filename, **kw):
        raise ConnectionError("Connection refused\nmore detail")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refused)
    with pytest.raises(WeightsError, match="^cannot download hf://owner/repo/w.safetensors: Connection refused$"):
        W.locate("hf://owner/repo/w.safetensors")

    path, _ = weights_file

    def fetched(repo_id, filename, **kw):
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fetched)
    assert W.locate("hf://owner/repo/w.safetensors") == (path, None)


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_list_verify_info(weights_file, no_hub_env, known):
    path, sha = weights_file
    known("good-one", "good-one.safetensors", sha, path)
    known("bad-one", "bad-one.safetensors", sha)
    (W.WEIGHTS_DIR / "bad-one.safetensors").write_bytes(path.read_bytes()[:-1] + b"\x00")
    known("away", "hf://owner/repo/away.safetensors", sha)
    runner = CliRunner()

    res = runner.invoke(main, ["weights", "list"])
    assert res.exit_code == 0, res.output
    lines = {line.split(":")[0]: line for line in res.output.splitlines()}
    assert "on disk" in lines["good-one"] and sha[:12] in lines["good-one"]
    assert "not downloaded" in lines["away"] and "hf://owner/repo/away.safetensors" in lines["away"]

    res = runner.invoke(main, ["weights", "verify"])
    assert res.exit_code == 5
    assert "good-one: ok" in res.output and "bad-one: MISMATCH" in res.output and "away: not on disk" in res.output
    assert "verification failed for: bad-one" in res.output

    res = runner.invoke(main, ["weights", "verify", "good-one"])
    assert res.exit_code == 0 and "good-one: ok" in res.output
    res = runner.invoke(main, ["weights", "verify", "away"])
    assert res.exit_code == 5 and "not on disk, so not verified: away" in res.output
    res = runner.invoke(main, ["weights", "verify", "nosuch"])
    assert res.exit_code == 2

    res = runner.invoke(main, ["weights", "info", "good-one"])
    assert res.exit_code == 0, res.output
    assert f"sha256:    {sha} (matches good-one)" in res.output and "train.step: 123" in res.output
    res = runner.invoke(main, ["weights", "info", str(path), "--sha256", "f" * 64])
    assert res.exit_code == 5 and "checksum mismatch" in res.output
    res = runner.invoke(main, ["weights", "info", "bad-one"])
    assert res.exit_code == 5 and "checksum mismatch for weights 'bad-one'" in res.output

    res = runner.invoke(main, ["weights", "download", "good-one"])
    assert res.exit_code == 0 and "(sha256 ok)" in res.output
    res = runner.invoke(main, ["weights", "download", "away"])
    assert res.exit_code == 5 and "offline" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["weights", "download", "nosuch"])
    assert res.exit_code == 2


def test_a_file_of_another_network_is_refused_with_one_clear_line(tmp_path, make_clip, no_hub_env):
    from safetensors.torch import save_file

    path = tmp_path / "other-network.safetensors"
    save_file({"encoder.s1.0.weight": torch.zeros(16, 3, 3, 3)}, str(path),
              metadata={W.META_CONFIG: json.dumps({"name": "small", "channels": [16, 32, 64]}), W.META_FORMAT: "1"})
    with pytest.raises(WeightsError) as err:
        W.load_model(str(path), "cpu")
    message = str(err.value)
    assert "\n" not in message and "not a flow-prior network config" in message
    res = CliRunner().invoke(main, ["enhance", str(make_clip(n=3, size=(48, 32))), "-o", str(tmp_path / "o.mp4"),
                                    "--weights", str(path), "--device", "cpu", "-q"])
    assert res.exit_code == 5, res.output
    assert res.stderr.strip().splitlines() == [f"vidrestore: error: {message}"]
    assert not (tmp_path / "o.mp4").exists()


def test_the_bundled_default_is_the_flow_prior_network():
    m = W.load_model(W.DEFAULT_WEIGHTS, "cpu")
    assert isinstance(m, PriorNet) and not m.training and m.config.name == "small"
    assert (W.WEIGHTS_DIR / f"{W.DEFAULT_WEIGHTS}.md").is_file()  # its model card
