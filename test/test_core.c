/* SPDX-License-Identifier: MIT */
/* ctx, options, status strings, version, RNG. */
#include "testutil.h"

START_TEST(test_version)
{
    ck_assert_uint_eq(sdflow_version(), SDFLOW_VERSION_NUMBER);
    ck_assert_str_eq(sdflow_version_string(), "0.1.0");
}
END_TEST

START_TEST(test_philox_kat)
{
    /* Random123 tests/kat_vectors, philox4x32 10 */
    static const uint32_t ctr[3][4] = { { 0, 0, 0, 0 },
                                        { 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu },
                                        { 0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u } };
    static const uint32_t key[3][2] = { { 0, 0 }, { 0xffffffffu, 0xffffffffu }, { 0xa4093822u, 0x299f31d0u } };
    static const uint32_t want[3][4] = { { 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u },
                                         { 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu },
                                         { 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u } };
    for (int v = 0; v < 3; v++) {
        uint32_t out[4];
        sdflow_rng_philox4x32(ctr[v], key[v], out);
        for (int j = 0; j < 4; j++)
            ck_assert_msg(out[j] == want[v][j], "vector %d word %d: %08x != %08x", v, j, out[j], want[v][j]);
    }
}
END_TEST

/* Sorted copy of a for the KS statistic. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double phi_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }
static double unif_cdf(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

/* Kolmogorov-Smirnov statistic D_n = sup |F_n - F| of n draws (sorted in place). */
static double ks_stat(double *a, size_t n, double (*cdf)(double))
{
    qsort(a, n, sizeof *a, cmp_double);
    double D = 0;
    for (size_t i = 0; i < n; i++) {
        double F = cdf(a[i]);
        D = fmax(D, fmax((double)(i + 1) / (double)n - F, F - (double)i / (double)n));
    }
    return D;
}

START_TEST(test_rng_normal_moments)
{
    sdflow_ctx *ctx = test_ctx(1234);
    const size_t n = 50000, d = 4, N = n * d;
    double *z = malloc(N * sizeof *z);
    ck_assert_int_eq(sdflow_rng_normal(ctx, 7, 0, n, d, z), SDFLOW_OK);
    double m1 = 0, m2 = 0, m4 = 0;
    for (size_t i = 0; i < N; i++) {
        m1 += z[i];
        m2 += z[i] * z[i];
        m4 += z[i] * z[i] * z[i] * z[i];
    }
    m1 /= (double)N;
    m2 /= (double)N;
    m4 /= (double)N;
    /* Standard errors from the N(0,1) moments: Var z = 1, Var z^2 = E z^4 - 1 = 2,
     * Var z^4 = E z^8 - (E z^4)^2 = 105 - 9 = 96. |z-score| < 4 fails by chance w.p. 6e-5. */
    double z1 = m1 / sqrt(1.0 / (double)N), z2 = (m2 - 1) / sqrt(2.0 / (double)N), z4 = (m4 - 3) / sqrt(96.0 / (double)N);
    test_note("rng normal N=%zu: z(mean)=%.3f z(E z^2)=%.3f z(E z^4)=%.3f", N, z1, z2, z4);
    ck_assert_msg(fabs(z1) < 4, "mean %g: z = %g", m1, z1);
    ck_assert_msg(fabs(z2) < 4, "second moment %g: z = %g", m2, z2);
    ck_assert_msg(fabs(z4) < 4, "fourth moment %g: z = %g", m4, z4);
    /* the same check rejects draws with a variance 5% too large (z ~ 0.05 sqrt(N/2) = 16) */
    double m2w = 0;
    for (size_t i = 0; i < N; i++)
        m2w += 1.05 * z[i] * z[i];
    ck_assert(fabs((m2w / (double)N - 1) / sqrt(2.0 / (double)N)) > 4);
    free(z);
    sdflow_ctx_free(ctx);
}
END_TEST

/* The library's own streams, pinned: FNV-1a hashes of sdflow_rng_uniform
 * and sdflow_rng_normal rows (d = 1..70, 37 rows from row 5, streams d and
 * d + 100, default seed), taken from the release before the Philox blocks
 * were computed four (and AVX2: four lanes) at a time. Any change to a bit of
 * a draw (key derivation, counter layout, lane code, Box-Muller) fails
 * here. Uniforms are exact IEEE arithmetic; normals also depend on libm's
 * log and sincos, so their hash is pinned for x86-64 glibc only. */
