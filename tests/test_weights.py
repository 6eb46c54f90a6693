"""Weights: safetensors round trip, corruption and checksum checks, the registry, Hub cache (offline), CLI."""

from __future__ import annotations

import hashlib
import inspect
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


def make_registry(folder: Path, entries: dict[str, dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "registry.json"
    path.write_text(json.dumps({"format": 1, "weights": entries}), encoding="utf-8")
    return path


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
    with pytest.raises(WeightsError, match="truncated"):
        W.load_model(str(path), "cpu")


def test_trailing_bytes_rejected(weights_file):
    path, _ = weights_file
    path.write_bytes(path.read_bytes() + b"\0" * 16)
    with pytest.raises(WeightsError, match="corrupt"):
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


# --- resolving specs and the registry ------------------------------------------------------------


def test_missing_paths_and_unknown_names(tmp_path, no_hub_env):
    reg = make_registry(tmp_path / "reg", {})
    with pytest.raises(WeightsError, match="weights file not found"):
        W.resolve_weights(str(tmp_path / "nope.safetensors"), registry=reg)
    with pytest.raises(WeightsError, match="weights file not found"):
        W.load_model("some/dir/model.safetensors", "cpu", registry=reg)
    with pytest.raises(WeightsError, match="unknown weights 'nosuchname'"):
        W.resolve_weights("nosuchname", registry=reg)
    with pytest.raises(WeightsError, match="directory"):
        W.resolve_weights(str(tmp_path), registry=reg)


def test_bundled_registry_is_valid():
    reg = W.load_registry()
    assert W.DEFAULT_WEIGHTS in reg
    assert W.REGISTRY is reg  # lazily loaded and cached
    for entry in reg.values():
        assert entry.file == Path(entry.file).name
        assert entry.config in ("default", "small", "tiny")
        if (reg.folder / entry.file).is_file():
            assert entry.sha256 == W.sha256_file(reg.folder / entry.file), entry.name


def test_registered_entry_bundled_is_verified(weights_file, tmp_path, no_hub_env):
    path, sha = weights_file
    folder = tmp_path / "reg"
    reg = make_registry(folder, {
        "good": {"file": "good.safetensors", "sha256": sha, "config": "tiny"},
        "planned": {"file": "planned.safetensors", "sha256": None, "config": "tiny"},
        "lost": {"file": "lost.safetensors", "sha256": sha, "config": "tiny"},
        "unchecked": {"file": "unchecked.safetensors", "sha256": None, "config": "tiny"},
    })
    shutil.copyfile(path, folder / "good.safetensors")
    shutil.copyfile(path, folder / "unchecked.safetensors")
    located = W.locate_weights("good", registry=reg)
    assert located.source == "bundled" and located.entry.name == "good"
    model = W.load_model("good", "cpu", registry=reg)
    assert model.config.name == "tiny"

    with pytest.raises(WeightsError, match="not available yet"):
        W.load_model("planned", "cpu", registry=reg)
    with pytest.raises(WeightsError, match="registered but not installed"):
        W.load_model("lost", "cpu", registry=reg)
    with pytest.raises(WeightsError, match="no sha256"):
        W.load_model("unchecked", "cpu", registry=reg)

    data = bytearray((folder / "good.safetensors").read_bytes())
    data[-1] ^= 0x01
    (folder / "good.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch for weights 'good'"):
        W.load_model("good", "cpu", registry=reg)
    # an explicit path is not checked against the registry (only --sha256 checks it)
    W.load_model(str(folder / "good.safetensors"), "cpu", registry=reg)


def test_default_registry_path_is_patchable(weights_file, tmp_path, monkeypatch, no_hub_env):
    path, sha = weights_file
    folder = tmp_path / "reg"
    reg = make_registry(folder, {"mine": {"file": "mine.safetensors", "sha256": sha, "config": "tiny"}})
    shutil.copyfile(path, folder / "mine.safetensors")
    monkeypatch.setattr(W, "REGISTRY_PATH", reg)
    assert list(W.REGISTRY) == ["mine"]
    assert W.resolve_weights("mine") == folder / "mine.safetensors"


def test_invalid_registry_rejected(tmp_path):
    bad = tmp_path / "r1.json"
    bad.write_text("{nope")
    with pytest.raises(WeightsError, match="cannot read weights registry"):
        W.load_registry(bad)
    bad.write_text(json.dumps({"format": 1, "weights": {"x": {"file": "../x.safetensors", "config": "tiny"}}}))
    with pytest.raises(WeightsError, match="plain file name"):
        W.load_registry(bad)
    bad.write_text(json.dumps({"format": 1, "weights": {"x": {"file": "x.safetensors", "config": "tiny",
                                                            "sha256": "123"}}}))
    with pytest.raises(WeightsError, match="64 hex"):
        W.load_registry(bad)


def test_register_weights(weights_file, tmp_path, no_hub_env):
    path, sha = weights_file
    reg_path = make_registry(tmp_path / "reg", {})
    entry = W.register_weights("vidrestore-tiny-test", path, "test weights", registry_path=reg_path)
    assert entry.sha256 == sha and entry.config == "tiny" and entry.file == "vidrestore-tiny-test.safetensors"
    assert entry.params == sum(t.numel() for t in build_prior_model("tiny").state_dict().values())
    assert (tmp_path / "reg" / entry.file).read_bytes() == path.read_bytes()
    raw = json.loads(reg_path.read_text())
    assert raw["weights"]["vidrestore-tiny-test"]["sha256"] == sha
    assert W.load_registry(reg_path)["vidrestore-tiny-test"] == entry
    W.load_model("vidrestore-tiny-test", "cpu", registry=reg_path)

    hub = W.HubLocation("owner/repo", "tiny.safetensors", COMMIT)
    again = W.register_weights("vidrestore-tiny-test", tmp_path / "reg" / entry.file, hub=hub, registry_path=reg_path)
    assert again.description == "test weights" and again.hub == hub  # kept, and added

    with pytest.raises(WeightsError, match="invalid weights name"):
        W.register_weights("Bad Name", path, registry_path=reg_path)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"junk" * 10)
    with pytest.raises(WeightsError):
        W.register_weights("broken", broken, registry_path=reg_path)
    assert "broken" not in W.load_registry(reg_path)


# --- the Hugging Face Hub: cache layout, offline mode, errors -----------------------------------


def test_hf_spec_parsing():
    loc = W.parse_hf_spec("hf://owner/repo/sub/dir/w.safetensors@v1.0")
    assert (loc.repo_id, loc.filename, loc.revision) == ("owner/repo", "sub/dir/w.safetensors", "v1.0")
    assert W.parse_hf_spec("hf://o/r/w.safetensors").revision is None
    assert str(loc) == "hf://owner/repo/sub/dir/w.safetensors@v1.0"
    for bad in ("hf://owner/repo", "hf://owner//w.safetensors", "hf://o/r/w.safetensors@", "hf://o/r/../w"):
        with pytest.raises(WeightsError):
            W.parse_hf_spec(bad)


def test_hub_cache_offline(weights_file, tmp_path, no_hub_env):
    path, sha = weights_file
    cached = fill_hub_cache(no_hub_env, "owner/repo", "tiny.safetensors", path)

    got = W.resolve_weights("hf://owner/repo/tiny.safetensors")  # offline from HF_HUB_OFFLINE=1
    assert got.samefile(cached) and W.sha256_file(got) == sha
    assert W.resolve_weights(f"hf://owner/repo/tiny.safetensors@{COMMIT}", offline=True).samefile(cached)
    assert W.load_model("hf://owner/repo/tiny.safetensors", "cpu").config.name == "tiny"

    folder = tmp_path / "reg"
    reg = make_registry(folder, {
        "hubbed": {"file": "hubbed.safetensors", "sha256": sha, "config": "tiny",
                   "hub": {"repo_id": "owner/repo", "filename": "tiny.safetensors", "revision": None}},
        "wrongsum": {"file": "wrongsum.safetensors", "sha256": "0" * 64, "config": "tiny",
                     "hub": {"repo_id": "owner/repo", "filename": "tiny.safetensors", "revision": COMMIT}},
        "elsewhere": {"file": "elsewhere.safetensors", "sha256": sha, "config": "tiny",
                      "hub": {"repo_id": "owner/other", "filename": "tiny.safetensors", "revision": None}},
    })
    located = W.locate_weights("hubbed", registry=reg)
    assert located.source == "cache" and located.path.samefile(cached)
    assert W.load_model("hubbed", "cpu", registry=reg).config.name == "tiny"
    # an hf:// spec naming a registered location is checked against that entry
    assert W.locate_weights(f"hf://owner/repo/tiny.safetensors@{COMMIT}", registry=reg).entry.name == "wrongsum"
    with pytest.raises(WeightsError, match="checksum mismatch"):
        W.load_model(f"hf://owner/repo/tiny.safetensors@{COMMIT}", "cpu", registry=reg)
    with pytest.raises(WeightsError, match="checksum mismatch"):
        W.load_model("wrongsum", "cpu", registry=reg)
    with pytest.raises(WeightsError, match="offline"):
        W.load_model("elsewhere", "cpu", registry=reg)
    with pytest.raises(WeightsError, match="offline"):
        W.resolve_weights("hf://owner/repo/other.safetensors")


def test_hub_empty_cache_offline(no_hub_env):
    with pytest.raises(WeightsError, match="not in the Hugging Face cache"):
        W.resolve_weights("hf://owner/repo/tiny.safetensors")
    with pytest.raises(WeightsError, match="not in the Hugging Face cache"):
        W.resolve_weights("hf://owner/repo/tiny.safetensors@main", offline=True)


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
        W.resolve_weights("hf://owner/repo/w.safetensors@v2")
    repo_id, filename, kw = calls[0]
    assert (repo_id, filename) == ("owner/repo", "w.safetensors")
    assert kw["revision"] == "v2" and kw["local_files_only"] is False and kw["cache_dir"] == str(cache)

    def refused(repo_id, filename, **kw):
        raise ConnectionError("Connection refused\nmore detail")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refused)
    with pytest.raises(WeightsError, match="^cannot download hf://owner/repo/w.safetensors: Connection refused$"):
        W.resolve_weights("hf://owner/repo/w.safetensors")

    path, _ = weights_file

    def fetched(repo_id, filename, **kw):
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fetched)
    assert W.resolve_weights("hf://owner/repo/w.safetensors") == path


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_list_verify_info(weights_file, tmp_path, monkeypatch, no_hub_env):
    path, sha = weights_file
    folder = tmp_path / "reg"
    reg = make_registry(folder, {
        "good-one": {"file": "good-one.safetensors", "sha256": sha, "config": "tiny", "description": "fine"},
        "bad-one": {"file": "bad-one.safetensors", "sha256": sha, "config": "tiny"},
        "away": {"file": "away.safetensors", "sha256": sha, "config": "tiny"},
    })
    shutil.copyfile(path, folder / "good-one.safetensors")
    (folder / "bad-one.safetensors").write_bytes(path.read_bytes()[:-1] + b"\x00")
    monkeypatch.setattr(W, "REGISTRY_PATH", reg)
    runner = CliRunner()

    res = runner.invoke(main, ["weights", "list"])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines() if line.strip()[:1].isalpha()}
    assert "bundled" in lines["good-one"] and sha[:12] in lines["good-one"]
    assert "missing" in lines["away"]

    res = runner.invoke(main, ["weights", "verify"])
    assert res.exit_code == 5
    assert "good-one: ok" in res.output and "bad-one: MISMATCH" in res.output
    assert "verification failed for: bad-one" in res.output

    res = runner.invoke(main, ["weights", "verify", "good-one"])
    assert res.exit_code == 0 and "good-one: ok" in res.output
    res = runner.invoke(main, ["weights", "verify", "nosuch"])
    assert res.exit_code == 2

    res = runner.invoke(main, ["weights", "info", "good-one"])
    assert res.exit_code == 0, res.output
    assert "matches the registry" in res.output and "train.step: 123" in res.output and "fine" in res.output
    res = runner.invoke(main, ["weights", "info", str(path), "--sha256", "f" * 64])
    assert res.exit_code == 5 and "checksum mismatch" in res.output

    res = runner.invoke(main, ["weights", "download", "away"])
    assert res.exit_code == 5 and "no Hugging Face location" in res.output
    res = runner.invoke(main, ["weights", "download", "hf://owner/repo/x.safetensors"])
    assert res.exit_code == 5 and "offline" in res.output and "Traceback" not in res.output

    res = runner.invoke(main, ["weights", "register", "new-one", str(path)])
    assert res.exit_code == 2  # gone: the installed package's registry is never rewritten


