"""Robust, lazy image decoding for the classification mapper.

``open_image(file_name)`` reads the file's bytes and header: the stored size, the EXIF
orientation and the oriented size (``EncodedImage``); ``decode()`` then gives the pixels,
always RGB uint8, HxWx3, oriented as detectron2's ``read_image`` orients them.

What ILSVRC (and the web) contains, and what happens to it:

* greyscale ("L"), CMYK (Adobe, inverted or not), palette, RGBA / LA, 16-bit images:
  converted to RGB (alpha dropped, as torchvision's loader; CMYK by Pillow's conversion;
  16-bit scaled to 8 bits);
* a PNG (or any format Pillow reads) under a ``.JPEG`` name: decoded by its content;
* EXIF orientation (tag 274): applied, as detectron2's ``read_image`` does. Box
  annotations stay in the STORED pixel grid: ILSVRC's XML ``<size>`` and boxes, and the
  image header sizes the dataset code records, describe the image as stored (its
  annotation tools, like browsers before 2020, ignored EXIF). ``orient_boxes`` moves such
  boxes into the oriented frame, with the same flip/rotation as the pixels;
* zero-byte, missing or unreadable files, unknown formats, truncated or corrupt data,
  decompression bombs: ``ImageDecodeError(file_name, reason)``. Truncated JPEGs are not
  padded with grey (Pillow's ``LOAD_TRUNCATED_IMAGES``): their boxes would label grey.
"""

import io
from typing import Optional, Tuple

import numpy as np
from PIL import Image

__all__ = [
    "ImageDecodeError",
    "EncodedImage",
    "open_image",
    "read_image_rgb",
    "orient_boxes",
]

