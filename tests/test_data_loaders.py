"""Class imbalance options, the streamed (DataLoader workers) path against the in-memory one, and a
short end-to-end run on a generated folder."""

from __future__ import annotations

import json

import imagegen
import pytest
import torch

from data import folder, preprocessing_of
from data.disk_loader import DiskLoader
from data.loader import Feed, TensorLoader, balanced_sample_weights, loss_weights, make_loader
from data.types import Split

CPU = torch.device("cpu")


def test_class_weights_auto_balance_the_total_loss_per_class():
    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    w = loss_weights(labels, 4)  # class 3 has no training images
    counts = torch.tensor([90.0, 9.0, 1.0])
    torch.testing.assert_close(w[:3] * counts, torch.full((3,), 100 / 4))  # equal weight mass per class
    assert w[2] / w[0] == pytest.approx(90) and torch.isfinite(w).all()


def test_balanced_sampler_draws_classes_about_uniformly():
    labels = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    split = Split(torch.zeros(1000, 1, 2, 2, dtype=torch.uint8), labels)
    loader = TensorLoader(
        split,
        500,
        {"input_size": [2, 2], "mean": [0.5], "std": [0.5]},
        CPU,
        shuffle=True,
        sample_weights=balanced_sample_weights(labels, 3),
    )
    seen = torch.cat([y for _, y in loader])
    assert len(seen) == 1000
    share = torch.bincount(seen, minlength=3).float() / 1000
    assert (share - 1 / 3).abs().max() < 0.06  # unweighted it would be 0.90 / 0.09 / 0.01


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = imagegen.single_folder(tmp_path_factory.mktemp("small"), {"a": 12, "b": 12, "c": 8}, ext="jpg", side=20)
    common = dict(val_split=0.25, test_split=0.0, image_size=16)
    return folder.load(str(root), data_mode="memory", **common), folder.load(str(root), data_mode="stream", **common)


def test_streamed_split_and_eval_batches_equal_in_memory_ones(bundles):
    memory, stream = bundles
    assert stream.train.images is None and stream.train.ids == memory.train.ids and stream.val.ids == memory.val.ids
    pre = preprocessing_of(memory)
    assert preprocessing_of(stream) == pre
    a = torch.cat([x for x, _ in TensorLoader(memory.val, 4, pre, CPU)])
    loader = make_loader(stream.val, 4, Feed(pre, CPU, num_workers=0))
    assert isinstance(loader, DiskLoader)
    assert torch.equal(a, torch.cat([x for x, _ in loader]))  # same decode, resize and eval_transform


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_training_epoch_equals_the_in_memory_epoch(bundles, workers):
    """Order and augmentation come from (seed, epoch) alone: workers and streaming change nothing."""
    memory, stream = bundles
    pre = preprocessing_of(memory)

    def epoch(split, e):
        loader = make_loader(
            split,
            5,
            Feed(pre, CPU, num_workers=workers),
            augment_preset="standard",
            shuffle=True,
            seed=1,
            sample_weights=balanced_sample_weights(split.labels, 3),
        )
        loader.set_epoch(e)
        xs, ys = zip(*loader)
        return torch.cat(xs), torch.cat(ys)

    torch.manual_seed(0)
    x_stream, y_stream = epoch(stream.train, 2)
    assert torch.equal(torch.rand(1), torch.manual_seed(0) and torch.rand(1))  # the training RNG did not move
    x_mem, y_mem = epoch(memory.train, 2)
    assert torch.equal(x_stream, x_mem) and torch.equal(y_stream, y_mem)
    assert not torch.equal(epoch(stream.train, 3)[0], x_stream)  # a new epoch: new order and augmentations


def test_both_translate_kernels_agree():
    from data.transforms import _translate_each, _translate_grouped

    x = torch.randint(0, 256, (9, 3, 40, 40), dtype=torch.uint8)
    dy, dx = torch.randint(0, 9, (9,)), torch.randint(0, 9, (9,))
    assert torch.equal(_translate_each(x, 4, dy, dx), _translate_grouped(x, 4, dy, dx))


def test_end_to_end_on_a_tiny_folder(tmp_path, capsys):
    import train

    root = imagegen.single_folder(tmp_path / "data", {"a": 16, "b": 16, "c": 16})
    imagegen.bad_files(root / "b")
    common = [
        "--dataset",
        "folder",
        "--data_dir",
        str(root),
        "--checkpoint_dir",
        str(tmp_path / "ck"),
        "--width",
        "8",
        "--depth",
        "2",
        "--batch_size",
        "16",
        "--threads",
        "2",
        "--epochs",
        "3",
        "--lr",
        "0.01",
        "--class_weights",
        "auto",
        "--balanced_sampler",
    ]
    train.main([*common, "--run_name", "mem"])
    out = capsys.readouterr().out
    assert "data: folder" in out and "3 unreadable images skipped" in out
    summary = json.loads((tmp_path / "ck" / "mem" / "summary.json").read_text())
    assert summary["test_acc"] > 0.5  # three easy classes; chance is 1/3
    train.main([*common, "--run_name", "stream", "--data_mode", "stream", "--num_workers", "0"])
    streamed = json.loads((tmp_path / "ck" / "stream" / "summary.json").read_text())
    assert streamed["test_acc"] > 0.5
    captured = capsys.readouterr()
    assert "streamed from disk" in captured.out and "skipped unreadable image" in captured.err  # decoded late
