"""Image sequences, read and written like a video.

Input: a folder of frames (natural order: ``f2.png`` before ``f10.png``) or a printf pattern such as
``frames/%06d.png`` (numeric order). PNG (8/16-bit), JPEG, TIFF, BMP, WebP and, where this OpenCV
reads it, EXR; 16-bit frames stay uint16, float frames (EXR) become uint16 in [0, 1], alpha is dropped
and grey becomes RGB. :class:`SequenceReader` yields :class:`~vidrestore.io.reader.DecodedFrame`\\ s with
pts = frame index on a 1/rate time base, from a reading thread (:mod:`vidrestore.io.worker`).

Output: a folder (``out/``, an existing folder, or a name without extension: ``000001.png`` ...) or
a pattern (``out/%06d.png``, numbered from 1 as given). :class:`SequenceWriter` takes
``write(frame, pts, duration)`` like the video writer, writes on its own thread into a hidden folder
beside the target and moves the frames into place only at ``finish()``; ``abort()`` removes it.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vidrestore import interrupts
from vidrestore.errors import InputError, OutputError, one_line
from vidrestore.names import natural_key
from vidrestore.io.files import is_disk_full
from vidrestore.io.probe import ColourInfo, VideoInfo
from vidrestore.io.reader import DecodedFrame
from vidrestore.io.worker import END, Reading, Worker

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".exr"})
DEEP_EXTS = frozenset({".png", ".tif", ".tiff"})  # written at 16 bits when the frames are uint16
WRITE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm"})
DEFAULT_NAME = "%06d.png"
_PATTERN = re.compile(r"%(0\d+)?d")


# -- names -------------------------------------------------------------------------------------
def list_images(folder: Path, exts: frozenset[str] = IMAGE_EXTS) -> list[Path]:
    """The image files directly in ``folder``, in natural order (hidden files skipped)."""
    files = [p for p in Path(folder).iterdir()
             if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_key(p.name))


def is_pattern(path: Path | str) -> bool:
    """A printf frame pattern: exactly one ``%d`` / ``%0Nd`` in the file name."""
    return len(_PATTERN.findall(Path(path).name)) == 1


def _pattern_regex(name: str) -> re.Pattern[str]:
    m = _PATTERN.search(name)
    assert m is not None
    digits = r"(\d+)" if not m.group(1) else rf"(\d{{{int(m.group(1))},}})"
    return re.compile(re.escape(name[:m.start()]) + digits + re.escape(name[m.end():]) + r"\Z")


def pattern_files(pattern: Path) -> list[Path]:
    """The existing files a pattern names, in numeric order."""
    folder = pattern.parent if str(pattern.parent) else Path(".")
    if not folder.is_dir():
        return []
    rx = _pattern_regex(pattern.name)
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_file() and (m := rx.match(p.name))]
    return [p for _, p in sorted(found)]


def is_sequence_input(path: Path) -> bool:
    return Path(path).is_dir() or is_pattern(path)


def is_sequence_output(path: Path) -> bool:
    """``-o`` names frames: a pattern, an existing folder, or a name without extension (``out/``)."""
    path = Path(path)
    return is_pattern(path) or path.is_dir() or not path.suffix


# -- reading -----------------------------------------------------------------------------------
def _cv2() -> Any:
    """OpenCV, with its own log lines off the terminal (a bad frame reaches the user as one error line),
    and EXR reading switched on where the build has it (OpenCV reads the switch at the first EXR)."""
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # pragma: no cover - builds without the logging module
        pass
    return cv2


def read_image(path: Path) -> np.ndarray:
    """One frame as HxWx3 RGB, uint8 or uint16 (float images become uint16); InputError naming it."""
    cv2 = _cv2()

    try:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:  # pragma: no cover - OpenCV raises only for some codecs
        raise InputError(f"cannot read frame {path}: {one_line(err)}") from None
    if img is None:
        if path.suffix.lower() == ".exr" and re.search(r"OpenEXR:\s+NO", cv2.getBuildInformation()):
            raise InputError(f"cannot read frame {path}: this OpenCV build reads no EXR (convert to 16-bit PNG/TIFF)")
        raise InputError(f"cannot read frame {path}: not an image this OpenCV can decode (or damaged)")
    if img.dtype.kind == "f":
        img = (np.clip(np.nan_to_num(img), 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
    elif img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"cannot read frame {path}: {img.dtype} samples (expected 8 or 16 bits)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return np.ascontiguousarray(cv2.cvtColor(img, code))


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding; None for other formats.
    InputError for a file that is not what its extension says."""
    ext = path.suffix.lower()
    try:
        with open(path, "rb") as f:
            if ext == ".png":
                head = f.read(24)
                if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
                    raise InputError(f"cannot read frame {path}: not a PNG file (or damaged)")
                w, h = struct.unpack(">II", head[16:24])
                return w, h
            if ext in (".jpg", ".jpeg"):
                return _jpeg_size(f, path)
    except OSError as err:
        raise InputError(f"cannot read frame {path}: {one_line(err)}") from None
    return None


