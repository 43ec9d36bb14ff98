"""Benchmark: train the default resnet18_scratch recipe on the generated faces and print test accuracy per task.

Run from the repository root:  python3 -m benchmarks.calibrate_generated [--tasks face emotion] [--sheet-dir /tmp]
The generator's default nuisance strengths are calibrated so that each task lands between 0.80 and 0.97.
"""
import argparse
import copy
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from sklearn.model_selection import train_test_split

from facelab.data.faces import generate_emotions, generate_face_identity

# ImageNet statistics, as the project's training stage normalises with them.
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def generate(task: str, img_size: int, seed: int, difficulty: float) -> tuple[np.ndarray, np.ndarray]:
    """The project's default generated datasets (params.yaml data.<task>.generated)."""
    if task == "face":
        return generate_face_identity(1000, 1 / 6, 60, img_size, seed, difficulty=difficulty)
    return generate_emotions(700, 50, img_size, seed, difficulty=difficulty)


def split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified 0.70/0.15/0.15 indices: test+val off first, then val out of it."""
    idx = np.arange(len(labels))
    train, rest = train_test_split(idx, test_size=0.30, stratify=labels, random_state=seed)
    val, test = train_test_split(rest, test_size=0.50, stratify=labels[rest], random_state=seed)
    return train, val, test


def to_tensor(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - _MEAN) / _STD


def evaluate_split(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 128]) for i in range(0, len(x), 128)])
    loss = torch.nn.functional.cross_entropy(logits, y).item()
    return loss, (logits.argmax(1) == y).float().mean().item()


def train_one_epoch(model, opt, x, y, batch_size: int, gen: torch.Generator) -> tuple[float, float]:
    model.train()
    order = torch.randperm(len(x), generator=gen)
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        b = order[i:i + batch_size]
        xb, yb = x[b], y[b]
        flip = torch.rand(len(b), generator=gen) < 0.5  # horizontal flip, the recipe's only augmentation
        xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
        logits = model(xb)
        loss = torch.nn.functional.cross_entropy(logits, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total_loss += loss.item() * len(b)
        correct += (logits.argmax(1) == yb).sum().item()
    return total_loss / len(x), correct / len(x)


def run(task: str, img_size: int, seed: int, difficulty: float, epochs: int) -> dict:
    t0 = time.time()
    images, labels = generate(task, img_size, seed, difficulty)
    gen_s = time.time() - t0
    print(f"[{task}] generated {images.shape} in {gen_s:.2f}s, class counts {np.bincount(labels).tolist()}")
    tr, va, te = split(labels, seed)
    x, y = to_tensor(images), torch.from_numpy(labels)
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None, num_classes=int(labels.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    best, best_val_loss, val_accs = None, float("inf"), []
    for epoch in range(1, epochs + 1):
        tl, ta = train_one_epoch(model, opt, x[tr], y[tr], 32, gen)
        vl, vacc = evaluate_split(model, x[va], y[va])
        val_accs.append(vacc)
        print(f"[{task}] epoch {epoch:2d} train loss {tl:.3f} acc {ta:.3f} | val loss {vl:.3f} acc {vacc:.3f}")
        if vl < best_val_loss:
            best_val_loss, best = vl, copy.deepcopy(model.state_dict())
    model.load_state_dict(best)
    test_loss, test_acc = evaluate_split(model, x[te], y[te])
    majority = np.bincount(labels[te]).max() / len(te)
    print(f"[{task}] TEST acc {test_acc:.3f} (loss {test_loss:.3f}, majority baseline {majority:.3f}), "
          f"generation {gen_s:.2f}s, total {time.time() - t0:.0f}s")
    return {"task": task, "test_acc": test_acc, "val_acc": val_accs, "gen_s": gen_s}


def save_contact_sheet(task: str, img_size: int, seed: int, difficulty: float, path: str, cols: int = 8) -> None:
    """One class per row block (face: first row = target, emotion: angry, happy, sad rows), enlarged 3x."""
    images, labels = generate(task, img_size, seed, difficulty)
    counts = {1: 8, 0: 24} if task == "face" else {0: 8, 1: 8, 2: 8}
    order = np.concatenate([np.flatnonzero(labels == k)[:n] for k, n in counts.items()])
    rows, s = -(-len(order) // cols), img_size + 4
    sheet = np.zeros((rows * s, cols * s, 3), np.uint8)
    for k, i in enumerate(order):
        r, c = divmod(k, cols)
        sheet[r * s:r * s + img_size, c * s:c * s + img_size] = images[i]
    Image.fromarray(sheet).resize((cols * s * 3, rows * s * 3), Image.Resampling.NEAREST).save(path)
    print(f"[{task}] contact sheet -> {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["face", "emotion"], choices=["face", "emotion"])
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--difficulty", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the box is shared)")
    parser.add_argument("--sheet-dir", default=None, help="also save <dir>/faces_<task>.png contact sheets")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for task in args.tasks:
        if args.sheet_dir:
            save_contact_sheet(task, args.img_size, args.seed, args.difficulty, f"{args.sheet_dir}/faces_{task}.png")
        results.append(run(task, args.img_size, args.seed, args.difficulty, args.epochs))
    for r in results:
        print(f"{r['task']:8s} test acc {r['test_acc']:.3f}  val acc by epoch "
              f"{' '.join(f'{a:.2f}' for a in r['val_acc'])}  generation {r['gen_s']:.2f}s")


if __name__ == "__main__":
    main()
