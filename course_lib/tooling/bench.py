"""``python -m course_lib bench``: ``fit`` against a pytorch/examples-style DataLoader loop.

Both train the pytorch/examples MLP VAE (784-400-20, Bernoulli decoder, batch 128,
Adam 1e-3) on the same images, on the same device, with the same loss code; only the
loop differs:

- baseline: a ``Dataset`` that turns each uint8 image into a tensor with
  ``transforms.ToTensor()`` (as ``torchvision.datasets.MNIST`` does), a shuffling
  ``DataLoader`` (``num_workers=1, pin_memory=True`` on CUDA, as in the example),
  a host-to-device copy and a ``loss.item()`` every step;
- ``fit``: the images live on the device as one tensor and batches are cut from it
  with a random permutation; the loss is read once per epoch.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from ..data import ImageData, load_dataset
from ..models import VAE
from ..runtime import get_device, seed_everything
from ..train import fit

__all__ = ["main", "baseline_epoch", "bench_data"]


def bench_data(root: str | None = None, n: int | None = None) -> tuple[ImageData, str]:
    """MNIST train if it is on disk, else the MNIST test set (e.g. ../shared/data), else digits resized to 28x28."""
    roots = [root] if root else [None, str(Path(__file__).resolve().parents[3] / "shared" / "data")]
    for split in ("train", "test"):
        for r in roots:
            try:
                data = load_dataset("mnist", split, root=r, device="cpu", download=False)
                return data.take(n), f"MNIST {split} ({len(data.take(n))} images)"
            except (FileNotFoundError, RuntimeError, ValueError):
                continue
    digits = load_dataset("digits", "train", device="cpu")
    images = torch.nn.functional.interpolate(digits.images, size=(28, 28), mode="bilinear", align_corners=False)
    reps = -(-(n or 10000) // len(images))
    data = ImageData(images.repeat(reps, 1, 1, 1)[: n or 10000], digits.labels.repeat(reps)[: n or 10000],
                     digits.classes, "digits28", "train")
    return data, f"digits resized to 28x28 and tiled ({len(data)} images; MNIST files not found)"


class _UInt8Images(torch.utils.data.Dataset):
    """Per-sample access with a PIL round trip and ToTensor, like torchvision.datasets.MNIST."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        from torchvision import transforms

        self.images = (images[:, 0] * 255).round().to(torch.uint8).numpy()
        self.labels = labels.numpy()
        self.transform = transforms.ToTensor()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.images[i], mode="L")
        return self.transform(img), int(self.labels[i])


def baseline_epoch(model, loader, optimizer, device) -> float:
    """One epoch of the pytorch/examples loop; returns the mean loss."""
    model.train()
    total, n = 0.0, 0
    for data, _ in loader:
        data = data.to(device)
        optimizer.zero_grad()
        loss = model.loss(data)["loss"]
        loss.backward()
        total += loss.item() * len(data)
        n += len(data)
        optimizer.step()
    return total / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib bench", description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3, help="epochs per method (the first is a warm-up)")
    p.add_argument("--n", type=int, default=None, help="number of training images (default: all found)")
    p.add_argument("--root", default=None, help="folder holding MNIST/raw/ (default: data/, then ../shared/data)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    args = p.parse_args(argv)

    device = get_device(args.device)
    data, desc = bench_data(args.root, args.n)
    print(f"data: {desc}; device: {device}; model: VAE 784-400-20, batch 128, Adam 1e-3; {args.epochs} epochs each")

    seed_everything(0)
    model = VAE((1, 28, 28), latent_dim=20, hidden=(400,)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    kwargs = {"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}
    loader = torch.utils.data.DataLoader(_UInt8Images(data.images, data.labels), batch_size=128, shuffle=True,
                                         **kwargs)
    base_times = []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        loss = baseline_epoch(model, loader, opt, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        base_times.append(time.perf_counter() - t0)
        print(f"  DataLoader loop  epoch {epoch + 1}: {base_times[-1]:6.2f} s  loss {loss:.2f}")

    seed_everything(0)
    model = VAE((1, 28, 28), latent_dim=20, hidden=(400,))
    # the same quantised pixels as the baseline sees
    images = (data.images * 255).round() / 255
    hist = fit(model, ImageData(images, data.labels, data.classes, data.name, data.split), epochs=args.epochs,
               batch_size=128, lr=1e-3, device=device, progress=False)
    for epoch, (t, loss) in enumerate(zip(hist.epoch_seconds, hist.train["loss"])):
        print(f"  fit              epoch {epoch + 1}: {t:6.2f} s  loss {loss:.2f}")

    def typical(ts):
        return statistics.median(ts[1:]) if len(ts) > 1 else ts[0]

    b, f = typical(base_times), typical(hist.epoch_seconds)
    print(f"epoch time (median after warm-up): DataLoader {b:.2f} s, fit {f:.2f} s -> speed-up x{b / f:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
