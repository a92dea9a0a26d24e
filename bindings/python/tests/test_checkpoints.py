# SPDX-License-Identifier: MIT
"""Trainer checkpoints and the interpolant base (Trainer.save_checkpoint,
restore_checkpoint, load_checkpoint, set_base_model, set_base_data).

Resume is exact by construction (docs/model-files.md, "Trainer
checkpoints"), so the comparisons are np.array_equal, not tolerances."""
import numpy as np
import pytest

import sdflow

N, M = 7, 5
MEAN = np.array([1.0, -0.5])


def _data(ctx):
    return sdflow.Model.gaussian(ctx, MEAN, np.eye(2) * 0.3).sample(512, stream=9)


def _run(ctx, data, theta0, steps):
    vp = sdflow.Process(ctx, "vp")
    mlp = sdflow.Model.mlp(ctx, 2, depth=2, width=16, freqs=2)
    mlp.set_params(theta0)
    tr = sdflow.Trainer(ctx, "dsm", model=mlp, process=vp, data=data, batch=64, lr=3e-3, ema_decay=0.9)
    for _ in range(steps):
        tr.step()
    return tr, mlp, vp


def _ema(ctx, tr):
    e = sdflow.Model.mlp(ctx, 2, depth=2, width=16, freqs=2)
    tr.copy_ema(e)
    return e.get_params()


def test_resume_is_bit_identical(ctx, tmp_path):
    data = _data(ctx)
    theta0 = sdflow.Model.mlp(ctx, 2, depth=2, width=16, freqs=2).get_params()
    ref, ref_mlp, _ = _run(ctx, data, theta0, N + M)
    ref_params, ref_ema = ref_mlp.get_params(), _ema(ctx, ref)

    half, half_mlp, _ = _run(ctx, data, theta0, N)
    # The test can fail: N steps are not N + M steps.
    assert not np.array_equal(half_mlp.get_params(), ref_params)
    blob = half.save_checkpoint()
    assert isinstance(blob, bytes) and len(blob) > 0
    path = tmp_path / "run.ckpt"
    assert half.save_checkpoint(path) is None
    assert path.read_bytes() == blob

    # restore into a fresh trainer with different (fresh) weights, from bytes and from the path
    for src in (blob, path, str(path)):
        fresh, fresh_mlp, _ = _run(ctx, data, np.zeros_like(theta0), 0)
        fresh.restore_checkpoint(src)
        np.testing.assert_array_equal(fresh_mlp.get_params(), half_mlp.get_params())
        assert fresh.stat("step") == N
        for _ in range(M):
            fresh.step()
        assert np.array_equal(fresh_mlp.get_params(), ref_params)
        assert np.array_equal(_ema(ctx, fresh), ref_ema)
        assert fresh.stat("loss") == ref.stat("loss")

    # rebuild everything from the file in a new ctx with the same seed (and
    # another thread count: the draws are keyed by (seed, stream, step, row))
    with sdflow.Ctx(seed=1234, threads=2) as c2:
        for src in (blob, path):
            tr, model, process = sdflow.Trainer.load_checkpoint(c2, src)
            assert tr.kind == "dsm" and model.kind == "mlp" and process is not None and process.kind == "vp"
            assert tr.stat("step") == N
            tr.set_data(data)
            for _ in range(M):
                tr.step()
            assert np.array_equal(model.get_params(), ref_params)
            assert tr.save_checkpoint() == ref.save_checkpoint()
            tr.close()


def test_load_checkpoint_ownership(ctx):
    data = _data(ctx)
    theta0 = sdflow.Model.mlp(ctx, 2, depth=2, width=16, freqs=2).get_params()
    half, _, _ = _run(ctx, data, theta0, N)
    blob = half.save_checkpoint()
    tr, model, process = sdflow.Trainer.load_checkpoint(ctx, blob)
    del model, process  # the trainer keeps them alive: stepping must still work
    tr.set_data(data)
    tr.step()
    assert tr.stat("step") == N + 1
    assert "Trainer dsm" in repr(tr)


