#!/usr/bin/python3
"""Convert Fashion-MNIST IDX files (gzip) to CSV for `canopy forest`:
header p0..p783,label, one row per image. Usage: forest_fashion_csv.py
IDX_DIR OUT_DIR (writes fashion-train.csv and fashion-test.csv)."""
import gzip
import os
import struct
import sys

import numpy as np


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write(images, labels, path):
    X = images.reshape(images.shape[0], -1)
    header = ",".join("p%d" % i for i in range(X.shape[1])) + ",label"
    M = np.concatenate([X, labels.reshape(-1, 1)], axis=1)
    np.savetxt(path, M, fmt="%d", delimiter=",", header=header, comments="")


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        dst = os.path.join(out, "fashion-%s.csv" % split)
        if os.path.exists(dst):
            continue
        write(load_idx(os.path.join(src, prefix + "-images-idx3-ubyte.gz")),
              load_idx(os.path.join(src, prefix + "-labels-idx1-ubyte.gz")), dst + ".tmp")
        os.replace(dst + ".tmp", dst)


if __name__ == "__main__":
    main()
