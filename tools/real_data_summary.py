#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Summary of `make real-data` (tools/real_data.sh): reads OUT/results.jsonl
and the per-point files OUT/<data>_s<seed>.{lib,torch}.pp and prints per
table:
  - each run's held-out NLL (nats/dim), mean over seeds with SE = sd over
    seeds / sqrt(seeds), the median per-point NLL, CPU and wall seconds;
  - the paired difference lib - torch of the per-seed NLLs (same held-out
    rows, same initial weights, one pair per seed), with its SE over seeds:
    the comparison's noise is the training draws, which one seed shares
    across all its rows, so the seeds are the independent units;
  - for reference the per-point paired difference (SE over rows x seeds,
    treating every row of every seed as independent, which they are not:
    the rows of one seed share its network);
  - the recipe check of the first seed when it ran: the twin trained on the
    library trainer's own draws, its largest weight difference to the
    library's network and its NLL;
  - a verdict line.
Exit status 1 when on some table the library's NLL is above the twin's by
more than 2 SE of the per-seed paired difference, or the recipe check's
weights differ by more than WEIGHT_TOL."""
import json
import math
import os
import sys

WEIGHT_TOL = 1e-8  # same draws: rounding alone, measured 3e-13 after 2000 steps


def mean_se(v):
    m = sum(v) / len(v)
    se = math.sqrt(sum((a - m) ** 2 for a in v) / (len(v) - 1) / len(v)) if len(v) > 1 else float("nan")
    return m, se


def per_point(out, data, seed, run, d):
    return [float(v) / d for v in open(os.path.join(out, "%s_s%d.%s.pp" % (data, seed, run)))]


def main():
    out = sys.argv[1]
    rows = [json.loads(line.replace(": nan,", ": null,")) for line in open(os.path.join(out, "results.jsonl"))]
    print("\nreal-data: held-out NLL (nats/dim, exact PF-ODE), mean over seeds; SE = sd over seeds / sqrt(seeds)")
    print("%-14s %-28s %5s %9s %8s %9s %11s %10s %12s %11s" % (
        "data", "run", "seeds", "NLL", "SE", "median", "cpu train s", "cpu eval s", "wall train s", "wall eval s"))
    ok = True
    verdicts = []
    for data in ("wine", "breast_cancer"):
        for run in ("lib", "torch", "lib-estimator-on-torch-net", "torch-estimator-on-lib-net"):
            r = [x for x in rows if x["data"] == data and x["run"] == run]
            if not r:
                continue
            m, se = mean_se([x["nll_nats_per_dim"] for x in r])
            med = ""
            if run in ("lib", "torch"):
                pts = sorted(v for x in r for v in per_point(out, data, x["seed"], run, x["d"]))
                med = "%.4f" % pts[len(pts) // 2]
            print("%-14s %-28s %5d %9.4f %8.4f %9s %11.1f %10.1f %12.1f %11.1f" % (
                data, run, len(r), m, se, med, *(sum(x.get(k, 0) for x in r) / len(r)
                                                  for k in ("cpu_train", "cpu_eval", "t_train", "t_eval"))))
        lib = {x["seed"]: x for x in rows if x["data"] == data and x["run"] == "lib"}
        tor = {x["seed"]: x for x in rows if x["data"] == data and x["run"] == "torch"}
        seeds = sorted(set(lib) & set(tor))
        if not seeds:
            continue
        diffs = [lib[s]["nll_nats_per_dim"] - tor[s]["nll_nats_per_dim"] for s in seeds]
        print("%-14s per seed lib / torch: %s" % (data, ", ".join(
            "%.3f / %.3f" % (lib[s]["nll_nats_per_dim"], tor[s]["nll_nats_per_dim"]) for s in seeds)))
        m, se = mean_se(diffs)
        print("%-14s paired lib - torch: %+.4f (SE %.4f over %d seeds%s)" % (
            data, m, se, len(seeds), ", %.1f SE" % (m / se) if se > 0 else ""))
        pts = []
        for s in seeds:
            d = lib[s]["d"]
            pts += [a - b for a, b in zip(per_point(out, data, s, "lib", d), per_point(out, data, s, "torch", d))]
        pm, pse = mean_se(pts)
        print("%-14s   per point: %+.4f (SE %.4f over %d rows x seeds, rows taken as independent)" % (
            data, pm, pse, len(pts)))
        train = [x for x in rows if x["data"] == data and x["run"] == "torch-library-draws-train"]
        same = [x for x in rows if x["data"] == data and x["run"] == "torch-library-draws"]
        if train and same:
            w, s = train[0]["weights_max_abs_diff"], same[0]["seed"]
            print("%-14s recipe check, seed %d: the twin on the library's draws ends %.1e from the library's weights "
                  "(max |difference|), NLL %.6f vs the library's %.6f" % (
                      data, s, w, same[0]["nll_nats_per_dim"], lib[s]["nll_nats_per_dim"]))
            if not w <= WEIGHT_TOL:
                verdicts.append("%s: FAILED: the twin on the library's draws does not reproduce the library's "
                                "weights (%.1e > %.0e): the two sides no longer train the same recipe" % (
                                    data, w, WEIGHT_TOL))
                ok = False
        if math.isnan(se):
            verdicts.append("%s: one seed, no SE: no verdict" % data)
        elif m <= 0:
            verdicts.append("%s: the library is at least as good as the twin (%+.4f nats/dim, %.1f SE)" % (
                data, m, m / se))
        elif m <= 2 * se:
            verdicts.append("%s: the library is behind by %.4f nats/dim, within noise (%.1f SE <= 2)" % (
                data, m, m / se))
        else:
            verdicts.append("%s: FAILED: the library is behind by %.4f nats/dim, %.1f SE > 2" % (data, m, m / se))
            ok = False
    for v in verdicts:
        print("real-data: verdict: " + v)
    print("real-data: %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
