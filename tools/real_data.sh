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
# training from differences between the estimators. For the first seed a
# recipe check: the twin trains again on the library trainer's own random
# draws (--library-draws, through the library named by SDFLOW_LIBRARY) and
# must end on the library's weights up to rounding, so what separates the
# two sides in the comparison is the generator alone. One JSON line per run
# (OUT/results.jsonl), then tools/real_data_summary.py's table.
# Two (table, seed) jobs run at a time (xargs -P 2), each single-threaded.
# Usage: sh tools/real_data.sh BUILD_DIR PYTHON [SEEDS] [STEPS]
#        sh tools/real_data.sh --one BUILD_DIR PYTHON DATA SEED STEPS [CHECK]   (one job; CHECK=1: recipe check)
set -eu
if [ "${1:-}" = --one ]; then
    build=$2 py=$3 data=$4 s=$5 steps=$6 check=${7:-0}
    out=$build/real-data
    tr=$out/${data}_train.csv te=$out/${data}_test.csv pre=$out/${data}_s$s
    common="--steps $steps --batch 128 --lr 1e-3 --ema 0.999 --seed $s"
    {
        "$build/tools/dsm_tabular" --train "$tr" --test "$te" $common --save-init "$pre.init.st" \
            --save "$pre.lib.st" --per-point "$pre.lib.pp" | sed "s/^{/{\"data\": \"$data\", \"run\": \"lib\", /"
        "$py" bench/torch_dsm_train.py --data "$data" --train "$tr" --test "$te" $common --threads 1 \
            --init "$pre.init.st" --export "$pre.torch.st" --per-point "$pre.torch.pp" | sed 's/^{/{"run": "torch", /'
        # cross evaluation: each estimator on the other side's network
        "$build/tools/dsm_tabular" --load "$pre.torch.st" --test "$te" --seed "$s" \
            | sed "s/^{/{\"data\": \"$data\", \"run\": \"lib-estimator-on-torch-net\", /"
        "$py" bench/torch_dsm_train.py --data "$data" --test "$te" --load "$pre.lib.st" --threads 1 --seed "$s" \
            | sed 's/^{/{"run": "torch-estimator-on-lib-net", /'
        # recipe check (first seed): the twin on the library trainer's own draws must end on the
        # library's weights up to rounding, its NLL evaluated by the library estimator
        if [ "$check" = 1 ]; then
            "$py" bench/torch_dsm_train.py --data "$data" --train "$tr" --test "$te" $common --threads 1 \
                --init "$pre.init.st" --library-draws "$SDFLOW_LIBRARY" --compare "$pre.lib.st" \
                --export "$pre.same.st" --no-eval | sed 's/^{/{"run": "torch-library-draws-train", /'
            "$build/tools/dsm_tabular" --load "$pre.same.st" --test "$te" --seed "$s" \
                | sed "s/^{/{\"data\": \"$data\", \"run\": \"torch-library-draws\", /"
        fi
    } >"$pre.jsonl.tmp"
    mv "$pre.jsonl.tmp" "$pre.jsonl"
    cat "$pre.jsonl"
    exit 0
fi
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
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1
"$py" bench/make_tabular.py --out "$out"
set -- $seeds
first=${1:-}
SDFLOW_LIBRARY=${SDFLOW_LIBRARY:-}
[ -n "$SDFLOW_LIBRARY" ] || echo "real-data: SDFLOW_LIBRARY unset, no same-draws recipe check"
jobs=""
for data in wine breast_cancer; do
    for s in $seeds; do
        rm -f "$out/${data}_s$s.jsonl"
        jobs="$jobs $data:$s"
    done
done
# Two jobs at a time from a queue, the longer breast-cancer ones first, so
# both cores stay busy to the end; a failed job shows as its missing file.
for data in breast_cancer wine; do
    for s in $seeds; do
        check=0
        [ "$s" = "$first" ] && [ -n "$SDFLOW_LIBRARY" ] && check=1
        echo "$data $s $steps $check"
    done
done | xargs -P 2 -L 1 sh "$0" --one "$build" "$py" || true
: >"$out/results.jsonl"
for j in $jobs; do
    f=$out/${j%%:*}_s${j#*:}.jsonl
    [ -f "$f" ] || { echo "real-data: job $j failed"; exit 1; }
    cat "$f" >>"$out/results.jsonl"
done
"$py" tools/real_data_summary.py "$out"
