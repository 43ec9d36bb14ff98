"""Face finding for prepare: the largest face in a uint8 RGB image (OpenCV's bundled Haar cascades: frontal first,
then a finer second pass with profiles), and a crop around it with a margin. Boxes are (left, top, right, bottom) in
pixels, as PIL's Image.crop takes them."""
from __future__ import annotations

import functools

import cv2
import cv2.data  # the cascades' folder; named, so a type checker sees the submodule cv2 loads itself
import numpy as np

from facelab.errors import UserError

CASCADE = "haarcascade_frontalface_default.xml"  # Viola-Jones frontal faces, shipped inside opencv-python(-headless)
PROFILE = "haarcascade_profileface.xml"  # faces turned to their left; a mirrored image gives those turned right
SCALE_FACTOR = 1.1  # image-pyramid step between detection scales: OpenCV's default
MIN_NEIGHBORS = 5  # overlapping hits a face needs; 3 (OpenCV's default) finds more faces in random noise
# The second pass, only for images the first finds nothing in: finer scale steps see faces between the first
# pass's scales, 4 neighbours accept weaker hits (3 found faces in noise; 4 none in tests/test_detect.py's noise),
# and the profile cascade, on the image and its mirror, finds turned heads. benchmarks/detect_rate.py measures it.
SECOND_SCALE_FACTOR = 1.05
SECOND_MIN_NEIGHBORS = 4
MIN_FACE_FRACTION = 0.1  # ignore boxes narrower than this share of the image's shorter side
MIN_FACE_PIXELS = 24  # the cascade's own window: it cannot see smaller faces

Box = tuple[int, int, int, int]


@functools.lru_cache(maxsize=2)
def face_cascade(name: str = CASCADE) -> cv2.CascadeClassifier:
    """Loaded once per process: reading the cascade's XML takes longer than scanning a small image."""
    path = cv2.data.haarcascades + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise UserError(f"OpenCV could not load its face cascade '{path}'; reinstall opencv-python-headless "
                        f"(pip install --force-reinstall 'opencv-python-headless>=4.8,<5')")
    return cascade


def largest_face(rgb: np.ndarray, second_pass: bool = True) -> Box | None:
    """The largest face the cascades find in an (H, W, 3) uint8 RGB image, or None. The frontal cascade at
    OpenCV's usual settings first; only when it finds none, the second pass (see SECOND_SCALE_FACTOR)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"largest_face expects an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    smallest = max(MIN_FACE_PIXELS, round(MIN_FACE_FRACTION * min(height, width)))
    if min(height, width) < smallest:
        return None
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    found = detect(grey, CASCADE, SCALE_FACTOR, MIN_NEIGHBORS, smallest)
    if not found and second_pass:
        flipped = np.ascontiguousarray(grey[:, ::-1])
        mirrored = [(width - x - w, y, w, h) for x, y, w, h in
                    detect(flipped, PROFILE, SECOND_SCALE_FACTOR, SECOND_MIN_NEIGHBORS, smallest)]
        found = (detect(grey, CASCADE, SECOND_SCALE_FACTOR, SECOND_MIN_NEIGHBORS, smallest)
                 + detect(grey, PROFILE, SECOND_SCALE_FACTOR, SECOND_MIN_NEIGHBORS, smallest) + mirrored)
    if not found:
        return None
    x, y, w, h = max(found, key=lambda box: box[2] * box[3])
    return x, y, x + w, y + h


def detect(grey: np.ndarray, cascade: str, scale_factor: float, min_neighbors: int, smallest: int) -> list[tuple]:
    """(x, y, w, h) boxes of one cascade at one setting."""
    boxes = face_cascade(cascade).detectMultiScale(grey, scaleFactor=scale_factor, minNeighbors=min_neighbors,
                                                   minSize=(smallest, smallest))
    return [tuple(int(v) for v in box) for box in boxes]


def expand_box(box: Box, margin: float, width: int, height: int) -> Box:
    """box grown by `margin` of its width (left and right) and of its height (top and bottom), inside the image.

    The cascade's box runs from the eyebrows to the mouth; a margin brings in the forehead, chin and cheeks."""
    left, top, right, bottom = box
    dx, dy = round(margin * (right - left)), round(margin * (bottom - top))
    return max(0, left - dx), max(0, top - dy), min(width, right + dx), min(height, bottom + dy)


def crop_face(image: np.ndarray, box: Box, margin: float = 0.2) -> np.ndarray:
    """The part of an (H, W, ...) image inside box grown by margin (see expand_box)."""
    left, top, right, bottom = expand_box(box, margin, image.shape[1], image.shape[0])
    return image[top:bottom, left:right]
