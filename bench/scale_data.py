#!/usr/bin/python3
"""Data for bench/scale.sh: N rows made by resampling the Kaggle forest-cover
train rows (with replacement, seed 0) and adding a small jitter to the
continuous columns (normal, 1% of each column's standard deviation, then
rounded as the column is), so that larger sets are not just copies: trees
grow on new distinct values as real data of that size would give them. The
44 one-hot columns and the label are kept as drawn.
Usage: scale_data.py COVERTYPE.csv.gz N OUT.csv"""
import gzip
import sys

import numpy as np


def main():
    src, n, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with gzip.open(src, "rt") as f:
        header = f.readline().strip().split(",")
        data = np.loadtxt(f, delimiter=",", dtype=np.float64)
    rng = np.random.default_rng(0)
    rows = data[rng.integers(0, data.shape[0], size=n)]
    for j, name in enumerate(header):
        if name in ("Id", "Cover_Type") or name.startswith(("Soil_Type", "Wilderness_Area")):
            continue
        sd = data[:, j].std()
        rows[:, j] = np.round(rows[:, j] + rng.normal(0.0, 0.01 * sd, size=n))
    rows[:, header.index("Id")] = np.arange(1, n + 1)
    np.savetxt(dst, rows, fmt="%d", delimiter=",", header=",".join(header), comments="")


if __name__ == "__main__":
    main()
