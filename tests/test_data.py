import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import data as D

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def fake_mnist(root: Path, n: int = 20, folder: str = "MNIST", gz: bool = True):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(n, 28, 28))
    labels = rng.randint(0, 10, size=n)
    for prefix in ("train", "t10k"):
        write_idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte", images, gz)
        write_idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte", labels, gz)
    return images, labels


def test_digits_offline():
    train = D.load_dataset("digits", "train", device="cpu")
    test = D.load_dataset("digits", "test", device="cpu")
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert train.images.shape[1:] == (1, 8, 8) and len(train) + len(test) == 1797
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) <= 1.0
    assert set(train.labels.tolist()) == set(range(10)) and train.classes[3] == "3"
    # train and test do not overlap
    a = {tuple(x.flatten().tolist()) for x in test.images}
    assert sum(tuple(x.flatten().tolist()) in a for x in train.images[:200]) < 5


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_idx_files_the_test_writes(tmp_path, gz):
    images, labels = fake_mnist(tmp_path, gz=gz)
    d = D.load_dataset("mnist", "test", root=tmp_path, device="cpu", download=False)
    assert d.images.shape == (20, 1, 28, 28)
    assert torch.allclose(d.images[:, 0], torch.tensor(images / 255.0, dtype=torch.float32))
    assert d.labels.tolist() == labels.tolist()


def test_fashion_mnist_uses_its_folder_and_classes(tmp_path):
    fake_mnist(tmp_path, folder="FashionMNIST")
    d = D.load_dataset("fashion-mnist", "train", root=tmp_path, device="cpu", download=False)
    assert len(d) == 20 and d.classes[9] == "Ankle boot"


def test_env_data_dir(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert len(D.load_dataset("mnist", "train", device="cpu", download=False)) == 20


def test_truncated_idx_file_is_explained(tmp_path):
    fake_mnist(tmp_path, gz=False)
    f = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        D.load_dataset("mnist", "test", root=tmp_path, download=False)


@pytest.mark.skipif(not (SHARED / "MNIST" / "raw").exists(), reason="../shared/data not present")
def test_real_mnist_test_split_from_shared():
    d = D.load_dataset("mnist", "test", root=SHARED, device="cpu", download=False)
    assert d.images.shape == (10000, 1, 28, 28)
    # known facts of the official test set: label counts and first label
    counts = torch.bincount(d.labels, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert int(d.labels[0]) == 7
    assert abs(float(d.images.mean()) - 0.1325) < 2e-3


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="digits, mnist, fashion-mnist"):
        D.load_dataset("cifar")
    with pytest.raises(ValueError, match="split"):
        D.load_dataset("digits", "validation")


def test_missing_files_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist5k"):
        D.load_dataset("mnist", root=tmp_path, download=False)


def test_failed_download_names_offline_alternative(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def boom(*a, **k):
        raise OSError("Name or service not known")

    monkeypatch.setattr(tvd, "MNIST", boom)
    with pytest.raises(RuntimeError) as err:
        D.load_dataset("mnist", root=tmp_path, download=True)
    msg = str(err.value)
    assert "Could not download mnist" in msg and "load_dataset('mnist5k')" in msg and str(tmp_path) in msg


def test_lesson_dataset_falls_back_to_mnist5k(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_QUICK", "0")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    import torchvision.datasets as tvd

    monkeypatch.setattr(tvd, "MNIST", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    d = D.lesson_dataset("mnist")
    assert d.name == "mnist5k" and d.shape == (1, 28, 28) and "Falling back" in capsys.readouterr().out


def test_mnist5k_is_real_mnist_split_by_class_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    train = D.load_dataset("mnist5k", "train", device="cpu")
    assert (tmp_path / "mnist5k.npz").exists(), "the parsed digits are cached"
    test = D.load_dataset("mnist5k", "test", device="cpu")
    assert len(train) == 4000 and len(test) == 1000 and train.shape == (1, 28, 28)
    assert torch.equal(train.labels.bincount(), torch.full((10,), 400))
    assert torch.equal(test.labels.bincount(), torch.full((10,), 100))
    # pixels in [0, 1], MNIST's mean intensity (0.13), and no image in both splits
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) == 1.0
    assert abs(float(train.images.mean()) - 0.131) < 0.01
    a, b = train.flat(), test.flat()
    assert torch.cdist(b[:200], a).min() > 0, "an image of the test split is also in the train split"
    # the cached load gives the same tensors, in the same order, fast
    t0 = time.perf_counter()
    again = D.load_dataset("mnist5k", "train", device="cpu")
    assert time.perf_counter() - t0 < 0.5 and torch.equal(again.images, train.images)
    assert torch.equal(again.labels, train.labels)


def test_lesson_dataset_is_mnist5k_in_quick_mode(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    d = D.lesson_dataset("mnist", "test", device="cpu")
    assert d.name == "mnist5k" and d.shape == (1, 28, 28)
    assert D.lesson_dataset("digits", "test", device="cpu").shape == (1, 8, 8), "digits stay available"


def test_unknown_dataset_lists_the_names():
    with pytest.raises(ValueError, match="mnist5k"):
        D.load_dataset("mnist4k")


def test_batches_cover_data_once():
    d = D.load_dataset("digits", "test", device="cpu")
    seen = torch.cat([y for _, y in d.batches(64, generator=torch.Generator().manual_seed(0))])
    assert len(seen) == len(d) and torch.equal(seen.sort().values, d.labels.sort().values)
    sizes = [len(x) for x, _ in d.batches(100, shuffle=False, drop_last=True)]
    assert all(s == 100 for s in sizes) and len(sizes) == len(d) // 100


def test_binarization():
    x = torch.full((2000, 1, 2, 2), 0.3)
    s1, s2 = D.binarize_static(x, seed=1), D.binarize_static(x, seed=1)
    assert torch.equal(s1, s2) and set(s1.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(s1.mean()) - 0.3) < 0.03
    d1, d2 = D.binarize_dynamic(x), D.binarize_dynamic(x)
    assert not torch.equal(d1, d2) and abs(float(d1.mean()) - 0.3) < 0.03


def test_bad_shapes_are_explained():
    with pytest.raises(ValueError, match="N x C x H x W"):
        D.ImageData(torch.zeros(3, 8, 8), torch.zeros(3, dtype=torch.long))
