// SPDX-License-Identifier: MIT
//! Trainer checkpoints and the interpolant base through the safe crate.
//! Resuming is exact by construction (docs/model-files.md, "Trainer
//! checkpoints"), so weights are compared with ==; a control shows that the
//! comparison can fail.
use sdflow::*;

const N: usize = 7;
const M: usize = 5;

fn status<T>(r: Result<T>) -> Status {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.status().unwrap(),
    }
}

fn mlp<'c>(ctx: &'c Ctx, theta: Option<&[f64]>) -> Model<'c> {
    let mut m = Model::mlp(ctx, 2).unwrap();
    m.set(Key::MlpDepth, 2).unwrap();
    m.set(Key::MlpWidth, 16).unwrap();
    m.set(Key::MlpFreqs, 2).unwrap();
    if let Some(t) = theta {
        m.set_params(t).unwrap();
    }
    m
}

fn trainer<'a>(ctx: &'a Ctx, net: &'a Model<'_>, vp: &'a Process<'_>, data: &[f64]) -> Trainer<'a> {
    let mut tr = Trainer::new(ctx, LossKind::Dsm).unwrap();
    tr.set_model(net).unwrap();
    tr.set_process(vp).unwrap();
    tr.set_data(data).unwrap();
    tr.set(Key::TrainBatch, 64).unwrap();
    tr.set(Key::TrainLr, 3e-3).unwrap();
    tr.set(Key::TrainEmaDecay, 0.9).unwrap();
    tr
}

fn data(ctx: &Ctx) -> Vec<f64> {
    Model::gaussian(ctx, &[1.0, -0.5], &[0.3, 0.0, 0.0, 0.3]).unwrap().sample(512, 9, 0).unwrap()
}

#[test]
fn resume_is_bit_identical() {
    let ctx = Ctx::with_seed(21).unwrap();
    let x = data(&ctx);
    let vp = Process::new(&ctx, ProcessKind::Vp).unwrap();
    let theta0 = mlp(&ctx, None).get_params().unwrap();

    let ref_net = mlp(&ctx, Some(&theta0));
    let mut reference = trainer(&ctx, &ref_net, &vp, &x);
    for _ in 0..N + M {
        reference.step().unwrap();
    }
    let ref_params = ref_net.get_params().unwrap();
    let ref_ckpt = reference.save_checkpoint_buffer().unwrap();

    let half_net = mlp(&ctx, Some(&theta0));
    let mut half = trainer(&ctx, &half_net, &vp, &x);
    for _ in 0..N {
        half.step().unwrap();
    }
    assert_ne!(half_net.get_params().unwrap(), ref_params, "control: N steps are not N + M");
    let blob = half.save_checkpoint_buffer().unwrap();
    let path = std::env::temp_dir().join(format!("sdflow-rust-ckpt-{}.ckpt", std::process::id()));
    half.save_checkpoint(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), blob);

    for from_file in [false, true] {
        let net = mlp(&ctx, Some(&vec![0.0; theta0.len()]));
        let mut fresh = trainer(&ctx, &net, &vp, &x);
        if from_file {
            fresh.restore_checkpoint(&path).unwrap();
        } else {
            fresh.restore_checkpoint_buffer(&blob).unwrap();
        }
        assert_eq!(fresh.stat(TrainStat::Step).unwrap(), N as f64);
        for _ in 0..M {
            fresh.step().unwrap();
        }
        assert_eq!(net.get_params().unwrap(), ref_params);
        assert_eq!(fresh.save_checkpoint_buffer().unwrap(), ref_ckpt);
    }

    // rebuilt from the checkpoint alone, in a new ctx with the same seed
    let ctx2 = Ctx::with_seed(21).unwrap();
    for from_file in [false, true] {
        let mut tr = if from_file {
            Trainer::load_checkpoint(&ctx2, &path).unwrap()
        } else {
            Trainer::load_checkpoint_buffer(&ctx2, &blob).unwrap()
        };
        assert_eq!(tr.process().unwrap().kind(), Some(ProcessKind::Vp));
        assert_eq!(tr.model().unwrap().dim(), 2);
        tr.set_data(&x).unwrap();
        for _ in 0..M {
            tr.step().unwrap();
        }
        assert_eq!(tr.model().unwrap().get_params().unwrap(), ref_params);
        assert_eq!(tr.save_checkpoint_buffer().unwrap(), ref_ckpt);
    }
    let _ = std::fs::remove_file(&path);
    assert!(Trainer::new(&ctx, LossKind::Dsm).unwrap().model().is_none());
}

