#!/usr/bin/python3
"""PyTorch anchor for bench/mlp.sh: the same MLP, data, batch, optimizer and
schedule as `canopy mlp train`, timed the same way (training steps only, not
evaluation). Prints one JSON line."""
import argparse
import ctypes
import gzip
import json
import os
import struct
import time

import numpy as np
import torch

FM = "/usr/share/datasets/fashion-mnist/"


def load(images, labels):
    with gzip.open(images, "rb") as f:
        data = f.read()
    magic, n, h, w = struct.unpack(">IIII", data[:16])
    assert magic == 0x803 and len(data) == 16 + n * h * w, images
    x = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, h * w).astype(np.float32) / 255.0
    with gzip.open(labels, "rb") as f:
        data = f.read()
    magic, m = struct.unpack(">II", data[:8])
    assert magic == 0x801 and m == n, labels
    y = np.frombuffer(data, dtype=np.uint8, offset=8).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def blas_kernels():
    """Which BLAS this process runs its sgemm in: the libraries it mapped
    and, for OpenBLAS, the core it chose (openblas_get_corename)."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" in os.path.basename(path) or "dnnl" in os.path.basename(path):
                libs.add(path)
    desc = []
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            desc.append("%s (%s, core %s)" % (os.path.basename(path),
                                              lib.openblas_get_config().decode().split()[1],
                                              lib.openblas_get_corename().decode()))
        except (OSError, AttributeError):
            desc.append(os.path.basename(path))
    return "; ".join(desc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", default="256,128")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = load(FM + "train-images-idx3-ubyte.gz", FM + "train-labels-idx1-ubyte.gz")
    xte, yte = load(FM + "t10k-images-idx3-ubyte.gz", FM + "t10k-labels-idx1-ubyte.gz")
    widths = [xtr.shape[1]] + [int(v) for v in a.hidden.split(",")] + [10]
    layers = []
    for i in range(len(widths) - 1):
        lin = torch.nn.Linear(widths[i], widths[i + 1])
        torch.nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        torch.nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i + 2 < len(widths):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    n = xtr.shape[0]
    steps = (n + a.batch - 1) // a.batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps * a.epochs)
    lossf = torch.nn.CrossEntropyLoss()
    train_s = 0.0
    for _ in range(a.epochs):
        perm = torch.randperm(n)
        t0 = time.perf_counter()
        model.train()
        for s in range(0, n, a.batch):
            idx = perm[s:s + a.batch]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
        train_s += time.perf_counter() - t0
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    print(json.dumps({"threads": a.threads, "epochs": a.epochs, "train_seconds": train_s,
                      "samples_per_s": n * a.epochs / train_s, "test_acc": acc,
                      "torch": torch.__version__, "blas": blas_kernels()},
                     separators=(",", ":")))


if __name__ == "__main__":
    main()
