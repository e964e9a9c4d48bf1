"""Videos and cameras on the command line: `identify` prints a line per track as it closes, with a progress
bar (frames/s) on a terminal, an annotated copy with --out, a live window with --show, and the latency
from frame to answer for a camera."""
from __future__ import annotations

import sys
import time
from pathlib import Path


class Watcher:
    """What happens on each frame looked at: the progress bar, the live window and copy, the latency."""

    def __init__(self, video, args):
        from tqdm import tqdm
        self.show, self.latencies, self.live = args.show, [], None
        if args.out and video.camera is not None:  # a camera's copy is drawn live; a file's after the run
            from keyface.data.video import VideoWriter
            self.live = VideoWriter(args.out, video.fps, video.width, video.height)
        total = video.length or None
        self.bar = tqdm(total=total, desc=video.name, unit="frame", file=sys.stderr, leave=False,
                        disable=not sys.stderr.isatty() or video.camera is not None)
        self.done = 0

    def __call__(self, frame, seen: list) -> None:
        self.latencies.append(time.perf_counter() - frame.read_at)
        self.bar.update(frame.index + 1 - self.done)
        self.done = frame.index + 1
        if self.live is not None or self.show:
            from keyface.recognition.core.annotate import Sighting, draw_identities
            drawn = [Sighting(box, name) for _, box, name in seen]
            image = draw_identities(frame.rgb, drawn, [track for track, _, _ in seen])
            if self.live is not None:
                self.live.write(image)
            if self.show:
                self._window(image)

    def _window(self, image) -> None:
        import cv2
        cv2.imshow("keyface", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if cv2.waitKey(1) & 0xFF == ord("q"):
            raise KeyboardInterrupt

    def close(self) -> None:
        """Close the bar, the window and the live copy."""
        self.bar.close()
        if self.live is not None:
            self.live.close()
        if self.show:
            import cv2
            cv2.destroyAllWindows()

    def latency_line(self) -> str:
        """The latency from a frame's decoding to its answer, for a live stream."""
        import numpy as np
        if not self.latencies:
            return "no frame was read"
        ms = 1000 * np.asarray(self.latencies)
        return f"latency from frame to answer: p50 {np.median(ms):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms"


def identify_video(gallery, source, frames, index, args, stream, errors: list) -> None:
    """A video's (or a camera's) tracks, the `frames` (data.video.Sampling) the flags ask for searched in
    `index`, printed as each closes; its annotated copy with --out."""
    from keyface.data.errors import KeyfaceError
    from keyface.recognition.cli.hints import with_hint
    threshold = gallery.identify_threshold()
    try:
        _identify_tracks(gallery, source, frames, index, args, stream, errors, threshold)
    except KeyfaceError as exc:  # this video's error, said as a photo's is; the other files go on
        _video_failed(str(source), with_hint(exc), threshold, args, stream, errors)


def _video_failed(name: str, error: str, threshold: float, args, stream, errors: list) -> None:
    """A video that gave no track: its error on stderr, and in the JSON Lines (a script reading them hears of it)."""
    from keyface.recognition.answers import video_error_json
    stream.failed(error, errors)
    if args.json:
        stream.json(video_error_json(name, error, threshold))


def _identify_tracks(gallery, source, frames, index, args, stream, errors: list, threshold: float) -> None:
    """The tracks of one video or camera, printed as each closes; its annotated copy with --out."""
    from keyface.data.video import Video
    from keyface.recognition.core.video import no_face_seen, write_annotated
    from keyface.recognition.answers import track_json
    tracks = []
    with Video(source, frames) as video:
        watcher = Watcher(video, args)
        try:
            for track in gallery.identify_video(video, args.top, watcher, index):
                tracks.append(track)
                if args.json:
                    stream.json(track_json(video.name, track, threshold))
                else:
                    stream.line(track_line(video.name, track, threshold))
        finally:
            watcher.close()
            if video.camera is not None:
                print(f"keyface: {video.name}: {watcher.latency_line()}", file=sys.stderr)
    if not tracks:
        _video_failed(video.name, no_face_seen(video.name), threshold, args, stream, errors)
    if args.out and video.camera is None:
        written = write_annotated(source, tracks, Path(args.out), frames)
        print(f"keyface: {written} annotated frames written to {args.out}", file=sys.stderr)


def track_line(video: str, track, threshold: float) -> str:
    """A track as a line of text."""
    nearest = ", ".join(f"{m.person} {m.distance:.3f}" for m in track.matches)
    return (f"{video} track {track.id}: {track.name or 'unknown'}  ({track.first_time:.2f}-{track.last_time:.2f} s, "
            f"frames {track.first_frame}-{track.last_frame}, seen in {track.frames}; nearest: {nearest}; "
            f"threshold {threshold:.3f})")
