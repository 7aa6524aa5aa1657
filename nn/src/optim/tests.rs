//! Tests of the optimizers: updates against hand-computed values, schedules, state.

use super::*;

fn one_param(v: &[f64]) -> Params {
    let mut p = Params::new();
    p.push("w", Tensor::from_vec(v.to_vec(), &[v.len()]));
    p
}

fn run(opt: &mut Optimizer, p: &mut Params, grads: &[&[f64]]) -> Vec<f64> {
    for g in grads {
        opt.step(p, &[Tensor::from_vec(g.to_vec(), &[g.len()])]);
    }
    p.get(0).to_vec_f64()
}

#[test]
fn sgd_momentum_nesterov_and_decay_by_hand() {
    // θ₀ = 1, grads 1, 2; lr 0.1, μ 0.9, λ 0.1.
    // plain momentum: g₁ = 1 + 0.1 = 1.1, b₁ = 1.1, θ₁ = 1 − 0.11 = 0.89;
    //   g₂ = 2 + 0.089 = 2.089, b₂ = 0.99 + 2.089 = 3.079, θ₂ = 0.89 − 0.3079 = 0.5821
    let cfg = SgdConfig {
        momentum: 0.9,
        weight_decay: 0.1,
        ..SgdConfig::new(0.1)
    };
    let mut p = one_param(&[1.0]);
    let mut o = Optimizer::new(OptimizerConfig::Sgd(cfg), &p);
    let got = run(&mut o, &mut p, &[&[1.0], &[2.0]])[0];
    assert!((got - 0.5821).abs() < 1e-14, "{got}");
    // Nesterov: step 1 uses g + μb = 1.1 + 0.99 = 2.09, θ₁ = 0.791;
    //   g₂ = 2 + 0.0791 = 2.0791, b₂ = 0.99 + 2.0791 = 3.0691,
    //   d = 2.0791 + 0.9·3.0691 = 4.84129, θ₂ = 0.791 − 0.484129 = 0.306871
    let mut p = one_param(&[1.0]);
    let mut o = Optimizer::new(
        OptimizerConfig::Sgd(SgdConfig {
            nesterov: true,
            ..cfg
        }),
        &p,
    );
    let got = run(&mut o, &mut p, &[&[1.0], &[2.0]])[0];
    assert!((got - 0.306871).abs() < 1e-14, "{got}");
    // dampening 0.5 without decay: b₁ = g₁ = 1 (no dampening on the first step),
    //   b₂ = 0.9 + 0.5·2 = 1.9; θ = 1 − 0.1 − 0.19 = 0.71
    let mut p = one_param(&[1.0]);
    let mut o = Optimizer::new(
        OptimizerConfig::Sgd(SgdConfig {
            momentum: 0.9,
            dampening: 0.5,
            ..SgdConfig::new(0.1)
        }),
        &p,
    );
    let got = run(&mut o, &mut p, &[&[1.0], &[2.0]])[0];
    assert!((got - 0.71).abs() < 1e-14, "{got}");
    assert_eq!(o.state_tensors()[0].0, "momentum_buffer.w");
    // no momentum: no state
    assert!(Optimizer::sgd(0.1, 0.0, &p).state_tensors().is_empty());
}

#[test]
fn adam_and_adamw_by_hand() {
    // Step 1 of Adam moves every coordinate by lr·g/(|g| + ε√(1−β₂)·…) ≈ lr·sign(g).
    let mut p = one_param(&[1.0, -2.0]);
    let mut o = Optimizer::adam(0.01, &p);
    let got = run(&mut o, &mut p, &[&[3.0, -0.5]]);
    // m = 0.1g, v = 0.001g², m̂ = g, √v̂ = |g|: θ − 0.01·g/(|g| + 1e-8)
    assert!((got[0] - (1.0 - 0.01 * 3.0 / (3.0 + 1e-8))).abs() < 1e-15);
    assert!((got[1] - (-2.0 + 0.01 * 0.5 / (0.5 + 1e-8))).abs() < 1e-15);
    // Step 2 with g = 1 after g = 3 (θ₀ = 0, lr 0.1):
    //   m₂ = 0.9·0.3 + 0.1 = 0.37, v₂ = 0.999·0.009 + 0.001 = 0.009991,
    //   m̂ = 0.37/0.19, √v̂ = √(0.009991/0.001999)
    let mut p = one_param(&[0.0]);
    let mut o = Optimizer::adam(0.1, &p);
    let got = run(&mut o, &mut p, &[&[3.0], &[1.0]])[0];
    let b2c = 1.0 - 0.999f64.powi(2);
    let theta1 = -0.1 * 0.3 / 0.1 / ((0.009f64).sqrt() / (0.001f64).sqrt() + 1e-8);
    let theta2 = theta1 - 0.1 / 0.19 * 0.37 / (0.009991f64.sqrt() / b2c.sqrt() + 1e-8);
    assert!((got - theta2).abs() < 1e-14, "{got} vs {theta2}");
    // AdamW decays θ by (1 − lr·λ) before the Adam step; Adam adds λθ to g instead.
    let mut p = one_param(&[2.0]);
    let mut o = Optimizer::adamw(0.1, 0.5, &p);
    let got = run(&mut o, &mut p, &[&[1.0]])[0];
    assert!((got - (2.0 * 0.95 - 0.1 / (1.0 + 1e-8))).abs() < 1e-14);
    let mut p = one_param(&[2.0]);
    let cfg = AdamConfig {
        weight_decay: 0.5,
        ..AdamConfig::new(0.1)
    };
    let mut o = Optimizer::new(OptimizerConfig::Adam(cfg), &p);
    let got = run(&mut o, &mut p, &[&[-1.5]])[0];
    // g = −1.5 + 1 = −0.5: θ = 2 + 0.1·0.5/(0.5 + 1e-8)
    assert!((got - (2.0 + 0.1 * 0.5 / (0.5 + 1e-8))).abs() < 1e-14);
}

