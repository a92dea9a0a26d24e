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

Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("basics");
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_philox_kat);
    suite_add_tcase(s, tc);
    return s;
}
