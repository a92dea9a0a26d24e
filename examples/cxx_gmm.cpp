/* SPDX-License-Identifier: MIT */
/* The C++ wrapper (include/sdflow.hpp) end to end: sample a 2-D Gaussian
 * mixture (exact draws and the reverse SDE), compute its log-likelihood with
 * the PF-ODE estimator and compare with the closed form, and check that
 * error paths throw sdflow::error with the right status and message.
 * Built with -std=c++17 and -std=c++20 (std::span) by make examples and run
 * by make check; exits nonzero on any failed check. */
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>
#include "sdflow.hpp"

namespace {

int failures = 0;

void expect(bool ok, const std::string &what)
{
    std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok)
        failures++;
}

/* Runs f, which must throw sdflow::error with status @p st. */
template <class F> void expect_throw(sdflow_status st, const std::string &what, F f)
{
    try {
        f();
    } catch (const sdflow::error &e) {
        expect(e.status() == st, what + " throws " + sdflow_strerror(st) + " (got: " + e.what() + ")");
        return;
    }
    expect(false, what + " throws");
}

struct my_error {};

} // namespace

int main()
{
    try {
        expect(sdflow::version() == SDFLOW_VERSION_NUMBER, std::string("library version ") + sdflow::version_string());
        sdflow::ctx ctx(7);
        expect(ctx.get<std::uint64_t>(SDFLOW_CTX_SEED) == 7, "templated get reads the seed back");

        const std::size_t d = 2;
        const std::vector<double> w = {0.5, 0.3, 0.2};
        const std::vector<double> mu = {-2, 0, 2, 1, 0, -2.5};
        const std::vector<double> cov = {1.0, 0.3, 0.3, 0.5, 0.4, -0.1, -0.1, 0.8, 0.2, 0.0, 0.0, 0.2};
        sdflow::model gmm = sdflow::model::gmm(ctx, d, w, mu, cov);
        sdflow::process vp(ctx, sdflow::from_name<sdflow_process_kind>("vp"));
        expect(gmm.kind() == SDFLOW_MODEL_GMM && gmm.dim() == d && sdflow::name(gmm.kind()) == "gmm",
               "gmm model, kind name round trip");

        /* Exact draws: the sample mean is within 4 standard errors of sum_k w_k mu_k. */
        const std::size_t n = 4000;
        std::vector<double> x = gmm.sample(n, 1, 0);
        for (std::size_t j = 0; j < d; j++) {
            double m = 0, m2 = 0, exact = 0;
            for (std::size_t k = 0; k < 3; k++)
                exact += w[k] * mu[k * d + j];
            for (std::size_t i = 0; i < n; i++) {
                m += x[i * d + j] / n;
                m2 += x[i * d + j] * x[i * d + j] / n;
            }
            double se = std::sqrt((m2 - m * m) / n);
            expect(std::fabs(m - exact) < 4 * se, "exact-sample mean[" + std::to_string(j) + "] " + std::to_string(m) +
                                                      " vs " + std::to_string(exact) + " (4 SE = " +
                                                      std::to_string(4 * se) + ")");
        }

        /* Reverse-SDE samples from the exact score: same mean test, SE from the sample. */
        sdflow::sampler sde(ctx, SDFLOW_SAMPLER_REVERSE_SDE);
        sde.set_process(vp);
        sde.set_model(SDFLOW_ROLE_SCORE, gmm);
        sde.set(SDFLOW_OPT_STEPS, 200);
        std::vector<double> xs = sde.run(2000);
        double m0 = 0, m02 = 0;
        for (std::size_t i = 0; i < 2000; i++) {
            m0 += xs[i * d] / 2000;
            m02 += xs[i * d] * xs[i * d] / 2000;
        }
        double se0 = std::sqrt((m02 - m0 * m0) / 2000);
        /* exact mean -0.4 (0.5 x -2 + 0.3 x 2 + 0.2 x 0); the bias of 200 Euler-Maruyama steps
         * is far below the 4 SE ~ 0.17 of 2000 samples */
        expect(std::fabs(m0 + 0.4) < 4 * se0, "reverse-SDE sample mean[0] " + std::to_string(m0) + " vs -0.4 (4 SE = " +
                                                  std::to_string(4 * se0) + ")");

        /* Log-likelihood by the PF-ODE with the exact divergence vs the closed form
         * of the mixture noised to t_eps = 1e-5, where the ODE starts. The error is
         * deterministic (no Monte Carlo): ODE tolerance 1e-5 plus the prior mismatch
         * log N(x(T)) - log p_T(x(T)) ~ 1e-3 (examples/gmm_likelihood prints 2.3e-3
         * mean), so 0.02 per point is a bound, not a fit. */
        const std::size_t nl = 100;
        std::vector<double> xl(x.begin(), x.begin() + nl * d);
        std::vector<double> t(nl, 1e-5);
        std::vector<double> ref = gmm.logpdf(&vp, xl, t);
        sdflow::density est(ctx, SDFLOW_DENSITY_PF_ODE_EXACT);
        est.set_process(vp);
        est.set_model(gmm);
        std::vector<double> se(nl);
        std::vector<double> lp = est.logpdf(xl, se);
        double max_err = 0, ll = 0;
        for (std::size_t i = 0; i < nl; i++) {
            max_err = std::fmax(max_err, std::fabs(lp[i] - ref[i]));
            ll += lp[i] / nl;
        }
        expect(max_err < 0.02, "PF-ODE log-likelihood (mean " + std::to_string(ll) + " nats) within 0.02 of the "
                               "closed form, max |err| " + std::to_string(max_err));
        /* Negative control: the test can fail -- a single Gaussian's log-density misses by far more. */
        sdflow::model g1 = sdflow::model::gaussian(ctx, std::vector<double>{-0.2, -0.1},
                                                   std::vector<double>{2.0, 0.0, 0.0, 2.0});
        std::vector<double> wrong = g1.logpdf(&vp, xl, t);
        double wrong_err = 0;
        for (std::size_t i = 0; i < nl; i++)
            wrong_err = std::fmax(wrong_err, std::fabs(wrong[i] - ref[i]));
        expect(wrong_err > 0.02, "control: a wrong model's log-density misses by " + std::to_string(wrong_err));

        /* Options by key type: an int key given a double that is integral, an enum value, a typo'd name. */
        sdflow::sampler ode(ctx, sdflow::from_name<sdflow_sampler_kind>("pf_ode"));
        ode.set(SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_DOPRI5);
        ode.set(SDFLOW_OPT_RTOL, 1e-6);
        expect(ode.get<long>(SDFLOW_OPT_SOLVER) == SDFLOW_SOLVER_DOPRI5 && ode.get(SDFLOW_OPT_RTOL) == 1e-6,
               "templated set/get of int, enum and double options");

        /* Error paths. */
        expect_throw(SDFLOW_E_INVALID, "logpdf of 5 values on a 2-D model",
                     [&] { est.logpdf(std::vector<double>(5, 0.0)); });
        expect_throw(SDFLOW_E_INVALID, "model logpdf with a t of the wrong length",
                     [&] { gmm.logpdf(&vp, xl, std::vector<double>(3, 0.5)); });
        expect_throw(SDFLOW_E_INVALID, "from_name of a typo", [&] { sdflow::from_name<sdflow_sampler_kind>("pf_oed"); });
        expect_throw(SDFLOW_E_STATE, "run of a sampler without a model", [&] { ode.run(3); });
        expect_throw(SDFLOW_E_UNSUPPORTED, "a density option on a ctx", [&] { ctx.set(SDFLOW_OPT_PROBES, 2); });
        try {
            std::vector<double> bad = {0.0, std::nan("")};
            est.logpdf(bad);
            expect(false, "NaN input throws");
        } catch (const sdflow::error &e) {
            expect(e.status() == SDFLOW_E_INVALID && !e.message().empty(),
                   std::string("NaN input throws with the library's message: ") + e.message());
        }
        /* A C++ exception thrown by a callback model crosses no C frame and comes back out of run(). */
        sdflow::model cb = sdflow::model::callback(ctx, d, SDFLOW_OUT_SCORE,
                                                   [](std::size_t, std::size_t, const double *, const double *,
                                                      double *) { throw my_error(); });
        sdflow::sampler s2(ctx, SDFLOW_SAMPLER_REVERSE_SDE);
        s2.set_process(vp);
        s2.set_model(SDFLOW_ROLE_SCORE, cb);
        bool caught = false;
        try {
            s2.run(4);
        } catch (const my_error &) {
            caught = true;
        }
        expect(caught, "a callback's exception is rethrown from sampler::run");
        /* A progress callback returning false cancels. */
        ctx.set_progress([](long, long) { return false; });
        expect_throw(SDFLOW_E_CANCELLED, "progress callback returning false", [&] { sde.run(4); });
        ctx.set_progress(nullptr);
#if SDFLOW_HPP_STD_SPAN
        std::printf("built with std::span (C++20)\n");
#else
        std::printf("built with sdflow::span (C++17)\n");
#endif
    } catch (const std::exception &e) {
        std::printf("FAIL: unexpected exception: %s\n", e.what());
        return 1;
    }
    std::printf("%s\n", failures ? "cxx_gmm: FAILED" : "cxx_gmm: all checks passed");
    return failures ? 1 : 0;
}
