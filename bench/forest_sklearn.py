#!/usr/bin/python3
"""Anchor for bench/forest.sh: scikit-learn RandomForestClassifier with its
defaults (n_jobs=-1), 5-fold shuffled StratifiedKFold(seed 0) on the Kaggle
forest-cover train set with Id dropped, or one fit + test accuracy on
Fashion-MNIST. Prints one line: "acc=A seconds=S"."""
import gzip
import struct
import sys
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import StratifiedKFold


def load_covertype(path):
    with gzip.open(path, "rt") as f:
        header = f.readline().strip().split(",")
        data = np.loadtxt(f, delimiter=",", dtype=np.float64)
    label = header.index("Cover_Type")
    keep = [i for i, name in enumerate(header) if name not in ("Id", "Cover_Type")]
    return data[:, keep].astype(np.float32), data[:, label].astype(np.int64)


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


def main():
    mode = sys.argv[1]
    if mode == "cv":
        X, y = load_covertype(sys.argv[2])
        folds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
        t0 = time.perf_counter()
        accs = []
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=0).split(X, y):
            m = RandomForestClassifier(n_jobs=-1, random_state=0).fit(X[tr], y[tr])
            accs.append(float((m.predict(X[te]) == y[te]).mean()))
        secs = time.perf_counter() - t0
        print("acc=%.4f std=%.4f seconds=%.3f" % (np.mean(accs), np.std(accs), secs))
    elif mode == "fashion":
        d = sys.argv[2]
        Xtr = load_idx(d + "/train-images-idx3-ubyte.gz").reshape(60000, -1).astype(np.float32)
        ytr = load_idx(d + "/train-labels-idx1-ubyte.gz")
        Xte = load_idx(d + "/t10k-images-idx3-ubyte.gz").reshape(10000, -1).astype(np.float32)
        yte = load_idx(d + "/t10k-labels-idx1-ubyte.gz")
        t0 = time.perf_counter()
        m = RandomForestClassifier(n_jobs=-1, random_state=0).fit(Xtr, ytr)
        secs = time.perf_counter() - t0
        acc = float((m.predict(Xte) == yte).mean())
        print("acc=%.4f seconds=%.3f" % (acc, secs))
    else:
        sys.exit("usage: forest_sklearn.py cv FILE.csv.gz [FOLDS] | fashion DIR")


if __name__ == "__main__":
    main()
