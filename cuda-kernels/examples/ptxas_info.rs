//! Registers, spills and shared memory of every kernel as ptxas reports them for sm_90 (no GPU
//! needed, only libnvrtc on LD_LIBRARY_PATH): a first look at occupancy before tuning on a GPU.
//!
//! `cargo run -p ebm-cuda --example ptxas_info`

use ebm_cuda::kernels::MODULES;
use ebm_cuda::nvrtc::{self, Target};

fn main() {
    if let Err(e) = nvrtc::available() {
        eprintln!("ptxas_info: {e}");
        std::process::exit(2);
    }
    for m in MODULES {
        match nvrtc::compile_with(m, Target::Cubin(90), &["--ptxas-options=-v"]) {
            Ok((_, log)) => {
                println!("== {}.cu", m.name);
                for line in log.lines().filter(|l| l.contains("ptxas info")) {
                    println!("{}", line.trim());
                }
            }
            Err(e) => eprintln!("{e}"),
        }
    }
}
