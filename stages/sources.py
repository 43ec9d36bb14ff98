"""Data sources for prepare: the built-in generated faces and a user's image-folder tree, decoded to uint8 RGB."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from stages import faces
from stages.cli import UserError
from stages.params import DataParams

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


class DataError(UserError):
    """The input images are unusable: the message says which folder or file and how to fix it."""


@dataclass(frozen=True)
class Images:
    """Decoded images of one task: pixels (N, S, S, 3) uint8, labels (N,) int64, a name per image."""
    pixels: np.ndarray
    labels: np.ndarray
    files: list[str]


def load_images(task: str, data: DataParams, seed: int) -> Images:
    """Decode every image of the task's source once, at data.img_size."""
    if data.source == "generated":
        return generated_images(task, data, seed)
    return folder_images(Path(data.path), data.classes, data.img_size)


def generated_images(task: str, data: DataParams, seed: int) -> Images:
    gen = data.generated
    if task == "face":
        pixels, labels = faces.generate_face_identity(
            gen.n_images, gen.target_fraction, gen.n_identities, data.img_size, seed,
            difficulty=gen.difficulty)
    else:
        pixels, labels = faces.generate_emotions(
            gen.n_images, gen.n_identities, data.img_size, seed, difficulty=gen.difficulty)
    files = [f"generated/{task}/{i:05d}.png" for i in range(len(labels))]
    return Images(pixels, labels.astype(np.int64), files)


def folder_images(root: Path, classes: tuple[str, ...], img_size: int) -> Images:
    """Read <root>/<class>/* for each class named in params, in sorted file order."""
    class_files = list_class_files(root, classes)
    pixels = np.empty((sum(len(f) for f in class_files.values()), img_size, img_size, 3), np.uint8)
    labels, files = [], []
    for label, name in enumerate(classes):
        for path in class_files[name]:
            pixels[len(files)] = decode_image(path, img_size)
            labels.append(label)
            files.append(str(path.relative_to(root)))
    return Images(pixels, np.asarray(labels, np.int64), files)


def list_class_files(root: Path, classes: tuple[str, ...]) -> dict[str, list[Path]]:
    if not root.is_dir():
        raise DataError(f"image folder '{root}' does not exist; set data.<task>.path to a folder "
                        f"holding one sub-folder per class {list(classes)}")
    found = {name: sorted(p for p in (root / name).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
             if (root / name).is_dir() else None for name in classes}
    bad = {name: ("missing" if files is None else "empty") for name, files in found.items() if not files}
    if bad:
        counts = ", ".join(f"{name}: {len(files) if files else 0}" for name, files in found.items())
        problems = ", ".join(f"'{root / name}' is {why}" for name, why in bad.items())
        raise DataError(f"{problems} (images per class: {counts}); each class in params needs a "
                        f"folder with images ({', '.join(IMAGE_SUFFIXES)})")
    return found


def decode_image(path: Path, img_size: int) -> np.ndarray:
    """RGB, EXIF orientation applied, shorter side resized to img_size, centre-cropped square."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image = to_rgb(image)
            image = ImageOps.fit(image, (img_size, img_size), Image.Resampling.BICUBIC)
            return np.asarray(image, np.uint8)
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"cannot decode image '{path}': {error}; remove or replace the file") from error


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparent pixels become white rather than black."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float greyscale: scale the real range to 0..255 instead of clipping.
        array = np.asarray(image, np.float64)
        low, high = float(array.min()), float(array.max())
        array = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        image = Image.fromarray(array.astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")