START_TEST(test_rng_streams_pinned)
{
    sdflow_ctx *ctx;
    ck_assert_int_eq(sdflow_ctx_create(&ctx, NULL), SDFLOW_OK);
    uint64_t hu = 1469598103934665603ull, hn = hu;
    for (size_t d = 1; d <= 70; d++) {
        double *x = malloc(37 * d * sizeof *x);
        const unsigned char *p = (const unsigned char *)x;
        ck_assert_int_eq(sdflow_rng_normal(ctx, d, 5, 37, d, x), SDFLOW_OK);
        for (size_t i = 0; i < 37 * d * sizeof *x; i++)
            hn = (hn ^ p[i]) * 1099511628211ull;
        ck_assert_int_eq(sdflow_rng_uniform(ctx, d + 100, 5, 37, d, x), SDFLOW_OK);
        for (size_t i = 0; i < 37 * d * sizeof *x; i++)
            hu = (hu ^ p[i]) * 1099511628211ull;
        free(x);
    }
    test_note("stream hashes: uniform %016llx normal %016llx", (unsigned long long)hu, (unsigned long long)hn);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ /* the hashes read the doubles' bytes */
    ck_assert_msg(hu == 0xc1b67434f1a90b9eull, "uniform stream changed: %016llx", (unsigned long long)hu);
#endif
#if defined(__x86_64__) && defined(__GLIBC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    ck_assert_msg(hn == 0x30f52a43c63a805cull, "normal stream changed: %016llx", (unsigned long long)hn);
#endif
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_rng_ks)
{
    sdflow_ctx *ctx = test_ctx(99);
    const size_t n = 20000, d = 5, N = n * d;
    /* Asymptotic 0.1% critical value of the KS statistic: 1.95/sqrt(N). */
    double crit = 1.95 / sqrt((double)N);
    double *a = malloc(N * sizeof *a);
    ck_assert_int_eq(sdflow_rng_normal(ctx, 3, 1000, n, d, a), SDFLOW_OK);
    double Dn = ks_stat(a, N, phi_cdf);
    /* a mean shift of 0.02 (D ~ 0.02 phi(0) = 0.008 > crit = 0.0062) must be rejected */
    for (size_t i = 0; i < N; i++)
        a[i] += 0.02;
    double Dshift = ks_stat(a, N, phi_cdf);
    ck_assert_int_eq(sdflow_rng_uniform(ctx, 3, 1000, n, d, a), SDFLOW_OK);
    for (size_t i = 0; i < N; i++)
        ck_assert_msg(a[i] >= 0 && a[i] < 1, "uniform draw %zu = %g outside [0, 1)", i, a[i]);
    double Du = ks_stat(a, N, unif_cdf);
    test_note("KS N=%zu: normal D=%.5f uniform D=%.5f shifted D=%.5f, critical 1.95/sqrt(N)=%.5f", N, Dn, Du,
              Dshift, crit);
    ck_assert_msg(Dn < crit, "normal KS D = %g >= %g", Dn, crit);
    ck_assert_msg(Du < crit, "uniform KS D = %g >= %g", Du, crit);
    ck_assert_msg(Dshift > crit, "shifted normal KS D = %g not rejected", Dshift);
    free(a);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_rng_row_keying)
{
    sdflow_ctx *ctx = test_ctx(5);
    enum { N = 40, D = 3, K = 17, M = 10 };
    double big[N * D], part[M * D], other[M * D];
    for (int kind = 0; kind < 2; kind++) {
        sdflow_status (*gen)(sdflow_ctx *, uint64_t, uint64_t, size_t, size_t, double *) =
            kind ? sdflow_rng_uniform : sdflow_rng_normal;
        ck_assert_int_eq(gen(ctx, 11, 0, N, D, big), SDFLOW_OK);
        ck_assert_int_eq(gen(ctx, 11, K, M, D, part), SDFLOW_OK);
        ck_assert_msg(memcmp(part, big + K * D, sizeof part) == 0, "rows %d.. differ from the bigger call", K);
        /* a single row call too */
        ck_assert_int_eq(gen(ctx, 11, K + 3, 1, D, other), SDFLOW_OK);
        ck_assert(memcmp(other, big + (K + 3) * D, D * sizeof(double)) == 0);
        /* another stream, another seed, another first_index: different draws */
        ck_assert_int_eq(gen(ctx, 12, K, M, D, other), SDFLOW_OK);
        ck_assert(memcmp(part, other, sizeof part) != 0);
        ck_assert_int_eq(gen(ctx, 11, K + 1, M, D, other), SDFLOW_OK);
        ck_assert(memcmp(part, other, sizeof part) != 0);
        ck_assert_int_eq(sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, 6), SDFLOW_OK);
        ck_assert_int_eq(gen(ctx, 11, K, M, D, other), SDFLOW_OK);
        ck_assert(memcmp(part, other, sizeof part) != 0);
        ck_assert_int_eq(sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, 5), SDFLOW_OK);
        /* coordinates within a row differ (no repeated block) */
        ck_assert(part[0] != part[1] && part[1] != part[2]);
    }
    /* bad input */
    ck_assert_int_eq(sdflow_rng_normal(NULL, 0, 0, 1, 1, big), SDFLOW_E_INVALID);
    ck_assert_status_msg(ctx, sdflow_rng_normal(ctx, 0, 0, 0, 1, big), SDFLOW_E_INVALID, "n=0");
    ck_assert_status_msg(ctx, sdflow_rng_uniform(ctx, 0, 0, 1, 0, big), SDFLOW_E_INVALID, "d=0");
    ck_assert_status_msg(ctx, sdflow_rng_normal(ctx, 0, 0, 1, 1, NULL), SDFLOW_E_INVALID, "out is NULL");
    ck_assert_status_msg(ctx, sdflow_rng_normal(ctx, 0, 0, SIZE_MAX / 4, 4, big), SDFLOW_E_INVALID, "overflows");
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_ctx_options)
{
    sdflow_ctx *ctx = NULL;
    ck_assert_int_eq(sdflow_ctx_create(&ctx, NULL), SDFLOW_OK);
    long v;
    uint64_t u;
    double x;
    /* defaults documented in options.h */
    ck_assert_int_eq(sdflow_ctx_get_u64(ctx, SDFLOW_CTX_SEED, &u), SDFLOW_OK);
    ck_assert_uint_eq(u, 0);
    ck_assert_int_eq(sdflow_ctx_get_int(ctx, SDFLOW_CTX_THREADS, &v), SDFLOW_OK);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(sdflow_ctx_get_int(ctx, SDFLOW_CTX_LOG_LEVEL, &v), SDFLOW_OK);
    ck_assert_int_eq(v, SDFLOW_LOG_INFO);
    /* set / get round trips, including the extremes of the bounds */
    ck_assert_int_eq(sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, UINT64_MAX), SDFLOW_OK);
    ck_assert_int_eq(sdflow_ctx_get_u64(ctx, SDFLOW_CTX_SEED, &u), SDFLOW_OK);
    ck_assert(u == UINT64_MAX);
    ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 256), SDFLOW_OK);
    ck_assert_int_eq(sdflow_ctx_get_int(ctx, SDFLOW_CTX_THREADS, &v), SDFLOW_OK);
    ck_assert_int_eq(v, 256);
    ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_LOG_LEVEL, 0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_ctx_get_int(ctx, SDFLOW_CTX_LOG_LEVEL, &v), SDFLOW_OK);
    ck_assert_int_eq(v, 0);
    /* bounds */
    double lo, hi;
    ck_assert_int_eq(sdflow_option_bounds(SDFLOW_CTX_THREADS, &lo, &hi), SDFLOW_OK);
    ck_assert(lo == 1 && hi == 256);
    ck_assert_int_eq(sdflow_option_bounds(SDFLOW_CTX_LOG_LEVEL, &lo, &hi), SDFLOW_OK);
    ck_assert(lo == 0 && hi == 4);
    ck_assert_int_eq(sdflow_option_bounds(SDFLOW_CTX_SEED, &lo, &hi), SDFLOW_OK);
    ck_assert(lo == 0 && hi == 18446744073709551615.0);
    ck_assert_int_eq(sdflow_option_bounds((sdflow_option)9999, &lo, &hi), SDFLOW_E_UNSUPPORTED);
    ck_assert_int_eq(sdflow_option_bounds(SDFLOW_CTX_THREADS, NULL, &hi), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_option_bounds(SDFLOW_CTX_THREADS, &lo, NULL), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_option_get_type(SDFLOW_CTX_SEED), SDFLOW_TYPE_U64);
    ck_assert_int_eq(sdflow_option_get_type(SDFLOW_CTX_THREADS), SDFLOW_TYPE_INT);
    ck_assert_int_eq(sdflow_option_get_type((sdflow_option)9999), SDFLOW_TYPE_NONE);
    /* unknown keys and keys of other objects */
    ck_assert_status_msg(ctx, sdflow_ctx_set_int(ctx, (sdflow_option)9999, 1), SDFLOW_E_UNSUPPORTED, "9999");
    ck_assert_status_msg(ctx, sdflow_ctx_set_double(ctx, SDFLOW_PROC_BETA_MIN, 1.0), SDFLOW_E_UNSUPPORTED,
                         "beta_min");
    ck_assert_status_msg(ctx, sdflow_ctx_set_int(ctx, SDFLOW_OPT_STEPS, 10), SDFLOW_E_UNSUPPORTED, "context");
    ck_assert_int_eq(sdflow_ctx_get_int(ctx, (sdflow_option)9999, &v), SDFLOW_E_UNSUPPORTED);
    ck_assert_int_eq(sdflow_ctx_get_double(ctx, SDFLOW_PROC_BETA_MIN, &x), SDFLOW_E_UNSUPPORTED);
    /* wrong typed setter / getter */
    ck_assert_status_msg(ctx, sdflow_ctx_set_int(ctx, SDFLOW_CTX_SEED, 3), SDFLOW_E_INVALID, "type u64");
    ck_assert_status_msg(ctx, sdflow_ctx_set_double(ctx, SDFLOW_CTX_THREADS, 2.0), SDFLOW_E_INVALID, "type int");
    ck_assert_status_msg(ctx, sdflow_ctx_set_u64(ctx, SDFLOW_CTX_LOG_LEVEL, 1), SDFLOW_E_INVALID, "log_level");
    ck_assert_int_eq(sdflow_ctx_get_double(ctx, SDFLOW_CTX_THREADS, &x), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_ctx_get_u64(ctx, SDFLOW_CTX_THREADS, &u), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_ctx_get_int(ctx, SDFLOW_CTX_SEED, &v), SDFLOW_E_INVALID);
    /* out of bounds: the message names the option and its bounds; nothing changes */
    ck_assert_status_msg(ctx, sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 0), SDFLOW_E_INVALID,
                         "threads = 0 is outside [1, 256]");
    ck_assert_status_msg(ctx, sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 257), SDFLOW_E_INVALID, "[1, 256]");
    ck_assert_status_msg(ctx, sdflow_ctx_set_int(ctx, SDFLOW_CTX_LOG_LEVEL, 5), SDFLOW_E_INVALID,
                         "log_level = 5 is outside [0, 4]");
    ck_assert_status_msg(ctx, sdflow_ctx_set_int(ctx, SDFLOW_CTX_LOG_LEVEL, -1), SDFLOW_E_INVALID, "[0, 4]");
    ck_assert_int_eq(sdflow_ctx_get_int(ctx, SDFLOW_CTX_THREADS, &v), SDFLOW_OK);
    ck_assert_int_eq(v, 256);
    ck_assert_int_eq(sdflow_ctx_get_int(ctx, SDFLOW_CTX_LOG_LEVEL, &v), SDFLOW_OK);
    ck_assert_int_eq(v, 0);
    /* NULL handles and outputs */
    ck_assert_int_eq(sdflow_ctx_set_int(NULL, SDFLOW_CTX_THREADS, 1), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_ctx_set_u64(NULL, SDFLOW_CTX_SEED, 1), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_ctx_set_double(NULL, SDFLOW_CTX_SEED, 1), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_ctx_get_int(NULL, SDFLOW_CTX_THREADS, &v), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_ctx_get_int(ctx, SDFLOW_CTX_THREADS, NULL), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_ctx_get_u64(ctx, SDFLOW_CTX_SEED, NULL), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_ctx_get_double(ctx, SDFLOW_CTX_SEED, NULL), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_ctx_set_log(NULL, NULL, NULL), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_ctx_set_progress(NULL, NULL, NULL), SDFLOW_E_INVALID);
    sdflow_ctx_free(ctx);
    sdflow_ctx_free(NULL); /* no-op */
}
END_TEST

