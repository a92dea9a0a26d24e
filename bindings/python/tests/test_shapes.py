# SPDX-License-Identifier: MIT
"""Shapes and dtypes are checked before any library call (issue 19).

The C functions take n and read n x d doubles with d from the model, so a
5 x 3 array on a 2-D model was read as reinterpreted rows and a 4000 x 1
array past its buffer. Every wrapper taking an array is covered here.
Against the earlier bindings: before 0894817 (issue 9's column check) a
4000 x 1 x_init on a 2-D pf_ode sampler was read past its end ("x_init[2097][1]
is NaN": bytes beyond the array); on the binding this change replaces, a DSB
sampler with only a forward model bound still was ("x_init[3373][1] is NaN"),
which test_dsb_and_interpolant_roles refuses with a ValueError."""
import numpy as np
import pytest

import sdflow

BAD = [np.zeros((5, 3)), np.zeros((4000, 1))]
COV = np.array([[0.5, 0.1], [0.1, 0.3]])


@pytest.fixture
def two_d(ctx):
    proc = sdflow.Process(ctx, "vp")
    model = sdflow.Model.gaussian(ctx, [1.0, -0.5], COV)
    return proc, model


@pytest.mark.parametrize("bad", BAD, ids=["5x3", "4000x1"])
def test_sampler_run_transport_density(ctx, two_d, bad):
    proc, model = two_d
    s = sdflow.Sampler(ctx, "pf_ode", process=proc, score=model)
    dens = sdflow.Density(ctx, "pf_ode_exact", process=proc, model=model)
    sdf = sdflow.Sampler(ctx, "sdflow", target=model)
    for call in (lambda: s.run(bad), lambda: s.transport(bad, 1.0, 0.5), lambda: dens.logpdf(bad),
                 lambda: dens.bits_per_dim(bad), lambda: sdf.run(bad)):
        with pytest.raises(ValueError, match="columns"):
            call()
    ok = np.zeros((3, 2))
    assert s.transport(ok, 0.5, 0.4).shape == (3, 2)
    assert dens.logpdf(ok)[0].shape == (3,)


@pytest.mark.parametrize("bad", BAD, ids=["5x3", "4000x1"])
def test_dsb_and_interpolant_roles(ctx, bad):
    # The dimension of a DSB sampler comes from any of data, prior, backward
    # or forward; of an interpolant sampler from velocity.
    fwd = sdflow.Model.mlp(ctx, 2, depth=1, width=4, freqs=2)
    dsb = sdflow.Sampler(ctx, "dsb", forward=fwd)
    assert dsb.dim() == 2
    with pytest.raises(ValueError, match="columns"):
        dsb.run(bad)
    ip = sdflow.Process(ctx, "interp_trig")
    vel = sdflow.Model.gaussian(ctx, [0.0, 0.0], np.eye(2))
    s = sdflow.Sampler(ctx, "interpolant", process=ip, velocity=vel)
    with pytest.raises(ValueError, match="columns"):
        s.run(bad)
    with pytest.raises(ValueError, match="columns"):
        s.transport(bad, 1.0, 0.5)


def test_run_needs_a_dimension_and_rows(ctx, two_d):
    proc, model = two_d
    s = sdflow.Sampler(ctx, "pf_ode", process=proc)
    with pytest.raises(sdflow.StateError):
        s.run(n=4)
    s.set_model(model)
    with pytest.raises(TypeError):
        s.run()
    with pytest.raises(ValueError, match="rows"):
        s.run(np.zeros((3, 2)), n=4)
    with pytest.raises(ValueError, match="2-D"):
        s.run(np.zeros(2))
    with pytest.raises(ValueError):
        s.run(n=-1)


def test_dtypes_converted_explicitly_never_reinterpreted(ctx, two_d):
    proc, model = two_d
    x64 = np.array([[0.25, -0.5], [1.0, 2.0], [3.0, -1.0]])
    want = model.score(proc, x64, 0.3)
    # float32, int, Fortran order, a strided view, a list: the same values, converted
    f32 = x64.astype(np.float32)
    np.testing.assert_allclose(model.score(proc, f32, 0.3), model.score(proc, f32.astype(np.float64), 0.3))
    np.testing.assert_array_equal(model.score(proc, np.asfortranarray(x64), 0.3), want)
    wide = np.zeros((3, 4))
    wide[:, ::2] = x64
    np.testing.assert_array_equal(model.score(proc, wide[:, ::2], 0.3), want)
    np.testing.assert_array_equal(model.score(proc, x64.tolist(), 0.3), want)
    ints = np.array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(model.score(proc, ints, 0.3), model.score(proc, ints.astype(float), 0.3))
    for bad in (x64.astype(np.complex128), np.array([["a", "b"]]), np.array([[object(), 1]], dtype=object)):
        with pytest.raises(TypeError, match="real numbers"):
            model.score(proc, bad, 0.3)
    # the caller's array is never written
    before = x64.copy()
    sdflow.Sampler(ctx, "pf_ode", process=proc, score=model, steps=3, solver="euler").run(x64)
    np.testing.assert_array_equal(x64, before)


