//! Every embedded kernel module compiles with NVRTC, to PTX for compute_90 (what the GPU
//! machines JIT) and to a CUBIN for sm_90 (so the assembler runs too), and emits exactly the
//! kernels the table in `kernels.rs` names. Runs wherever libnvrtc is found (CI installs the
//! pinned wheel, see .ci/run); under CI=true (or EBM_REQUIRE_CUDA_TOOLS=1) a missing NVRTC is
//! a failure, not a skip.

use ebm_cuda::kernels::MODULES;
use ebm_cuda::nvrtc::{self, Target};
use std::time::Instant;

fn nvrtc_or_skip() -> bool {
    match nvrtc::available() {
        Ok(()) => true,
        Err(e) => {
            if tools_required() {
                panic!("CI=true (or EBM_REQUIRE_CUDA_TOOLS=1) but NVRTC is missing, so the kernels cannot be compiled: {e}");
            }
            eprintln!("SKIP nvrtc tests: {e}");
            false
        }
    }
}

#[test]
fn every_kernel_compiles_for_sm90_and_compute90() {
    if !nvrtc_or_skip() {
        return;
    }
    let (major, minor) = nvrtc::version().unwrap();
    eprintln!("NVRTC {major}.{minor}");
    let mut failures = Vec::new();
    let mut kernels = 0;
    for m in MODULES {
        for target in [Target::Ptx(90), Target::Cubin(90)] {
            let t0 = Instant::now();
            match nvrtc::compile(m, target) {
                Ok(out) => {
                    eprintln!(
                        "compiled {:>13}.cu for {:<10} {:>7} bytes in {:>4} ms",
                        m.name,
                        target.arch(),
                        out.len(),
                        t0.elapsed().as_millis()
                    );
                    if let Target::Ptx(_) = target {
                        let ptx = String::from_utf8(out).expect("PTX is text");
                        let mut got = nvrtc::ptx_entries(&ptx);
                        got.sort();
                        let mut want: Vec<String> =
                            m.kernels.iter().map(|s| s.to_string()).collect();
                        want.sort();
                        if got != want {
                            failures
                                .push(format!("{}: PTX entries {got:?}, table {want:?}", m.name));
                        }
                        kernels += got.len();
                        // driver 580 (CUDA 13.0) JITs PTX ISA up to 9.0
                        let isa = nvrtc::ptx_isa_version(&ptx);
                        if isa.is_none_or(|v| v > (9, 0)) {
                            failures.push(format!("{}: PTX ISA {isa:?} is newer than 9.0", m.name));
                        }
                    } else if out.len() < 4 || &out[..4] != b"\x7fELF" {
                        failures.push(format!("{}: CUBIN is not an ELF image", m.name));
                    }
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!(
        "{} modules, {kernels} kernels: all compiled for compute_90 (PTX) and sm_90 (CUBIN)",
        MODULES.len()
    );
}

/// Under CI (CI=true, or EBM_REQUIRE_CUDA_TOOLS=1 as .ci/run sets) a missing tool is a failure.
fn tools_required() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("EBM_REQUIRE_CUDA_TOOLS").as_deref() == Ok("1")
}
