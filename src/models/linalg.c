/* SPDX-License-Identifier: MIT */
/* Small dense linear algebra for model set-up (d x d, done once per model). */
#include <math.h>
#include <string.h>
#include "model_internal.h"

size_t sdflow__cholesky(size_t d, double *a)
{
    for (size_t j = 0; j < d; j++) {
        double s = a[j * d + j];
        for (size_t k = 0; k < j; k++)
            s -= a[j * d + k] * a[j * d + k];
        if (!(s > 0))
            return j + 1;
        double l = sqrt(s);
        a[j * d + j] = l;
        for (size_t i = j + 1; i < d; i++) {
            double v = a[i * d + j];
            for (size_t k = 0; k < j; k++)
                v -= a[i * d + k] * a[j * d + k];
            a[i * d + j] = v / l;
        }
        for (size_t k = j + 1; k < d; k++)
            a[j * d + k] = 0.0;
    }
    return 0;
}

void sdflow__sym_eigen(size_t d, double *a, double *w, double *v)
{
    memset(v, 0, d * d * sizeof *v);
    for (size_t i = 0; i < d; i++)
        v[i * d + i] = 1.0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (size_t p = 0; p < d; p++) {
            diag += a[p * d + p] * a[p * d + p];
            for (size_t q = p + 1; q < d; q++)
                off += a[p * d + q] * a[p * d + q];
        }
        if (off <= 1e-30 * diag || off == 0)
            break;
        for (size_t p = 0; p < d; p++)
            for (size_t q = p + 1; q < d; q++) {
                double apq = a[p * d + q];
                if (apq == 0)
                    continue;
                /* rotation that zeroes a[p][q] (Golub & Van Loan 8.4) */
                double theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (size_t k = 0; k < d; k++) {
                    double akp = a[k * d + p], akq = a[k * d + q];
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < d; k++) {
                    double apk = a[p * d + k], aqk = a[q * d + k];
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for (size_t k = 0; k < d; k++) {
                    double vkp = v[k * d + p], vkq = v[k * d + q];
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
    }
    for (size_t i = 0; i < d; i++)
        w[i] = a[i * d + i];
}
