"""Argument types that range-check numbers, so a wrong flag value is a one-line usage error; flags that
several commands share."""
from __future__ import annotations

import argparse
import math

from keyface.detection.boxes import MIN_FACE

from keyface.detection.detector import DEFAULT_DETECTOR, DETECTORS
from keyface.runtime.networks import PRECISIONS


def _number(kind, low: float, high: float, low_open: bool = False, high_open: bool = False, what: str = ""):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: {what}")
        return value
    return parse


distance = _number(float, 0.0, 2.0, what="a cosine distance from 0 to 2")
rate = _number(float, 0.0, 1.0, low_open=True, high_open=True, what="a share strictly between 0 and 1")
probability = _number(float, 0.0, 1.0, what="a probability from 0 to 1")
count = _number(int, 1, 10**9, what="1 or more")
port = _number(int, 1, 65535, what="a TCP port from 1 to 65535")
face_px = _number(float, 8, 100_000, what="a face width in pixels, 8 or more")
frame_rate = _number(float, 0.0, 1000.0, low_open=True, what="frames a second, above 0 and up to 1000")
seconds = _number(float, 0.0, 1e7, what="seconds, 0 or more")


def precision_flag(p) -> None:
    """--precision, for commands that run an embedder."""
    p.add_argument("--precision", choices=PRECISIONS, help="run the embedding network with int8 weights (~2.5x "
                   "faster) or in float32 (default: the embedder's own: int8 for dlib-resnet, else float32)")


def detector_flags(p) -> None:
    """--detector and --min-face, for commands that find faces."""
    p.add_argument("--detector", choices=sorted(DETECTORS), default=DEFAULT_DETECTOR,
                   help=f"face detector (default: {DEFAULT_DETECTOR}; mtcnn is ~10x slower end to end)")
    p.add_argument("--min-face", type=face_px, default=MIN_FACE, metavar="PX",
                   help=f"smallest face to look for, in pixels wide (default: {MIN_FACE:g}, about 10 px between "
                   "the eyes); a larger one is faster on big photos")