#[test]
fn checkpoint_refusals_leave_the_trainer_unchanged() {
    let ctx = Ctx::with_seed(22).unwrap();
    let x = data(&ctx);
    let vp = Process::new(&ctx, ProcessKind::Vp).unwrap();
    let theta0 = mlp(&ctx, None).get_params().unwrap();
    let half_net = mlp(&ctx, Some(&theta0));
    let mut half = trainer(&ctx, &half_net, &vp, &x);
    for _ in 0..N {
        half.step().unwrap();
    }
    let blob = half.save_checkpoint_buffer().unwrap();

    let net = mlp(&ctx, Some(&theta0));
    let mut other = trainer(&ctx, &net, &vp, &x);
    other.set(Key::TrainLr, 4e-3).unwrap();
    let e = other.restore_checkpoint_buffer(&blob).unwrap_err();
    assert_eq!(e.status(), Some(Status::EInvalid));
    assert!(e.message().contains("train_lr"), "{}", e);
    assert_eq!(net.get_params().unwrap(), theta0);
    assert_eq!(other.stat(TrainStat::Step).unwrap(), 0.0);
    assert_eq!(status(other.restore_checkpoint_buffer(&net.save_buffer(None).unwrap())), Status::EFormat);
    assert_eq!(status(other.restore_checkpoint_buffer(&blob[..blob.len() / 2])), Status::EFormat);
    assert_eq!(status(other.restore_checkpoint("/nonexistent/dir/x.ckpt")), Status::EIo);
    let ctx3 = Ctx::with_seed(23).unwrap();
    assert_eq!(status(Trainer::load_checkpoint_buffer(&ctx3, &blob)), Status::EInvalid);
    assert_eq!(status(Trainer::load_checkpoint_buffer(&ctx, &blob[..100])), Status::EFormat);
}

#[test]
fn interpolant_base_data_and_model() {
    let ctx = Ctx::with_seed(24).unwrap();
    let x = data(&ctx);
    let lin = Process::new(&ctx, ProcessKind::InterpLinear).unwrap();
    let mut net = mlp(&ctx, None);
    net.set(Key::MlpOutput, Output::Velocity).unwrap();
    let g3 = Model::gaussian(&ctx, &[0.0; 3], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
    let g2 = Model::gaussian(&ctx, &[3.0, 3.0], &[1.0, 0.0, 0.0, 1.0]).unwrap();
    let base: Vec<f64> = (0..128).map(|i| 3.0 + 0.01 * (i % 7) as f64).collect();
    let mut tr = Trainer::new(&ctx, LossKind::Interpolant).unwrap();
    assert_eq!(status(tr.set_base_data(&base)), Status::EState); // no model: d unknown
    tr.set_model(&net).unwrap();
    tr.set_process(&lin).unwrap();
    tr.set_data(&x).unwrap();
    tr.set(Key::TrainBatch, 32).unwrap();
    assert_eq!(status(tr.set_base_data(&base[..5])), Status::EInvalid);
    assert_eq!(status(tr.set_base_model(Some(&g3))), Status::EInvalid);
    let l_gauss = tr.eval_batch(0).unwrap();
    tr.set_base_data(&base).unwrap();
    let l_data = tr.eval_batch(0).unwrap();
    tr.set_base_model(Some(&g2)).unwrap();
    let l_model = tr.eval_batch(0).unwrap();
    assert!(l_data != l_gauss && l_model != l_gauss, "the base changes the batch of step 0");
    tr.set_base_model(None).unwrap();
    assert_eq!(tr.eval_batch(0).unwrap(), l_gauss);
    tr.set_base_data(&base).unwrap();
    tr.set_base_data(&[]).unwrap();
    assert_eq!(tr.eval_batch(0).unwrap(), l_gauss);

    let dnet = mlp(&ctx, None);
    let mut dsm = Trainer::new(&ctx, LossKind::Dsm).unwrap();
    dsm.set_model(&dnet).unwrap();
    assert_eq!(status(dsm.set_base_data(&base)), Status::EUnsupported);
    assert_eq!(status(dsm.set_base_model(Some(&g2))), Status::EUnsupported);
}