def test_names_sort_by_their_numbers():
    from vidrestore.weights import natural_key

    names = ["vidrestore-small-v10", "vidrestore-small-v2", "vidrestore-default-v1", "vidrestore-small-v9"]
    assert sorted(names, key=natural_key) == ["vidrestore-default-v1", "vidrestore-small-v2",
                                              "vidrestore-small-v9", "vidrestore-small-v10"]


def test_the_package_bundles_one_weights_file_and_registers_only_what_a_user_can_get():
    reg = W.load_registry()
    bundled = sorted(p.name for p in W.WEIGHTS_DIR.glob("*.safetensors"))
    assert bundled == [f"{W.DEFAULT_WEIGHTS}.safetensors"]
    for entry in reg.values():  # bundled, or an hf:// reference, always with a checksum
        assert entry.sha256 is not None
        assert reg.bundled_path(entry).is_file() or entry.hub is not None


OLD_NETWORK_CONFIG = {"name": "small", "channels": [16, 32, 64]}  # a 0.1 file's config: no "arch"


def old_network_file(path: Path) -> Path:
    """A weights file of the network retired in 0.2.0: its config has no "arch"."""
    from safetensors.torch import save_file

    save_file({"encoder.s1.0.weight": torch.zeros(16, 3, 3, 3)}, str(path),
              metadata={W.META_CONFIG: json.dumps(OLD_NETWORK_CONFIG), W.META_FORMAT: "1",
                        "vidrestore.options": json.dumps({"flow_polish": 2})})
    return path