_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> Pillow transpose method (as detectron2's _apply_exif_orientation)
_TRANSPOSE = {
    2: Image.FLIP_LEFT_RIGHT,
    3: Image.ROTATE_180,
    4: Image.FLIP_TOP_BOTTOM,
    5: Image.TRANSPOSE,
    6: Image.ROTATE_270,
    7: Image.TRANSVERSE,
    8: Image.ROTATE_90,
}


class ImageDecodeError(OSError):
    """An image file that cannot be decoded; ``file_name`` and ``reason`` name the problem."""

    def __init__(self, file_name: str, reason: str):
        super().__init__(f"cannot decode image {file_name!r}: {reason}")
        self.file_name = str(file_name)
        self.reason = str(reason)

    def __reduce__(self):  # picklable with its two arguments (DataLoader workers)
        return (type(self), (self.file_name, self.reason))


def _reason(e: BaseException) -> str:
    msg = str(e) or type(e).__name__
    if isinstance(e, Image.DecompressionBombError):
        return f"decompression bomb: {msg}"
    if "truncated" in msg.lower():
        return f"truncated file: {msg}"
    return f"corrupt or unsupported data ({type(e).__name__}: {msg})"


def orient_boxes(boxes: np.ndarray, orientation: int, stored_hw: Tuple[int, int]) -> np.ndarray:
    """
    Map boxes from the stored pixel grid into the EXIF-oriented frame.

    Args:
        boxes: Nx4 XYXY_ABS, pixels of the stored image (as Pillow decodes it).
        orientation: EXIF orientation 1-8 (1 or unknown: unchanged).
        stored_hw: (h, w) of the stored image.

    Returns:
        Nx4 float64 XYXY_ABS in the oriented image (size (w, h) for orientations 5-8).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if orientation not in _TRANSPOSE:
        return b
    h, w = stored_hw
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    if orientation == 2:  # mirror left-right
        out = (w - x1, y0, w - x0, y1)
    elif orientation == 3:  # rotate 180
        out = (w - x1, h - y1, w - x0, h - y0)
    elif orientation == 4:  # mirror top-bottom
        out = (x0, h - y1, x1, h - y0)
    elif orientation == 5:  # transpose: (x, y) -> (y, x)
        out = (y0, x0, y1, x1)
    elif orientation == 6:  # rotate 90 clockwise: (x, y) -> (h - y, x)
        out = (h - y1, x0, h - y0, x1)
    elif orientation == 7:  # transverse: (x, y) -> (h - y, w - x)
        out = (h - y1, w - x1, h - y0, w - x0)
    else:  # 8, rotate 90 counter-clockwise: (x, y) -> (y, w - x)
        out = (y0, w - x1, y1, w - x0)
    return np.stack(out, axis=1)


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16") or (im.mode == "I" and a.max(initial=0) > 255):
            a = a / 257.0
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    return im.convert("RGB")  # L, 1, P, PA, LA, RGBA, RGBX, CMYK, YCbCr, LAB, HSV


class EncodedImage:
    """
    An image file read into memory, header parsed, pixels not decoded yet.

    Attributes:
        file_name: the path.
        stored_size: (h, w) of the image as stored (Pillow, no EXIF).
        orientation: EXIF orientation 1-8 (1 when absent or unreadable).
        size: (h, w) after the orientation (what ``decode`` returns).
    """

    def __init__(self, file_name: str, data: bytes):
        self.file_name = file_name
        if len(data) == 0:
            raise ImageDecodeError(file_name, "empty file (0 bytes)")
        try:
            self._im = Image.open(io.BytesIO(data))
            self._im.size  # noqa: B018 (header parsed)
        except Exception as e:  # UnidentifiedImageError, SyntaxError, struct.error, ...
            reason = _reason(e)
            if not reason.startswith("truncated"):
                reason = f"not a readable image ({type(e).__name__}: {e})"
            raise ImageDecodeError(file_name, reason) from e
        self._decoded = False
        w, h = self._im.size
        if w <= 0 or h <= 0:
            raise ImageDecodeError(file_name, f"empty image {w}x{h}")
        self.stored_size = (h, w)
        self.orientation = self._read_orientation()
        self.size = (w, h) if self.orientation in (5, 6, 7, 8) else (h, w)

    def _read_orientation(self) -> int:
        im = self._im
        if im.format == "JPEG" and "exif" not in im.info:
            return 1  # no APP1 segment: skip the EXIF machinery
        try:
            value = im.getexif().get(_EXIF_ORIENTATION, 1)
            return int(value) if int(value) in _TRANSPOSE else 1
        except Exception:  # malformed EXIF: ignored, as detectron2 does
            return 1

    @property
    def format(self) -> Optional[str]:
        return self._im.format

    def orient_boxes(self, boxes) -> np.ndarray:
        """Nx4 XYXY boxes in stored pixels -> the oriented frame (see :func:`orient_boxes`)."""
        return orient_boxes(boxes, self.orientation, self.stored_size)

    def decode(self) -> np.ndarray:
        """The whole image: HxWx3 uint8 RGB (read-only), EXIF orientation applied; once."""
        if self._decoded:
            raise RuntimeError("EncodedImage decodes once")
        self._decoded = True
        try:
            self._im.load()
            im = _to_rgb(self._im)
            if self.orientation in _TRANSPOSE:
                im = im.transpose(_TRANSPOSE[self.orientation])
            return np.asarray(im)
        except Exception as e:  # OSError (truncated, broken stream), SyntaxError, ValueError
            raise ImageDecodeError(self.file_name, _reason(e)) from e


def open_image(file_name: str) -> EncodedImage:
    """Read ``file_name`` and parse its header (no decoding); ImageDecodeError if unreadable."""
    try:
        if "://" in str(file_name):  # remote paths, as detectron2's PathManager handles them
            from detectron2.utils.file_io import PathManager

            with PathManager.open(file_name, "rb") as f:
                data = f.read()
        else:
            with open(file_name, "rb") as f:
                data = f.read()
    except OSError as e:
        raise ImageDecodeError(file_name, f"cannot read the file ({e.strerror or e})") from e
    return EncodedImage(file_name, data)


def read_image_rgb(file_name: str) -> np.ndarray:
    """The whole image as HxWx3 uint8 RGB, EXIF orientation applied; ImageDecodeError
    (naming the file) when it cannot be decoded."""
    return open_image(file_name).decode()
