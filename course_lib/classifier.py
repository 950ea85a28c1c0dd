"""A small digit classifier: the feature extractor of the course's FID and Inception Score.

The FID (Heusel et al. 2017) and the Inception Score (Salimans et al. 2016) are defined with
Inception-v3 trained on ImageNet: 2048 pool features for the FID, 1000 class probabilities for
the IS. We use a small CNN trained on the digits themselves instead, because

- the Inception weights cannot be downloaded here (no internet), and
- ImageNet classes and features say little about 8x8 or 28x28 handwritten digits (they are
  meant for natural colour images of 299x299 pixels).

So our scores are "FID-digits" and "IS-digits" analogues: they rank models of the same data set
evaluated with the same classifier; they are not comparable with published numbers.

``get_classifier("mnist5k")`` (the data of quick mode) loads weights that ship with the package,
``course_lib/weights/classifier-mnist5k.pt`` (150 KB, in milliseconds: no training). They were
trained on the 4,000 ``mnist5k`` TRAIN digits only, by the deterministic command

    python -m course_lib.classifier --train mnist5k

(seed 0, one CPU thread, random shifts of up to 2 pixels; about a minute of CPU), which prints the
accuracy on the ``mnist5k`` test split and, when the files are there, on the official MNIST test
set. Any other name (``"digits"``, ``"mnist"``, ...) or an :class:`ImageData` trains (once, then
loads from the ``fit`` checkpoint ``classifier-<dataset>``). Either way it returns a
:class:`DigitClassifier` in eval mode, on the device, with ``.features(x)`` (the penultimate layer,
N x 64) and ``.probs(x)`` (N x 10).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageData, load_dataset
from .runtime import get_device

__all__ = ["DigitClassifier", "get_classifier", "shipped_weights_path", "train_shipped", "random_shift", "load_weights"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SHIPPED = {"mnist5k": dict(epochs=60, batch_size=64, lr=1e-3, max_shift=2, seed=0)}  # the training recipe


class DigitClassifier(nn.Module):
    """conv(16) - conv(32) - maxpool - avgpool to 4x4 - linear(feature_dim) - linear(n_classes).

    ``loss(x, y)`` returns ``{"loss": cross-entropy, "accuracy": ...}`` (nats per example and a
    fraction), so ``course_lib.train.fit`` trains it like every other model of the course.
    """

    def __init__(self, shape=(1, 8, 8), n_classes: int = 10, feature_dim: int = 64):
        super().__init__()
        self.shape = tuple(shape)
        self.n_classes = int(n_classes)
        self.feature_dim = int(feature_dim)
        c = self.shape[0]
        self.body = nn.Sequential(
            nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(32 * 16, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)

    def _check(self, x):
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"the classifier was trained on images of shape {self.shape}, got a batch of shape "
                             f"{tuple(x.shape)}; reshape samples to the data's shape (x.view(-1, *data.shape)).")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations (after the ReLU), N x feature_dim: the FID's features."""
        self._check(x)
        return self.body(x.float())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities p(y|x), N x n_classes: the Inception Score's input."""
        return torch.softmax(self.logits(x).float(), dim=-1)

    def forward(self, x):
        return self.logits(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        logits = self.logits(x)
        return {"loss": F.cross_entropy(logits.float(), y),
                "accuracy": (logits.argmax(-1) == y).float().mean()}

    @torch.no_grad()
    def accuracy(self, data: ImageData, batch_size: int = 1000) -> float:
        """Fraction of correctly classified examples."""
        device = next(self.parameters()).device
        correct = 0
        for x, y in data.to(device).batches(batch_size, shuffle=False):
            correct += int((self.logits(x).argmax(-1) == y).sum())
        return correct / len(data)


_CACHE: dict = {}


def shipped_weights_path(name: str) -> Path | None:
    """The weights file that ships for data set ``name`` (``None`` when none ships)."""
    return WEIGHTS_DIR / f"classifier-{name}.pt" if name in SHIPPED else None


def random_shift(x: torch.Tensor, max_shift: int = 2) -> torch.Tensor:
    """Translate each image by a random whole number of pixels in [-max_shift, max_shift] on each axis
    (zeros come in at the border): data augmentation, drawn from torch's global generator."""
    n, _, h, w = x.shape
    p = int(max_shift)
    padded = F.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (n,)).tolist()
    dx = torch.randint(0, 2 * p + 1, (n,)).tolist()
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def load_weights(path: str | Path, device=None) -> DigitClassifier:
    """A :class:`DigitClassifier` from a file written by :func:`train_shipped` (``.meta`` holds its recipe)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall the course or recreate it with "
                                f"`python -m course_lib.classifier --train mnist5k`.")
    state = torch.load(path, map_location="cpu", weights_only=True)  # a copied file cannot run code
    meta = state["meta"]
    model = DigitClassifier(tuple(meta["shape"]), meta["n_classes"], meta["feature_dim"])
    model.load_state_dict(state["model"])
    model.meta = meta
    return model.to(get_device(device)).eval()


def train_shipped(name: str = "mnist5k", path: str | Path | None = None, progress: bool = True) -> dict:
    """Train the classifier that ships for ``name`` on its TRAIN split (deterministic: seed, one thread)
    and save it with its metadata (recipe, accuracies) to ``path`` (default: the package's file)."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped classifier is defined for {name!r}; choose one of {sorted(SHIPPED)}.")
    from .train import fit

    recipe = SHIPPED[name]
    torch.set_num_threads(1)
    train = load_dataset(name, "train", device="cpu")
    test = load_dataset(name, "test", device="cpu")
    torch.manual_seed(recipe["seed"])
    model = DigitClassifier(tuple(train.shape), 10)
    t0 = time.process_time()
    fit(model, train, epochs=recipe["epochs"], batch_size=recipe["batch_size"], lr=recipe["lr"], device="cpu",
        transform=lambda x: random_shift(x, recipe["max_shift"]), seed=recipe["seed"], progress=progress)
    model.eval()
    meta = dict(dataset=name, split="train", n_train=len(train), shape=list(train.shape), n_classes=10,
                feature_dim=model.feature_dim, recipe=dict(recipe), cpu_seconds=round(time.process_time() - t0, 1),
                command=f"python -m course_lib.classifier --train {name}",
                test_accuracy=model.accuracy(test))
    path = Path(path) if path is not None else shipped_weights_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"model": state, "meta": meta}, path)
    return meta


