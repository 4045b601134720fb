"""Datasets on disk for --data: .npz arrays and ImageFolder directories (tiny-imagenet's train layout)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from startbench.workload.data import batches, load_dataset


def test_npz_is_read_resized_and_limited(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.integers(0, 255, (10, 40, 40, 3), dtype=np.uint8), y=np.arange(10) % 4)
    x, y, classes = load_dataset(str(path), 32, limit=6)
    assert x.shape == (6, 32, 32, 3) and x.dtype == np.uint8
    assert list(y) == [0, 1, 2, 3, 0, 1] and classes == 4


def test_image_folder_is_read_round_robin_over_classes(tmp_path):
    # tiny-imagenet-200/train/<wnid>/images/<file>.JPEG
    for c, wnid in enumerate(["n01443537", "n01629819", "n01641577"]):
        d = tmp_path / wnid / "images"
        d.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (64, 64), (c * 80, i * 60, 10)).save(d / f"{wnid}_{i}.JPEG")
        (tmp_path / wnid / f"{wnid}_boxes.txt").write_text("not an image")
    x, y, classes = load_dataset(str(tmp_path), 64, limit=5)
    assert classes == 3 and x.shape == (5, 64, 64, 3)
    assert list(y) == [0, 1, 2, 0, 1]
    assert abs(int(x[1, 0, 0, 0]) - 80) <= 3  # the second image is class 1's first (JPEG is lossy)


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p / "missing", "no such file"),
    (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", ".npz"),
    (lambda p: (np.savez(p / "bad.npz", images=np.zeros((1, 8, 8, 3))), p / "bad.npz")[1], "needs arrays 'x' and 'y'"),
    (lambda p: (np.savez(p / "flat.npz", x=np.zeros((2, 8, 8)), y=np.zeros(2)), p / "flat.npz")[1], "(N, H, W, 3)"),
    (lambda p: p, "one sub-directory per class"),
])
def test_bad_datasets_say_what_to_give(tmp_path, make, fragment):
    with pytest.raises((ValueError, FileNotFoundError)) as exc:
        load_dataset(str(make(tmp_path)), 32, limit=4)
    assert fragment in str(exc.value)


def test_batches_wrap_around_with_full_size():
    x = np.arange(5).reshape(5, 1, 1, 1).repeat(3, axis=3)
    y = np.arange(5)
    it = batches(x, y, 3)
    got = [list(next(it)[1]) for _ in range(3)]
    assert got == [[0, 1, 2], [3, 4, 0], [1, 2, 3]]
