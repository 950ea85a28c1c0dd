"""One training loop for every model of the course.

Contract: a model is an ``nn.Module`` whose ``loss(x, y=None)`` returns a dict of
named scalar tensors, each in nats per example (summed over pixels and latent
dimensions, averaged over the batch). ``fit`` minimises ``"loss"`` and logs every
term, per epoch, for train and validation data.

``fit(..., checkpoint="name")`` loads or trains: the checkpoint file is keyed by
the model's class, architecture and hyper-parameters, by the data and by the
training settings (seed included), so re-running a lesson cell is instant and a
changed configuration never loads stale weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from .data import ImageData
from .runtime import derive_seed, get_device

__all__ = ["fit", "History", "TrainingDiverged", "evaluate_terms", "default_checkpoint_dir", "checkpoint_key"]


class TrainingDiverged(RuntimeError):
    """A loss term became NaN or infinite during training."""


@dataclass
class History:
    """Per-epoch averages of every loss term, for training and validation data."""

    train: dict = field(default_factory=dict)
    val: dict = field(default_factory=dict)
    epoch_seconds: list = field(default_factory=list)
    device: str = ""
    loaded: bool = False

    @property
    def epochs(self) -> int:
        return len(self.epoch_seconds)

    @property
    def seconds(self) -> float:
        """Total training time in seconds (of the run that produced the weights)."""
        return float(sum(self.epoch_seconds))

    def last(self, term: str = "loss", split: str = "train") -> float:
        """The last logged value of ``term`` (``split`` is ``"train"`` or ``"val"``)."""
        log = self.train if split == "train" else self.val
        if term not in log or not log[term]:
            raise KeyError(f"no {split} values for {term!r}; logged terms: {sorted(log)}")
        return log[term][-1]

    def plot(self, terms=None, ax=None, title: str | None = None):
        """Loss curves per term (see :func:`course_lib.plots.loss_curves`)."""
        from .plots import loss_curves

        return loss_curves(self, terms=terms, ax=ax, title=title)

    def summary(self) -> str:
        parts = [f"{k}={v[-1]:.2f}" for k, v in self.train.items() if v]
        val = [f"{k}={v[-1]:.2f}" for k, v in self.val.items() if v]
        s = f"{self.epochs} epochs, {self.seconds:.1f} s on {self.device}: train " + " ".join(parts)
        if val:
            s += " | val " + " ".join(val)
        return s + (" (loaded from checkpoint)" if self.loaded else "")


def default_checkpoint_dir() -> Path:
    """``COURSE_CHECKPOINT_DIR`` if set, else ``checkpoints/`` at the repository root."""
    env = os.environ.get("COURSE_CHECKPOINT_DIR")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "checkpoints"


def _as_data(data) -> ImageData | None:
    if data is None or isinstance(data, ImageData):
        return data
    if isinstance(data, torch.Tensor):
        labels = torch.zeros(len(data), dtype=torch.long, device=data.device)
        x = data if data.ndim >= 2 else data.unsqueeze(1)
        return _TensorData(x, labels)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return _TensorData(data[0], data[1])
    raise TypeError(
        f"fit expects an ImageData, a tensor of examples, or an (x, y) pair of tensors; got {type(data).__name__}."
    )


class _TensorData(ImageData):
    """ImageData for arbitrary example shapes (toy data in 1-D or 2-D)."""

    def __post_init__(self):
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} examples but {len(self.labels)} labels.")


def _fingerprint_tensor(t: torch.Tensor, h) -> None:
    t = t.detach().to("cpu").contiguous()
    h.update(str((tuple(t.shape), str(t.dtype))).encode())
    flat = t.reshape(-1)
    if flat.numel() > 4_000_000:  # hash a strided sample of large tensors, plus their sum
        h.update(str(float(flat.double().sum())).encode())
        flat = flat[:: flat.numel() // 1_000_000 + 1].contiguous()
    h.update(flat.numpy().tobytes())


def _hyper_parameters(model: nn.Module) -> dict:
    out = {}
    for name, mod in model.named_modules():
        for k, v in vars(mod).items():
            if k.startswith("_") or k == "training":
                continue
            if isinstance(v, (int, float, str, bool, tuple, type(None))):
                out[f"{name}.{k}"] = repr(v)
    return out


def checkpoint_key(model: nn.Module, data: ImageData, settings: dict) -> str:
    """A hash of everything that determines the trained weights."""
    h = hashlib.sha256()
    h.update(type(model).__qualname__.encode())
    h.update(repr(model).encode())
    h.update(json.dumps(_hyper_parameters(model), sort_keys=True).encode())
    h.update(json.dumps(getattr(model, "config", None), sort_keys=True, default=repr).encode())
    for name, t in model.state_dict().items():  # names and shapes, not the (random) initial values
        h.update(f"{name}:{tuple(t.shape)}".encode())
    h.update(f"{data.name}|{data.split}".encode())
    _fingerprint_tensor(data.images, h)
    _fingerprint_tensor(data.labels, h)
    h.update(json.dumps(settings, sort_keys=True, default=repr).encode())
    return h.hexdigest()[:16]


def _check_terms(terms: dict, where: str) -> None:
    if not isinstance(terms, dict) or "loss" not in terms:
        raise TypeError(
            f"{where} must return a dict of named scalar tensors with a 'loss' entry, "
            f"got {type(terms).__name__}{'' if not isinstance(terms, dict) else ' with keys ' + str(sorted(terms))}."
        )
    for k, v in terms.items():
        if not torch.is_tensor(v) or v.numel() != 1:
            shape = tuple(v.shape) if torch.is_tensor(v) else type(v).__name__
            raise TypeError(f"{where}: term {k!r} must be a scalar tensor (average over the batch), got {shape}.")


@torch.no_grad()
def evaluate_terms(model: nn.Module, data, batch_size: int = 1024, transform: Callable | None = None) -> dict:
    """Average of every loss term over ``data`` (eval mode, no gradients)."""
    data = _as_data(data)
    was_training = model.training
    model.eval()
    sums, n = {}, 0
    for x, y in data.batches(batch_size, shuffle=False):
        if transform is not None:
            x = transform(x)
        terms = model.loss(x, y)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.detach().float() * len(x)
        n += len(x)
    model.train(was_training)
    return {k: float(v) / n for k, v in sums.items()}


def _describe_callable(fn) -> str:
    """Name and simple captured values of a function (so kl_warmup(5) and kl_warmup(10) differ)."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    cells = getattr(fn, "__closure__", None) or ()
    captured = []
    for c in cells:
        try:
            v = c.cell_contents
        except ValueError:
            continue
        if isinstance(v, (int, float, str, bool, tuple, type(None))):
            captured.append(repr(v))
    defaults = getattr(fn, "__defaults__", None) or ()
    return f"{name}({', '.join(captured)}; {defaults!r})"


