//! Run-time compilation with NVRTC: PTX for a virtual architecture (`compute_90`, JIT-compiled
//! by the driver) or a CUBIN for a real one (`sm_90`, which also runs the assembler).
//!
//! NVRTC is loaded dynamically (`libnvrtc.so*` on `LD_LIBRARY_PATH`); every entry point here
//! checks for it first, so a machine without it gets [`CudaError::NoNvrtc`], never a panic.

use crate::error::CudaError;
use crate::kernels::Module;
use cudarc::nvrtc::{result, sys};
use std::ffi::{c_char, CStr, CString};

/// What to compile to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// PTX for `compute_XY` (e.g. 90).
    Ptx(u32),
    /// A CUBIN for `sm_XY`.
    Cubin(u32),
}

impl Target {
    /// The `--gpu-architecture` value.
    pub fn arch(&self) -> String {
        match self {
            Target::Ptx(a) => format!("compute_{a}"),
            Target::Cubin(a) => format!("sm_{a}"),
        }
    }
}

/// Whether libnvrtc can be loaded (never panics).
pub fn available() -> Result<(), CudaError> {
    // SAFETY: only tries to dlopen libnvrtc; a loader panic is caught.
    let present = std::panic::catch_unwind(|| unsafe { sys::is_culib_present() }).unwrap_or(false);
    if present {
        Ok(())
    } else {
        Err(CudaError::NoNvrtc(
            "libnvrtc was not found on LD_LIBRARY_PATH (install the pinned wheel: \
             pip install nvidia-cuda-nvrtc==13.0.88, see ../shared/CUDA.md)"
                .into(),
        ))
    }
}

/// NVRTC's (major, minor) version.
pub fn version() -> Result<(i32, i32), CudaError> {
    available()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: libnvrtc is loaded (checked above); the out-pointers are live locals.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| CudaError::NoNvrtc(format!("nvrtcVersion: {e:?}")))?;
    Ok((major, minor))
}

/// The compiler options every module is built with.
pub fn options(target: Target) -> Vec<String> {
    vec![
        format!("--gpu-architecture={}", target.arch()),
        "--std=c++17".into(),
        "--restrict".into(),
    ]
}

/// Compiles a module to PTX text or CUBIN bytes; a failure carries NVRTC's log.
pub fn compile(module: &Module, target: Target) -> Result<Vec<u8>, CudaError> {
    compile_with(module, target, &[]).map(|(out, _)| out)
}

/// Compiles with extra options (e.g. `--ptxas-options=-v`) and returns NVRTC's log too.
pub fn compile_with(
    module: &Module,
    target: Target,
    extra: &[&str],
) -> Result<(Vec<u8>, String), CudaError> {
    available()?;
    let src = CString::new(module.expanded_source()).expect("kernel source has no NUL");
    let name = CString::new(format!("{}.cu", module.name)).expect("no NUL");
    let prog = result::create_program(&src, Some(&name)).map_err(|e| CudaError::Compile {
        module: module.name,
        arch: target.arch(),
        log: format!("nvrtcCreateProgram: {e:?}"),
    })?;
    let out = (|| {
        let mut opts = options(target);
        opts.extend(extra.iter().map(|s| s.to_string()));
        // SAFETY: `prog` is a live program, created above and destroyed only after this
        // closure returns.
        let compiled = unsafe { result::compile_program(prog, &opts) };
        // SAFETY: as above.
        let log = unsafe { result::get_program_log(prog) }
            .map(|l| {
                // SAFETY: NVRTC's log is a NUL-terminated buffer that `l` owns.
                unsafe { CStr::from_ptr(l.as_ptr()) }
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        if let Err(e) = compiled {
            return Err(CudaError::Compile {
                module: module.name,
                arch: target.arch(),
                log: format!("{e:?}\n{log}"),
            });
        }
        let fail = |what: &str, e: result::NvrtcError| CudaError::Compile {
            module: module.name,
            arch: target.arch(),
            log: format!("{what}: {e:?}"),
        };
        match target {
            Target::Ptx(_) => {
                // SAFETY: `prog` is live and compiled.
                let ptx = unsafe { result::get_ptx(prog) }.map_err(|e| fail("nvrtcGetPTX", e))?;
                // SAFETY: the PTX is a NUL-terminated buffer that `ptx` owns.
                let bytes = unsafe { CStr::from_ptr(ptx.as_ptr()) }.to_bytes().to_vec();
                Ok((bytes, log))
            }
            Target::Cubin(_) => {
                let mut size = 0usize;
                // SAFETY: `prog` is live and compiled; `size` is a live local.
                unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) }
                    .result()
                    .map_err(|e| fail("nvrtcGetCUBINSize", e))?;
                let mut bin = vec![0u8; size];
                // SAFETY: `bin` holds the `size` bytes NVRTC reported for this program.
                unsafe { sys::nvrtcGetCUBIN(prog, bin.as_mut_ptr() as *mut c_char) }
                    .result()
                    .map_err(|e| fail("nvrtcGetCUBIN", e))?;
                Ok((bin, log))
            }
        }
    })();
    // SAFETY: `prog` was created above and is not used after this.
    unsafe { result::destroy_program(prog) }.ok();
    out
}

/// The `.entry` (kernel) names in PTX text.
pub fn ptx_entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| {
            let rest = l.trim().split(".entry ").nth(1)?;
            Some(rest.split(['(', ' ']).next()?.trim().to_string())
        })
        .collect()
}

/// The PTX ISA version in PTX text (`.version 9.0` → (9, 0)).
pub fn ptx_isa_version(ptx: &str) -> Option<(u32, u32)> {
    let v = ptx
        .lines()
        .find_map(|l| l.trim().strip_prefix(".version "))?;
    let (a, b) = v.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}
