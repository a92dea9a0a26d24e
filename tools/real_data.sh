#!/bin/sh
# SPDX-License-Identifier: MIT
# `make real-data` (issue 12, docs/training.md "Real data"): the held-out NLL
# of the library trainer against its PyTorch twin on sklearn's wine and
# breast-cancer tables. For each table and seed: bench/make_tabular.py's
# fixed standardized split; tools/dsm_tabular trains the library model and
# saves its initial weights, bench/torch_dsm_train.py trains the twin from
# those same weights with the same hyperparameters; then each side's
# likelihood estimator evaluates the other side's trained network (both
# exact PF-ODE, DOPRI5 rtol = atol = 1e-5), which separates the quality of
# training from differences between the estimators. One JSON line per run,
# and a summary table (mean over seeds) on stdout.
# Usage: sh tools/real_data.sh BUILD_DIR PYTHON [SEEDS] [STEPS]
set -eu
build=${1:?usage: real_data.sh BUILD_DIR PYTHON [SEEDS] [STEPS]}
py=${2:?python}
seeds=${3:-0 1 2}
steps=${4:-2000}
out=$build/real-data
mkdir -p "$out"
if ! "$py" -c "import torch, sklearn" 2>/dev/null; then
    echo "real-data: skipped, $py has no torch or sklearn (apt-get install python3-torch python3-sklearn)"
    exit 0
fi
export OMP_WAIT_POLICY=PASSIVE PYTHONDONTWRITEBYTECODE=1
"$py" bench/make_tabular.py --out "$out"
: >"$out/results.jsonl"
for data in wine breast_cancer; do
    for s in $seeds; do
        tr=$out/${data}_train.csv te=$out/${data}_test.csv pre=$out/${data}_s$s
        common="--steps $steps --batch 128 --lr 1e-3 --ema 0.999 --seed $s"
        "$build/tools/dsm_tabular" --train "$tr" --test "$te" $common --save-init "$pre.init.st" \
            --save "$pre.lib.st" --per-point "$pre.lib.pp" | sed "s/^{/{\"data\": \"$data\", \"run\": \"lib\", /" \
            | tee -a "$out/results.jsonl"
        "$py" bench/torch_dsm_train.py --data "$data" --train "$tr" --test "$te" $common --threads 1 \
            --init "$pre.init.st" --export "$pre.torch.st" --per-point "$pre.torch.pp" \
            | sed 's/^{/{"run": "torch", /' | tee -a "$out/results.jsonl"
        # cross evaluation: each estimator on the other side's network
        "$build/tools/dsm_tabular" --load "$pre.torch.st" --test "$te" \
            | sed "s/^{/{\"data\": \"$data\", \"seed_trained\": $s, \"run\": \"lib-estimator-on-torch-net\", /" \
            | tee -a "$out/results.jsonl"
        "$py" bench/torch_dsm_train.py --data "$data" --test "$te" --load "$pre.lib.st" --threads 1 --seed "$s" \
            | sed 's/^{/{"run": "torch-estimator-on-lib-net", /' | tee -a "$out/results.jsonl"
    done
done
"$py" - "$out/results.jsonl" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\nreal-data: held-out NLL (nats/dim, exact PF-ODE), mean over seeds; SE = sd over seeds / sqrt(seeds)")
print("%-14s %-30s %6s %10s %8s %12s %12s" % ("data", "run", "seeds", "NLL", "SE", "cpu train s", "cpu eval s"))
ok = True
for data in ("wine", "breast_cancer"):
    means = {}
    for run in ("lib", "torch", "lib-estimator-on-torch-net", "torch-estimator-on-lib-net"):
        r = [x for x in rows if x["data"] == data and x["run"] == run]
        v = [x["nll_nats_per_dim"] for x in r]
        m = sum(v) / len(v)
        se = math.sqrt(sum((a - m) ** 2 for a in v) / (len(v) - 1) / len(v)) if len(v) > 1 else float("nan")
        means[run] = (m, se)
        print("%-14s %-30s %6d %10.4f %8.4f %12.1f %12.1f" % (data, run, len(v), m, se,
              sum(x.get("cpu_train", 0) for x in r) / len(r), sum(x.get("cpu_eval", 0) for x in r) / len(r)))
    if means["lib"][0] > means["torch"][0]:
        print("real-data: %s: the library's mean NLL is above the twin's" % data)
        ok = False
print("real-data: %s" % ("library at least as good as the twin on both tables" if ok else "FAILED"))
sys.exit(0 if ok else 1)
PY
