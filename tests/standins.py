"""Small stand-ins for on-disk data sets, written in the real formats from natural photographs (patches of
scikit-learn's two bundled sample photos), so readers and whole suites can run in tests without a download."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from robustcollapse.data.hierarchy import CIFAR100_SUPERCLASSES as SUPERCLASSES  # CIFAR-100's class names


def natural_patches(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """`n` uint8 (size, size, 3) patches cut at random places (and scales) from the sample photos."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(rng.integers(size, 4 * size + 1))
        top, left = (int(rng.integers(0, d - side + 1)) for d in photo.shape[:2])
        patch = Image.fromarray(photo[top : top + side, left : left + side])
        out[i] = np.asarray(patch.resize((size, size), Image.Resampling.BILINEAR))
    return out


def _dump(path: Path, obj: dict) -> None:
    """As the official CIFAR files are: a protocol-2 pickle of a dict with bytes keys."""
    path.write_bytes(pickle.dumps({k.encode(): v for k, v in obj.items()}, protocol=2))


def _flat(images: np.ndarray) -> np.ndarray:
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1).copy()


def write_cifar10(root: Path, n_train: int = 250, n_test: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`root/cifar-10-batches-py/` with five train batches, a test batch and batches.meta; returns train (x, y)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    x, xt = natural_patches(n_train, seed=seed), natural_patches(n_test, seed=seed + 1)
    y, yt = np.arange(n_train) % 10, np.arange(n_test) % 10
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump(folder / "batches.meta", {"label_names": [n.encode() for n in names], "num_cases_per_batch": n_train // 5})
    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        _dump(folder / f"data_batch_{i}", {"data": _flat(x[part]), "labels": y[part].tolist()})
    _dump(folder / "test_batch", {"data": _flat(xt), "labels": yt.tolist()})
    return x, y


def write_cifar100(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`root/cifar-100-python/` with train, test and meta (100 fine, 20 coarse labels); returns train (x, y)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    x, xt = natural_patches(n_train, seed=seed), natural_patches(n_test, seed=seed + 1)
    y, yt = np.arange(n_train) % 100, np.arange(n_test) % 100
    _dump(
        folder / "meta",
        {
            "fine_label_names": [n.encode() for n in sorted(leaf for ls in SUPERCLASSES.values() for leaf in ls)],
            "coarse_label_names": [n.encode() for n in SUPERCLASSES],
        },
    )
    for name, images, labels in (("train", x, y), ("test", xt, yt)):
        _dump(
            folder / name,
            {"data": _flat(images), "fine_labels": labels.tolist(), "coarse_labels": (labels // 5).tolist()},
        )
    return x, y


def write_svhn(root: Path, n_train: int = 60, n_test: int = 40, seed: int = 0) -> None:
    """`root/{train,test}_32x32.mat` as SVHN's: X (32, 32, 3, N) uint8 and y (N, 1) with 10 for the digit 0."""
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    for name, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        images = natural_patches(n, seed=s)
        labels = (np.arange(n) % 10).reshape(-1, 1)
        savemat(root / f"{name}_32x32.mat", {"X": images.transpose(1, 2, 3, 0), "y": np.where(labels == 0, 10, labels)})
