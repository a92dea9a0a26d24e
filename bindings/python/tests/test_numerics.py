# SPDX-License-Identifier: MIT
"""Numerical tests of the binding against independent numpy implementations
(run by pytest with the others: make python-test)."""

import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import sdflow  # noqa: E402

BETA_MIN, BETA_MAX = 0.1, 20.0  # VP defaults


def vp_alpha_sigma(t):
    """VP with linear beta: alpha = exp(-B(t)/2), B(t) = beta_min t + (beta_max - beta_min) t^2 / 2."""
    alpha = np.exp(-0.25 * t * t * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN)
    return alpha, np.sqrt(-np.expm1(-0.5 * t * t * (BETA_MAX - BETA_MIN) - t * BETA_MIN))


def gmm_noised(x, t, w, mu, cov):
    """Exact score and log-density of sum_k w_k N(alpha mu_k, alpha^2 S_k + sigma^2 I) at rows of x."""
    n, d = x.shape
    score, logp = np.empty_like(x), np.empty(n)
    for i in range(n):
        a, s = vp_alpha_sigma(t[i])
        logs, grads = [], []
        for k in range(len(w)):
            C = a * a * cov[k] + s * s * np.eye(d)
            r = x[i] - a * mu[k]
            Ci_r = np.linalg.solve(C, r)
            _, logdet = np.linalg.slogdet(C)
            logs.append(np.log(w[k]) - 0.5 * (r @ Ci_r + logdet + d * np.log(2 * np.pi)))
            grads.append(-Ci_r)
        logs = np.array(logs)
        m = logs.max()
        post = np.exp(logs - m)
        logp[i] = m + np.log(post.sum())
        post /= post.sum()
        score[i] = sum(p * g for p, g in zip(post, grads))
    return score, logp


def energy_numpy(x, y):
    def mean_dist(a, b, same):
        dd = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
        n = a.shape[0]
        return dd.sum() / (n * (n - 1)) if same else dd.mean()

    return 2 * mean_dist(x, y, False) - mean_dist(x, x, True) - mean_dist(y, y, True)


W = np.array([0.5, 0.3, 0.2])
MU = np.array([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]])
COV = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.1], [-0.1, 0.8]], [[0.2, 0.0], [0.0, 0.2]]])


