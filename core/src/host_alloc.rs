//! The allocator of ebm's own programs (feature `mimalloc`): mimalloc as the process's global
//! allocator, which maps its memory in transparent huge pages (2 MiB) where the kernel allows
//! them (mimalloc 3 asks for them by default; `MIMALLOC_ALLOW_THP=0` turns that off).
//!
//! Why: a training step sweeps dozens of batch-sized tensors (an ESM step on the 2-128-128-1
//! MLP, dozens of 128 KiB ones per row block on its tape), more memory than the data TLB maps
//! in 4 KiB pages (Zen 1: 1536 entries, 6 MiB), and glibc's malloc hands them out from 4 KiB
//! pages. Measured on the AVX2 EPYC (1 thread, 3 rounds side by side, steps/s against glibc,
//! median of per-round ratios): DSM M2 +3%, ESM M2 +4%, SSM M2 +3%, NCE M2 +4%, PCD M2 +1%,
//! DSM M64 +4%, ESM M64 +4%, SSM M64 +5%, NCE M64 +5%, PCD M64 +4%; with mimalloc's huge
//! pages off (`MIMALLOC_ALLOW_THP=0`) the M64 cells gain 0–3% and ESM M2 3%. An ESM M2 run
//! holds 12–16 MiB of its ~20 MiB in huge pages.
//!
//! A library must not choose the allocator of the program that links it, so the allocator is
//! declared by the program, with [`use_mimalloc!`](crate::use_mimalloc) at its crate root: the
//! `ebm` CLI, `ebm-bench` and the Python module do. A program of your own does the same with
//! the `mimalloc` feature of `ebm-core` (or any allocator that maps huge pages).

#[cfg(feature = "mimalloc")]
#[doc(hidden)]
pub use mimalloc::MiMalloc;

/// Makes mimalloc the global allocator of the program whose crate root invokes it (feature
/// `mimalloc`).
#[cfg(feature = "mimalloc")]
#[macro_export]
macro_rules! use_mimalloc {
    () => {
        #[global_allocator]
        static EBM_GLOBAL_ALLOCATOR: $crate::host_alloc::MiMalloc = $crate::host_alloc::MiMalloc;
    };
}

/// The global allocator of this process: "mimalloc" when a fresh allocation lies in mimalloc's
/// memory, else "system".
pub fn allocator_name() -> &'static str {
    #[cfg(feature = "mimalloc")]
    {
        let probe = Box::new(0u64);
        // SAFETY: only compares the address with mimalloc's own regions
        let ours =
            unsafe { libmimalloc_sys::mi_is_in_heap_region(std::ptr::from_ref(&*probe).cast()) };
        if ours {
            return "mimalloc";
        }
    }
    "system"
}

/// Bytes of this process's anonymous memory in transparent huge pages (Linux's
/// `/proc/self/smaps_rollup`); None where the kernel does not say.
pub fn huge_page_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = s.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// The kernel's transparent-huge-page mode ("always", "madvise" or "never"); None where it
/// has none.
pub fn thp_mode() -> Option<String> {
    let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let start = s.find('[')? + 1;
    let end = s[start..].find(']')? + start;
    Some(s[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_keeps_the_system_allocator() {
        // a library (and its unit tests) never installs an allocator: only programs do
        assert_eq!(allocator_name(), "system");
        if let Some(mode) = thp_mode() {
            assert!(
                ["always", "madvise", "never"].contains(&mode.as_str()),
                "{mode}"
            );
        }
        if cfg!(target_os = "linux") {
            assert!(huge_page_bytes().is_some());
        }
    }
}
