# SPDX-License-Identifier: MIT
"""Shared helper of the PyTorch peers (bench/torch_*.py): the JSON line of
bench_util.h with impl "torch", and the bound from the machine calibration of
the last `make bench` ($SDFLOW_BENCH_MACHINE, default build/bench/machine.json).

flops/exps of a workload are the same numbers the C programs print (the work
of the workload, not of an implementation; docs/benchmarks.md has the table and
how it was counted); keep work() in step with bench_sdflow.c, bench_density.c, bench_interpolant.c,
bench_dsb.c.
"""
import json
import os
import time

KMIX = 4


def work(workload, n, d):
    """(GEMM-class flops, exp-class calls) of a workload at n points, dimension d."""
    ev = float(n) * KMIX  # a mixture row evaluation: 4 KMIX d^2 flops, KMIX exps
    if workload == "a_sdf_step":
        return 8.0 * n * n * d, 2.0 * n * n
    if workload == "d_loglik_exact":
        return 400 * ev * 4 * d * d, 400 * ev
    if workload == "d_loglik_hutch":
        return 400 * ev * 6 * d * d, 400 * ev
    if workload == "i_interp_rk4":
        return 400 * ev * 4 * d * d, 400 * ev
    if workload == "i_ot_exact":
        return float(n) ** 3, 0.0
    if workload == "d_loglik_liyan":
        return 512 * ev * 4 * d * d, 512 * ev + 256.0 * n * (KMIX + 4.0 + 1.5 * d)
    if workload == "dsb_ipf_iteration":  # bench_dsb.c: N = 20 steps, 2 half-bridges
        per = float(n) * 20 * 2
        return per * (4.0 * d * d + 2.0 * (d + 1) ** 2 + 2.0 * (d + 1) * d), per * 1.5 * d
    raise KeyError(workload)


def machine_rate(prefix, key, threads):
    """Best rate among calibration lines whose workload starts with prefix, 0 if none."""
    path = os.environ.get("SDFLOW_BENCH_MACHINE") or "build/bench/machine.json"
    best = 0.0
    try:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r.get("workload", "").startswith(prefix) and r.get("threads") == threads:
                    best = max(best, float(r.get(key, 0.0)))
    except (OSError, ValueError):
        return 0.0
    return best


def report(workload, size, prec, threads, times, n, d):
    """Prints one JSON line from the list of rep times."""
    times = sorted(times)
    flops, exps = work(workload, n, d)
    g = machine_rate("dgemm_2048", "gflops", threads)
    e = machine_rate("exp_", "gexps", threads)
    bound = flops / (g * 1e9) + exps / (e * 1e9) if g > 0 and e > 0 else None
    tmed = times[len(times) // 2]
    print(json.dumps({"impl": "torch", "workload": workload, "size": size, "prec": prec, "threads": threads,
                      "reps": len(times), "t_min": times[0], "t_med": tmed, "t_max": times[-1],
                      "flops": flops, "exps": exps, "bound": bound,
                      "ratio": tmed / bound if bound else None}, separators=(",", ":")), flush=True)


WARMUP_S = 0.25


def timed(fn, reps):
    """Times of reps calls of fn after a warm-up of at least WARMUP_S seconds
    (one call for long workloads): the rule of bench_util.h's bench_run, so
    both sides of a ratio are measured in the same steady state."""
    w0 = time.perf_counter()
    fn()
    while time.perf_counter() - w0 < WARMUP_S:
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts
