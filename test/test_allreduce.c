/* SPDX-License-Identifier: MIT */
/* The allreduce hook of the ctx (sdflow_ctx_set_allreduce). The hook is
 * called by the trainer (test_trainer.c checks a failing hook stops a step
 * with SDFLOW_E_CALLBACK); here: the setter's validation and replacement. */
#include "testutil.h"

static int sum_twice(double *buf, size_t n, void *user)
{
    (void)user;
    for (size_t i = 0; i < n; i++)
        buf[i] *= 2; /* what a 2-rank sum of equal inputs gives */
    return 0;
}

START_TEST(test_allreduce_setter)
{
    ck_assert_int_eq(sdflow_ctx_set_allreduce(NULL, sum_twice, NULL), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_ctx_set_allreduce(NULL, NULL, NULL), SDFLOW_E_INVALID);
    sdflow_ctx *ctx = NULL;
    ck_assert_int_eq(sdflow_ctx_create(&ctx, NULL), SDFLOW_OK);
    int tag = 0;
    ck_assert_int_eq(sdflow_ctx_set_allreduce(ctx, sum_twice, &tag), SDFLOW_OK);
    ck_assert_int_eq(sdflow_ctx_set_allreduce(ctx, sum_twice, NULL), SDFLOW_OK); /* replace */
    ck_assert_int_eq(sdflow_ctx_set_allreduce(ctx, NULL, NULL), SDFLOW_OK);      /* remove */
    sdflow_ctx_free(ctx);
}
END_TEST

Suite *allreduce_suite(void)
{
    Suite *s = suite_create("allreduce");
    TCase *tc = tcase_create("hook");
    tcase_add_test(tc, test_allreduce_setter);
    suite_add_tcase(s, tc);
    return s;
}
