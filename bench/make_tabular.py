#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes the tabular data sets of the training comparison (issue 12):
sklearn's bundled wine (178 x 13) and breast-cancer (569 x 30) tables,
shuffled with a fixed seed, split 80 / 20 into train and held-out rows, and
standardized with the training rows' mean and standard deviation (the same
affine map for both parts). Files: OUT/<name>_train.csv and
OUT/<name>_test.csv, one row per line, comma separated, full double
precision (repr), no header: the C trainer (examples/train_mlp.c) and
bench/torch_dsm_train.py read the identical split.
Usage: make_tabular.py [--out build/data] [--seed 0] [--test-frac 0.2]"""
import argparse
import os

import numpy as np
import sklearn.datasets as skd

SETS = {"wine": skd.load_wine, "breast_cancer": skd.load_breast_cancer}


def split(x, seed, test_frac):
    perm = np.random.RandomState(seed).permutation(x.shape[0])
    ntest = int(round(test_frac * x.shape[0]))
    test, train = x[perm[:ntest]], x[perm[ntest:]]
    mu, sd = train.mean(0), train.std(0, ddof=0)
    sd[sd == 0] = 1.0
    return (train - mu) / sd, (test - mu) / sd


def write(path, a):
    with open(path, "w") as f:
        for row in a:
            f.write(",".join(repr(float(v)) for v in row) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-frac", type=float, default=0.2)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, load in SETS.items():
        train, test = split(load().data.astype(np.float64), args.seed, args.test_frac)
        write(os.path.join(args.out, f"{name}_train.csv"), train)
        write(os.path.join(args.out, f"{name}_test.csv"), test)
        print(f"{name}: {train.shape[0]} train + {test.shape[0]} held-out rows, d = {train.shape[1]} -> "
              f"{args.out}/{name}_{{train,test}}.csv")


if __name__ == "__main__":
    main()
