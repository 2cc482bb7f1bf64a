"""Batched random crop with zero padding and horizontal flip, run on whatever device holds the batch.

The per-sample torchvision transforms (``RandomCrop(size, padding)`` + ``RandomHorizontalFlip``) do the same to one
image at a time on the CPU; this version draws all offsets at once and gathers every crop in one indexing op
(the airbench habit), so a data set that sits on the GPU never leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentSpec:
    crop_padding: int
    flip: bool

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor onto ``device`` without waiting: to a GPU through pinned memory, asynchronously (a plain copy
    from pageable memory makes the host wait for the GPU's queue to drain)."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def augment_batch(x: torch.Tensor, spec: AugmentSpec, generator: torch.Generator) -> torch.Tensor:
    """Random crop (same size, ``crop_padding`` zeros around) and random horizontal flip of an (N, C, H, W) batch.

    Random numbers come from ``generator`` (a CPU generator, so the draws are identical on every device and can be
    reproduced from a seed).
    """
    n, _, h, w = x.shape
    if spec.crop_padding > 0:
        p = spec.crop_padding
        padded = F.pad(x, (p, p, p, p))
        offsets = to_device(torch.randint(0, 2 * p + 1, (2, n), generator=generator), x.device)
        rows = (offsets[0].view(n, 1) + torch.arange(h, device=x.device).view(1, h)).view(n, 1, h, 1)
        cols = (offsets[1].view(n, 1) + torch.arange(w, device=x.device).view(1, w)).view(n, 1, 1, w)
        batch_ix = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        chan_ix = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
        x = padded[batch_ix, chan_ix, rows, cols]
    if spec.flip:
        flip = to_device(torch.rand(n, generator=generator) < 0.5, x.device).view(n, 1, 1, 1)
        x = torch.where(flip, x.flip(3), x)
    return x
