"""Write a small real image folder from Fashion-MNIST: the transfer-learning example data of docs/datasets.md.

The first N images per class of the official training set go to OUT/train/<class>/, the first N
per class of the official test set to OUT/test/<class>/, upscaled to SIZE px PNGs (as photos of
clothes would be larger than 28 px). Reads the offline IDX files like ``--dataset fashion_mnist``
(Debian's dataset-fashion-mnist package, or --data_dir).

Example:
    python bench/fashion_folder.py --out fashion_folder --per_class 100 --size 64
    python train.py --dataset folder --data_dir fashion_folder --model efficientnet_lite0 ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder to create (train/ and test/ inside)")
    p.add_argument("--per_class", type=int, default=100, help="images per class in each split (default: 100)")
    p.add_argument("--size", type=int, default=64, help="side of the written PNGs in px (default: 64)")
    p.add_argument(
        "--data_dir", default="datasets", help="where the Fashion-MNIST files are cached (default: datasets)"
    )
    args = p.parse_args(argv)

    from PIL import Image

    from data.torchvision_sets import load_set

    bundle = load_set("fashion_mnist", args.data_dir)
    names = [c.replace("/", "_") for c in bundle.class_names]  # "T-shirt/top" is no folder name
    # Training images come from train+val (the official training set), in their stored order.
    images = {"train": (bundle.train, bundle.val), "test": (bundle.test,)}
    for split, parts in images.items():
        count = [0] * len(names)
        for part in parts:
            for img, label in zip(part.images, part.labels.tolist()):
                if count[label] >= args.per_class:
                    continue
                folder = Path(args.out) / split / names[label]
                folder.mkdir(parents=True, exist_ok=True)
                pic = Image.fromarray(img[0].numpy(), "L").resize((args.size, args.size), Image.BILINEAR)
                pic.save(folder / f"{split}_{label}_{count[label]:04d}.png")
                count[label] += 1
        print(f"{split}: {sum(count)} images, {len(names)} classes -> {Path(args.out) / split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
