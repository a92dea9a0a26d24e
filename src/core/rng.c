/* SPDX-License-Identifier: MIT */
/* Counter-based random numbers: Philox4x32-10 (Salmon et al. 2011).
 *
 * Key  = 64 bits derived from (seed, stream) by SplitMix64 mixing.
 * Counter = (block lo, block hi, row lo, row hi): block j of row r.
 * So every draw is a pure function of (seed, stream, row, block), which is
 * what makes results independent of batch splits and thread counts. */
#include <math.h>
#include "ctx_internal.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* The rounds of NL independent counters at once (lane l: c[.][l]): the
 * lanes' multiply chains overlap in the CPU (one Philox block is a chain of
 * 10 dependent 32 x 32 -> 64-bit multiplies, latency-bound alone), and each
 * lane computes exactly what one sdflow_rng_philox4x32 call does. */
#define PHILOX_LANES 4
__attribute__((always_inline)) static inline void philox_rounds(int nl, uint32_t c[4][PHILOX_LANES], uint32_t k0,
                                                                uint32_t k1)
{
    for (int round = 0; round < 10; round++) {
#pragma GCC unroll 4
        for (int l = 0; l < nl; l++) {
            uint64_t p0 = (uint64_t)PHILOX_M0 * c[0][l];
            uint64_t p1 = (uint64_t)PHILOX_M1 * c[2][l];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1][l] ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3][l] ^ k1;
            c[0][l] = n0;
            c[1][l] = (uint32_t)p1;
            c[2][l] = n2;
            c[3][l] = (uint32_t)p0;
        }
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
}

void sdflow_rng_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c[4][PHILOX_LANES] = { { ctr[0] }, { ctr[1] }, { ctr[2] }, { ctr[3] } };
    philox_rounds(1, c, key[0], key[1]);
    for (int i = 0; i < 4; i++)
        out[i] = c[i][0];
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t sdflow__stream(uint64_t base, uint64_t tag, uint64_t step)
{
    return splitmix64(splitmix64(base ^ splitmix64(tag)) + step);
}

typedef struct philox_key {
    uint32_t key[2];
    uint32_t row[2];
} philox_key;

static philox_key make_key(uint64_t seed, uint64_t stream, uint64_t row)
{
    uint64_t k = splitmix64(seed + splitmix64(stream));
    philox_key pk = { { (uint32_t)k, (uint32_t)(k >> 32) }, { (uint32_t)row, (uint32_t)(row >> 32) } };
    return pk;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* Four consecutive blocks b..b+3 of one row in the four 64-bit lanes of
 * AVX2 vectors, each lane holding one 32-bit Philox word (zero-extended, so
 * _mm256_mul_epu32 forms the 32 x 32 -> 64-bit products): the arithmetic of
 * philox_rounds lane for lane, the same bits. w as blocks64's. */
__attribute__((target("avx2"))) static void blocks64_avx2(const philox_key *pk, uint64_t b, uint64_t *w)
{
    const __m256i lo32 = _mm256_set1_epi64x(0xFFFFFFFFll);
    const __m256i m0 = _mm256_set1_epi64x(PHILOX_M0), m1 = _mm256_set1_epi64x(PHILOX_M1);
    __m256i bb = _mm256_add_epi64(_mm256_set1_epi64x((long long)b), _mm256_setr_epi64x(0, 1, 2, 3));
    __m256i c0 = _mm256_and_si256(bb, lo32), c1 = _mm256_srli_epi64(bb, 32);
    __m256i c2 = _mm256_set1_epi64x(pk->row[0]), c3 = _mm256_set1_epi64x(pk->row[1]);
    uint32_t k0 = pk->key[0], k1 = pk->key[1];
    for (int round = 0; round < 10; round++) {
        __m256i p0 = _mm256_mul_epu32(m0, c0), p1 = _mm256_mul_epu32(m1, c2);
        __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), c1), _mm256_set1_epi64x(k0));
        __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), c3), _mm256_set1_epi64x(k1));
        c0 = n0;
        c1 = _mm256_and_si256(p1, lo32);
        c2 = n2;
        c3 = _mm256_and_si256(p0, lo32);
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    uint64_t e[4], o[4];
    _mm256_storeu_si256((__m256i *)e, _mm256_or_si256(c0, _mm256_slli_epi64(c1, 32)));
    _mm256_storeu_si256((__m256i *)o, _mm256_or_si256(c2, _mm256_slli_epi64(c3, 32)));
    for (int l = 0; l < 4; l++) {
        w[2 * l] = e[l];
        w[2 * l + 1] = o[l];
    }
}
#define SDFLOW__PHILOX_AVX2 1
#endif

/* Two 64-bit words of each of the nb <= PHILOX_LANES blocks b, b+1, ..:
 * w[2 i], w[2 i + 1] of block b + i. */