def _jpeg_size(f: Any, path: Path) -> tuple[int, int]:
    bad = InputError(f"cannot read frame {path}: not a JPEG file (or damaged)")
    if f.read(2) != b"\xff\xd8":
        raise bad
    while True:
        marker = f.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            raise bad
        kind = marker[1]
        if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:
            continue
        size = f.read(2)
        if len(size) < 2:
            raise bad
        length = struct.unpack(">H", size)[0]
        if kind in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            sof = f.read(5)
            if len(sof) < 5:
                raise bad
            h, w = struct.unpack(">HH", sof[1:5])
            return w, h
        f.seek(length - 2, os.SEEK_CUR)


@dataclass(frozen=True)
class SequenceSource:
    """An image-sequence input: its files in order, the first frame's size and depth, and the rate."""

    path: Path
    files: tuple[Path, ...]
    width: int
    height: int
    dtype: str  # "uint8" | "uint16"
    rate: Fraction

    @property
    def bit_depth(self) -> int:
        return 16 if self.dtype == "uint16" else 8

    def video_info(self) -> VideoInfo:
        """The sequence described like a video (RGB, full range, constant rate, no other streams)."""
        n = len(self.files)
        duration = float(n / self.rate)
        return VideoInfo(
            path=self.path, container="image sequence", size_bytes=0, video_index=0,
            codec=self.files[0].suffix.lower().lstrip("."), width=self.width, height=self.height,
            pix_fmt="rgb48le" if self.bit_depth > 8 else "rgb24", bit_depth=self.bit_depth, rate=self.rate,
            time_base=1 / self.rate, frame_count=n, frame_count_exact=True, duration=duration, start_time=0.0,
            cfr=True, rotation=0, display_matrix=None, colour=ColourInfo(2, 2, 0, 2), sample_aspect_ratio=None,
            container_duration=duration)


def sequence_files(path: Path) -> list[Path]:
    path = Path(path)
    if is_pattern(path):
        files = pattern_files(path)
    elif path.is_dir():
        files = list_images(path)
    else:
        raise InputError(f"input not found: {path}")
    if not files:
        what = "match the pattern" if is_pattern(path) else "are in the folder"
        raise InputError(f"no image frames {what} {path} ({', '.join(sorted(IMAGE_EXTS))})")
    return files


def probe_sequence(path: Path, rate: Fraction) -> SequenceSource:
    """List the frames, decode the first (size, depth) and check every PNG/JPEG header's size up
    front; the rest is checked as each frame is read. InputError naming the first bad frame."""
    files = sequence_files(path)
    first = read_image(files[0])
    h, w = first.shape[:2]
    for f in files[1:]:
        size = header_size(f)
        if size is not None and size != (w, h):
            raise InputError(mixed_sizes(f, size, files[0], (w, h)))
    return SequenceSource(Path(path), tuple(files), w, h, str(first.dtype), Fraction(rate))


