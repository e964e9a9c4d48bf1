"""Video files and cameras as a stream of frames: recognised by content, decoded by OpenCV's FFmpeg
(whatever the `opencv-python` wheel reads: MP4 and MOV, AVI, Matroska and WebM, MPEG, FLV, Ogg),
sampled, and read ahead on a thread of their own so that decoding overlaps the work on each frame.
Frames are never all held: at most READ_AHEAD wait in memory."""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from keyface.data.errors import KeyfaceError, VideoError, finite_number
from keyface.data.images import MAX_PIXELS, MIN_SIDE, is_video_file

log = logging.getLogger(__name__)

READ_AHEAD = 8  # decoded frames waiting for the consumer: bounds memory whatever the video's length
DEFAULT_RATE = 15.0  # frames a second looked at by default: faces move little in 1/15 s


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the video (from 0), its time in seconds, RGB uint8 pixels, and when
    it was read (time.perf_counter(): a live stream's latency is counted from there)."""
    index: int
    time: float
    rgb: np.ndarray
    read_at: float = 0.0


def camera_source(text: str) -> int | None:
    """The camera index a source names ("0", 0), or None for a file."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    return int(text) if isinstance(text, str) and text.isdigit() else None


@dataclass(frozen=True)
class Sampling:
    """Which frames are looked at: every `every`-th, or `fps` a second (default DEFAULT_RATE), from `start`
    to `end` seconds."""
    every: int | None = None
    fps: float | None = None
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        """Refuse a sampling that looks at no frame, or at frames backwards."""
        if self.every is not None and (isinstance(self.every, bool) or not isinstance(self.every, (int, np.integer))
                                       or self.every < 1):
            raise KeyfaceError(f"every is a count of frames, 1 or more, not {self.every!r}")
        fps, start, end = (None if v is None else finite_number(v, name)
                           for v, name in ((self.fps, "fps"), (self.start, "start"), (self.end, "end")))
        if self.every and fps is not None:
            raise KeyfaceError("give every or fps, not both")
        if (fps is not None and fps <= 0) or start < 0:
            raise KeyfaceError(f"fps must be above 0 and start 0 or more, not fps={self.fps!r}, start={self.start!r}")
        if end is not None and end <= start:
            raise KeyfaceError(f"end {end:g} must come after start {start:g}")

    def step(self, video_fps: float) -> int:
        """Frames to advance between frames looked at."""
        if self.every:
            return int(self.every)
        rate = self.fps or DEFAULT_RATE
        return max(1, int(round(video_fps / rate))) if video_fps > 0 else 1


class Video:
    """A video file or a camera, opened: its frame rate, size and length (frames; 0 for a camera), and its
    sampled frames as an iterator (`frames()`), read ahead on a thread."""

    def __init__(self, source: str | os.PathLike | int, sampling: Sampling = Sampling()):
        import cv2
        if isinstance(source, bool) or not isinstance(source, (str, os.PathLike, int)):
            raise VideoError(f"a video is a file's path or a camera's index (0, 1, ...), not {type(source).__name__}")
        self.camera = camera_source(source) if not isinstance(source, os.PathLike) else None
        self.name = f"camera {self.camera}" if self.camera is not None else str(source)
        self.sampling = sampling
        if self.camera is None:
            _check_file(Path(source))
            self.capture = _quietly_opened(str(source))
        else:
            self.capture = _quietly_opened(self.camera)
        if not self.capture.isOpened():
            raise VideoError(f"{self.name}: cannot be opened" + (" (no such camera, or it is busy)" if
                             self.camera is not None else " (no video stream FFmpeg can decode: a damaged file, or one cut short?)"))
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if not 0 < self.fps < 1000:
            self.fps = 30.0 if self.camera is not None else 0.0
        self.length = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.camera is None else 0
        self.width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._check_size()
        self._stop = threading.Event()

    def _check_size(self) -> None:
        if self.width * self.height > MAX_PIXELS:
            raise VideoError(f"{self.name}: frames of {self.width}x{self.height} px are too large "
                             f"(the limit is {MAX_PIXELS // 1_000_000} MP)")
        if 0 < min(self.width, self.height) < MIN_SIDE:
            raise VideoError(f"{self.name}: frames of {self.width}x{self.height} px are too small "
                             f"(at least {MIN_SIDE} px a side)")

    def time_of(self, index: int) -> float:
        """A frame's time in seconds (by the frame rate; a camera's by its index at 30 frames/s if unknown)."""
        return index / self.fps if self.fps > 0 else 0.0

    def frames(self) -> Iterator[Frame]:
        """The sampled frames in order, decoded ahead on a thread; stops at `end`, at the video's end or when
        close() is called. A video whose first frame cannot be decoded is an error."""
        waiting: queue.Queue = queue.Queue(READ_AHEAD)
        reader = threading.Thread(target=self._read, args=(waiting,), daemon=True, name="video-reader")
        reader.start()
        try:
            while (item := waiting.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self._stop.set()
            while reader.is_alive():  # let the reader see the stop and finish (it may be blocked on a full queue)
                try:
                    waiting.get(timeout=0.05)
                except queue.Empty:
                    pass

    def _read(self, waiting: queue.Queue) -> None:
        """The reader thread: decode the sampled frames into the queue, then None (or the error)."""
        import cv2
        try:
            step, index, first = self.sampling.step(self.fps), self._seek(), True
            start, end = index, self.sampling.end
            while not self._stop.is_set():
                if end is not None and self.time_of(index) > end:
                    break
                wanted = (index - start) % step == 0
                ok, bgr = self.capture.read() if wanted else (self.capture.grab(), None)
                if not ok:
                    if first:
                        raise self._nothing_read()
                    self._ended_early(index)
                    break
                if bgr is not None:
                    first = False
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    self._put(waiting, Frame(index, self.time_of(index), rgb, time.perf_counter()))
                index += 1
            self._put(waiting, None)
        except Exception as exc:  # the consumer raises it in its own thread
            self._put(waiting, exc if isinstance(exc, KeyfaceError) else VideoError(f"{self.name}: {exc}"))

    def _put(self, waiting: queue.Queue, item) -> None:
        """Queue an item, giving up once the consumer has stopped."""
        while not self._stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _ended_early(self, index: int) -> None:
        """Say so when a file's frames end well before the length its container gives: a truncated or damaged file,
        whose tracks are then only those of the frames before the break (the count is an estimate for some
        containers, so up to a second short is not said)."""
        if self.camera is None and self.length - index > max(2, round(self.fps)):
            log.warning("%s: no frame could be decoded after frame %d of %d (%.1f s): the file is truncated or "
                        "damaged; only the frames before are looked at", self.name, index, self.length,
                        self.time_of(index))

    def _nothing_read(self) -> VideoError:
        """Why not one frame was read: the start asked for is past the end, or the video is damaged or empty."""
        start, seconds = self.sampling.start or 0.0, self.length / self.fps if self.length and self.fps else None
        if start and seconds is not None and start >= seconds:
            return VideoError(f"{self.name}: it ends at {seconds:.1f} s, before the start asked for ({start:g} s)")
        return VideoError(f"{self.name}: no frame could be decoded (a truncated or empty video?)")

    def _seek(self) -> int:
        """Skip to the first frame at or after `start` seconds; its index."""
        import cv2
        start = self.sampling.start or 0.0
        if start <= 0 or self.camera is not None:
            return 0
        index = int(np.ceil(start * self.fps)) if self.fps > 0 else 0
        if self.capture.set(cv2.CAP_PROP_POS_FRAMES, index) and int(self.capture.get(cv2.CAP_PROP_POS_FRAMES)) == index:
            return index
        self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        for skipped in range(index):  # the container cannot seek: read our way there
            if not self.capture.grab():
                return skipped
        return index

    def close(self) -> None:
        """Stop reading and let go of the file or camera."""
        self._stop.set()
        self.capture.release()

    def __enter__(self) -> "Video":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_file(path: Path) -> None:
    """A video file that exists, is not empty and holds a video container."""
    if path.is_dir():
        raise VideoError(f"{path} is a folder: give a video file")
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file")
    if not is_video_file(path):
        raise VideoError(f"{path}: not a video (no known video container)")


def _quietly_opened(source: int | str):
    """A V4L2 camera's capture or a file's (FFmpeg), opened without OpenCV's own warning lines on the caller's
    stderr (a camera or file that cannot be opened is said in one line of ours instead)."""
    import cv2
    from cv2.utils import logging as cv2_log
    level = cv2_log.getLogLevel()
    cv2_log.setLogLevel(cv2_log.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(source, cv2.CAP_V4L2 if isinstance(source, int) else cv2.CAP_FFMPEG)
    finally:
        cv2_log.setLogLevel(level)


VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")  # containers OpenCV's writer picks by the name


def checked_video_target(target: str | os.PathLike) -> Path:
    """A new video file's path, checked before any work is done for it: a video's name, not there yet, in a
    folder that is there and can be written."""
    path = Path(target)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise KeyfaceError(f"{path}: a video's copy needs a video file's name, such as {path.stem or 'copy'}.mp4")
    if path.exists() or path.is_symlink():
        raise KeyfaceError(f"{path} exists: give a new file for the video")
    folder = path.parent
    if not folder.is_dir():
        raise KeyfaceError(f"{path}: no such folder {folder}" if not folder.exists() else
                           f"{path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise KeyfaceError(f"{path}: cannot write there ({folder} is not a folder this user can write)")
    return path


class VideoWriter:
    """A new video file written frame by frame (MPEG-4 Part 2, 'mp4v': the `opencv-python` wheel encodes no
    H.264). It never replaces a file: the target must not exist."""

    def __init__(self, target: str | os.PathLike, fps: float, width: int, height: int):
        import cv2
        self.target = checked_video_target(target)
        try:  # made owner-only and new (never replacing a file) before the encoder writes into it: faces and names
            os.close(os.open(self.target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise KeyfaceError(f"{self.target} exists: give a new file for the video") from None
        self.writer = cv2.VideoWriter(str(self.target), cv2.VideoWriter_fourcc(*"mp4v"), fps or 30.0, (width, height))
        if not self.writer.isOpened():
            self.target.unlink(missing_ok=True)
            raise KeyfaceError(f"{self.target}: cannot write a video there (use a .mp4 name in a writable folder)")

    def write(self, rgb: np.ndarray) -> None:
        """One frame."""
        import cv2
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        """Finish the file."""
        self.writer.release()
