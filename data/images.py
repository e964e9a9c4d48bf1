"""Load photos safely: every way a file can fail becomes one ImageError that names it; and tell a photo
from a video by its first bytes."""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from keyface.data.errors import ImageError
from keyface.data.files import URL, shown

MIN_SIDE = 16  # smaller than this cannot hold a detectable face
PIXELS = (np.ndarray, Image.Image)  # a photo given as pixels (as_rgb takes them), not as a file
MAX_PIXELS = 70_000_000  # 70 MP: phones' 48, 50 and 64 MP photos; above, a decompression bomb or a 108 MP mode


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a photo as an upright RGB uint8 array (H, W, 3); raise ImageError naming the file."""
    text = os.fspath(path)
    if not text.strip():  # Path("") would be the current folder
        raise ImageError("a photo path is empty")
    if isinstance(text, str) and URL.match(text):  # keyface reads files; it never downloads
        raise ImageError(f"{shown(path)}: keyface does not download; save the photo first")
    p = Path(path)
    if p.is_dir():
        raise ImageError(f"{shown(path)} is a folder, not a photo: loop over its images")
    if not p.is_file():
        raise ImageError(f"{shown(path)}: no such file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageError(f"{p}: cannot read ({exc.strerror})") from None
    return decode_image_bytes(data, str(p))


# The first bytes of the container formats FFmpeg reads (offset, bytes): a file is a video by what it holds.
_SIGNATURES = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (0, b"FLV"), (0, b"OggS"), (0, b"\x00\x00\x01\xba"),
               (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"), (4, b"moov"), (4, b"mdat"), (4, b"wide"), (4, b"free"))

# An ISO media file ("ftyp") whose brand is one of these is a still photo (or a burst), not a video: AVIF, which
# Pillow reads, and HEIF/HEIC (iPhones' photos), which it does not.
_STILL_BRANDS = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC",
                 b"hevc": "HEIC", b"hevx": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF"}


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether Pillow recognises the file as an image, from its header alone (nothing decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path):
                return True
    except Image.DecompressionBombError:  # an image all the same: the loader refuses it by name
        return True
    except Exception:  # any refusal (unknown format, unreadable, a bomb's header) means "not a photo here"
        return False


def is_video_file(path: str | os.PathLike) -> bool:
    """Whether the file's first bytes are those of a video container (AVI: RIFF....AVI; MPEG-TS: 0x47 every
    188 bytes), whatever its name."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return False
    return _video_head(head)


def _video_head(head: bytes) -> bool:
    """Whether a file's first bytes (1 KB is enough) are those of a video container."""
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return True
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return True
    if head[4:8] == b"ftyp" and head[8:12] in _STILL_BRANDS:
        return False
    return any(head[at:at + len(magic)] == magic for at, magic in _SIGNATURES)


def decode_image_bytes(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes to upright RGB uint8 (H, W, 3); raise ImageError on any defect."""
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and 2x; we refuse on our own limit instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_size(image.size, name)  # from the header, before any pixel is decoded
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # upright as the camera says; no copy when it is already
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: image too large (a decompression bomb?)") from None
    except UnidentifiedImageError:  # its text names an internal BytesIO object, nothing a user can act on
        if data[4:8] == b"ftyp" and data[8:12] in _STILL_BRANDS:  # HEIC: no Pillow plugin reads it here
            raise ImageError(f"{name}: a photo in {_STILL_BRANDS[data[8:12]]}, which keyface cannot read here: "
                             "convert it to JPEG or PNG") from None
        if _video_head(data[:1024]):
            raise ImageError(f"{name}: a video, not a photo: this takes photos only") from None
        raise ImageError(f"{name}: not a readable image (no known image format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({_reason(exc)})") from None
    return _to_rgb(image, name)


def _reason(exc: Exception) -> str:
    """The first line of an exception message, for a one-line error."""
    return (str(exc).splitlines() or [exc.__class__.__name__])[0][:120]


def _check_size(size: tuple[int, int], name: str) -> None:
    """Refuse tiny images and decompression bombs using only the header's size."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name}: image too large ({width}x{height} pixels; the limit is "
                         f"{MAX_PIXELS // 1_000_000} megapixels): save a smaller copy (at half the size, faces "
                         "down to 48 px wide in the original are still found)")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{name}: image too small ({width}x{height}; at least {MIN_SIDE} px a side)")


def _to_rgb(image: Image.Image, name: str) -> np.ndarray:
    """Convert any Pillow mode to RGB uint8: alpha onto white, 16-bit scaled, CMYK and palette converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: scale the real range to 8 bits, not clip it (which would turn it white)
        grey = np.asarray(image, dtype=np.float64)
        scale = 255.0 / 65535.0 if grey.max() > 255 else 1.0
        grey = np.clip(grey * scale, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if image.mode == "F":
        raise ImageError(f"{name}: floating-point images are not supported")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":  # an RGB image is read as it is: converting it would only copy it (~0.3 ms a photo)
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def image_sha256(path: str | os.PathLike | bytes | np.ndarray | Image.Image) -> str:
    """The SHA-256 of a file's bytes, given by path or as they are (a photo's identity: the same file
    enrolled from the command line and uploaded to the server is one photo), or of an image's RGB pixels."""
    if isinstance(path, PIXELS):  # as converted: a palette image's indices alone would mistake two images for one
        pixels = as_rgb(path) if isinstance(path, Image.Image) else np.ascontiguousarray(path)
        return hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()
    if isinstance(path, bytes):
        return hashlib.sha256(path).hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:  # in pieces: a video file may be larger than memory
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def as_rgb(image: str | os.PathLike | np.ndarray | Image.Image) -> np.ndarray:
    """A photo as RGB uint8 (H, W, 3): read from a path, or converted from a PIL image (turned upright as its
    EXIF says, as a file is) or an array (grey (H, W) and RGBA (H, W, 4) ones as a file of theirs would be:
    alpha onto white)."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, np.ndarray):
        _check_array(image)
        _check_size(image.shape[1::-1], "image array")
        return np.ascontiguousarray(image if image.ndim == 3 and image.shape[2] == 3 else
                                    _to_rgb(Image.fromarray(image), "image array"))
    if not isinstance(image, Image.Image):
        raise ImageError(f"a photo is a file's path, a PIL image or an RGB uint8 array, not {type(image).__name__}")
    _check_size(image.size, "PIL image")
    try:  # a PIL image is read when first asked for its pixels: a cut or closed file fails here
        return _to_rgb(ImageOps.exif_transpose(image), "PIL image")
    except (OSError, ValueError) as exc:
        raise ImageError(f"PIL image: cannot be read ({_reason(exc)})") from None


def _check_array(image: np.ndarray) -> None:
    """Refuse an array that is not uint8 grey, RGB or RGBA pixels, saying how to make it so."""
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be RGB (H, W, 3), RGBA (H, W, 4) or grey (H, W), not {image.shape}")
    if image.dtype != np.uint8:  # the scale is the caller's to know: 0-1 floats, 16-bit and 0-255 floats differ
        raise ImageError(f"an image array must be RGB uint8 (0-255), not {image.dtype}: floats from 0 to 1 are "
                         f"(a * 255).round().astype(np.uint8), 16-bit ones (a >> 8).astype(np.uint8)")


def save_image(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 array to path (format from the suffix); return the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(p)
    except (ValueError, KeyError) as exc:
        raise ImageError(f"{p}: cannot write this image type ({_reason(exc)})") from None
    return p
