"""The GPU input path (draws made per epoch, augmentation as a gather on the device), run on the CPU.

It must give exactly the batches of the CPU path, so a run's numbers do not depend on which
path fed it. ``sync_free=True`` forces the GPU path here; on a GPU it is the default.
"""

from __future__ import annotations

import pytest
import torch

from data.loader import TensorLoader
from data.types import Split

PRE = {"input_size": [12, 12], "channels": 3, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}


def split(n: int = 70) -> Split:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 12, 12), dtype=torch.uint8, generator=gen)
    return Split(images=images, labels=torch.randint(0, 4, (n,), generator=gen))


@pytest.mark.parametrize("preset", ["light", "standard", "none"])
def test_gathered_augmentation_gives_the_cpu_paths_batches(preset):
    def batches(sync_free: bool):
        loader = TensorLoader(
            split(), 16, PRE, torch.device("cpu"), augment_preset=preset, shuffle=True, seed=3, sync_free=sync_free
        )
        loader.set_epoch(2)
        return list(loader)

    plain, gathered = batches(False), batches(True)
    assert len(plain) == len(gathered) == 5  # 70 images: four of 16 and a last one of 6
    for (x1, y1), (x2, y2) in zip(plain, gathered):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_device_path_matches_the_cpu(tmp_path):
    cpu = TensorLoader(split(), 16, PRE, torch.device("cpu"), augment_preset="standard", shuffle=True, seed=3)
    gpu = TensorLoader(split(), 16, PRE, torch.device("cuda"), augment_preset="standard", shuffle=True, seed=3)
    for (x1, _), (x2, _) in zip(cpu, gpu):
        assert torch.allclose(x1, x2.cpu(), atol=1e-6)
