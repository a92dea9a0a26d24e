/* SPDX-License-Identifier: MIT */
/* The C++ wrapper's trainer checkpoints and interpolant base
 * (include/sdflow.hpp: trainer::save_checkpoint, restore_checkpoint,
 * load_checkpoint, set_base_model, set_base_data). Resuming is exact by
 * construction (docs/model-files.md, "Trainer checkpoints"), so weights are
 * compared with ==, and a control shows the comparison can fail.
 * Built with -std=c++17 and -std=c++20 by make examples and run by make
 * check; exits nonzero on any failed check. */
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

sdflow::model small_mlp(const sdflow::ctx &c, const std::vector<double> &theta0)
{
    sdflow::model m = sdflow::model::mlp(c, 2);
    m.set(SDFLOW_OPT_MLP_DEPTH, 2);
    m.set(SDFLOW_OPT_MLP_WIDTH, 16);
    m.set(SDFLOW_OPT_MLP_FREQS, 2);
    if (!theta0.empty())
        m.set_params(theta0);
    return m;
}

void configure(sdflow::trainer &t)
{
    t.set(SDFLOW_TRAIN_BATCH, 64);
    t.set(SDFLOW_TRAIN_LR, 3e-3);
    t.set(SDFLOW_TRAIN_EMA_DECAY, 0.9);
}

} // namespace

