"""Bad and unusual photos, generated on the fly, for loader and CLI tests."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def face_like(size: int = 64, seed: int = 0) -> np.ndarray:
    """A small RGB image with structure (not a real face; for decoder tests only)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    """Encode a Pillow image to bytes."""
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge size with one tiny compressed row: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def exif_rotated_jpeg(rgb: np.ndarray, orientation: int = 6) -> bytes:
    """A JPEG whose pixels are stored sideways with an EXIF Orientation tag saying how to turn them."""
    image = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def write_bad_files(folder: Path) -> dict[str, Path]:
    """Write one file per bad-input case; return name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = encode(Image.fromarray(face_like()), "JPEG", quality=90)
    cases = {
        "not_image.jpg": b"this is a text file, not a photo\n",
        "empty.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 3],
        "tiny.png": encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
        "bomb.png": png_header_only(30000, 30000),  # refused by Pillow itself on open
        "too_large.png": png_header_only(12000, 9000),  # 108 MP: refused by our own limit
    }
    paths = {}
    for name, data in cases.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


def two_face_photo(folder: Path, photos: list[Path], scale_second: float = 1.0) -> tuple[Path, list[np.ndarray]]:
    """Two real face photos side by side on one canvas (the second scaled), saved as PNG; and the two."""
    from keyface.data.images import load_image
    faces = [load_image(photos[0]), load_image(photos[1])]
    if scale_second != 1.0:
        h, w = faces[1].shape[:2]
        faces[1] = np.asarray(Image.fromarray(faces[1]).resize((int(w * scale_second), int(h * scale_second))))
    height = max(f.shape[0] for f in faces)
    canvas = np.full((height + 40, sum(f.shape[1] for f in faces) + 120, 3), 90, np.uint8)
    x = 40
    for f in faces:
        canvas[20:20 + f.shape[0], x:x + f.shape[1]] = f
        x += f.shape[1] + 40
    path = folder / "two.png"
    Image.fromarray(canvas).save(path)
    return path, faces
