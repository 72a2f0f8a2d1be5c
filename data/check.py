"""The dataset check: what a dataset holds and what is wrong with it, before hours of training.

``python train.py --check_data`` prints the full report and exits (non-zero with ``--strict_data``
when files are bad); training prints the short form at its start. Loaders of file datasets fill a
:class:`DataReport` while scanning; for the built-in sets ``report_of`` derives one from the labels.

Example:
    python train.py --dataset folder --data_dir my_images --check_data
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from common.errors import AppError
from common.spelling import plural

IMBALANCE_RATIO = 10  # max/min training images per class above which training is likely to suffer
LIST_LIMIT = 20  # paths listed per problem in the full report; the rest are counted


class DataError(AppError):
    """Bad files under --strict_data, or a dataset with nothing usable in it."""


class TooFewClasses(DataError):
    """A training split with fewer than two classes: a usage mistake (exit status 2), not a crash."""

    exit_code = 2


@dataclass
class DataReport:
    """Everything the check found; ``counts`` is split -> class -> usable images."""

    source: str
    class_names: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    folder_classes: dict[str, list[str]] = field(default_factory=dict)  # class names seen per given split
    empty_classes: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    non_images: list[str] = field(default_factory=list)
    bad_files: list[str] = field(default_factory=list)  # "path: why"
    modes: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> files
    notes: list[str] = field(default_factory=list)  # what the loader decided (split, resize, streaming)
    channels: int = 0  # what every image was converted to (file datasets)
    exif_rotated: int = 0  # images whose EXIF Orientation tag turns or mirrors them when decoded
    duplicates: int = 0  # files reached again through another link (or hard link): counted once
    link_loops: list[str] = field(default_factory=list)  # folders reached again through a link: not re-entered

    def warnings(self) -> list[str]:
        """One line per problem worth a user's attention."""
        out = []
        if self.bad_files:
            out.append(
                f"{plural(len(self.bad_files), 'unreadable image')} skipped (listed in --check_data; "
                f"--strict_data makes them fatal)"
            )
        lacks = [
            f"{split} lacks {', '.join(sorted(set(self.class_names) - set(classes)))}"
            for split, classes in self.folder_classes.items()
            if set(self.class_names) - set(classes)
        ]
        if lacks:  # indices stay those of the sorted union, so the splits still agree on labels
            out.append("class names differ between splits: " + "; ".join(lacks))
        for split, per_class in self.counts.items():
            absent = [c for c in self.class_names if per_class.get(c, 0) == 0]
            if absent and split == "train":
                out.append(
                    f"train has no images of {plural(len(absent), 'class', count=False)} {', '.join(absent)}: "
                    f"the model cannot learn them"
                )
        if self.duplicates:  # one file in two splits would leak test images into training
            out.append(
                f"{plural(self.duplicates, 'duplicate file')} dropped: the same file reached through more "
                f"than one link or path is used once"
            )
        if self.link_loops:
            shown = ", ".join(self.link_loops[:3]) + (" ..." if len(self.link_loops) > 3 else "")
            out.append(
                f"{plural(len(self.link_loops), 'link')} to a folder already scanned skipped "
                f"(loops or repeats: {shown})"
            )
        if self.empty_classes:
            folders = plural(len(self.empty_classes), "empty class folder", count=False)
            out.append(f"{folders}: {', '.join(self.empty_classes)}")
        if self.non_images:
            out.append(f"{plural(len(self.non_images), 'non-image file')} ignored")
        if len(self.modes) > 1:
            target = {1: "grayscale", 3: "RGB"}.get(self.channels, "the same channels")
            out.append(f"mixed image modes {_counter(self.modes)}; all converted to {target}")
        if len(self.sizes) > 1:  # a fixed input size squashes or stretches the odd ones out
            out.append(f"mixed image sizes: {_sizes(self.sizes).split(';')[0]}; all resized to one square size")
        ratio = self.imbalance()
        if ratio > IMBALANCE_RATIO:
            out.append(
                f"severe class imbalance: the largest training class has {ratio:.0f}x the images of the "
                f"smallest; consider --class_weights auto or --balanced_sampler"
            )
        return out

    def imbalance(self) -> float:
        train = [n for n in self.counts.get("train", {}).values() if n > 0]
        return max(train) / min(train) if train else 0.0

    def summary(self) -> str:
        """Short form printed at the start of training."""
        sizes = ", ".join(f"{s} {sum(c.values())}" for s, c in self.counts.items())
        lines = [f"data: {self.source} | {len(self.class_names)} classes | {sizes}"]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  warning: {w}" for w in self.warnings()]
        return "\n".join(lines)

    def format(self) -> str:
        """The full report of ``--check_data``."""
        lines = [f"dataset check: {self.source}", ""]
        splits = list(self.counts)
        width = max([len(c) for c in self.class_names] + [5])
        lines.append(f"{'class':<{width}}  " + "  ".join(f"{s:>7}" for s in splits))
        for c in self.class_names:
            lines.append(f"{c:<{width}}  " + "  ".join(f"{self.counts[s].get(c, 0):>7}" for s in splits))
        lines.append(f"{'total':<{width}}  " + "  ".join(f"{sum(self.counts[s].values()):>7}" for s in splits))
        if self.modes:
            lines += ["", "image modes: " + _counter(self.modes)]
        if self.sizes:
            lines.append("image sizes (w x h): " + _sizes(self.sizes))
        for title, items in (
            ("hidden entries ignored", self.hidden),
            ("non-image files ignored", self.non_images),
            ("unreadable images skipped", self.bad_files),
        ):
            if items:
                lines += ["", f"{title} ({len(items)}):"] + [f"  {p}" for p in items[:LIST_LIMIT]]
                if len(items) > LIST_LIMIT:
                    lines.append(f"  ... and {len(items) - LIST_LIMIT} more")
        if self.notes:
            lines += [""] + [f"note: {n}" for n in self.notes]
        warnings = self.warnings()
        lines += [""] + ([f"warning: {w}" for w in warnings] if warnings else ["no problems found"])
        return "\n".join(lines)


def _counter(c: Counter) -> str:
    return "(" + ", ".join(f"{k} {v}" for k, v in c.most_common()) + ")"


def _sizes(sizes: Counter) -> str:
    if len(sizes) == 1:
        (w, h), n = next(iter(sizes.items()))
        return f"all {w}x{h} ({n})"
    areas = sorted(sizes, key=lambda s: s[0] * s[1])
    return (
        f"{len(sizes)} different, from {areas[0][0]}x{areas[0][1]} to {areas[-1][0]}x{areas[-1][1]}; "
        f"most common {_counter(Counter({f'{w}x{h}': n for (w, h), n in sizes.most_common(3)}))}"
    )


def report_of(bundle) -> DataReport:
    """The bundle's report (created and attached if the loader made none), counts filled from labels."""
    report = bundle.report = bundle.report or DataReport(source=bundle.name)
    report.class_names = list(bundle.class_names)
    for name, split in bundle.splits().items():
        counts = split.labels.bincount(minlength=len(bundle.class_names)).tolist()
        report.counts[name] = dict(zip(bundle.class_names, counts))
    return report


def enforce_strict(report: DataReport, strict: bool) -> None:
    """Under --strict_data any unreadable image stops the run, naming the files."""
    if strict and report.bad_files:
        shown = "; ".join(report.bad_files[:5]) + (" ..." if len(report.bad_files) > 5 else "")
        raise DataError(
            f"{plural(len(report.bad_files), 'unreadable image')} and --strict_data is set: {shown}. "
            f"Fix or remove them, or drop --strict_data to skip them"
        )