int main()
{
    try {
        sdflow::ctx ctx(11);
        sdflow::process vp(ctx, SDFLOW_PROCESS_VP);
        sdflow::model g = sdflow::model::gaussian(ctx, std::vector<double>{1.0, -0.5},
                                                  std::vector<double>{0.3, 0.0, 0.0, 0.3});
        const std::vector<double> data = g.sample(512, 9, 0);
        const std::vector<double> theta0 = small_mlp(ctx, {}).get_params();
        const long n_steps = 7, m_steps = 5;

        /* Uninterrupted reference: N + M steps. */
        sdflow::model ref_m = small_mlp(ctx, theta0);
        sdflow::trainer ref(ctx, SDFLOW_LOSS_DSM);
        ref.set_model(ref_m);
        ref.set_process(vp);
        ref.set_data(data);
        configure(ref);
        for (long k = 0; k < n_steps + m_steps; k++)
            ref.step();

        /* N steps, then a checkpoint as bytes and as a file. */
        sdflow::model half_m = small_mlp(ctx, theta0);
        sdflow::trainer half(ctx, SDFLOW_LOSS_DSM);
        half.set_model(half_m);
        half.set_process(vp);
        half.set_data(data);
        configure(half);
        for (long k = 0; k < n_steps; k++)
            half.step();
        expect(half_m.get_params() != ref_m.get_params(), "control: N steps differ from N + M steps");
        std::vector<unsigned char> blob = half.save_checkpoint();
        half.save_checkpoint(std::string("cxx_resume.ckpt"));
        expect(!blob.empty(), "checkpoint of " + std::to_string(blob.size()) + " bytes");

        /* Restore into a fresh trainer (zero weights), from bytes and from the file. */
        for (int from_file = 0; from_file < 2; from_file++) {
            sdflow::model fm = small_mlp(ctx, std::vector<double>(theta0.size(), 0.0));
            sdflow::trainer fresh(ctx, SDFLOW_LOSS_DSM);
            fresh.set_model(fm);
            fresh.set_process(vp);
            fresh.set_data(data);
            configure(fresh);
            if (from_file)
                fresh.restore_checkpoint(std::string("cxx_resume.ckpt"));
            else
                fresh.restore_checkpoint(blob);
            for (long k = 0; k < m_steps; k++)
                fresh.step();
            expect(fm.get_params() == ref_m.get_params() && fresh.save_checkpoint() == ref.save_checkpoint(),
                   std::string("restore from ") + (from_file ? "file" : "bytes") +
                       " + M steps: bit-identical weights and checkpoint");
        }

        /* Rebuild everything from the checkpoint in a new ctx with the same seed. */
        {
            sdflow::ctx c2(11);
            sdflow::loaded_trainer lt = sdflow::trainer::load_checkpoint(c2, blob);
            expect(lt.p && lt.p->kind() == SDFLOW_PROCESS_VP && lt.m.dim() == 2, "load_checkpoint: model and process");
            lt.t.set_data(data);
            for (long k = 0; k < m_steps; k++)
                lt.t.step();
            expect(lt.m.get_params() == ref_m.get_params(), "load_checkpoint + M steps: bit-identical weights");
            sdflow::loaded_trainer lf = sdflow::trainer::load_checkpoint(c2, std::string("cxx_resume.ckpt"));
            expect(lf.t.stat(SDFLOW_TRAIN_STAT_STEP) == n_steps, "load_checkpoint from a file: step count");
            sdflow::ctx c3(12);
            expect_throw(SDFLOW_E_INVALID, "load_checkpoint with another seed",
                         [&] { sdflow::trainer::load_checkpoint(c3, blob); });
        }

        /* Refusals: a changed option, a model file, truncated bytes; nothing changes on failure. */
        sdflow::model om = small_mlp(ctx, theta0);
        sdflow::trainer other(ctx, SDFLOW_LOSS_DSM);
        other.set_model(om);
        other.set_process(vp);
        other.set_data(data);
        configure(other);
        other.set(SDFLOW_TRAIN_LR, 4e-3);
        expect_throw(SDFLOW_E_INVALID, "restore with another learning rate", [&] { other.restore_checkpoint(blob); });
        expect(om.get_params() == theta0, "failed restore leaves the weights");
        expect_throw(SDFLOW_E_FORMAT, "restore of a model file", [&] { other.restore_checkpoint(om.save_buffer()); });
        std::vector<unsigned char> cut(blob.begin(), blob.begin() + blob.size() / 2);
        expect_throw(SDFLOW_E_FORMAT, "restore of a truncated checkpoint", [&] { other.restore_checkpoint(cut); });

        /* Interpolant base: length checks in the wrapper, kind checks in the library. */
        sdflow::process lin(ctx, SDFLOW_PROCESS_INTERP_LINEAR);
        sdflow::model vm = small_mlp(ctx, {});
        vm.set(SDFLOW_OPT_MLP_OUTPUT, SDFLOW_OUT_VELOCITY);
        sdflow::trainer it(ctx, SDFLOW_LOSS_INTERPOLANT);
        it.set_model(vm);
        it.set_process(lin);
        it.set_data(data);
        it.set(SDFLOW_TRAIN_BATCH, 32);
        expect_throw(SDFLOW_E_INVALID, "base data of 5 values in 2-D",
                     [&] { it.set_base_data(std::vector<double>(5, 0.0)); });
        sdflow::model g3 = sdflow::model::gaussian(ctx, std::vector<double>(3, 0.0),
                                                   std::vector<double>{1, 0, 0, 0, 1, 0, 0, 0, 1});
        expect_throw(SDFLOW_E_INVALID, "a 3-D base model for a 2-D trainer", [&] { it.set_base_model(&g3); });
        const double l_gauss = it.eval_batch(0);
        std::vector<double> base(64 * 2);
        for (std::size_t i = 0; i < base.size(); i++)
            base[i] = 3.0 + 0.01 * static_cast<double>(i % 7);
        it.set_base_data(base);
        const double l_data = it.eval_batch(0);
        sdflow::model g2 = sdflow::model::gaussian(ctx, std::vector<double>{3.0, 3.0},
                                                   std::vector<double>{1.0, 0.0, 0.0, 1.0});
        it.set_base_model(&g2);
        const double l_model = it.eval_batch(0);
        it.set_base_model(nullptr);
        expect(l_data != l_gauss && l_model != l_gauss && it.eval_batch(0) == l_gauss,
               "base data and base model change the batch; nullptr restores N(0, I)");
        it.set_base_data({});
        expect(it.eval_batch(0) == l_gauss, "an empty base data view restores N(0, I)");
        sdflow::trainer dsm(ctx, SDFLOW_LOSS_DSM);
        sdflow::model dm = small_mlp(ctx, {});
        dsm.set_model(dm);
        expect_throw(SDFLOW_E_UNSUPPORTED, "base data on a DSM trainer", [&] { dsm.set_base_data(base); });
        std::remove("cxx_resume.ckpt");
    } catch (const std::exception &e) {
        std::printf("FAIL: unexpected exception: %s\n", e.what());
        return 1;
    }
    std::printf("%s\n", failures ? "cxx_train_resume: FAILED" : "cxx_train_resume: all checks passed");
    return failures ? 1 : 0;
}