/* The option store (issue 10): a getter of a key the object does not
 * accept, or of the wrong type, keeps its status (SDFLOW_E_UNSUPPORTED,
 * SDFLOW_E_INVALID) and now says which key and which object; CLEAR()
 * overwrites the message first so a stale one cannot pass. */
START_TEST(test_option_getter_messages)
{
    sdflow_ctx *ctx = test_ctx(0);
    sdflow_process *p;
    sdflow_sampler *s;
    sdflow_density *e;
    sdflow_trainer *t;
    sdflow_model *km, *mlp;
    double y[4] = { 0, 1, 2, 3 }, dv;
    long iv;
    uint64_t uv;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PF_ODE, &s), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_create(ctx, SDFLOW_DENSITY_LIYAN, &e), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_create(ctx, SDFLOW_LOSS_DSM, &t), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, 2, 2, y, &km), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &mlp), SDFLOW_OK);
#define CLEAR() ck_assert_int_eq(sdflow_ctx_set_int(ctx, (sdflow_option)9999, 0), SDFLOW_E_UNSUPPORTED)
    CLEAR();
    ck_assert_status_msg(ctx, sdflow_ctx_get_double(ctx, SDFLOW_OPT_SNR, &dv), SDFLOW_E_UNSUPPORTED,
                         "a context has no double option 208 (snr)");
    CLEAR();
    ck_assert_status_msg(ctx, sdflow_ctx_get_int(ctx, SDFLOW_CTX_SEED, &iv), SDFLOW_E_INVALID,
                         "option seed is of type u64, not int");
    CLEAR();
    ck_assert_status_msg(ctx, sdflow_process_get_double(p, SDFLOW_CTX_SEED, &dv), SDFLOW_E_UNSUPPORTED,
                         "a process has no double option 100 (seed)");
    CLEAR();
    ck_assert_status_msg(ctx, sdflow_sampler_get_double(s, SDFLOW_OPT_SNR, &dv), SDFLOW_E_UNSUPPORTED,
                         "a pf_ode sampler has no double option 208 (snr)");
    CLEAR();
    ck_assert_status_msg(ctx, sdflow_sampler_get_u64(s, SDFLOW_OPT_STEPS, &uv), SDFLOW_E_INVALID,
                         "option steps is of type int, not u64");
    CLEAR();
    ck_assert_status_msg(ctx, sdflow_density_get_int(e, SDFLOW_OPT_PROBES, &iv), SDFLOW_E_UNSUPPORTED,
                         "a liyan estimator has no int option");
    CLEAR();
    ck_assert_status_msg(ctx, sdflow_trainer_get_int(t, SDFLOW_OPT_COUPLING, &iv), SDFLOW_E_UNSUPPORTED,
                         "a dsm trainer has no int option");
    CLEAR();
    ck_assert_status_msg(ctx, sdflow_model_get_u64(km, SDFLOW_OPT_STREAM, &uv), SDFLOW_E_UNSUPPORTED,
                         "a kernel model has no u64 option");
    CLEAR();
    ck_assert_status_msg(ctx, sdflow_model_get_int(mlp, SDFLOW_OPT_MLP_FREQ_SCALE, &iv), SDFLOW_E_INVALID,
                         "option mlp_freq_scale is of type double, not int");
