//! A program that declares mimalloc its allocator (`use_mimalloc!`, feature `mimalloc`) gets
//! it, and its large buffers in transparent huge pages where the kernel allows them.
#![cfg(feature = "mimalloc")]

use ebm_core::host_alloc::{allocator_name, huge_page_bytes, thp_mode};

ebm_core::use_mimalloc!();

#[test]
fn a_program_declaring_mimalloc_gets_it_and_huge_pages() {
    assert_eq!(allocator_name(), "mimalloc");
    // 64 MiB of tensors, written through
    let bufs: Vec<Vec<f32>> = (0..16).map(|i| vec![i as f32; 1 << 20]).collect();
    let total: f32 = bufs.iter().map(|b| b[b.len() - 1]).sum();
    assert_eq!(total, 120.0);
    let thp_off = std::env::var_os("MIMALLOC_ALLOW_THP").is_some_and(|v| v == "0");
    match (thp_mode().as_deref(), huge_page_bytes()) {
        (Some("always" | "madvise"), Some(huge)) if !thp_off => {
            eprintln!("THP {:?}: {huge} bytes in huge pages", thp_mode());
            assert!(
                huge >= 2 << 20,
                "no huge pages although the kernel allows them"
            );
        }
        (mode, huge) => eprintln!("THP {mode:?}, {huge:?} bytes in huge pages: none required"),
    }
}
