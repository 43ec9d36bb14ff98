"""Image decoding for prepare: files or pixel arrays in, uint8 RGB squares and pixel digests out; unusable files
are listed with why."""
from __future__ import annotations

import errno
import functools
import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from facelab.data.listing import LINK_LOOP
from facelab.data.pixels import PixelStore

# Reasons a file is skipped; data.json and the report group skipped files by these.
EMPTY, NOT_IMAGE, CORRUPT, UNREADABLE, TOO_LARGE, BAD_ROW, NO_FACE = (
    "empty file", "not an image", "truncated or corrupt", "unreadable", "over the decompression-bomb limit",
    "bad row", "no face found by the detector")
TOO_SMALL, NON_FINITE, BROKEN_LINK = "too small", "non-finite pixels", "broken link"
SHOWN_CENTRED = 10  # photos named in the faces_fallback: center warning
IGNORED = "not an image file"  # a sidecar, Thumbs.db, desktop.ini, README.txt: listed, never counted as bad
FACE_MARGIN = 0.2  # the detector's box runs from the brows to the mouth: a margin brings in forehead and chin


class BadImage(Exception):
    """One file or row cannot be used; `reason` is one of the reasons above, `detail` says exactly why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail

    @property
    def ignored(self) -> bool:
        return self.reason == IGNORED


class Decoded(NamedTuple):
    """One decoded file: the (img_size, img_size, 3) uint8 square, the digest of its full decoded pixels, and how
    many frames the file holds (an animated GIF, WebP or PNG: only the first is used), and whether it is the centre
    square of a photo in which no face was found."""
    square: np.ndarray
    digest: str
    frames: int = 1
    centred: bool = False  # no face was found, and faces_fallback: center made it the centre square
    # (width, height) of the file, EXIF orientation applied, when the square is its centre square; (0, 0) when the
    # square is cut from elsewhere (a face, a fixed box). The search for cut copies reads it (facelab.data.cuts).
    size: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Skipped:
    """A file that prepare did not use. `counted`: it counts toward data.<task>.max_bad_fraction."""
    file: str
    label: str
    reason: str
    detail: str
    counted: bool = True


@dataclass(frozen=True)
class Images:
    """Decoded images of one task: pixels (N, S, S, 3) uint8, labels (N,) int64, a name and a pixel digest each.

    pixels: in memory, or a read-only np.memmap of the scratch file the source was given (see facelab.data.pixels).

    test: True where the source's own release puts the image in its test split (None: the source has none).
    skipped: files that could not be used; ignored: files that are not images (sidecars, Thumbs.db), listed but
    never counted as bad; first_frame: animated files (of which the first frame is used) and their frame counts;
    not_used: images of folders or labels params do not map to a class."""
    pixels: np.ndarray
    labels: np.ndarray
    files: list[str]
    digests: list[str]
    test: np.ndarray | None = None
    skipped: tuple[Skipped, ...] = ()
    not_used: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    ignored: tuple[Skipped, ...] = ()
    first_frame: dict[str, int] = field(default_factory=dict)
    sizes: np.ndarray | None = None  # (N, 2) int: each file's Decoded.size; None when the images are not files


class Entry(NamedTuple):
    """One candidate file: where it is, its label, how data.json names it, whether it is in the release's test split."""
    path: Path
    label: int
    name: str
    test: bool = False


def read_files(entries: list[Entry], classes: tuple[str, ...], img_size: int,
               box: tuple[int, int, int, int] | None = None, fixed_test: bool = False,
               scratch: Path | None = None, faces: str = "none", min_side: int | None = None,
               fallback: str = "skip") -> Images:
    """Decode every entry, one at a time; each file is used, ignored (not an image file) or skipped with why.
    A photo in which faces: detect or align finds no face is skipped (fallback "skip") or used as its centre square
    (fallback "center", named in the warnings).

    fixed_test: the source has its own test split, given by each entry's `test`.
    scratch: a file for the pixels (see facelab.data.pixels.PixelStore); None keeps them in memory.
    min_side: images whose shorter side is under this many pixels are skipped (data.<task>.min_side)."""
    kept: list[Entry] = []
    digests: list[str] = []
    skipped: list[Skipped] = []
    ignored: list[Skipped] = []
    first_frame: dict[str, int] = {}  # file name: frame count
    centred: list[str] = []
    sizes: list[tuple[int, int]] = []
    with PixelStore(len(entries), img_size, scratch) as store:
        for entry in entries:
            try:
                decoded = decode_image(entry.path, img_size, box, faces, min_side, fallback)
            except BadImage as bad:
                row = Skipped(entry.name, classes[entry.label], bad.reason, bad.detail, counted=not bad.ignored)
                (ignored if bad.ignored else skipped).append(row)
                continue
            store.add(decoded.square)
            kept.append(entry)
            digests.append(decoded.digest)
            sizes.append(decoded.size)
            if decoded.frames > 1:
                first_frame[entry.name] = decoded.frames
            if decoded.centred:
                centred.append(entry.name)
        pixels = store.pixels()
    test = np.array([e.test for e in kept], bool) if fixed_test else None
    return Images(pixels, np.array([e.label for e in kept], np.int64), [e.name for e in kept], digests, test,
                  tuple(skipped), ignored=tuple(ignored), first_frame=first_frame,
                  warnings=(centred_note(centred, faces),) if centred else (),
                  sizes=np.array(sizes, np.int64).reshape(-1, 2))