#undef CLEAR
    /* the accepted keys still read back their defaults */
    ck_assert_int_eq(sdflow_model_get_double(mlp, SDFLOW_OPT_MLP_FREQ_SCALE, &dv), SDFLOW_OK);
    ck_assert(dv == 0.5);
    ck_assert_int_eq(sdflow_model_get_int(km, SDFLOW_OPT_BLOCK_Y, &iv), SDFLOW_OK);
    ck_assert_int_eq(iv, 4096);
    ck_assert_int_eq(sdflow_sampler_get_int(s, SDFLOW_OPT_STEPS, &iv), SDFLOW_OK);
    ck_assert_int_eq(iv, 100);
    ck_assert_int_eq(sdflow_ctx_get_u64(ctx, SDFLOW_CTX_FILE_MAX_BYTES, &uv), SDFLOW_OK);
    ck_assert(uv == (uint64_t)1 << 30);
    sdflow_model_free(mlp);
    sdflow_model_free(km);
    sdflow_trainer_free(t);
    sdflow_density_free(e);
    sdflow_sampler_free(s);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_option_names)
{
    int count = 0;
    for (int k = 0; k < 1000; k++) {
        const char *name = sdflow_option_name((sdflow_option)k);
        sdflow_option back;
        if (!name) {
            ck_assert_int_eq(sdflow_option_get_type((sdflow_option)k), SDFLOW_TYPE_NONE);
            continue;
        }
        count++;
        ck_assert_msg(sdflow_option_from_name(name, &back) == SDFLOW_OK && back == (sdflow_option)k,
                      "name '%s' of key %d does not map back", name, k);
        ck_assert_msg(sdflow_option_get_type((sdflow_option)k) != SDFLOW_TYPE_NONE, "key %d has no type", k);
        double lo, hi;
        ck_assert_int_eq(sdflow_option_bounds((sdflow_option)k, &lo, &hi), SDFLOW_OK);
        ck_assert_msg(lo <= hi, "key %s bounds [%g, %g]", name, lo, hi);
    }
    /* at least every key of options.h 0.1: 3 ctx + 8 process + 21 sampler + 2 solver + 9 density + 2 metric
     * (new keys may be appended) */
    ck_assert_int_ge(count, 45);
    ck_assert_str_eq(sdflow_option_name(SDFLOW_OPT_STEPS), "steps");
    ck_assert_str_eq(sdflow_option_name(SDFLOW_CTX_SEED), "seed");
    sdflow_option key;
    ck_assert_int_eq(sdflow_option_from_name("no_such_option", &key), SDFLOW_E_UNSUPPORTED);
    ck_assert_int_eq(sdflow_option_from_name(NULL, &key), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_option_from_name("seed", NULL), SDFLOW_E_INVALID);
}
END_TEST