def mixed_sizes(frame: Path, size: tuple[int, int], first: Path, first_size: tuple[int, int]) -> str:
    return (f"frame {frame} is {size[0]}x{size[1]}, but {first.name} is {first_size[0]}x{first_size[1]}: "
            f"all frames of a sequence must have one size")


class SequenceReader(Reading):
    """Iterate a sequence's frames (DecodedFrame, pts = index, duration 1) read ahead on a thread."""

    def __init__(self, source: SequenceSource, queue_size: int = 8) -> None:
        self.source = source
        self.frames_read = 0
        self._worker = Worker(self._read_all, "reader", queue_size)

    def _read_all(self) -> None:
        s = self.source
        for i, f in enumerate(s.files):
            if self._worker.stopping:
                return
            rgb = read_image(f)
            if rgb.shape[:2] != (s.height, s.width):
                raise InputError(mixed_sizes(f, (rgb.shape[1], rgb.shape[0]), s.files[0], (s.width, s.height)))
            if str(rgb.dtype) != s.dtype:
                raise InputError(f"frame {f} has {8 * rgb.dtype.itemsize}-bit samples, but {s.files[0].name} "
                                 f"{8 * np.dtype(s.dtype).itemsize}-bit: all frames must have one depth")
            if not self._worker.put(DecodedFrame(index=i, pts=i, duration=1, rgb=rgb)):
                return


# -- writing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FramesTarget:
    """Where output frames go: ``folder``/``name % n`` for n = 1, 2, ..."""

    folder: Path
    name: str  # a printf pattern with one %d / %0Nd
    pattern: bool  # given as a pattern (frames join an existing folder) or a folder of our own
    overwrite: bool = False

    def file(self, n: int) -> str:
        return self.name % n

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix.lower()


def frames_target(output: Path, count: int, overwrite: bool) -> FramesTarget:
    """Check an image-sequence output before any work: usable extension, parent folder present, an
    existing folder empty (a pattern: none of its ``count`` names taken) unless ``overwrite``."""
    output = Path(output)
    if is_pattern(output):
        folder = output.parent if str(output.parent) else Path(".")
        name, pattern = output.name, True
    else:
        folder, pattern = output, False
        name = DEFAULT_NAME if count < 10**6 else f"%0{len(str(count))}d.png"
    suffix = Path(name).suffix.lower()
    if suffix not in WRITE_EXTS:
        raise OutputError(f"cannot write frames as {suffix or 'files without extension'}: use "
                          f"{', '.join(sorted(WRITE_EXTS))}")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output is not a folder: {folder}")
    parent = folder.parent if str(folder.parent) else Path(".")
    if not folder.exists() and not parent.is_dir():
        raise OutputError(f"output directory does not exist: {parent}")
    if folder.is_dir() and not overwrite:
        if pattern:
            taken = next((folder / (name % n) for n in range(1, count + 1) if (folder / (name % n)).exists()), None)
            if taken is not None:
                raise OutputError(f"output exists: {taken} (use --overwrite to replace it)")
        elif any(folder.iterdir()):
            raise OutputError(f"output folder is not empty: {folder} (use --overwrite to replace it)")
    return FramesTarget(folder, name, pattern, overwrite)


def _appeared(t: FramesTarget, count: int) -> bool:
    """Frames (a pattern's names) or a non-empty folder at the target that were not there at the plan."""
    if not t.folder.is_dir():
        return False
    if t.pattern:
        return any((t.folder / t.file(n)).exists() for n in range(1, count + 1))
    return any(t.folder.iterdir())