class BindingTest(unittest.TestCase):
    def setUp(self):
        self.ctx = sdflow.Ctx(seed=1234, threads=2)

    def test_version(self):
        num, s = sdflow.version()
        self.assertEqual(num, sdflow.VERSION_NUMBER)
        self.assertEqual(s, "%d.%d.%d" % (num // 10000, num // 100 % 100, num % 100))

    def test_gmm_score_logpdf_vp(self):
        proc = sdflow.Process(self.ctx, "vp")
        model = sdflow.Model.gmm(self.ctx, W, MU, COV)
        x = self.ctx.rng_normal(40, 2, stream=5) * 2.0
        for t in (1e-3, 0.05, 0.3, 0.7, 1.0):
            tt = np.full(40, t)
            want_s, want_l = gmm_noised(x, tt, W, MU, COV)
            got_s, got_l = model.score(proc, x, tt), model.logpdf(proc, x, tt)
            # Both sides are exact formulas in double precision: rounding only.
            np.testing.assert_allclose(got_s, want_s, rtol=1e-10, atol=1e-12 * np.abs(want_s).max(),
                                       err_msg="score at t=%g" % t)
            np.testing.assert_allclose(got_l, want_l, rtol=1e-10, err_msg="logpdf at t=%g" % t)
        # Per-row times in one call.
        tt = np.linspace(0.01, 1.0, 40)
        want_s, _ = gmm_noised(x, tt, W, MU, COV)
        np.testing.assert_allclose(model.score(proc, x, tt), want_s, rtol=1e-10, atol=1e-12)
        # The check can fail: a wrong mixture weight is detected.
        wrong_s, _ = gmm_noised(x, tt, np.array([0.4, 0.4, 0.2]), MU, COV)
        self.assertGreater(np.abs(wrong_s - want_s).max(), 1e-3)

    def test_rng_determinism(self):
        a = self.ctx.rng_normal(100, 3, stream=7)
        b = self.ctx.rng_normal(100, 3, stream=7)
        np.testing.assert_array_equal(a, b)
        # Row i depends only on (seed, stream, first_index + i).
        np.testing.assert_array_equal(self.ctx.rng_normal(50, 3, stream=7, first_index=50), a[50:])
        self.assertFalse(np.array_equal(self.ctx.rng_normal(100, 3, stream=8), a))
        other = sdflow.Ctx(seed=1235)
        self.assertFalse(np.array_equal(other.rng_normal(100, 3, stream=7), a))
        # Moments of 3e4 draws: SE of the mean 0.0058, of the variance 0.0082 -> 5 SE.
        z = self.ctx.rng_normal(10000, 3, stream=9).ravel()
        self.assertLess(abs(z.mean()), 5 / np.sqrt(z.size))
        self.assertLess(abs(z.var() - 1), 5 * np.sqrt(2 / z.size))

    def test_error_bad_covariance(self):
        bad = COV.copy()
        bad[1] = [[1.0, 2.0], [2.0, 1.0]]  # eigenvalues 3, -1
        with self.assertRaises(sdflow.SdflowError) as cm:
            sdflow.Model.gmm(self.ctx, W, MU, bad)
        self.assertEqual(cm.exception.status, 1)
        self.assertIn("positive definite", cm.exception.message)
        self.assertIn("covariance 1", cm.exception.message)  # names the component
        with self.assertRaises(sdflow.SdflowError) as cm:
            sdflow.Model.gmm(self.ctx, [0.5, 0.3, 0.3], MU, COV)
        self.assertIn("weights", cm.exception.message)

    def test_metrics(self):
        x = self.ctx.rng_normal(120, 2, stream=1)
        y = self.ctx.rng_normal(90, 2, stream=2) + [0.5, 0.0]
        e, se = self.ctx.energy_distance(x, y)
        # Same U-statistic, different summation order: rounding only.
        self.assertAlmostEqual(e, energy_numpy(x, y), delta=1e-12 * abs(e))
        self.assertGreater(se, 0)
        m, sm = self.ctx.mmd2(x, y, bandwidth=1.0)
        self.assertGreater(m, 0)
        sw, ssw = self.ctx.sliced_wasserstein(x, y, p=2, directions=64, stream=3)
        self.assertGreater(sw, 0)
        with self.assertRaises(sdflow.SdflowError) as cm:
            self.ctx.mmd2(x, y, bandwidth=-1.0)
        self.assertIn("bandwidth", cm.exception.message)
        x[3, 1] = np.nan
        with self.assertRaises(sdflow.SdflowError) as cm:
            self.ctx.energy_distance(x, y)
        self.assertIn("x[3][1] is NaN", cm.exception.message)

    def test_pf_ode_sampler_gaussian(self):
        proc = sdflow.Process(self.ctx, "vp")
        mean, cov = np.array([1.0, -0.5]), np.array([[0.5, 0.1], [0.1, 0.3]])
        model = sdflow.Model.gaussian(self.ctx, mean, cov)
        sampler = sdflow.Sampler(self.ctx, "pf_ode").set_process(proc).set_model(model)
        n = 1000
        x = sampler.run(proc.prior_sample(n, 2, stream=3))
        self.assertEqual(x.shape, (n, 2))
        # Statistical tolerance: 5 standard errors of the sample mean and covariance
        # (the adaptive solver's error, rtol 1e-5, is far below them).
        se_mean = np.sqrt(np.diag(cov) / n)
        self.assertTrue(np.all(np.abs(x.mean(0) - mean) < 5 * se_mean), x.mean(0))
        se_cov = np.sqrt((cov ** 2 + np.outer(np.diag(cov), np.diag(cov))) / n)
        self.assertTrue(np.all(np.abs(np.cov(x.T) - cov) < 5 * se_cov), np.cov(x.T))
        self.assertGreater(sampler.stat("nfe"), 0)
        # Same seed, same start: bit-identical samples.
        np.testing.assert_array_equal(sampler.run(proc.prior_sample(n, 2, stream=3)), x)

    def test_interpolant_sampler_gaussian(self):
        # t = 0 base N(0, I), t = 1 data: a gaussian data model evaluated as a velocity under
        # the trig interpolant is the exact velocity; it is undefined at t = 0, so start at 1e-6.
        proc = sdflow.Process(self.ctx, "interp_trig")
        mean, cov = np.array([1.0, -0.5]), np.array([[0.5, 0.1], [0.1, 0.3]])
        model = sdflow.Model.gaussian(self.ctx, mean, cov)
        s = sdflow.Sampler(self.ctx, "interpolant").set_process(proc).set_model(model, "velocity")
        s.set("interp_t0", 1e-6).set("interp_kinetic", 1)
        n = 1000
        x0 = proc.prior_sample(n, 2, stream=4)
        x = s.run(x0)
        se_mean = np.sqrt(np.diag(cov) / n)  # 5 standard errors, as the pf_ode test
        self.assertTrue(np.all(np.abs(x.mean(0) - mean) < 5 * se_mean), x.mean(0))
        se_cov = np.sqrt((cov ** 2 + np.outer(np.diag(cov), np.diag(cov))) / n)
        self.assertTrue(np.all(np.abs(np.cov(x.T) - cov) < 5 * se_cov), np.cov(x.T))
        self.assertGreater(s.stat("kinetic_energy"), 0)
        # data -> base returns the starts (DOPRI5 at rtol 1e-5)
        self.assertLess(np.abs(s.transport(x, 1.0, 1e-6) - x0).max(), 1e-3)

    def test_wrappers_check_columns(self):
        # issue 9 item 7: a 5 x 3 or 4000 x 1 array on a 2-D model must be
        # refused before the library reads it (it read reinterpreted rows or
        # past the buffer).
        proc = sdflow.Process(self.ctx, "vp")
        model = sdflow.Model.gaussian(self.ctx, [1.0, -0.5], [[0.5, 0.1], [0.1, 0.3]])
        sampler = sdflow.Sampler(self.ctx, "pf_ode").set_process(proc).set_model(model)
        dens = sdflow.Density(self.ctx, "pf_ode_exact").set_process(proc).set_model(model)
        sdf = sdflow.Sampler(self.ctx, "sdflow").set_model(model, "target")
        for bad in (np.zeros((5, 3)), np.zeros((4000, 1))):
            with self.assertRaises(ValueError):
                sampler.run(bad)
            with self.assertRaises(ValueError):
                sampler.transport(bad, 1.0, 0.5)
            with self.assertRaises(ValueError):
                dens.logpdf(bad)
            with self.assertRaises(ValueError):
                dens.bits_per_dim(bad)
            with self.assertRaises(ValueError):
                sdf.run(bad)
        ok = np.zeros((3, 2))
        self.assertEqual(sampler.transport(ok, 0.5, 0.4).shape, (3, 2))
        self.assertEqual(dens.logpdf(ok)[0].shape, (3,))

    def test_density_pf_ode_exact(self):
        proc = sdflow.Process(self.ctx, "vp")
        model = sdflow.Model.gaussian(self.ctx, [1.0, -0.5], [[0.5, 0.1], [0.1, 0.3]])
        dens = sdflow.Density(self.ctx, "pf_ode_exact").set_process(proc).set_model(model)
        pts = model.sample(5, stream=4)
        lp, se = dens.logpdf(pts)
        self.assertEqual(lp.shape, (5,))
        np.testing.assert_array_equal(se, 0)  # exact divergence: no Monte Carlo error
        # Loose: integrating from t_eps to T and the N(0, I) prior at T leave a few 1e-2 nats.
        np.testing.assert_allclose(lp, model.logpdf(proc, pts, proc.time_range()[0]), atol=0.1)

    def test_options_by_name(self):
        self.ctx.set("threads", 1)
        self.assertEqual(self.ctx.get("threads"), 1)
        with self.assertRaises(sdflow.SdflowError) as cm:
            self.ctx.set("threads", 0)
        self.assertEqual(cm.exception.status, 1)
        with self.assertRaises(KeyError):
            self.ctx.set("no_such_option", 1)

    def test_dsb_gaussian_bridge(self):
        # Brownian reference, N(0, 1) <-> N(3, 4): after 4 IPF iterations the
        # generator's X_0 has mean 0 within O(gamma) + 4 SE (SE 0.02 for n = 2000;
        # the measured O(gamma) bias at N = 20, gamma = 0.05 is below 0.1)
        data = sdflow.Model.gaussian(self.ctx, [0.0], [[1.0]])
        prior = sdflow.Model.gaussian(self.ctx, [3.0], [[4.0]])
        s = sdflow.Sampler(self.ctx, "dsb").set_model(data, "data").set_model(prior, "prior")
        s.set("dsb_reference", 1).set("dsb_gamma_max", 0.05).set("dsb_npar", 5000).set("denoise", 0)
        s.fit(4)
        self.assertEqual(s.stat("half_bridges"), 8)
        x_n = 3 + 2 * self.ctx.rng_normal(2000, 1, stream=5)
        x0 = s.run(x_n)
        self.assertLess(abs(x0.mean()), 0.1 + 4 * 0.02)


if __name__ == "__main__":
    unittest.main(verbosity=2)
