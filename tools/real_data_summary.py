#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Summary of `make real-data` (tools/real_data.sh): reads OUT/results.jsonl
and the per-point files OUT/<data>_s<seed>.{lib,torch}.pp, prints per table
the mean over seeds of each run's held-out NLL (nats/dim; SE = sd over seeds
/ sqrt(seeds)), the median per-point NLL, and the paired per-point
difference lib - torch (same held-out rows, same initial weights; SE over
rows and seeds). Exit status 1 when the library's mean NLL is above the
twin's by more than 2 SE of the paired difference."""
import json
import math
import os
import sys


def mean_se(v):
    m = sum(v) / len(v)
    se = math.sqrt(sum((a - m) ** 2 for a in v) / (len(v) - 1) / len(v)) if len(v) > 1 else float("nan")
    return m, se


def main():
    out = sys.argv[1]
    rows = [json.loads(line.replace(": nan,", ": null,")) for line in open(os.path.join(out, "results.jsonl"))]
    print("\nreal-data: held-out NLL (nats/dim, exact PF-ODE), mean over seeds; SE = sd over seeds / sqrt(seeds)")
    print("%-14s %-28s %5s %9s %8s %9s %11s %10s" % ("data", "run", "seeds", "NLL", "SE", "median", "cpu train s",
                                                      "cpu eval s"))
    ok = True
    for data in ("wine", "breast_cancer"):
        means = {}
        for run in ("lib", "torch", "lib-estimator-on-torch-net", "torch-estimator-on-lib-net"):
            r = [x for x in rows if x["data"] == data and x["run"] == run]
            if not r:
                continue
            means[run] = mean_se([x["nll_nats_per_dim"] for x in r])
            med = ""
            if run in ("lib", "torch"):
                pts = []
                for x in r:
                    d = x["d"]
                    pts += [float(v) / d for v in open(os.path.join(out, "%s_s%d.%s.pp" % (data, x["seed"], run)))]
                pts.sort()
                med = "%.4f" % pts[len(pts) // 2]
            print("%-14s %-28s %5d %9.4f %8.4f %9s %11.1f %10.1f" % (
                data, run, len(r), means[run][0], means[run][1], med,
                sum(x.get("cpu_train", 0) for x in r) / len(r), sum(x.get("cpu_eval", 0) for x in r) / len(r)))
        diffs = []
        for x in rows:
            if x["data"] == data and x["run"] == "lib":
                d, s = x["d"], x["seed"]
                a = [float(v) / d for v in open(os.path.join(out, "%s_s%d.lib.pp" % (data, s)))]
                b = [float(v) / d for v in open(os.path.join(out, "%s_s%d.torch.pp" % (data, s)))]
                diffs += [p - q for p, q in zip(a, b)]
        if diffs:
            m, se = mean_se(diffs)
            print("%-14s paired per-point lib - torch: %.4f (SE %.4f over %d rows x seeds)" % (data, m, se, len(diffs)))
            if m > 2 * se:
                print("real-data: %s: the library's NLL is above the twin's by more than 2 SE" % data)
                ok = False
    print("real-data: %s" % ("the library is at least as good as the twin on both tables (within 2 SE)" if ok
                             else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