def centred_note(files: list[str], faces: str) -> str:
    shown = ", ".join(files[:SHOWN_CENTRED]) + (f" and {len(files) - SHOWN_CENTRED} more" if len(files) > SHOWN_CENTRED
                                                 else "")
    return (f"{len(files)} photos have no face the finder could use (data.<task>.faces: {faces}) and are used as "
            f"their centre square (faces_fallback: center): {shown}; set faces_fallback: skip to leave them out")


def decode_image(path: Path, img_size: int, box: tuple[int, int, int, int] | None = None,
                 faces: str = "none", min_side: int | None = None, fallback: str = "skip") -> Decoded:
    """Decode one file to a (img_size, img_size, 3) uint8 square and the digest of its full decoded pixels.
    faces: "detect" crops to the largest face first, "align" levels and crops it by its landmarks; an image with no
    face is a BadImage (fallback "skip") or its centre square (fallback "center"). min_side: see read_files."""
    register_plugins()
    try:
        if path.stat().st_size == 0:
            raise not_an_image(path) if not image_suffix(path) else BadImage(EMPTY, "the file has 0 bytes")
        with warnings.catch_warnings():
            # check_pixel_count below skips such images with a reason; PIL's own warning adds nothing
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                check_pixel_count(image)
                image.load()
                frames = getattr(image, "n_frames", 1) if getattr(image, "is_animated", False) else 1
                size = oriented_size(image) if box is None else (0, 0)
                try:
                    square, digest = square_pixels(image, img_size, box, faces, min_side)
                except BadImage as bad:
                    if bad.reason != NO_FACE or fallback != "center":
                        raise
                    square, digest = square_pixels(image, img_size, box, "none", min_side)
                    return Decoded(square, digest, frames, centred=True, size=size)
                return Decoded(square, digest, frames, size=size if faces == "none" else (0, 0))
    except Image.DecompressionBombError as error:  # PIL refuses images over twice its limit at open
        raise BadImage(TOO_LARGE, str(error)) from error
    except UnidentifiedImageError as error:
        if not image_suffix(path):
            raise not_an_image(path) from error
        raise BadImage(NOT_IMAGE, f"PIL cannot identify it as an image ({path.suffix or 'no suffix'})") from error
    except PermissionError as error:
        raise BadImage(UNREADABLE, str(error)) from error
    except OSError as error:
        raise link_problem(path, error) or BadImage(CORRUPT, str(error) or type(error).__name__) from error
    except (SyntaxError, ValueError, EOFError) as error:
        raise BadImage(CORRUPT, str(error) or type(error).__name__) from error
    except BadImage:
        raise
    except Exception as error:  # noqa: BLE001 - PIL's plugins (AVIF, DDS, ...) raise their own types; one bad
        # file is a listed skip, never the end of the run (MemoryError on one huge image included)
        raise BadImage(CORRUPT, f"{type(error).__name__}: {error}") from error


@functools.lru_cache(maxsize=1)
def register_plugins() -> None:
    """HEIC/HEIF (iPhone photos) through pillow-heif; once per process, at the first decode, not at import."""
    from pillow_heif import register_heif_opener
    register_heif_opener()


def image_suffix(path: Path) -> bool:
    """Whether the file's suffix is one PIL (with its plugins) reads: '.jpg' yes; '.json', '.db', '.ini', '.txt' no."""
    register_plugins()
    return path.suffix.lower() in Image.registered_extensions()


def not_an_image(path: Path) -> BadImage:
    return BadImage(IGNORED, f"{not_an_image_detail(path)}; listed, not counted toward max_bad_fraction")


def not_an_image_detail(path: Path) -> str:
    """What an IGNORED file is, without prepare's note on max_bad_fraction (`facelab predict` has no such limit)."""
    return f"neither its suffix ({path.suffix or 'none'}) nor its content is an image's"


