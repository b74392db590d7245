"""bench/bench_data.py: the data of the Python benchmarks (bench/*.py).

Fashion-MNIST from /usr/share/datasets/fashion-mnist (Debian package
dataset-fashion-mnist, IDX files, gzip): training rows from the training
file, query rows from the test file, pixels / 255 (d = 784, C = 10), the
same data as bench_support.cc's C++ benchmarks. When the package is missing,
scikit-learn's bundled digits (d = 64, 1797 rows) are used instead and
`source` says so (the sizes are then capped).
"""
import gzip
import os
import struct

import numpy as np

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
DIGITS = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"


class Dataset:
    def __init__(self, x_train, y_train, x_query, y_query, classes, source):
        self.x_train, self.y_train = x_train, y_train
        self.x_query, self.y_query = x_query, y_query
        self.classes = classes
        self.source = source


def read_idx_images(path, rows):
    with gzip.open(path, "rb") as f:
        magic, count, h, w = struct.unpack(">IIII", f.read(16))
        if magic != 0x803:
            raise ValueError("%s: not an IDX image file (magic %#x)" % (path, magic))
        rows = min(rows, count)
        buf = f.read(rows * h * w)
    return np.frombuffer(buf, dtype=np.uint8).reshape(rows, h * w).astype(np.float64) / 255.0


def read_idx_labels(path, rows):
    with gzip.open(path, "rb") as f:
        magic, count = struct.unpack(">II", f.read(8))
        if magic != 0x801:
            raise ValueError("%s: not an IDX label file (magic %#x)" % (path, magic))
        rows = min(rows, count)
        return np.frombuffer(f.read(rows), dtype=np.uint8).astype(np.int32)


def fashion_available():
    return os.path.exists(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz"))


def load_digits():
    """(x, y) of the digits CSV: 1797 rows of 64 pixels and a label."""
    a = np.loadtxt(DIGITS, delimiter=",")
    return a[:, :64], a[:, 64].astype(np.int32)


def load(n_train, n_query):
    """n_train training rows and n_query query rows (fewer when the data is
    smaller: digits has 1797 rows in all)."""
    if fashion_available():
        p = lambda name: os.path.join(FASHION_DIR, name)  # noqa: E731
        return Dataset(read_idx_images(p("train-images-idx3-ubyte.gz"), n_train),
                       read_idx_labels(p("train-labels-idx1-ubyte.gz"), n_train),
                       read_idx_images(p("t10k-images-idx3-ubyte.gz"), n_query),
                       read_idx_labels(p("t10k-labels-idx1-ubyte.gz"), n_query),
                       10, "fashion-mnist")
    x, y = load_digits()
    n_query = min(n_query, len(x) // 4)
    n_train = min(n_train, len(x) - n_query)
    return Dataset(x[:n_train], y[:n_train], x[len(x) - n_query:], y[len(x) - n_query:],
                   10, "digits (dataset-fashion-mnist not installed)")
