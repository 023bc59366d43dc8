"""Image files: which files are images, reading them defensively, and the image inputs of a run.

* :data:`IMAGE_EXTENSIONS` and :func:`list_image_files`: what counts as an image file;
* :func:`load_image` / :func:`load_images`: decode to 8-bit RGB with size limits, EXIF rotation
  and every colour mode handled (:func:`to_rgb`); a bad file is a :class:`SkippedImage` with the
  reason, never a crash;
* :func:`read_image_inputs` and :func:`image_records`: the paths (and gold labels) of a folder,
  an image file, a ``.jsonl`` listing with an ``image`` field, or a list, as a run reads them.

PIL is imported on first use.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zsl.data.files import BadRow, Item, iter_jsonl_file
from zsl.errors import InputError

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_SIDE", "IMAGE_EXTENSIONS", "SkippedImage", "decode_image", "image_records",
           "list_image_files", "load_image", "load_images", "read_image_inputs", "to_rgb"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
# Decoding cost and memory grow with pixels: images above this are refused unless the
# decoder can shrink them while decoding (JPEG draft mode). 80 Mpx stays below PIL's own
# decompression-bomb warning (89 Mpx) and covers every consumer camera.
DEFAULT_MAX_PIXELS = 80_000_000
# No crop needs more detail than this: larger images are shrunk right after decoding.
DEFAULT_MAX_SIDE = 2048


@dataclass(frozen=True)
class SkippedImage:
    """An input that could not be scored, with where and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def to_rgb(img: Any) -> Any:
    """Convert any PIL image to 8-bit RGB.

    Transparent pixels are composited onto white (a plain ``convert("RGB")`` turns them
    black or keeps hidden colours); 16-bit and float greyscale are rescaled to 0..255
    (a plain conversion clips them to white); CMYK, palette, 1-bit and greyscale convert
    normally.

    Raises:
        InputError: the mode cannot be converted.
    """
    from PIL import Image

    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "F") or mode.startswith("I;16"):
        arr = np.asarray(img).astype(np.float64)
        top = float(arr.max()) if arr.size else 0.0
        if mode.startswith("I;16") or 255 < top <= 65535:
            arr = arr / 257.0
        elif top > 255 or (mode == "F" and top <= 1.0):
            low = float(arr.min())
            arr = (arr - low) / max(top - low, 1e-12) * 255.0
        gray = Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8))
        return gray.convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot convert image mode {mode} to RGB ({exc})") from None


def load_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_side: int = DEFAULT_MAX_SIDE) -> Any:
    """Open an image file as 8-bit RGB, defensively.

    * Checks the size from the header before decoding. JPEGs larger than ``max_side`` are
      decoded at a reduced scale (JPEG draft mode: fast, little memory); other formats
      above ``max_pixels`` are refused rather than decoded. Images PIL itself flags as
      decompression bombs are refused.
    * Truncated or corrupt data, empty files and non-images raise with the reason.
    * EXIF rotation is applied; any colour mode becomes RGB (:func:`to_rgb`); the result
      is shrunk so its longest side is at most ``max_side``.

    Args:
        path: the image file.
        max_pixels: refuse to fully decode images with more pixels than this.
        max_side: longest side of the returned image.

    Returns:
        A loaded RGB ``PIL.Image.Image``.

    Raises:
        InputError: the file is missing, unreadable, empty, not an image, truncated, too
            large, or in a mode that cannot become RGB. The message is the reason.
    """
    source = _open_image(Path(path))
    try:
        rgb = _decode_rgb(source, max_pixels=max_pixels, max_side=max_side)
    except BaseException:
        source.close()
        raise
    if rgb is not source:
        source.close()  # the pixels live on in the converted copy; release the file
    return rgb


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE) -> Any:
    """:func:`load_image` for bytes already read (so a caller hashes and decodes the very same bytes).

    The same guards apply: empty data, a non-image, a decompression bomb, corrupt data, more than
    ``max_pixels``; the first frame of an animated image is used.

    Raises:
        InputError: as :func:`load_image`.
    """
    import io

    from PIL import Image

    if not data:
        raise InputError("empty file (0 bytes)")
    source = _pil_open(io.BytesIO(data))
    try:
        rgb = _decode_rgb(source, max_pixels=max_pixels, max_side=max_side)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        source.close()
        raise InputError(f"too large to decode safely ({exc}); downscale it first") from None
    except BaseException:
        source.close()
        raise
    if rgb is not source:
        source.close()  # the pixels live on in the converted copy
    return rgb