def link_problem(path: Path, error: OSError) -> BadImage | None:
    """A dangling link or a loop of links, said as such rather than as a corrupt file."""
    if error.errno == errno.ELOOP:
        return BadImage(LINK_LOOP, f"'{path}' is a link that leads back to itself; replace it with the file it "
                                   f"should point to")
    if error.errno == errno.ENOENT and os.path.islink(path):
        return BadImage(BROKEN_LINK, f"'{path}' links to '{os.readlink(path)}', which does not exist; fix or "
                                     f"remove the link")
    return None


def display_name(path: Path) -> str:
    """A file name that every writer accepts: bytes that are not UTF-8 (an old Latin-1 disk's 'caf\\xe9.png')
    are kept, written as backslash escapes instead of crashing the CSV and JSON writers."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_pixel_count(image: Image.Image) -> None:
    """PIL only warns between its limit and twice the limit; prepare skips everything over the limit."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:
        raise BadImage(TOO_LARGE, f"{image.width}x{image.height} = {image.width * image.height} pixels "
                                  f"is over PIL's Image.MAX_IMAGE_PIXELS = {limit}")


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) as ImageOps.exif_transpose turns the image: swapped by the orientations with a quarter-turn."""
    width, height = image.size
    return (height, width) if image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8) else (width, height)


def square_pixels(image: Image.Image, img_size: int, box: tuple[int, int, int, int] | None = None,
                  faces: str = "none", min_side: int | None = None) -> tuple[np.ndarray, str]:
    """RGB, EXIF orientation applied, optionally cropped to box (or to the largest face: faces="detect" by its box,
    "align" by its eyes), shorter side resized to img_size, centre-cropped. Images under min_side pixels are a
    BadImage, and so are photos in which faces="detect" or "align" finds no face."""
    image = ImageOps.exif_transpose(image)
    if min_side is not None and min(image.size) < min_side:
        raise BadImage(TOO_SMALL, f"{image.width}x{image.height} pixels, under data.<task>.min_side = {min_side} on "
                                  f"its shorter side; it would become a flat square")
    image = to_rgb(image)
    digest = pixel_digest(np.asarray(image))
    if faces == "detect":
        box = face_box(image)
    elif faces == "align":
        image, box = aligned_face(image), None
    if box is not None:
        image = image.crop(box)
    image = ImageOps.fit(image, (img_size, img_size), Image.Resampling.BICUBIC)
    return np.asarray(image, np.uint8), digest


def face_box(image: Image.Image) -> tuple[int, int, int, int]:
    """The largest face in an RGB image, grown by FACE_MARGIN; an image with none is skipped with that reason."""
    from facelab.data.detect import expand_box, largest_face  # OpenCV is loaded only when faces are detected

    found = largest_face(np.asarray(image))
    if found is None:
        raise BadImage(NO_FACE, "OpenCV's Haar cascades found no face, frontal or profile (data.<task>.faces: "
                                "detect); crop it by hand or use faces: none")
    return expand_box(found, FACE_MARGIN, image.width, image.height)


def aligned_face(image: Image.Image) -> Image.Image:
    """The largest face in an RGB image as a square, its eyes level at facelab.data.align's fixed places; an image
    with no face MTCNN can align on is skipped with that reason."""
    from facelab.data.align import align_face, largest_face_landmarks  # OpenCV is loaded only when faces are aligned

    pixels = np.asarray(image)
    found = largest_face_landmarks(pixels)
    if found is None:
        raise BadImage(NO_FACE, "MTCNN found no face with both eyes (data.<task>.faces: align); crop it by hand, "
                                "use faces: none, or set faces_fallback: center to use its centre square")
    return Image.fromarray(align_face(pixels, found))


def pixel_digest(pixels: np.ndarray) -> str:
    """Equal for two images exactly when their decoded pixels (and shapes) are equal."""
    pixels = np.ascontiguousarray(pixels, np.uint8)
    return hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparent pixels become white rather than black."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float greyscale: scale the real range to 0..255 instead of clipping.
        array = np.asarray(image, np.float64)
        finite = np.isfinite(array)
        if not finite.all():  # NaN or inf would scale every pixel to NaN, then to black
            raise BadImage(NON_FINITE, f"{int((~finite).sum())} of {array.size} pixels are NaN or infinite "
                                       f"(a float {image.mode} image); re-export it with finite values")
        low, high = float(array.min()), float(array.max())
        array = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        image = Image.fromarray(np.round(array).astype(np.uint8))  # 2-D uint8: mode L
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")

