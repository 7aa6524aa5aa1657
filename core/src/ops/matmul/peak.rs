//! The measured f32 FMA peak of one thread: the ceiling a GEMM's GFLOP/s is set against.

#[cfg(target_arch = "x86_64")]
use super::gemm::{gemm_path, GemmPath};

/// Single-thread f32 FMA throughput in GFLOP/s at the vector width of the current
/// [`gemm_path`] (16 lanes for AVX-512, 8 for AVX2 and the portable path on x86-64, whose
/// `matrixmultiply` kernels use AVX2+FMA where present), measured by independent FMA chains:
/// the best of 40 runs of about 1 ms each, so that a run the scheduler interrupted on a
/// shared machine does not count. `None` where no vector FMA is measured (off x86-64, or an
/// x86-64 CPU without FMA).
pub fn fma_peak_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let wide = gemm_path() == GemmPath::Avx512;
        if !wide && !std::arch::is_x86_feature_detected!("fma") {
            return None;
        }
        let iters = 100_000u64;
        let mut best = 0.0f64;
        for _ in 0..40 {
            let t0 = std::time::Instant::now();
            // SAFETY: the features each loop enables were detected (AVX-512F by gemm_path,
            // FMA above; AVX2+FMA CPUs have AVX).
            let flops = unsafe {
                if wide {
                    x86::fma_chains_avx512(iters)
                } else {
                    x86::fma_chains_avx2(iters)
                }
            };
            best = best.max(flops / t0.elapsed().as_secs_f64() * 1e-9);
        }
        Some(best)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// Independent accumulators: more than FMA latency × pipes (4 × 2) so the pipes never wait.
    const CHAINS: usize = 12;

    /// `iters` rounds of CHAINS independent 8-lane FMAs; returns the FLOPs done.
    ///
    /// # Safety
    /// The CPU has AVX and FMA.
    #[target_feature(enable = "avx,fma")]
    pub(super) unsafe fn fma_chains_avx2(iters: u64) -> f64 {
        let x = _mm256_set1_ps(black_box(0.999_999));
        let y = _mm256_set1_ps(black_box(1e-7));
        let mut acc = [_mm256_set1_ps(black_box(1.0)); CHAINS];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        black_box(acc);
        (iters * CHAINS as u64 * 8 * 2) as f64
    }

    /// `iters` rounds of CHAINS independent 16-lane FMAs; returns the FLOPs done.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma_chains_avx512(iters: u64) -> f64 {
        let x = _mm512_set1_ps(black_box(0.999_999));
        let y = _mm512_set1_ps(black_box(1e-7));
        let mut acc = [_mm512_set1_ps(black_box(1.0)); CHAINS];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        black_box(acc);
        (iters * CHAINS as u64 * 16 * 2) as f64
    }
}

/// The CPU's model name with its family and model numbers (Linux: /proc/cpuinfo's first
/// `model name`, `cpu family` and `model`, as "AMD EPYC (family 25, model 17)"), or the
/// architecture's name where that cannot be read: for result lines that say what machine they
/// came from. A VM may name every generation of a vendor's server CPU alike ("AMD EPYC" is a
/// Zen 1 and a Zen 4 here, 40 against 118 GFLOP/s); the numbers tell them apart.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| cpu_model_from(&s))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// [`cpu_model`] from the text of /proc/cpuinfo; `None` without a `model name` line.
fn cpu_model_from(cpuinfo: &str) -> Option<String> {
    let field = |key: &str| {
        cpuinfo
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    let name = field("model name")?;
    Some(match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) => format!("{name} (family {f}, model {m})"),
        _ => name,
    })
}

#[cfg(test)]
mod tests {
    use super::cpu_model_from;

    #[test]
    fn cpu_model_names_family_and_model() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\
                    model\t\t: 17\nmodel name\t: AMD EPYC\nstepping\t: 1\n\n\
                    processor\t: 1\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n";
        assert_eq!(
            cpu_model_from(info).as_deref(),
            Some("AMD EPYC (family 25, model 17)")
        );
        // aarch64's cpuinfo has neither line: no model from it
        assert_eq!(cpu_model_from("processor\t: 0\nBogoMIPS\t: 50.00\n"), None);
        // a name without the numbers stays as it is
        assert_eq!(
            cpu_model_from("model name\t: Some CPU\n").as_deref(),
            Some("Some CPU")
        );
    }
}