def test_times_per_row(ctx, two_d):
    proc, model = two_d
    x = np.zeros((3, 2))
    assert model.score(proc, x, [0.1, 0.2, 0.3]).shape == (3, 2)
    with pytest.raises(ValueError, match="3 entries"):
        model.score(proc, x, [0.1, 0.2])
    with pytest.raises(ValueError):
        model.score(proc, x, np.zeros((3, 1)))


@pytest.mark.parametrize("bad", BAD, ids=["5x3", "4000x1"])
def test_model_wrappers(ctx, two_d, bad):
    proc, model = two_d
    t = 0.5
    calls = [lambda: model.eval(proc, bad, t), lambda: model.score(proc, bad, t), lambda: model.logpdf(proc, bad, t),
             lambda: model.jacobian(proc, bad, t), lambda: model.divergence(proc, bad, t),
             lambda: model.asymmetry(proc, bad, t), lambda: model.kernel_partial(proc, bad, t)]
    mlp = sdflow.Model.mlp(ctx, 2, depth=1, width=4, freqs=2)
    n = bad.shape[0]
    calls += [lambda: mlp.param_grad(proc, bad, np.full(n, t), bad),
              lambda: mlp.param_grad_jac(proc, bad, np.full(n, t), bad, bad)]
    for call in calls:
        with pytest.raises(ValueError, match="columns"):
            call()
    ok = np.zeros((n, 2))
    with pytest.raises(ValueError, match="columns"):  # w must match x
        mlp.param_grad(proc, ok, t, bad)


def test_constructors_and_process(ctx):
    with pytest.raises(ValueError):
        sdflow.Model.gaussian(ctx, [0.0, 0.0], np.eye(3))
    with pytest.raises(ValueError):
        sdflow.Model.gmm(ctx, [0.5, 0.5], np.zeros((3, 2)), np.stack([np.eye(2)] * 2))
    with pytest.raises(ValueError):
        sdflow.Model.gmm(ctx, [0.5, 0.5], np.zeros((2, 2)), np.stack([np.eye(3)] * 2))
    with pytest.raises(ValueError):
        sdflow.Model.kernel(ctx, np.zeros(4))
    p = sdflow.Process(ctx, "vp")
    x = np.zeros((4, 2))
    with pytest.raises(ValueError):
        p.convert(x, 0.5, np.zeros((4, 3)), "score", "eps")
    with pytest.raises(ValueError):
        p.perturb(x, [0.5, 0.5])
    with pytest.raises(ValueError):
        p.prior_logpdf(np.zeros(3))


def test_ctx_wrappers(ctx):
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="columns"):
        ctx.energy_distance(x, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="columns"):
        ctx.mmd2(x, np.zeros((4000, 1)))
    with pytest.raises(ValueError, match="columns"):
        ctx.sliced_wasserstein(x, np.zeros((5, 1)))
    with pytest.raises(ValueError, match="square"):
        ctx.assignment(np.zeros((3, 4)))
    with pytest.raises(ValueError):
        ctx.coupling_pair(x, np.zeros((5, 3)))
    with pytest.raises(ValueError):
        ctx.coupling_pair(x, np.zeros((4, 2)))
    mx, s, v = np.zeros(5), np.ones(5), np.zeros((5, 2))
    with pytest.raises(ValueError):
        ctx.kernel_merge((mx, s, v), (mx, s, np.zeros((5, 3))))
    with pytest.raises(ValueError):
        ctx.kernel_merge((mx, s, v), (np.zeros(4), s, v))
    with pytest.raises(ValueError):
        ctx.kernel_finalize(None, 10, x, 0.5, (mx, s, np.zeros((5, 3))))


@pytest.mark.parametrize("bad", BAD, ids=["5x3", "4000x1"])
def test_trainer_data(ctx, bad):
    mlp = sdflow.Model.mlp(ctx, 2, depth=1, width=4, freqs=2)
    tr = sdflow.Trainer(ctx, "dsm", model=mlp, process=sdflow.Process(ctx, "vp"))
    with pytest.raises(ValueError, match="columns"):
        tr.set_data(bad)
    with pytest.raises(ValueError, match="columns"):
        tr.set_validation(bad)


def test_parameters(ctx):
    mlp = sdflow.Model.mlp(ctx, 2, depth=1, width=4, freqs=2)
    name, shape = mlp.param_names()[1]
    with pytest.raises(ValueError, match="shape"):
        mlp.set_param(name, np.zeros(int(np.prod(shape)) + 1))
    with pytest.raises(sdflow.UnknownNameError):
        mlp.get_param("no.such.tensor")
    with pytest.raises(ValueError):
        mlp.set_params(np.zeros(mlp.param_count - 1))