def _describe_optimizer(opt) -> str:
    """The optimizer's class and hyper-parameters, per parameter group (a group's own learning rate counts)."""
    if opt is None:
        return "Adam"

    def simple(d):
        return {k: v for k, v in d.items() if k != "params" and isinstance(v, (int, float, str, bool, tuple, type(None)))}

    hyper = simple(opt.defaults)
    groups = [simple(g) for g in opt.param_groups]
    if any(g != hyper for g in groups):
        hyper["groups"] = [{**g, "n": len(pg["params"])} for g, pg in zip(groups, opt.param_groups)]
    return f"{type(opt).__name__}({json.dumps(hyper, sort_keys=True, default=repr)})"


def _uses_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


def fit(model: nn.Module, train, val=None, *, epochs: int, batch_size: int = 128, lr: float = 1e-3,
        device=None, optimizer: torch.optim.Optimizer | None = None, transform: Callable | None = None,
        checkpoint: str | None = None, checkpoint_dir: str | Path | None = None, retrain: bool = False,
        amp: bool | None = None, grad_clip: float | None = None, callbacks: Iterable[Callable] = (),
        seed: int | None = 0, progress: bool = True, check_every: int = 50) -> History:
    """Train ``model`` by minimising ``model.loss(x, y)["loss"]`` with Adam.

    - ``train``/``val``: :class:`ImageData` (or a tensor of examples, or an ``(x, y)`` pair).
    - ``transform``: applied to each training and validation batch (e.g. dynamic binarization).
    - ``checkpoint``: a name; loads the weights when a checkpoint of the same
      configuration exists (``retrain=True`` trains anyway), else trains and saves.
    - ``amp``: bfloat16 autocast on CUDA; ``None`` turns it on for convolutional models.
    - ``callbacks``: functions ``cb(model, epoch, history)`` called after each epoch.
    - ``seed``: the run's seed, moved by ``COURSE_SEED`` (:func:`course_lib.runtime.derive_seed`); ``None``
      leaves the global random state as it is.
    - A NaN or infinite term stops training with :class:`TrainingDiverged`, naming the
      epoch, the step and the term.
    """
    device = get_device(device)
    if seed is not None:  # COURSE_SEED moves every training run (derive_seed(k) == k for course seed 0)
        seed = derive_seed(seed)
    callbacks = list(callbacks)
    train = _as_data(train)
    val = _as_data(val)
    if len(train) == 0:
        raise ValueError("the training data is empty.")
    model.to(device)
    train = train.to(device)
    val = val.to(device) if val is not None else None
    use_amp = device.type == "cuda" and (amp if amp is not None else _uses_conv(model))

    settings = dict(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, grad_clip=grad_clip,
                    transform=_describe_callable(transform) if transform else None,
                    optimizer=_describe_optimizer(optimizer), amp=bool(use_amp),
                    callbacks=[_describe_callable(cb) for cb in callbacks])
    path = None
    if checkpoint:
        key = checkpoint_key(model, train, settings)
        path = Path(checkpoint_dir or default_checkpoint_dir()) / f"{checkpoint}-{key}.pt"
        if path.exists() and not retrain:
            try:  # weights_only: a checkpoint copied from elsewhere cannot run code on this machine
                state = torch.load(path, map_location=device, weights_only=True)
            except Exception as err:
                raise RuntimeError(
                    f"checkpoint {path} was not loaded: it holds more than tensors and numbers, or is damaged "
                    f"({type(err).__name__}). Delete it (or pass retrain=True) to train again; only load "
                    "checkpoints you trust."
                ) from err
            model.load_state_dict(state["model"])
            hist = History(**state["history"])
            hist.loaded = True
            if progress:
                print(f"Loaded {path.name}: trained {hist.epochs} epochs in {hist.seconds:.1f} s on {hist.device}.")
            model.eval()
            return hist

    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator()
    gen.manual_seed(0 if seed is None else seed)
    if seed is not None:  # the noise drawn inside model.loss (reparameterization, dropout) too
        torch.manual_seed(seed)
    history = History(device=str(device) if device.type != "cuda" else torch.cuda.get_device_name(device))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc=type(model).__name__, unit="epoch")
    step = 0
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            t0 = time.perf_counter()
            sums, n = {}, 0
            pending = []  # (step, detached terms) not yet checked for NaN: checked every `check_every` steps
            for x, y in train.batches(batch_size, shuffle=True, generator=gen):
                step += 1
                if transform is not None:
                    x = transform(x)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    terms = model.loss(x, y)
                if step == 1:
                    _check_terms(terms, f"{type(model).__name__}.loss(x, y)")
                opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                opt.step()
                detached = {k: v.detach().float().reshape(()) for k, v in terms.items()}
                for k, v in detached.items():
                    sums[k] = sums.get(k, 0.0) + v * len(x)
                n += len(x)
                pending.append((step, detached))
                if len(pending) >= check_every:
                    _raise_if_diverged(pending, epoch)
                    pending = []
            _raise_if_diverged(pending, epoch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            history.epoch_seconds.append(time.perf_counter() - t0)
            for k, v in sums.items():
                history.train.setdefault(k, []).append(float(v) / n)
            if val is not None:
                for k, v in evaluate_terms(model, val, transform=transform).items():
                    history.val.setdefault(k, []).append(v)
            for cb in callbacks:
                cb(model, epoch, history)
            if bar is not None:
                post = {k: f"{v[-1]:.2f}" for k, v in history.train.items()}
                if history.val:
                    post["val_loss"] = f"{history.val['loss'][-1]:.2f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "history": _history_state(history)}, tmp)
        os.replace(tmp, path)
    return history


def _history_state(h: History) -> dict:
    d = asdict(h)
    d.pop("loaded")
    return d


def _raise_if_diverged(pending: list, epoch: int) -> None:
    if not pending:
        return
    names = list(pending[0][1])
    stacked = torch.stack([torch.stack([terms[k] for k in names]) for _, terms in pending])
    if bool(torch.isfinite(stacked).all()):
        return
    bad = (~torch.isfinite(stacked)).nonzero()[0]
    step, terms = pending[int(bad[0])]
    term = names[int(bad[1])]
    value = float(terms[term])
    raise TrainingDiverged(
        f"training diverged at epoch {epoch}, step {step}: term {term!r} is {value}. "
        "Lower the learning rate, clip gradients (grad_clip=...), or check the loss for log(0) or exp overflow."
    )


