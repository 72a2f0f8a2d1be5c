"""Human-readable tables and the output files of ``evaluate.py`` and ``predict.py``.

Files are written atomically (temp file + rename) like checkpoints, so an interrupted run never
leaves a half-written CSV that looks complete.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.fileio import write_atomic
from common.spelling import plural
from evaluation.inference import Prediction
from evaluation.metrics import Evaluation, most_confused
from evaluation.plots import plot_confusion_matrix, plot_reliability

EVAL_FILES = ("metrics.json", "confusion_matrix.csv", "confusion_matrix.png", "misclassified.csv", "reliability.png")


def _csv_bytes(rows: Sequence[Sequence]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


# --- evaluate.py -------------------------------------------------------------------------------
def format_evaluation(ev: Evaluation, class_names: Sequence[str], split: str, confused: int = 10) -> str:
    """Headline metrics, the per-class table and the most-confused pairs, as printed by evaluate.py."""
    m = ev.metrics
    lines = [
        f"{split}: {plural(m['num_samples'], 'sample')}, {len(class_names)} classes",
        f"accuracy        {m['accuracy']:.4f}",
    ]
    if m["top5_accuracy"] is not None:
        lines.append(f"top-5 accuracy  {m['top5_accuracy']:.4f}")
    lines += [
        f"macro     precision {ev.macro[0]:.4f}  recall {ev.macro[1]:.4f}  F1 {ev.macro[2]:.4f}",
        f"weighted  precision {ev.weighted[0]:.4f}  recall {ev.weighted[1]:.4f}  F1 {ev.weighted[2]:.4f}",
        f"ECE             {m['ece']:.4f}  (expected calibration error, 15 bins)",
        "",
    ]
    width = max(12, *(len(str(c)) for c in class_names))
    lines.append(f"{'class':<{width}}  precision  recall      f1  support")
    for name, s in m["per_class"].items():
        lines.append(f"{name:<{width}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}  {s['support']:7d}")
    pairs = most_confused(ev.confusion, class_names, confused)
    lines.append("")
    if pairs:
        lines.append("most confused (true -> predicted: count, % of the true class)")
        lines += [f"  {t} -> {p}: {n} ({share:.1%})" for t, p, n, share in pairs]
    else:
        lines.append("no misclassified samples")
    return "\n".join(lines)


def write_evaluation(ev: Evaluation, class_names: Sequence[str], sample_ids: Sequence[str], out_dir: Path) -> None:
    """Write every file in EVAL_FILES to ``out_dir`` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic((json.dumps(ev.metrics, indent=2) + "\n").encode(), out_dir / "metrics.json")
    names = [str(c) for c in class_names]
    rows = [["true \\ predicted", *names]] + [[n, *map(int, r)] for n, r in zip(names, ev.confusion)]
    write_atomic(_csv_bytes(rows), out_dir / "confusion_matrix.csv")
    wrong = np.flatnonzero(ev.y_pred != ev.y_true)
    # Most confident mistakes first: those are label errors or systematic confusions worth a look.
    wrong = wrong[np.argsort(-ev.confidence[wrong], kind="stable")]
    rows = [["sample", "true", "predicted", "confidence"]]
    rows += [[sample_ids[i], names[ev.y_true[i]], names[ev.y_pred[i]], f"{ev.confidence[i]:.6f}"] for i in wrong]
    write_atomic(_csv_bytes(rows), out_dir / "misclassified.csv")
    plot_confusion_matrix(ev.confusion, names, out_dir / "confusion_matrix.png")
    plot_reliability(ev.confidence, ev.y_pred == ev.y_true, ev.metrics["ece"], out_dir / "reliability.png")


# --- predict.py --------------------------------------------------------------------------------
def format_prediction(pred: Prediction, class_names: Sequence[str], k: int) -> str:
    """One printed row: path, then the top-k classes with probabilities (or the error), then latency."""
    if pred.error:
        return f"{pred.path}  ERROR: {pred.error}"
    top = "  ".join(f"{name} {p:.3f}" for name, p in pred.top(class_names, k))
    return f"{pred.path}  {top}  ({pred.latency_ms:.1f} ms)"


def write_predictions(preds: Sequence[Prediction], class_names: Sequence[str], k: int, path: str) -> None:
    """``path`` .csv: path, class_1, prob_1 ... class_k, prob_k, latency_ms, error; .json: a list of records."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    k = min(k, len(class_names))
    if out.suffix.lower() == ".json":
        records = [
            {
                "path": p.path,
                "predictions": [{"class": n, "probability": round(v, 6)} for n, v in p.top(class_names, k)],
                "latency_ms": round(p.latency_ms, 3),
                "error": p.error or None,
            }
            for p in preds
        ]
        write_atomic((json.dumps(records, indent=2) + "\n").encode(), out)
        return
    header = ["path"] + [f"{c}_{i}" for i in range(1, k + 1) for c in ("class", "prob")] + ["latency_ms", "error"]
    rows = [header]
    for p in preds:
        top = p.top(class_names, k)
        cells = [x for name, v in top for x in (name, f"{v:.6f}")] + [""] * (2 * (k - len(top)))
        rows.append([p.path, *cells, f"{p.latency_ms:.3f}" if not p.error else "", p.error])
    write_atomic(_csv_bytes(rows), out)


def rate(per_second: float) -> str:
    """A rate with three significant digits: 0.429, 3.15, 88.2, 1234 (never a rounded-away 0)."""
    return f"{per_second:.0f}" if per_second >= 1000 else f"{per_second:.3g}"


def latency_summary(
    preds: Sequence[Prediction], seconds: float, batch_size: int, warmup_s: float = 0.0, precision: str = "float32"
) -> str:
    """The end-of-run line: steady-state latency (warm-up reported apart) and throughput."""
    ok = [p.latency_ms for p in preds if not p.error]
    failed = len(preds) - len(ok)
    line = f"{len(ok)} of {plural(len(preds), 'image')} predicted"
    if failed:
        line += f", {failed} unreadable"
    if ok:
        line += (
            f"; latency per image ({precision}): median {np.median(ok):.2f} ms, p90 {np.percentile(ok, 90):.2f} ms "
            f"(decode + preprocess + share of a batch of up to {batch_size}); "
            f"total {seconds:.2f} s, {rate(len(ok) / max(seconds, 1e-9))} images/s; "
            f"warm-up before timing {warmup_s * 1e3:.0f} ms"
        )
    return line


def format_members(members, member_evs: Sequence[Evaluation], ensemble: Evaluation, split: str) -> str:
    """One line per ensemble member and one for the ensemble: accuracy, macro F1, ECE."""
    rows = [(f"{m.cfg.model} ({m.path})", e) for m, e in zip(members, member_evs)]
    rows.append((f"ensemble (mean of {len(members)} members' probabilities)", ensemble))
    width = max(len(label) for label, _ in rows)
    lines = [f"{split}: {'member':<{width}}  accuracy  macro F1     ECE"]
    lines += [
        f"{'':{len(split) + 2}}{label:<{width}}  {e.metrics['accuracy']:8.4f}  {e.macro[2]:8.4f}  "
        f"{e.metrics['ece']:.4f}"
        for label, e in rows
    ]
    return "\n".join(lines)