class SequenceWriter:
    """``start()`` (makes the hidden temp folder), ``write(frame, pts, duration)`` per output frame
    (numbered in order from 1; pts and duration are not needed by image files), ``finish()``
    (moves the frames into place), or ``abort()`` (removes the temp folder)."""

    def __init__(self, target: FramesTarget, notes: Callable[[str], None] | None = None, queue_size: int = 8) -> None:
        self.target = target
        self._note = notes or (lambda msg: None)
        self._worker = Worker(self._run, "writer", queue_size, on_error=self._map_error)
        self.temp: Path | None = None
        self.frames_written = 0
        self._closed = False
        self._noted_depth = False

    def start(self) -> None:
        t = self.target
        inside = t.pattern and t.folder.is_dir()  # join an existing folder: the temp folder goes in it
        base = t.folder if inside else (t.folder.parent if str(t.folder.parent) else Path("."))
        prefix = "" if inside else f"{t.folder.name}."
        temp = base / f".{prefix}vidrestore-{uuid.uuid4().hex[:8]}.partial"
        try:
            temp.mkdir()
        except OSError as err:
            raise OutputError(f"cannot write to {base}: {err.strerror or err}") from None
        self.temp = temp
        self._worker.start()

    def write(self, frame: Any, pts: int, duration: int) -> None:
        self._worker.put(frame)

    def finish(self) -> Path:
        self._worker.put(END)
        self._worker.join()
        self._worker.check()
        assert self.temp is not None
        t = self.target
        interrupts.raise_pending()  # an interrupt that came during an import: nothing is put in place
        with interrupts.held():  # Ctrl-C/SIGTERM wait until the frames are in place and recorded
            self._move_into_place()
            interrupts.mark_committed(t.folder)
        self._closed = True
        return t.folder

    def _move_into_place(self) -> None:
        assert self.temp is not None
        t = self.target
        if not t.overwrite and _appeared(t, self.frames_written):
            self.abort()
            raise OutputError(f"output appeared while running: {t.folder} (use --overwrite to replace it)")
        try:
            if t.pattern and t.folder.is_dir():
                for n in range(1, self.frames_written + 1):
                    os.replace(self.temp / t.file(n), t.folder / t.file(n))
                self.temp.rmdir()
            elif t.folder.exists():  # --overwrite: the old folder moves aside, then goes
                old = t.folder.with_name(f".{t.folder.name}.vidrestore-{uuid.uuid4().hex[:8]}.old")
                os.replace(t.folder, old)
                os.replace(self.temp, t.folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self.temp, t.folder)
        except OSError as err:
            self.abort()
            raise OutputError(f"cannot move the finished frames into {t.folder}: {err.strerror or err}") from None

    def abort(self) -> None:
        if self._closed:
            return
        self._worker.stop()
        if self.temp is not None:
            shutil.rmtree(self.temp, ignore_errors=True)
        self._closed = True

    def _map_error(self, err: BaseException) -> BaseException:
        if isinstance(err, OutputError):
            return err
        if is_disk_full(err):
            return OutputError(f"disk full while writing {self.target.folder}")
        return OutputError(f"cannot write output frame {self.frames_written + 1} to {self.target.folder}: "
                           f"{one_line(err)}")

    def _run(self) -> None:
        import cv2

        assert self.temp is not None
        while True:
            item = self._worker.get()
            if item is None or item is END:
                return
            frame = np.asarray(item)
            if frame.dtype == np.uint16 and self.target.suffix not in DEEP_EXTS:
                if not self._noted_depth:
                    self._noted_depth = True
                    self._note(f"{self.target.suffix} holds 8 bits: 16-bit frames written as 8-bit "
                               f"(use .png or .tif to keep 16 bits)")
                frame = ((frame.astype(np.uint32) + 128) // 257).astype(np.uint8)
            path = self.temp / self.target.file(self.frames_written + 1)
            if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
                raise OutputError(f"cannot write output frame {path.name} to {self.target.folder}")
            self.frames_written += 1