static void blocks64(const philox_key *pk, uint64_t b, int nb, uint64_t *w)
{
#ifdef SDFLOW__PHILOX_AVX2
    if (nb == PHILOX_LANES && __builtin_cpu_supports("avx2")) {
        blocks64_avx2(pk, b, w);
        return;
    }
#endif
    uint32_t c[4][PHILOX_LANES];
    for (int l = 0; l < nb; l++) {
        c[0][l] = (uint32_t)(b + (uint64_t)l);
        c[1][l] = (uint32_t)((b + (uint64_t)l) >> 32);
        c[2][l] = pk->row[0];
        c[3][l] = pk->row[1];
    }
    if (nb == PHILOX_LANES) /* constant lane counts: the lanes unroll into registers */
        philox_rounds(PHILOX_LANES, c, pk->key[0], pk->key[1]);
    else
        for (int l = 0; l < nb; l++) {
            uint32_t one[4][PHILOX_LANES] = { { c[0][l] }, { c[1][l] }, { c[2][l] }, { c[3][l] } };
            philox_rounds(1, one, pk->key[0], pk->key[1]);
            for (int i = 0; i < 4; i++)
                c[i][l] = one[i][0];
        }
    for (int l = 0; l < nb; l++) {
        w[2 * l] = (uint64_t)c[0][l] | (uint64_t)c[1][l] << 32;
        w[2 * l + 1] = (uint64_t)c[2][l] | (uint64_t)c[3][l] << 32;
    }
}

static void block64(const philox_key *pk, uint64_t b, uint64_t w[2]) { blocks64(pk, b, 1, w); }

#define TWO_M53 (1.0 / 9007199254740992.0)

void sdflow__rng_uniform_row(uint64_t seed, uint64_t stream, uint64_t row, uint64_t offset, size_t d, double *out)
{
    philox_key pk = make_key(seed, stream, row);
    for (size_t j = 0; j < d; j += 2) {
        uint64_t w[2];
        block64(&pk, offset + j / 2, w);
        out[j] = (double)(w[0] >> 11) * TWO_M53;
        if (j + 1 < d)
            out[j + 1] = (double)(w[1] >> 11) * TWO_M53;
    }
}

void sdflow__rng_normal_row(uint64_t seed, uint64_t stream, uint64_t row, uint64_t offset, size_t d, double *out)
{
    static const double two_pi = 6.283185307179586476925286766559;
    philox_key pk = make_key(seed, stream, row);
    size_t nblk = (d + 1) / 2;
    for (size_t b0 = 0; b0 < nblk; b0 += PHILOX_LANES) {
        int nb = nblk - b0 < PHILOX_LANES ? (int)(nblk - b0) : PHILOX_LANES;
        uint64_t w[2 * PHILOX_LANES];
        blocks64(&pk, offset + b0, nb, w);
        for (int l = 0; l < nb; l++) {
            size_t j = 2 * (b0 + (size_t)l);
            double u1 = (double)((w[2 * l] >> 11) + 1) * TWO_M53; /* (0, 1]: log stays finite */
            double u2 = (double)(w[2 * l + 1] >> 11) * TWO_M53;
            double r = sqrt(-2.0 * log(u1));
            out[j] = r * cos(two_pi * u2);
            if (j + 1 < d)
                out[j + 1] = r * sin(two_pi * u2);
        }
    }
}

void sdflow__rng_rademacher_row(uint64_t seed, uint64_t stream, uint64_t row, uint64_t offset, size_t d,
                                double *out)
{
    philox_key pk = make_key(seed, stream, row);
    for (size_t j = 0; j < d; j += 128) {
        uint64_t w[2];
        block64(&pk, offset + j / 128, w);
        for (size_t b = 0; b < 128 && j + b < d; b++)
            out[j + b] = (w[b >> 6] >> (b & 63)) & 1 ? 1.0 : -1.0;
    }
}

static sdflow_status check_rng_args(sdflow_ctx *ctx, size_t n, size_t d, const double *out)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_dims(ctx, n, d);
    return st ? st : sdflow__check_ptr(ctx, out, "out");
}

sdflow_status sdflow_rng_normal(sdflow_ctx *ctx, uint64_t stream, uint64_t first_index, size_t n, size_t d,
                                double *out)
{
    sdflow_status st = check_rng_args(ctx, n, d, out);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++)
        sdflow__rng_normal_row(ctx->seed, stream, first_index + i, 0, d, out + i * d);
    return SDFLOW_OK;
}

sdflow_status sdflow_rng_uniform(sdflow_ctx *ctx, uint64_t stream, uint64_t first_index, size_t n, size_t d,
                                 double *out)
{
    sdflow_status st = check_rng_args(ctx, n, d, out);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++)
        sdflow__rng_uniform_row(ctx->seed, stream, first_index + i, 0, d, out + i * d);
    return SDFLOW_OK;
}
