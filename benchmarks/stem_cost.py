"""Benchmark: what models.<recipe>.stem: small costs per training step, against the ImageNet stem, side by side.

Run from the repository root:  python3 -m benchmarks.stem_cost [--img-size 64] [--images 256] [--repeats 3]

ResNet18 (random init, 3 classes) trains on random 64 px images in batches of 32 (Adam, as the recipe), in one
process, alternating the two stems; prints the fastest of the repeats for each, per image, and their ratio, with
the grid of layer4 (the last block) for each stem. Timings move with the machine's load; the ratio is the figure.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Literal

import torch
from torchvision.models import ResNet

from facelab.data.inputs import to_input
from facelab.models import build_model
from facelab.params import load_params


def step_seconds(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    started = time.perf_counter()
    for start in range(0, len(images), batch_size):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images[start:start + batch_size]),
                                          labels[start:start + batch_size]).backward()
        optimizer.step()
    return time.perf_counter() - started


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = load_params("params.yaml").models["resnet18_scratch"]
    generator = torch.Generator().manual_seed(0)
    images = to_input(torch.randint(0, 256, (args.images, args.img_size, args.img_size, 3), dtype=torch.uint8,
                                    generator=generator))
    labels = torch.randint(0, 3, (args.images,), generator=generator)
    stems: tuple[Literal["imagenet", "small"], ...] = ("imagenet", "small")
    seconds: dict[str, list[float]] = {stem: [] for stem in stems}
    grids: dict[str, tuple[int, ...]] = {}
    for _ in range(args.repeats):
        for stem in stems:
            torch.manual_seed(0)
            model = build_model(dataclasses.replace(recipe, stem=stem), 3)
            assert isinstance(model, ResNet)
            seconds[stem].append(step_seconds(model, images, labels, recipe.batch_size))
            with torch.no_grad():
                model.eval()
                grids[stem] = tuple(model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(
                    model.bn1(model.conv1(images[:1]))))))).shape[-2:])
    best = {stem: min(values) for stem, values in seconds.items()}
    print(f"resnet18 at {args.img_size} px, {args.images} images a pass, batch {recipe.batch_size}, "
          f"{args.threads} threads, fastest of {args.repeats}:")
    for name, value in best.items():
        print(f"  stem {name}: {1000 * value / args.images:.1f} ms per image; layer3 grid {grids[name]}")
    print(f"  small / imagenet: {best['small'] / best['imagenet']:.1f}x")


if __name__ == "__main__":
    main()
