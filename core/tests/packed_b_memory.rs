//! A weight's kept packed GEMM panels (both x86 kernels keep them from a buffer's second
//! product on; AVX2's 16-column panels here) count in `live_tensor_bytes` while kept, and
//! leave it when the weight is written or dropped.
//!
//! This file holds a single test on purpose: the counter is process-wide, and the GEMM path
//! (forced to AVX2 here through `EBM_GEMM`) is decided once per process.

use ebm_core::{gemm_path, live_tensor_bytes, DType, GemmPath, Rng};

#[test]
fn kept_packed_panels_are_counted_while_kept() {
    #[cfg(target_arch = "x86_64")]
    let avx2 =
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let avx2 = false;
    if !avx2 {
        eprintln!("skipped: this CPU has no AVX2+FMA (no panels are kept off that path)");
        return;
    }
    // SAFETY: set before any other thread of this test binary exists or reads the environment.
    unsafe { std::env::set_var("EBM_GEMM", "avx2") };
    assert_eq!(gemm_path(), GemmPath::Avx2);
    let mut rng = Rng::new(0);
    // 200×48: its panels are ⌈48/16⌉·16 = 48 columns wide, 200·48 f32
    let mut w = rng.normal(&[200, 48], DType::F32);
    let x = rng.normal(&[64, 200], DType::F32);
    let w_bytes = 200 * 48 * 4;
    let before = live_tensor_bytes();
    // the first product packs for itself and keeps nothing
    let y1 = x.matmul(&w);
    drop(y1);
    assert_eq!(live_tensor_bytes(), before);
    // the second keeps the panels with w's buffer
    let y2 = x.matmul(&w);
    drop(y2);
    assert_eq!(live_tensor_bytes(), before + w_bytes);
    // a third reuses them: nothing more
    let y3 = x.matmul(&w);
    assert_eq!(live_tensor_bytes(), before + w_bytes + 64 * 48 * 4);
    drop(y3);
    // a write drops what was kept about the old contents
    w.data_mut::<f32>()[0] += 1.0;
    assert_eq!(live_tensor_bytes(), before);
    let _ = x.matmul(&w);
    let _ = x.matmul(&w);
    assert_eq!(live_tensor_bytes(), before + w_bytes);
    // and dropping the weight gives back its elements and its panels
    drop(w);
    assert_eq!(live_tensor_bytes(), before - w_bytes);
}
