"""Training data for the workload: synthetic by default (made by each framework on its device), or a
dataset on disk read here into NumPy arrays (NumPy is in every framework image).

Dataset formats (--data PATH):
  *.npz            arrays `x` (N, H, W, 3) uint8 and `y` (N,) integer labels
  a directory      ImageFolder layout: one sub-directory per class, images anywhere below it
                   (tiny-imagenet-200/train works as it is); needs Pillow (torchvision brings it)
Only as many images as the run needs (steps x batch size) are read; images are resized to --image-size.
"""

from __future__ import annotations

import itertools
from pathlib import Path

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


def load_dataset(path: str, image_size: int, limit: int):
    """(x uint8 [N, S, S, 3], y int32 [N], number of classes) from `path`, at most `limit` images."""
    import numpy as np

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"--data {path}: no such file or directory (give an .npz file or an ImageFolder directory)")
    if p.is_file():
        if p.suffix != ".npz":
            raise ValueError(f"--data {path}: a file must be .npz with arrays x (N,H,W,3 uint8) and y (N,)")
        with np.load(p) as z:
            if "x" not in z or "y" not in z:
                raise ValueError(f"--data {path}: the .npz has {sorted(z.files)}; it needs arrays 'x' and 'y'")
            x, y = z["x"][:limit], z["y"][:limit].astype("int32")
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"--data {path}: x must be (N, H, W, 3), got shape {x.shape}")
        if x.shape[1:3] != (image_size, image_size):
            x = _resize_all(x, image_size)
        return x.astype("uint8"), y, int(y.max()) + 1 if len(y) else 0
    classes = sorted(d for d in p.iterdir() if d.is_dir())
    if not classes:
        raise ValueError(f"--data {path}: a directory must hold one sub-directory per class (ImageFolder layout)")
    per_class = [sorted(f for f in c.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) for c in classes]
    # Round-robin over classes so that a short run still sees many classes.
    picked: list[tuple[int, Path]] = []
    for group in itertools.zip_longest(*per_class):
        picked.extend((label, f) for label, f in enumerate(group) if f is not None)
        if len(picked) >= limit:
            break
    picked = picked[:limit]
    if not picked:
        raise ValueError(f"--data {path}: no images ({', '.join(IMAGE_SUFFIXES)}) under its class directories")
    from PIL import Image

    x = np.empty((len(picked), image_size, image_size, 3), dtype="uint8")
    for row, (_label, f) in enumerate(picked):
        with Image.open(f) as im:
            x[row] = np.asarray(im.convert("RGB").resize((image_size, image_size)))
    y = np.array([label for label, _f in picked], dtype="int32")
    return x, y, len(classes)


def _resize_all(x, image_size: int):
    import numpy as np
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(img).resize((image_size, image_size))) for img in x])


def batches(x, y, batch_size: int):
    """Endless (x, y) batches of exactly `batch_size`, wrapping around the arrays."""
    import numpy as np

    n = len(x)
    start = 0
    while True:
        idx = (np.arange(start, start + batch_size)) % n
        yield x[idx], y[idx]
        start = (start + batch_size) % n
