//! The replay buffer's bookkeeping is exact: the reinitialised share of a batch is
//! round(fraction · B) rows, the other rows start from their buffer rows bit for bit, and
//! write-back changes exactly the drawn rows and nothing else.

use ebm_core::{DType, Rng, Tensor};
use ebm_samplers::{Gaussian, Init, ReplayBuffer, ShortRunSgld, Step, Ula};

fn row(t: &Tensor, i: usize) -> Vec<f64> {
    t.narrow(0, i, 1).to_vec_f64()
}

fn check(fraction: Option<f64>, batch: usize, want_reinit: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let init = Init::Uniform { lo: -1.0, hi: 1.0 };
    let mut buffer = ReplayBuffer::new(1000, &[2], init, DType::F64, &mut rng);
    if let Some(f) = fraction {
        buffer = buffer.with_reinit(f);
    }
    let before = buffer.data().clone();

    // the draw alone
    let draw = buffer.draw(batch, &mut rng);
    assert_eq!(draw.n_reinit, want_reinit);
    let mut distinct = draw.indices.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), batch, "drawn buffer rows repeat");
    let from_buffer = (0..batch)
        .filter(|&k| row(&draw.x, k) == row(&before, draw.indices[k]))
        .count();
    // noise rows equal their buffer row with probability 0 (continuous draws)
    assert_eq!(from_buffer, batch - want_reinit);
    assert!((0..want_reinit).all(|k| row(&draw.x, k) != row(&before, draw.indices[k])));

    // a full short-run round: K = 20 steps of SGLD, then write-back
    let target = Gaussian::isotropic(&[0.5, -0.5], 0.25);
    let sgld = ShortRunSgld::new(Ula::new(
        Step::Decoupled {
            step: 0.05,
            noise: 0.01,
        },
        20,
    ));
    let run = sgld.sample(&target, &mut buffer, batch, &mut rng);
    assert_eq!(run.n_reinit, want_reinit);
    let after = buffer.data();
    let changed: Vec<usize> = (0..1000)
        .filter(|&i| row(after, i) != row(&before, i))
        .collect();
    let mut drawn = run.indices.clone();
    drawn.sort_unstable();
    eprintln!(
        "replay (fraction {:?}, batch {batch}): {} of {batch} rows restarted from noise \
         (want exactly {want_reinit}), {} buffer rows changed (want exactly {batch}: the drawn ones)",
        buffer.reinit_fraction(),
        run.n_reinit,
        changed.len()
    );
    assert_eq!(
        changed, drawn,
        "write-back touched other rows than the drawn ones"
    );
    for (k, &i) in run.indices.iter().enumerate() {
        assert_eq!(
            row(after, i),
            row(&run.samples.x, k),
            "row {i} not written back"
        );
    }
}

#[test]
fn reinit_fraction_and_write_back_are_exact() {
    check(None, 100, 5, 1); // default 5%
    check(Some(0.2), 100, 20, 2);
    check(Some(0.05), 64, 3, 3); // 3.2 rounds to 3
    check(Some(0.0), 50, 0, 4);
    check(Some(1.0), 50, 50, 5);
}
