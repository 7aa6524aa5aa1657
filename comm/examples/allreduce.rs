//! All-reduce time against message size through [`ebm_comm::mpi::MpiCommunicator`] (the
//! communicator `ebm train` uses, with its copies and polling), and the least-squares fit of
//! the cost model t(n) = α + β·n over message sizes n in bytes.
//!
//! `mpirun --allow-run-as-root --oversubscribe -np 2 target/release/examples/allreduce`
//! (build: `cargo build --release -p ebm-comm --features mpi --examples`). Rank 0 prints one
//! line per size (f32 elements, bytes, median µs of the repeats) and the fit.

use ebm_comm::mpi::MpiCommunicator;
use ebm_comm::Communicator;
use mpi::collective::SystemOperation;
use mpi::traits::*;
use std::time::{Duration, Instant};

fn main() {
    let comm = MpiCommunicator::init(Duration::from_secs(120)).expect("MPI starts");
    // MPI is initialised: the world handle for the blocking call of comparison
    let world = mpi::topology::SimpleCommunicator::world();
    let lead = comm.rank() == 0;
    if lead {
        println!(
            "# {} ranks, {}",
            comm.size(),
            MpiCommunicator::library_version()
                .lines()
                .next()
                .unwrap_or("")
        );
        println!("# f32s bytes median_us (rank 0's blocking MPI_Allreduce, for comparison)");
    }
    let mut points = Vec::new();
    for log2 in (0..=22).step_by(2) {
        let n = 1usize << log2;
        let mut buf = vec![1.0f32; n];
        let repeats = (2_000_000 / n.max(1)).clamp(10, 400);
        // warm-up
        for _ in 0..3 {
            comm.all_reduce_sum_f32(&mut buf).unwrap();
        }
        let mut times = Vec::with_capacity(repeats);
        let mut blocking = Vec::with_capacity(repeats);
        let mut recv = vec![0f32; n];
        for _ in 0..repeats {
            comm.barrier().unwrap();
            let t0 = Instant::now();
            comm.all_reduce_sum_f32(&mut buf).unwrap();
            times.push(t0.elapsed().as_secs_f64());
            comm.barrier().unwrap();
            let t0 = Instant::now();
            world.all_reduce_into(&buf[..], &mut recv[..], SystemOperation::sum());
            blocking.push(t0.elapsed().as_secs_f64());
        }
        blocking.sort_by(|a, b| a.total_cmp(b));
        // the slowest rank's time is the step's: take each repeat's maximum over ranks
        let mut worst = times.clone();
        let mut m = vec![0f64; repeats * comm.size()];
        m[comm.rank() * repeats..(comm.rank() + 1) * repeats].copy_from_slice(&times);
        comm.all_reduce_sum_f64(&mut m).unwrap();
        for (i, w) in worst.iter_mut().enumerate() {
            *w = (0..comm.size())
                .map(|r| m[r * repeats + i])
                .fold(0.0, f64::max);
        }
        worst.sort_by(|a, b| a.total_cmp(b));
        let median = worst[repeats / 2];
        if lead {
            println!(
                "{n} {} {:.2} {:.2}",
                4 * n,
                median * 1e6,
                blocking[repeats / 2] * 1e6
            );
        }
        points.push(((4 * n) as f64, median));
    }
    if lead {
        let (alpha, beta) = fit(&points);
        println!(
            "# fit t = α + β·bytes: α = {:.2} µs, β = {:.4} ns/byte ({:.2} GB/s)",
            alpha * 1e6,
            beta * 1e9,
            1e-9 / beta
        );
    }
}

/// Least squares of t = α + β·n, each point weighted by 1/t² (relative errors), so the small
/// messages fix α and the large ones β.
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(x, y) in points {
        let w = 1.0 / (y * y);
        sw += w;
        sx += w * x;
        sy += w * y;
        sxx += w * x * x;
        sxy += w * x * y;
    }
    let beta = (sw * sxy - sx * sy) / (sw * sxx - sx * sx);
    ((sy - beta * sx) / sw, beta)
}