def test_checkpoint_refusals(ctx):
    data = _data(ctx)
    theta0 = sdflow.Model.mlp(ctx, 2, depth=2, width=16, freqs=2).get_params()
    half, half_mlp, _ = _run(ctx, data, theta0, N)
    blob = half.save_checkpoint()
    other, other_mlp, _ = _run(ctx, data, theta0, 0)
    other.set("lr", 4e-3)
    before = other_mlp.get_params()
    with pytest.raises(sdflow.InvalidArgumentError, match="train_lr"):
        other.restore_checkpoint(blob)
    np.testing.assert_array_equal(other_mlp.get_params(), before)  # unchanged on failure
    assert other.stat("step") == 0
    # a different architecture
    tr = sdflow.Trainer(ctx, "dsm", model=sdflow.Model.mlp(ctx, 2, depth=1, width=8, freqs=2),
                        process=sdflow.Process(ctx, "vp"), data=data, batch=64, lr=3e-3, ema_decay=0.9)
    with pytest.raises(sdflow.InvalidArgumentError):
        tr.restore_checkpoint(blob)
    # a model file is not a checkpoint; truncated bytes are malformed
    with pytest.raises(sdflow.FormatError):
        other.restore_checkpoint(half_mlp.to_bytes())
    with pytest.raises(sdflow.FormatError):
        other.restore_checkpoint(blob[:len(blob) // 2])
    with pytest.raises(sdflow.FormatError):
        sdflow.Trainer.load_checkpoint(ctx, blob[:100])
    # the seed must match on load
    with sdflow.Ctx(seed=99) as c2:
        with pytest.raises(sdflow.InvalidArgumentError, match="seed"):
            sdflow.Trainer.load_checkpoint(c2, blob)
    with pytest.raises(sdflow.FileError):
        other.restore_checkpoint("/nonexistent/dir/x.ckpt")


def test_set_base_data_and_model(ctx):
    proc = sdflow.Process(ctx, "interp_linear")
    mlp = sdflow.Model.mlp(ctx, 2, depth=1, width=8, freqs=2, output="velocity")
    data = _data(ctx)
    tr = sdflow.Trainer(ctx, "interpolant", model=mlp, process=proc, data=data, batch=32)
    with pytest.raises(ValueError, match="2 columns"):
        tr.set_base_data(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="2-D"):
        tr.set_base_data(np.zeros(10))
    with pytest.raises(TypeError):
        tr.set_base_data(np.array([["a", "b"]]))
    with pytest.raises(sdflow.InvalidArgumentError):
        tr.set_base_data(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="dimension"):
        tr.set_base_model(sdflow.Model.gaussian(ctx, np.zeros(3), np.eye(3)))
    base = np.asarray(np.random.default_rng(0).normal(size=(64, 2)), dtype=np.float32)  # any real dtype: copied as f64
    tr.set_base_data(base)
    l_data = tr.eval_batch(0)
    tr.set_base_data(None)
    l_gauss = tr.eval_batch(0)
    # the base changes the batch of step 0, so the loss must differ
    assert l_data != l_gauss
    g = sdflow.Model.gaussian(ctx, np.full(2, 3.0), np.eye(2))
    tr.set_base_model(g)
    assert tr._keep["base_model"] is g
    assert tr.eval_batch(0) != l_gauss  # a base N(3, I) moves the batch of step 0
    tr.set_base_model(None)
    assert "base_model" not in tr._keep
    assert tr.eval_batch(0) == l_gauss  # N(0, I) restored: the same batch again
    tr.set_base_model(g)
    tr.step()
    assert np.isfinite(tr.stat("loss"))
    # another loss kind refuses a base
    with pytest.raises(TypeError):
        tr.set_base_model(np.zeros(2))
    # constructor keywords bind the base like the setters
    kw = sdflow.Trainer(ctx, "interpolant", model=mlp, process=proc, data=data, batch=32, base_model=g)
    assert kw._keep["base_model"] is g
    assert kw.eval_batch(0) == tr.eval_batch(0)  # same weights (shared MLP), options and base g
    kw2 = sdflow.Trainer(ctx, "interpolant", model=mlp, process=proc, data=data, batch=32, base_data=base)
    tr.set_base_data(base)
    assert kw2.eval_batch(0) == tr.eval_batch(0) != kw.eval_batch(0)
    dsm = sdflow.Trainer(ctx, "dsm", model=sdflow.Model.mlp(ctx, 2, depth=1, width=8, freqs=2), process=sdflow.Process(ctx, "vp"), data=data, batch=32)
    with pytest.raises(sdflow.UnsupportedError):
        dsm.set_base_data(base)
    with pytest.raises(sdflow.UnsupportedError):
        dsm.set_base_model(g)