START_TEST(test_strerror)
{
    const char *seen[10];
    for (int c = SDFLOW_OK; c <= SDFLOW_E_CALLBACK; c++) {
        seen[c] = sdflow_strerror((sdflow_status)c);
        ck_assert_ptr_nonnull(seen[c]);
        ck_assert_msg(strcmp(seen[c], "unknown status code") != 0, "code %d has no description", c);
        for (int b = 0; b < c; b++)
            ck_assert_msg(strcmp(seen[b], seen[c]) != 0, "codes %d and %d share '%s'", b, c, seen[c]);
    }
    ck_assert_str_eq(sdflow_strerror(SDFLOW_OK), "success");
    ck_assert_str_eq(sdflow_strerror(SDFLOW_E_NOMEM), "out of memory");
    ck_assert_str_eq(sdflow_strerror((sdflow_status)42), "unknown status code");
    ck_assert_str_eq(sdflow_strerror((sdflow_status)-1), "unknown status code");
}
END_TEST

typedef struct log_rec {
    int calls, level;
    char msg[256];
} log_rec;

static void log_cb(int level, const char *msg, void *user)
{
    log_rec *r = user;
    r->calls++;
    r->level = level;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
}

START_TEST(test_last_error_and_log)
{
    sdflow_ctx *ctx = test_ctx(0);
    ck_assert_str_eq(sdflow_ctx_last_error(ctx), "");
    ck_assert_str_eq(sdflow_ctx_last_error(NULL), "no context");
    double buf[4];
    ck_assert_int_eq(sdflow_rng_normal(ctx, 0, 0, 0, 2, buf), SDFLOW_E_INVALID);
    ck_assert_str_eq(sdflow_ctx_last_error(ctx), "n=0 must be >= 1");
    /* a successful call keeps the message of the last failure */
    ck_assert_int_eq(sdflow_rng_normal(ctx, 0, 0, 2, 2, buf), SDFLOW_OK);
    ck_assert_str_eq(sdflow_ctx_last_error(ctx), "n=0 must be >= 1");

    /* failures are logged at DEBUG: delivered when the level is >= DEBUG, not at the default INFO */
    log_rec r = { 0, -1, "" };
    ck_assert_int_eq(sdflow_ctx_set_log(ctx, log_cb, &r), SDFLOW_OK);
    ck_assert_int_eq(sdflow_rng_normal(ctx, 0, 0, 1, 0, buf), SDFLOW_E_INVALID);
    ck_assert_int_eq(r.calls, 0);
    ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_LOG_LEVEL, SDFLOW_LOG_DEBUG), SDFLOW_OK);
    ck_assert_int_eq(sdflow_rng_normal(ctx, 0, 0, 1, 0, buf), SDFLOW_E_INVALID);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.level, SDFLOW_LOG_DEBUG);
    ck_assert_str_eq(r.msg, "d=0 must be >= 1");
    ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_LOG_LEVEL, SDFLOW_LOG_TRACE), SDFLOW_OK);
    ck_assert_int_eq(sdflow_rng_normal(ctx, 0, 0, 1, 1, NULL), SDFLOW_E_INVALID);
    ck_assert_int_eq(r.calls, 2);
    ck_assert_str_eq(r.msg, "out is NULL");
    /* removing the callback stops delivery */
    ck_assert_int_eq(sdflow_ctx_set_log(ctx, NULL, NULL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_rng_normal(ctx, 0, 0, 0, 1, buf), SDFLOW_E_INVALID);
    ck_assert_int_eq(r.calls, 2);
    sdflow_ctx_free(ctx);
}
END_TEST

