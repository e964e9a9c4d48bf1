"""The photo loader: every odd or broken file gives upright RGB or a one-line ImageError naming it."""
import numpy as np
import pytest
from PIL import Image

from keyface.data.errors import ImageError
from keyface.data.images import MIN_SIDE, decode_image_bytes, image_sha256, load_image, save_image
from tests.badimages import encode, exif_rotated_jpeg, face_like, write_bad_files


@pytest.mark.parametrize("name, message", [
    ("not_image.jpg", "not a readable image"), ("empty.jpg", "empty file"),
    ("truncated.jpg", "truncated"), ("tiny.png", "too small"), ("bomb.png", "too large"),
    ("too_large.png", "save a smaller copy")])
def test_bad_files_raise_one_line_error_naming_the_file(tmp_path, name, message):
    path = write_bad_files(tmp_path)[name]
    with pytest.raises(ImageError) as err:
        load_image(path)
    text = str(err.value)
    assert message in text and name in text and "\n" not in text


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")


def test_rgba_is_composited_on_white():
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:10, :, :] = (255, 0, 0, 255)  # opaque red top half, transparent bottom half
    out = decode_image_bytes(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[15, 0]) == (255, 255, 255)


def test_grey_and_palette_become_rgb():
    grey = Image.fromarray(np.full((20, 24), 77, np.uint8), "L")
    out = decode_image_bytes(encode(grey, "PNG"))
    assert out.shape == (20, 24, 3) and (out == 77).all()
    palette = Image.fromarray(face_like(32)).convert("P")
    assert decode_image_bytes(encode(palette, "PNG")).shape == (32, 40, 3)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    values = np.linspace(0, 65535, 20 * 20).reshape(20, 20).astype(np.uint16)
    out = decode_image_bytes(encode(Image.fromarray(values), "PNG"))
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert 100 < out[10, 10, 0] < 155  # mid-grey stays mid-grey


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.fromarray(face_like(32)).convert("CMYK")
    out = decode_image_bytes(encode(cmyk, "JPEG", quality=95))
    assert out.shape == (32, 40, 3)


def test_exif_orientation_is_applied():
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = 255  # left half white as stored
    out = decode_image_bytes(exif_rotated_jpeg(rgb, orientation=6))  # 6 = turn 90 degrees clockwise
    assert out.shape == (60, 40, 3)
    assert out[:25].mean() > 200 and out[-25:].mean() < 50  # the stored left half is now on top


def test_minimum_side_is_accepted():
    image = Image.new("RGB", (MIN_SIDE, MIN_SIDE), (1, 2, 3))
    assert decode_image_bytes(encode(image, "PNG")).shape == (MIN_SIDE, MIN_SIDE, 3)


def test_save_and_hash_round_trip(tmp_path):
    rgb = face_like(24)
    path = save_image(tmp_path / "sub" / "x.png", rgb)
    assert (load_image(path) == rgb).all()
    assert len(image_sha256(path)) == 64 and image_sha256(path) == image_sha256(path)


def test_an_avif_photo_is_a_photo_and_a_heic_one_says_to_convert_it(tmp_path):
    """Both are ISO media files ("ftyp", like MP4): their brand tells them from a video."""
    from keyface.data.images import is_video_file
    pixels = face_like()
    Image.fromarray(pixels).save(tmp_path / "photo.avif")
    assert not is_video_file(tmp_path / "photo.avif") and load_image(tmp_path / "photo.avif").shape == pixels.shape
    data = (tmp_path / "photo.avif").read_bytes()
    (tmp_path / "photo.heic").write_bytes(data[:8] + b"heic" + data[12:])  # an iPhone's brand: no reader here
    assert not is_video_file(tmp_path / "photo.heic")
    with pytest.raises(ImageError, match="a photo in HEIC, which keyface cannot read here: convert it to JPEG"):
        load_image(tmp_path / "photo.heic")


def test_arrays_and_pil_images_become_rgb_as_their_files_would():
    from keyface.data.images import as_rgb
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:10] = (255, 0, 0, 255)  # opaque red top half, transparent bottom half: onto white, as a PNG's
    from_file = decode_image_bytes(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(as_rgb(rgba), from_file)
    np.testing.assert_array_equal(as_rgb(Image.fromarray(rgba, "RGBA")), from_file)
    grey = np.full((20, 24), 77, np.uint8)
    assert as_rgb(Image.fromarray(grey, "L")).shape == (20, 24, 3) and (as_rgb(grey) == 77).all()
    rgb = face_like(32)
    assert as_rgb(rgb[:, ::-1]).flags.c_contiguous  # a flipped view: copied into one block
    with pytest.raises(ImageError, match=r"not float32: floats from 0 to 1 are \(a \* 255\)"):
        as_rgb(rgb.astype(np.float32) / 255)
    with pytest.raises(ImageError, match=r"not \(20, 20, 2\)"):
        as_rgb(np.zeros((20, 20, 2), np.uint8))
    with pytest.raises(ImageError, match="too small"):
        as_rgb(Image.fromarray(grey[:8], "L"))


def test_a_pil_image_is_taken_as_its_file_would_be(tmp_path):
    import io
    from keyface.data.images import as_rgb
    rgb = face_like(32)
    rotated = exif_rotated_jpeg(rgb, orientation=6)
    (tmp_path / "phone.jpg").write_bytes(rotated)
    np.testing.assert_array_equal(as_rgb(Image.open(io.BytesIO(rotated))), load_image(tmp_path / "phone.jpg"))
    with pytest.raises(ImageError, match=r"^PIL image: cannot be read"):  # cut short: read only when asked
        as_rgb(Image.open(io.BytesIO(encode(Image.fromarray(rgb), "PNG")[:200])))
    # two palette images with the same indices and other colours are two photos, as their files are
    indices = Image.fromarray(np.arange(32 * 40, dtype=np.uint8).reshape(32, 40) % 4, "P")
    red, blue = indices.copy(), indices.copy()
    red.putpalette([255, 0, 0] * 256)
    blue.putpalette([0, 0, 255] * 256)
    assert image_sha256(red) != image_sha256(blue) and image_sha256(red) == image_sha256(as_rgb(red))