def test_an_old_network_file_is_refused_with_one_clear_line(tmp_path, make_clip, no_hub_env):
    path = old_network_file(tmp_path / "old-network.safetensors")
    with pytest.raises(WeightsError) as err:
        W.load_model(str(path), "cpu")
    message = str(err.value)
    assert "\n" not in message and "old vidrestore network" in message and "retired in 0.2.0" in message
    assert W.DEFAULT_WEIGHTS in message
    res = CliRunner().invoke(main, ["enhance", str(make_clip(n=3, size=(48, 32))), "-o", str(tmp_path / "o.mp4"),
                                    "--weights", str(path), "--device", "cpu", "-q"])
    assert res.exit_code == 5, res.output
    assert res.stderr.strip().splitlines() == [f"vidrestore: error: {message}"]
    assert not (tmp_path / "o.mp4").exists()
    res = CliRunner().invoke(main, ["weights", "info", str(path)])
    assert res.exit_code == 5 and "retired in 0.2.0" in res.output


def test_a_registry_entry_with_options_still_reads(weights_file, tmp_path, no_hub_env):
    """Registries before 0.2.0 gave each entry inference options: the field is ignored now."""
    path, sha = weights_file
    folder = tmp_path / "reg"
    reg = make_registry(folder, {"opt": {"file": "opt.safetensors", "sha256": sha, "config": "tiny",
                                         "options": {"refine_sharp": False}}})
    shutil.copyfile(path, folder / "opt.safetensors")
    assert isinstance(W.load_model("opt", "cpu", registry=reg), PriorNet)
    assert "options" not in W.load_registry(reg)["opt"].to_json()


def test_the_bundled_default_is_the_flow_prior_network():
    m = W.load_model(W.DEFAULT_WEIGHTS, "cpu")
    entry = W.load_registry()[W.DEFAULT_WEIGHTS]
    assert isinstance(m, PriorNet) and not m.training and m.config.name == entry.config
    assert entry.params == sum(t.numel() for t in m.state_dict().values())
    assert entry.bytes == (W.WEIGHTS_DIR / entry.file).stat().st_size
    assert (W.WEIGHTS_DIR / f"{W.DEFAULT_WEIGHTS}.md").is_file()  # its model card
