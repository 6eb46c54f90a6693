"""A chunked job's folder beside its output, for resuming after a crash: ``.NAME.EXT.vidrestore-job/``
holds ``manifest.json`` (the input's identity, the options that shape the output, the chunks and which are
done) and each finished chunk's file with the timing of its packets. It is removed when the output is
committed, and on Ctrl-C; after a crash or ``kill -9`` the same command finds it and reuses the chunks
that are done. A changed input or changed options start over, with a note saying so."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vidrestore.config import EnhanceConfig
from vidrestore.errors import OutputError, one_line
from vidrestore.scale.chunks import Chunk

VERSION = 1
HEAD_BYTES = 1 << 20  # the input's identity hashes its first MB (with its size and mtime)


def job_dir(target: Path) -> Path:
    return target.with_name(f".{target.name}.vidrestore-job")


def input_identity(path: Path) -> dict[str, Any]:
    """Size, modification time and the sha256 of the first MB: what tells the same input again."""
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(HEAD_BYTES))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_sha256": h.hexdigest()}


def output_options(config: EnhanceConfig, weights_id: str) -> dict[str, Any]:
    """The options that shape the output's frames and encoding (not where it goes, nor thread counts)."""
    options = dataclasses.asdict(config)
    for key in ("input", "output", "overwrite", "threads"):
        options.pop(key, None)
    options["weights_id"] = weights_id
    return json.loads(json.dumps(options, default=str))


@dataclass
class Job:
    """The folder of one chunked output; :meth:`open` reuses what a matching earlier run left."""

    folder: Path
    extension: str
    identity: dict[str, Any]
    options: dict[str, Any]
    chunks: tuple[Chunk, ...]
    done: dict[int, dict[str, Any]] = field(default_factory=dict)
    _fd: int | None = field(default=None, repr=False)  # the folder, held with flock while this run owns it

    @classmethod
    def open(cls, target: Path, identity: dict[str, Any], options: dict[str, Any], chunks: tuple[Chunk, ...],
             note: Callable[[str], None]) -> "Job":
        folder = job_dir(target)
        job = cls(folder, target.suffix, identity, options, chunks)
        try:
            folder.mkdir(exist_ok=True)
        except OSError as err:
            raise OutputError(f"cannot write to {target.parent}: {one_line(err)}") from None
        job._lock(target)
        old = _read(folder / "manifest.json")
        if old is not None:
            why = job._mismatch(old)
            if why is None:
                job.done = {int(n): d for n, d in old.get("done", {}).items() if job._intact(int(n), d)}
                if job.done:
                    frames = sum(chunks[n].frames for n in job.done)
                    note(f"resuming {target.name}: {len(job.done)} of {len(chunks)} chunks ({frames} frames) "
                         "are done from an earlier run")
            else:
                if old.get("done"):
                    note(f"{target.name}: {why} since the interrupted run: starting over")
                job._clear()
        else:
            job._clear()
        job._save()
        return job

    def _lock(self, target: Path) -> None:
        """Hold the folder (flock) while this run owns it: a second run on the same output stops at once
        (the kernel lets go of a process that was killed)."""
        self._fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise OutputError(f"another vidrestore run is writing {target} "
                              f"(its chunks are in {self.folder.name})") from None

    def _clear(self) -> None:
        for path in self.folder.iterdir():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _mismatch(self, old: dict[str, Any]) -> str | None:
        if old.get("version") != VERSION:
            return "the job folder is from another version"
        if old.get("identity") != self.identity:
            return "the input changed"
        if old.get("options") != self.options:
            return "the options changed"
        if old.get("chunks") != self._bounds():
            return "the chunks changed"
        return None

    def _bounds(self) -> list[list[int]]:
        return [[c.start, c.stop] for c in self.chunks]

    def _intact(self, n: int, record: dict[str, Any]) -> bool:
        path = self.chunk_path(n)
        return (0 <= n < len(self.chunks) and path.is_file() and path.stat().st_size == record.get("bytes")
                and self._timing_path(n).is_file())

    def chunk_path(self, n: int) -> Path:
        return self.folder / f"chunk-{n:05d}{self.extension}"

    @property
    def todo(self) -> list[Chunk]:
        return [c for c in self.chunks if c.number not in self.done]

    def mark_done(self, n: int, frames_out: int, packets: tuple[tuple[int | None, int | None, int], ...]) -> None:
        """Record chunk ``n`` as finished (its file is committed): its packets' timing beside it, then the
        manifest, each replaced atomically."""
        _write_json(self._timing_path(n), [list(p) for p in packets])
        self.done[n] = {"bytes": self.chunk_path(n).stat().st_size, "frames_out": frames_out}
        self._save()

    def _timing_path(self, n: int) -> Path:
        return self.folder / f"chunk-{n:05d}.timing.json"

    def parts(self) -> list[tuple[Path, list[list[int | None]]]]:
        """The chunk files and their packets' timing, in order (every chunk done)."""
        out = []
        for c in self.chunks:
            timing = _read(self._timing_path(c.number), list)
            if timing is None:
                raise OutputError(f"the job folder {self.folder} lost chunk {c.number}'s timing: run again")
            out.append((self.chunk_path(c.number), timing))
        return out

    def remove(self) -> None:
        """Delete the folder (the output is committed, or the run stopped) and let go of it."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.release()

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _save(self) -> None:
        data = {"version": VERSION, "identity": self.identity, "options": self.options,
                "chunks": self._bounds(),
                "done": {str(n): d for n, d in sorted(self.done.items())}}
        _write_json(self.folder / "manifest.json", data)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read(path: Path, kind: type = dict) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, kind) else None