def _shipped(name: str, device) -> DigitClassifier:
    key = (name, "shipped", str(device))
    if key not in _CACHE:
        model = load_weights(shipped_weights_path(name), device)
        for p in model.parameters():
            p.requires_grad_(False)
        _CACHE[key] = model
    return _CACHE[key]


def _is_shipped_train_split(data: ImageData) -> bool:
    """Is ``data`` exactly the training split a shipped classifier was trained on?"""
    if data.name not in SHIPPED or data.split != "train":
        return False
    ref = load_dataset(data.name, "train", device="cpu")
    return tuple(data.images.shape) == tuple(ref.images.shape) and torch.equal(data.images.cpu(), ref.images)


def get_classifier(dataset_name_or_data="digits", device=None, epochs: int | None = None,
                   progress: bool = False) -> DigitClassifier:
    """The course classifier of a data set, trained once and cached (``fit(checkpoint="classifier-<dataset>")``).

    ``dataset_name_or_data``: ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` (its training split is
    loaded) or an :class:`ImageData` to train on. ``"mnist5k"`` loads the weights that ship with
    the package (no training, unless ``epochs`` is given). ``epochs`` defaults to 15 on digits and 5 on the
    28x28 sets, more on a 28x28 subset so that training takes at least ~2,000 steps (about 99 % test
    accuracy on MNIST, 97-98 % on digits). Returned in eval mode;
    gradients are not needed for FID/IS, so call it under ``torch.no_grad()``.
    """
    from .train import fit

    device = get_device(device)
    if isinstance(dataset_name_or_data, ImageData):
        data = dataset_name_or_data
        name = data.name or "custom"
        if epochs is None and _is_shipped_train_split(data):  # e.g. get_classifier(train) in quick mode
            return _shipped(name, device)
    else:
        name = str(dataset_name_or_data).lower().replace("_", "-")
        if name in SHIPPED and epochs is None:  # weights that ship with the package: no training
            return _shipped(name, device)
        data = load_dataset(name, "train", device=device)
    batch_size = 64 if len(data) < 10_000 else 128
    if epochs is None:  # 5 epochs of full MNIST; at least ~2,000 steps on a smaller set of 28x28 images
        epochs = 15 if data.shape[-1] <= 16 else max(5, math.ceil(2000 * batch_size / len(data)))
    key = (name, data.split, len(data), tuple(data.shape), str(device), epochs)
    if key in _CACHE:
        return _CACHE[key]
    n_classes = max(int(data.labels.max()) + 1, len(data.classes) or 0)
    torch.manual_seed(0)
    model = DigitClassifier(tuple(data.shape), n_classes)
    fit(model, data, epochs=epochs, batch_size=batch_size, lr=1e-3,
        device=device, checkpoint=f"classifier-{name}", progress=progress)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    _CACHE[key] = model
    return model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.classifier",
                                     description="Train the course classifier that ships with the package.")
    parser.add_argument("--train", metavar="NAME", default="mnist5k", choices=sorted(SHIPPED),
                        help="data set whose shipped classifier to train (default mnist5k)")
    parser.add_argument("--out", default=None, help="where to save (default: course_lib/weights/classifier-NAME.pt)")
    args = parser.parse_args(argv)
    meta = train_shipped(args.train, args.out)
    print(f"{args.train}: {meta['cpu_seconds']} s CPU, test accuracy {meta['test_accuracy']:.4f} "
          f"({len(load_dataset(args.train, 'test'))} test digits)")
    clf = load_weights(args.out or shipped_weights_path(args.train), "cpu")
    try:
        official = load_dataset("mnist", "test", root=Path(__file__).resolve().parents[2] / "shared" / "data",
                                device="cpu", download=False)
        print(f"official MNIST test set ({len(official)} digits): accuracy {clf.accuracy(official):.4f}")
    except (FileNotFoundError, RuntimeError) as err:
        print(f"official MNIST test set not found ({err})")


if __name__ == "__main__":
    main()
