"""Face finding on whole frames, for faces: detect (Haar: the first pass alone, and with the second pass;
facelab.data.detect) and faces: align (MTCNN's landmarks; facelab.data.align): detection rate and cost per frame.

    python benchmarks/detect_rate.py [--n 300] [--seed 0]

Two sets, both read in place from ../shared/data/real/, never copied:
- pasted: real faces (Yale B and FER2013 crops) pasted at random positions, scales and small rotations into larger
  backgrounds. A face counts as found when the largest box the finder returns has its centre inside the pasted face
  and is at least a third of its width; any other box, or none, is a miss.
- face-lfw-frames: all its 600 photos, each holding one person's face; any face found counts (there is no box to
  check against), and the found box's centre is checked to lie in the photo's middle half."""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from facelab.data.align import largest_face_landmarks
from facelab.data.detect import largest_face

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
LFW_FRAMES = REAL / "face-lfw-frames"
FRAME = (480, 360)  # width, height of each whole frame: a phone photo scaled down
SCALES = (0.18, 0.45)  # pasted face width as a share of the frame width
MAX_TURN = 12  # degrees of in-plane rotation either way


def faces(n: int, rng: np.random.Generator) -> list[Path]:
    pool = sorted((REAL / "face-yaleb").rglob("*.png")) + sorted((REAL / "emotion-fer2013").rglob("*.jpg"))
    if not pool:
        raise SystemExit(f"no real faces under {REAL}; this benchmark needs ../shared/data/real/")
    return [pool[i] for i in rng.choice(len(pool), n, replace=False)]


def background(rng: np.random.Generator) -> Image.Image:
    """A smooth two-colour blotch field with noise: no faces, some edges, like an out-of-focus room."""
    coarse = rng.uniform(0, 255, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize(FRAME, Image.Resampling.BICUBIC), np.float32)
    return Image.fromarray(np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8))


def frame(face_path: Path, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The face pasted into a background; the box it covers (left, top, right, bottom)."""
    face = Image.open(face_path).convert("RGB")
    width = int(rng.uniform(*SCALES) * FRAME[0])
    face = face.resize((width, round(width * face.height / face.width)), Image.Resampling.BICUBIC)
    turn = rng.uniform(-MAX_TURN, MAX_TURN)
    # only the face, no black corners
    mask = Image.new("L", face.size, 255).rotate(turn, Image.Resampling.BICUBIC, expand=True)
    face = face.rotate(turn, Image.Resampling.BICUBIC, expand=True)
    canvas = background(rng)
    left = int(rng.integers(0, FRAME[0] - face.width + 1))
    top = int(rng.integers(0, max(1, FRAME[1] - face.height + 1)))
    canvas.paste(face, (left, top), mask)
    return np.asarray(canvas), (left, top, left + face.width, top + face.height)


def hit(box, truth) -> bool:
    if box is None:
        return False
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3] and box[2] - box[0] >= (truth[2] - truth[0]) / 3


def landmark_box(pixels: np.ndarray) -> tuple[int, int, int, int] | None:
    """faces: align's finder, as a box: None where it finds no face it can align on."""
    found = largest_face_landmarks(pixels)
    return found.box if found is not None else None


FINDERS: dict[str, Callable[[np.ndarray], tuple[int, int, int, int] | None]] = {
    "Haar, first pass only": lambda pixels: largest_face(pixels, second_pass=False),
    "Haar, with the second pass (detect)": largest_face,
    "MTCNN landmarks (align)": landmark_box,
}


def lfw_frames() -> list[np.ndarray]:
    files = sorted(LFW_FRAMES.rglob("*.jpg"))
    if not files:
        raise SystemExit(f"no photos under {LFW_FRAMES}; this benchmark needs ../shared/data/real/")
    return [np.asarray(Image.open(path).convert("RGB")) for path in files]


def middle(box, pixels: np.ndarray) -> bool:
    height, width = pixels.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return width / 4 <= cx <= 3 * width / 4 and height / 4 <= cy <= 3 * height / 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="pasted faces")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    frames = [frame(path, rng) for path in faces(args.n, rng)]
    photos = lfw_frames()
    for label, finder in FINDERS.items():
        finder(photos[0])  # load the model before timing
        start = time.perf_counter()
        found = sum(hit(finder(pixels), truth) for pixels, truth in frames)
        seconds = time.perf_counter() - start
        print(f"pasted, {label}: {found} of {len(frames)} faces found ({found / len(frames):.1%}), "
              f"{1000 * seconds / len(frames):.0f} ms per {FRAME[0]}x{FRAME[1]} frame")
        start = time.perf_counter()
        boxes = [finder(pixels) for pixels in photos]
        seconds = time.perf_counter() - start
        found = sum(box is not None for box in boxes)
        centred = sum(box is not None and middle(box, pixels) for box, pixels in zip(boxes, photos))
        print(f"face-lfw-frames, {label}: a face in {found} of {len(photos)} photos ({found / len(photos):.1%}; "
              f"centred in the middle half: {centred}), {1000 * seconds / len(photos):.0f} ms per "
              f"{photos[0].shape[1]}x{photos[0].shape[0]} photo")


if __name__ == "__main__":
    main()