static void *plain_alloc(void *u, size_t n) { (void)u; return malloc(n); }
static void plain_free(void *u, void *p) { (void)u; free(p); }

START_TEST(test_ctx_create_allocator)
{
    sdflow_ctx *ctx = (sdflow_ctx *)&ctx; /* must be reset to NULL on failure */
    sdflow_allocator no_free = { plain_alloc, NULL, NULL, NULL };
    ck_assert_int_eq(sdflow_ctx_create(&ctx, &no_free), SDFLOW_E_INVALID);
    ck_assert_ptr_null(ctx);
    sdflow_allocator no_alloc = { NULL, NULL, plain_free, NULL };
    ck_assert_int_eq(sdflow_ctx_create(&ctx, &no_alloc), SDFLOW_E_INVALID);
    ck_assert_ptr_null(ctx);
    ck_assert_int_eq(sdflow_ctx_create(NULL, NULL), SDFLOW_E_INVALID);
    /* realloc may be NULL; the allocator is used for the context itself */
    failalloc f = { -1, 0, 0 };
    sdflow_allocator counted = { fa_alloc, NULL, fa_free, &f };
    ck_assert_int_eq(sdflow_ctx_create(&ctx, &counted), SDFLOW_OK);
    ck_assert_int_eq(f.live, 1);
    sdflow_ctx_free(ctx);
    ck_assert_int_eq(f.live, 0);
    /* a failing first allocation */
    failalloc g = { 0, 0, 0 };
    sdflow_allocator failing = { fa_alloc, NULL, fa_free, &g };
    ck_assert_int_eq(sdflow_ctx_create(&ctx, &failing), SDFLOW_E_NOMEM);
    ck_assert_ptr_null(ctx);
    ck_assert_int_eq(g.live, 0);
}
END_TEST

static sdflow_status ctx_workload(const sdflow_allocator *a)
{
    sdflow_ctx *ctx = NULL;
    sdflow_status st = sdflow_ctx_create(&ctx, a);
    if (st)
        return st;
    double z[6];
    if (!(st = sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, 3)) && !(st = sdflow_rng_normal(ctx, 1, 0, 3, 2, z)))
        st = sdflow_rng_uniform(ctx, 1, 0, 3, 2, z);
    sdflow_ctx_free(ctx);
    return st;
}

START_TEST(test_ctx_alloc_failures)
{
    check_all_alloc_failures(ctx_workload);
}
END_TEST

Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("basics");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_philox_kat);
    tcase_add_test(tc, test_rng_normal_moments);
    tcase_add_test(tc, test_rng_ks);
    tcase_add_test(tc, test_rng_streams_pinned);
    tcase_add_test(tc, test_rng_row_keying);
    tcase_add_test(tc, test_ctx_options);
    tcase_add_test(tc, test_option_names);
    tcase_add_test(tc, test_option_getter_messages);
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_last_error_and_log);
    tcase_add_test(tc, test_ctx_create_allocator);
    tcase_add_test(tc, test_ctx_alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}