#[test]
fn f32_matches_f64_closely() {
    let mut p32 = Params::new();
    p32.push("w", Tensor::from_vec(vec![0.5f32, -0.25], &[2]));
    let mut p64 = p32.clone();
    p64.cast(DType::F64);
    let mut o32 = Optimizer::adamw(1e-2, 0.01, &p32);
    let mut o64 = Optimizer::adamw(1e-2, 0.01, &p64);
    for k in 0..5 {
        let g = [0.3 * k as f64 - 0.5, 1.0 / (k + 1) as f64];
        o32.step(&mut p32, &[Tensor::from_f64s(&g, &[2], DType::F32)]);
        o64.step(&mut p64, &[Tensor::from_f64s(&g, &[2], DType::F64)]);
    }
    assert!(p32.get(0).cast(DType::F64).max_abs_diff(p64.get(0)) < 1e-6);
}

#[test]
fn config_json_and_validation() {
    let c = OptimizerConfig::AdamW(AdamConfig::new(1e-3));
    let s = serde_json::to_string(&c).unwrap();
    assert!(s.contains("\"kind\":\"adamw\""), "{s}");
    assert_eq!(serde_json::from_str::<OptimizerConfig>(&s).unwrap(), c);
    let bad = OptimizerConfig::Sgd(SgdConfig {
        nesterov: true,
        ..SgdConfig::new(0.1)
    });
    assert!(bad.validate().is_err());
    let bad = OptimizerConfig::Adam(AdamConfig {
        beta2: 1.0,
        ..AdamConfig::new(0.1)
    });
    assert!(bad.validate().is_err());
    assert!(OptimizerConfig::Sgd(SgdConfig::new(f64::NAN))
        .validate()
        .is_err());
}

#[test]
fn an_owned_schedule_sets_each_steps_rate() {
    // SGD on θ with gradient 1: each update moves θ by exactly its rate, so θ traces the
    // schedule: 0.1·(1/2, 1, cos from 1 to 0.2 over 4 steps: 1, 0.8, 0.4, …)
    let sched = Schedule::Chain {
        first: Box::new(Schedule::LinearWarmup { steps: 2 }),
        first_steps: 2,
        then: Box::new(Schedule::LinearDecay {
            steps: 4,
            end_factor: 0.2,
        }),
    };
    let mut p = one_param(&[0.0]);
    let mut o = Optimizer::sgd(0.1, 0.0, &p).with_schedule(sched.clone());
    assert_eq!(o.schedule(), Some(&sched));
    let mut moved = Vec::new();
    for t in 0..7 {
        assert_eq!(o.lr(), 0.1 * sched.factor(t), "the rate of update {t}");
        let before = p.get(0).item();
        o.step(&mut p, &[Tensor::from_vec(vec![1.0f64], &[1])]);
        moved.push(before - p.get(0).item());
    }
    let want = [0.05, 0.1, 0.1, 0.08, 0.06, 0.04, 0.02];
    for (m, w) in moved.iter().zip(want) {
        assert!((m - w).abs() < 1e-15, "{moved:?}");
    }
}

#[test]
fn the_schedule_round_trips_through_the_metadata() {
    let p = one_param(&[1.0, 2.0]);
    let mut o = Optimizer::adam(0.1, &p).with_schedule(Schedule::warmup_cosine(3, 20, 0.1));
    let mut q = p.clone();
    for _ in 0..4 {
        o.step(&mut q, &[Tensor::from_vec(vec![0.5f64, -1.0], &[2])]);
    }
    let names = p.names().to_vec();
    let state = o.state_tensors();
    let back = Optimizer::from_parts(&o.hyper_json(), &names, |slot, i| {
        Ok(state
            .iter()
            .find(|(n, _)| *n == format!("{slot}.{}", names[i]))
            .unwrap()
            .1
            .clone())
    })
    .unwrap();
    assert!(back.bit_eq(&o));
    // a file without a schedule is an optimizer without one
    let plain = Optimizer::adam(0.1, &p);
    assert!(!plain
        .hyper_json()
        .as_object()
        .unwrap()
        .contains_key("schedule"));
    let back = Optimizer::from_parts(&plain.hyper_json(), &names, |_, _| {
        Ok(Tensor::zeros(&[2], DType::F64))
    })
    .unwrap();
    assert!(back.schedule().is_none() && back.bit_eq(&plain));
    // an unusable schedule is bad metadata, not a panic
    let mut bad = o.hyper_json();
    bad["schedule"] = serde_json::json!({"kind": "cosine", "steps": 4, "min_factor": -1.0});
    let err = Optimizer::from_parts(&bad, &names, |_, _| Ok(Tensor::zeros(&[2], DType::F64)));
    assert!(err.unwrap_err().to_string().contains("min_factor"));
}

#[test]
#[should_panic(expected = "owns a schedule")]
fn set_lr_refuses_an_owned_schedule() {
    let p = one_param(&[1.0]);
    Optimizer::adam(0.1, &p)
        .with_schedule(Schedule::Constant)
        .set_lr(0.5);
}

#[test]
fn shared_buffers_are_copied_not_mutated() {
    let mut p = one_param(&[1.0, 2.0]);
    let mut o = Optimizer::adam(0.1, &p);
    let before = p.get(0).clone();
    o.step(&mut p, &[Tensor::from_vec(vec![1.0f64, 1.0], &[2])]);
    // `before` still holds the old buffer: the update copied, and `before` is unchanged
    assert_eq!(before.to_vec_f64(), vec![1.0, 2.0]);
    assert!(!p.get(0).same_buffer(&before));
}