def _open_image(p: Path) -> Any:
    """Open ``p`` lazily with PIL (header only), refusing a missing, empty or unreadable file, a non-image and a
    decompression bomb."""
    if not p.exists():
        raise InputError("file does not exist")
    if not p.is_file():
        raise InputError("not a regular file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise InputError("empty file (0 bytes)")
    return _pil_open(p)


def _pil_open(src: Any) -> Any:
    """``PIL.Image.open(src)`` (a path or a binary file; header only) with the decompression-bomb warning
    raised, every failure an :class:`InputError` saying what was wrong."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(src)
    except PermissionError:
        raise InputError("permission denied") from None
    except UnidentifiedImageError:
        raise InputError("not an image, or a format PIL cannot read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"too large to decode safely ({exc}); downscale it first") from None
    except OSError as exc:
        raise InputError(f"cannot open image ({exc})") from None


def _decode_rgb(source: Any, *, max_pixels: int, max_side: int) -> Any:
    """Decode an opened image (JPEG draft mode when large; refused above ``max_pixels``), apply its EXIF
    rotation, convert it to RGB and shrink it to ``max_side``; may return ``source`` itself. The caller closes
    ``source`` on error."""
    from PIL import Image, ImageOps

    img = source
    w, h = img.size
    if img.format == "JPEG" and max(w, h) > max_side:
        img.draft("RGB", (max_side, max_side))
        w, h = img.size
    if w * h > max_pixels:
        raise InputError(
            f"image is {w}x{h} = {w * h / 1e6:.0f} Mpx, above the limit of {max_pixels / 1e6:.0f} Mpx "
            "(decoding it would need too much memory); downscale it or raise max_pixels"
        )
    try:
        img.load()
    except OSError as exc:
        raise InputError(f"corrupt or truncated image data ({exc})") from None
    except (ValueError, SyntaxError, EOFError) as exc:
        raise InputError(f"corrupt image data ({exc})") from None
    try:
        img = ImageOps.exif_transpose(img)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError):
        pass  # a broken EXIF block should not lose an otherwise good image
    rgb = to_rgb(img)
    if max(rgb.size) > max_side:
        rgb = rgb.copy() if rgb is source else rgb
        rgb.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    if min(rgb.size) < 1:
        raise InputError(f"image has no pixels ({rgb.size[0]}x{rgb.size[1]})")
    return rgb


def load_images(paths: Iterable[str | os.PathLike[str]], *, skipped: list[SkippedImage] | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE
                ) -> tuple[list[Any], list[str]]:
    """Load many images; each bad one is recorded in ``skipped`` and the rest are kept.

    Args:
        paths: image files.
        skipped: a list that receives a :class:`SkippedImage` (path, reason) per bad file.
        max_pixels, max_side: see :func:`load_image`.

    Returns:
        ``(images, ok_paths)``: the loaded RGB images and their paths, in input order.
    """
    skipped = [] if skipped is None else skipped
    images, ok = [], []
    for path in paths:
        try:
            images.append(load_image(path, max_pixels=max_pixels, max_side=max_side))
            ok.append(str(path))
        except InputError as exc:
            skipped.append(SkippedImage(str(path), str(exc)))
        except MemoryError:
            skipped.append(SkippedImage(str(path), "out of memory while decoding"))
    return images, ok


def list_image_files(folder: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """Image files (by extension, case-insensitive) below a folder, sorted by path.

    Raises:
        InputError: the folder does not exist.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder.")
    pattern = root.rglob("*") if recursive else root.glob("*")
    return sorted(p for p in pattern if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def read_image_inputs(inputs: Any) -> tuple[list[str], list[list[str] | None], list[SkippedImage]]:
    """Paths (and gold labels) from a folder, an image file, a JSONL file or a list of paths.

    Returns:
        ``(paths, gold, bad)``: the image paths (a listing's relative paths resolved against
        its folder), their gold ``labels`` (None where absent) and the listing's unusable lines.

    Raises:
        InputError: a folder without images, or a path that does not exist.
    """
    if isinstance(inputs, (str, os.PathLike)):
        p = Path(inputs)
        if p.is_dir():
            files = list_image_files(p)
            if not files:
                raise InputError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in {p}.")
            return [str(f) for f in files], [None] * len(files), []
        if p.suffix.lower() == ".jsonl":
            if not p.is_file():
                raise InputError(f"{p} does not exist.")
            paths, gold, bad = [], [], []
            for ln, obj, err in iter_jsonl_file(p):
                if err:
                    bad.append(SkippedImage(f"{p}:{ln}", err))
                    continue
                if not isinstance(obj, dict) or not isinstance(obj.get("image"), str):
                    bad.append(SkippedImage(f"{p}:{ln}", "expected an object with a string 'image' field"))
                    continue
                img = Path(obj["image"])
                paths.append(str(img if img.is_absolute() else p.parent / img))
                labels = obj.get("labels")
                gold.append(list(labels) if isinstance(labels, list) else None)
            return paths, gold, bad
        if p.exists() or p.suffix.lower() in IMAGE_EXTENSIONS:
            return [str(p)], [None], []
        raise InputError(f"{p} does not exist. Pass a folder of images, an image file, a .jsonl file with an "
                         "'image' field per line, or a list of paths.")
    paths = [str(x) for x in inputs]
    return paths, [None] * len(paths), []


def image_records(path: Path) -> Iterator[Item | BadRow]:
    """The records of an image input, as a run reads them: a :class:`~zsl.data.files.BadRow` per unusable
    listing line, then an :class:`~zsl.data.files.Item` per image (id: its path relative to the input's
    folder; ``path``: the file, ``text`` None)."""
    paths, gold, bad = read_image_inputs(path)
    for b in bad:
        where, _, line = str(b.path).rpartition(":")
        yield BadRow(where or str(b.path), int(line) if line.isdigit() else 0, b.reason)
    base = path if path.is_dir() else path.parent
    for p, g in zip(paths, gold, strict=True):
        try:
            rel = str(Path(p).relative_to(base))
        except ValueError:
            rel = p
        yield Item(rel, None, g, path=p)
