"""Face finding on whole frames: real faces pasted at random positions, scales and small rotations into larger
backgrounds; prints the detection rate of the first pass alone and with the second pass (facelab.data.detect).

    python benchmarks/detect_rate.py [--n 300] [--seed 0]

Faces come from ../shared/data/real/ (Yale B and FER2013 crops, read in place, never copied). A face counts as found
when the largest box the detector returns has its centre inside the pasted face and is at least a third of its
width; any other box, or none, is a miss."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from facelab.data.detect import largest_face

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
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
    field = np.asarray(Image.fromarray(coarse).resize(FRAME, Image.BICUBIC), np.float32)
    return Image.fromarray(np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8))


def frame(face_path: Path, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The face pasted into a background; the box it covers (left, top, right, bottom)."""
    face = Image.open(face_path).convert("RGB")
    width = int(rng.uniform(*SCALES) * FRAME[0])
    face = face.resize((width, round(width * face.height / face.width)), Image.BICUBIC)
    turn = rng.uniform(-MAX_TURN, MAX_TURN)
    mask = Image.new("L", face.size, 255).rotate(turn, Image.BICUBIC, expand=True)  # only the face, no black corners
    face = face.rotate(turn, Image.BICUBIC, expand=True)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    frames = [frame(path, rng) for path in faces(args.n, rng)]
    for label, second in (("first pass only", False), ("with the second pass", True)):
        start = time.perf_counter()
        found = sum(hit(largest_face(pixels, second_pass=second), truth) for pixels, truth in frames)
        seconds = time.perf_counter() - start
        print(f"{label}: {found} of {len(frames)} faces found ({found / len(frames):.1%}), "
              f"{1000 * seconds / len(frames):.0f} ms per {FRAME[0]}x{FRAME[1]} frame")


if __name__ == "__main__":
    main()
