"""image_io: what ILSVRC contains (bad files, odd modes, EXIF)."""

import io
import pickle

import numpy as np
import pytest
from PIL import Image

import als_d2  # noqa: F401
from detectron2.data.detection_utils import read_image

from als_d2.data.image_io import ImageDecodeError, open_image, orient_boxes, read_image_rgb


def _smooth(h, w, seed=0):
    """A low-frequency RGB image (JPEG-friendly)."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, size=(h // 16 + 2, w // 16 + 2, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC))


def _jpeg(path, img, **kw):
    Image.fromarray(img).save(path, format="JPEG", quality=95, **kw)
    return str(path)


def test_plain_jpeg_equals_detectron2(tmp_path):
    path = _jpeg(tmp_path / "a.JPEG", _smooth(40, 60))
    assert np.array_equal(read_image_rgb(path), read_image(path, format="RGB"))
    src = open_image(path)
    assert src.size == src.stored_size == (40, 60) and src.orientation == 1


def test_truncated_jpeg(tmp_path):
    data = io.BytesIO()
    Image.fromarray(_smooth(64, 64)).save(data, format="JPEG", quality=95)
    path = tmp_path / "cut.JPEG"
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(ImageDecodeError) as e:
        read_image_rgb(str(path))
    assert e.value.file_name == str(path) and "truncated" in e.value.reason
    assert str(path) in str(e.value)
    # the header is intact: the size is known before decoding fails
    assert open_image(str(path)).size == (64, 64)


def test_corrupt_and_empty_and_missing(tmp_path):
    empty = tmp_path / "empty.JPEG"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.JPEG"
    garbage.write_bytes(b"\x00\x01not an image at all" * 10)
    for path, word in [
        (empty, "empty"),
        (garbage, "not a readable image"),
        (tmp_path / "no.JPEG", "cannot read"),
    ]:
        with pytest.raises(ImageDecodeError) as e:
            read_image_rgb(str(path))
        assert word in e.value.reason and e.value.file_name == str(path)
    assert isinstance(e.value, OSError)


def test_error_pickles():
    e = pickle.loads(pickle.dumps(ImageDecodeError("a/b.JPEG", "truncated file")))
    assert (e.file_name, e.reason) == ("a/b.JPEG", "truncated file") and "a/b.JPEG" in str(e)


def test_png_named_jpeg(tmp_path):
    img = _smooth(30, 50)
    path = tmp_path / "n02105855_2933.JPEG"  # ILSVRC has a PNG with this kind of name
    Image.fromarray(img).save(path, format="PNG")
    assert np.array_equal(read_image_rgb(str(path)), img)
    src = open_image(str(path))
    assert src.format == "PNG" and src.size == (30, 50)


def test_greyscale_and_cmyk_jpegs(tmp_path):
    grey = _smooth(32, 48)[:, :, 0]
    path = tmp_path / "l.JPEG"
    Image.fromarray(grey, "L").save(path, quality=95)
    out = read_image_rgb(str(path))
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])
    assert np.abs(out[..., 0].astype(int) - grey).mean() < 3

    rgb = _smooth(32, 48, seed=1)
    path = tmp_path / "cmyk.JPEG"
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    out = read_image_rgb(str(path))
    assert out.shape == (32, 48, 3) and np.abs(out.astype(int) - rgb).mean() < 4


def test_other_modes(tmp_path):
    rgba = np.dstack([_smooth(20, 30), np.full((20, 30), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(read_image_rgb(str(tmp_path / "a.png")), rgba[..., :3])
    Image.fromarray(_smooth(20, 30)).convert("P").save(tmp_path / "p.png")
    assert read_image_rgb(str(tmp_path / "p.png")).shape == (20, 30, 3)
    deep = (np.arange(20 * 30).reshape(20, 30) * 100).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "i16.png")
    out = read_image_rgb(str(tmp_path / "i16.png"))
    assert out.shape == (20, 30, 3) and out.max() > 200  # scaled to 8 bits, not clipped


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_pixels_and_boxes(tmp_path, orientation):
    h, w = 40, 64
    img = np.zeros((h, w, 3), np.uint8)
    box = (10, 5, 30, 20)  # x0, y0, x1, y1 in stored pixels
    img[box[1] : box[3], box[0] : box[2]] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(img).save(path, quality=95, exif=exif.tobytes())

    src = open_image(str(path))
    assert src.orientation == orientation and src.stored_size == (h, w)
    out = read_image_rgb(str(path))
    assert np.array_equal(out, read_image(str(path), format="RGB"))  # as detectron2
    assert out.shape[:2] == src.size == ((w, h) if orientation >= 5 else (h, w))
    # the box follows the pixels
    x0, y0, x1, y1 = orient_boxes(np.array([box], float), orientation, (h, w))[0].astype(int)
    inside = out[y0:y1, x0:x1, 0].astype(int)
    assert inside.mean() > 230
    assert (out[..., 0] > 128).sum() == pytest.approx((x1 - x0) * (y1 - y0), rel=0.05)
    assert np.array_equal(src.decode(), out)  # the header-parsed image decodes the same


def test_decodes_once(tmp_path):
    path = _jpeg(tmp_path / "a.JPEG", _smooth(40, 60))
    src = open_image(path)
    assert src.decode().shape == (40, 60, 3)
    with pytest.raises(RuntimeError):  # decodes once
        src.decode()
