//! B's packed panels, shared by the f32 kernels (`sgemm_avx2` with 16-column panels,
//! `sgemm_avx512` with 32): per depth block of `KC` rows, ⌈n/NR⌉ panels of kc×NR elements,
//! each panel row NR contiguous elements, columns past n zero.
//!
//! Reading B in place puts a power-of-two row stride (a 256- or 1024-wide layer) on one or a
//! few L1 sets: the 256 rows of a 32-column panel, 1 KiB apart, fall on 8 of a 32 KiB L1's 64
//! sets, so the panel streams from L2 at every row tile instead of staying in L1. Packed, a
//! panel is contiguous and stays.

/// Depth per block: a packed panel of 16 (32) columns is 16 (32) KiB.
pub(super) const KC: usize = 256;

/// Where a kernel's driver finds B's panels: packed per depth block from B itself (row and
/// column strides), or all packed already by [`pack_b_all`].
#[derive(Clone, Copy)]
pub(super) enum BSource {
    Strided(*const f32, (isize, isize)),
    Packed(*const f32),
}

/// Copies rows k0..k0+kc of B (k×n, strides rsb/csb) into `dst` as ⌈n/NR⌉ panels of kc×NR.
///
/// # Safety
/// B is valid for rows k0..k0+kc and columns 0..n; `dst` holds ⌈n/NR⌉·kc·NR elements.
pub(super) unsafe fn pack_b<const NR: usize>(
    b: *const f32,
    (rsb, csb): (isize, isize),
    k0: usize,
    kc: usize,
    n: usize,
    dst: *mut f32,
) {
    // SAFETY: the function's contract: every read is at a row < k0+kc and column < n of B,
    // every write below ⌈n/NR⌉·kc·NR elements of `dst`.
    unsafe {
        if rsb == 1 && csb > 1 {
            // column-major (the Wᵀ of a row-major W): panel rows are B's columns, transposed
            // in register blocks
            for (panel, j0) in (0..n).step_by(NR).enumerate() {
                let nr = (n - j0).min(NR);
                let out = dst.add(panel * kc * NR);
                let src = b.offset(k0 as isize + j0 as isize * csb);
                crate::ops::transpose::transpose_into(src, (nr, kc, csb as usize), out, NR);
                if nr < NR {
                    for p in 0..kc {
                        std::ptr::write_bytes(out.add(p * NR + nr), 0, NR - nr);
                    }
                }
            }
            return;
        }
        for (panel, j0) in (0..n).step_by(NR).enumerate() {
            let nr = (n - j0).min(NR);
            let out = dst.add(panel * kc * NR);
            for p in 0..kc {
                let row = b.offset((k0 + p) as isize * rsb + j0 as isize * csb);
                let o = out.add(p * NR);
                if csb == 1 && nr == NR {
                    std::ptr::copy_nonoverlapping(row, o, NR);
                } else {
                    for j in 0..NR {
                        *o.add(j) = if j < nr {
                            *row.offset(j as isize * csb)
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// Elements of B (k×n) packed whole by [`pack_b_all`]: every depth block's ⌈n/NR⌉ panels.
pub(super) fn packed_b_len<const NR: usize>(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * NR * k
}

/// Packs all of B (k×n, strides rsb/csb) as the kernels pack each depth block, the blocks one
/// after another (block k0 starts at k0·⌈n/NR⌉·NR), for reuse: a weight read by many
/// products is packed once instead of once per product.
///
/// # Safety
/// B is a valid k×n matrix with those strides; `dst` holds [`packed_b_len`] elements.
pub(super) unsafe fn pack_b_all<const NR: usize>(
    b: *const f32,
    strides: (isize, isize),
    k: usize,
    n: usize,
    dst: *mut f32,
) {
    for k0 in (0..k).step_by(KC) {
        let kc = (k - k0).min(KC);
        // SAFETY: the function's contract; block k0 lands below k·⌈n/NR⌉·NR elements of dst
        unsafe { pack_b::<NR>(b, strides, k0, kc, n, dst.add(k0 * n.div_ceil(NR) * NR)) };
    }
}

/// One depth block of one packed panel, for a block of rows: what a kernel's row tiles sweep.
pub(super) struct PanelBlock {
    /// The packed kc×NR panel.
    pub bp: *const f32,
    /// The block's first depth and its depth.
    pub k0: usize,
    pub kc: usize,
    /// The panel's first column of C.
    pub j0: usize,
    /// Rows `rows.0..rows.1` of A and C.
    pub rows: (usize, usize),
}

/// The loops both kernels share. C (m×n, row stride `ldc`) is set to zero, to the bias rows,
/// or left (`accumulate`) where the depth is 0; otherwise the depth runs in blocks of KC (B's
/// panels packed per block, unless given packed whole), rows in blocks of `mc` so the A block
/// stays in L2 while it sweeps every panel, and `tiles` runs the row tiles of one row block
/// against one panel of one depth block. Blocks come in depth order: a kernel's tile starts
/// from zero or the bias in the first depth block and adds onto C in later ones.
///
/// # Safety
/// B as `BSource` describes it is a valid k×n matrix (or its packing), C a valid m×n one, and
/// `tiles` reads and writes only inside them.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn sweep<const NR: usize>(
    (m, k, n): (usize, usize, usize),
    mc: usize,
    b: BSource,
    (c, ldc): (*mut f32, usize),
    accumulate: bool,
    bias: Option<*const f32>,
    mut tiles: impl FnMut(PanelBlock),
) {
    debug_assert!(!(accumulate && bias.is_some()), "a bias replaces C");
    if m == 0 || n == 0 {
        return;
    }
    let panels = n.div_ceil(NR);
    let mut packed = match b {
        BSource::Strided(..) => crate::pool::take::<f32>(panels * KC.min(k.max(1)) * NR),
        BSource::Packed(_) => Vec::new(),
    };
    // SAFETY: the function's contract; packing reads B's rows of the block and writes inside
    // `packed` (⌈n/NR⌉·KC·NR elements), the depth-0 case writes rows < m, columns < n of C.
    unsafe {
        if k == 0 {
            for i in 0..m {
                let row = std::slice::from_raw_parts_mut(c.add(i * ldc), n);
                match bias {
                    Some(bv) => row.copy_from_slice(std::slice::from_raw_parts(bv, n)),
                    None if !accumulate => row.fill(0.0),
                    None => {}
                }
            }
        }
        for k0 in (0..k).step_by(KC) {
            let kc = (k - k0).min(KC);
            let block = match b {
                BSource::Strided(b, strides) => {
                    pack_b::<NR>(b, strides, k0, kc, n, packed.as_mut_ptr());
                    packed.as_ptr()
                }
                BSource::Packed(all) => all.add(k0 * panels * NR),
            };
            for i_blk in (0..m).step_by(mc) {
                let rows = (i_blk, (i_blk + mc).min(m));
                for (panel, j0) in (0..n).step_by(NR).enumerate() {
                    let bp = block.add(panel * kc * NR);
                    tiles(PanelBlock {
                        bp,
                        k0,
                        kc,
                        j0,
                        rows,
                    });
                }
            }
        }
    }
    if !packed.is_empty() {
        crate::pool::give(packed);
    }
}

/// A kernel's two entry points around its driver `sgemm_from` (in scope where the macro is
/// used), compiled with the kernel's target features: `sgemm` (B read through strides and
/// packed per depth block) and `sgemm_packed_b` (B packed whole by [`pack_b_all`] at the
/// kernel's `NR`).
macro_rules! kernel_entries {
    ($features:literal) => {
        /// C (m×n, row-major, row stride `ldc`) = A·B, or C + A·B when `accumulate`, or
        /// A·B + bias on every row with `bias` (n elements; not with `accumulate`); A is m×k
        /// and B k×n, each read through (row, column) strides.
        ///
        /// # Safety
        #[doc = concat!("The CPU has ", $features, ", and the pointers and strides describe")]
        /// valid matrices; C does not alias A or B.
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn sgemm(
            m: usize,
            k: usize,
            n: usize,
            a: *const f32,
            a_strides: (isize, isize),
            b: *const f32,
            b_strides: (isize, isize),
            c: *mut f32,
            ldc: usize,
            accumulate: bool,
            bias: Option<*const f32>,
        ) {
            let b = BSource::Strided(b, b_strides);
            // SAFETY: the function's contract
            unsafe { sgemm_from(m, k, n, a, a_strides, b, c, ldc, accumulate, bias, None) }
        }

        /// [`sgemm`] with B already packed by `pack::pack_b_all::<NR>` (same k and n), and
        /// with `scale` C ⊙= D on the way out: each finished element times D's at its place
        /// (D m×n with row stride `ldc`), the rounding of a separate multiply after the product.
        ///
        /// # Safety
        /// As [`sgemm`], and `packed` holds `packed_b_len::<NR>(k, n)` elements packed from a
        /// k×n B; k > 0 when `scale` is given (k = 0 writes C without a tile).
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe fn sgemm_packed_b(
            m: usize,
            k: usize,
            n: usize,
            a: *const f32,
            a_strides: (isize, isize),
            packed: *const f32,
            c: *mut f32,
            ldc: usize,
            accumulate: bool,
            bias: Option<*const f32>,
            scale: Option<*const f32>,
        ) {
            debug_assert!(k > 0 || scale.is_none(), "a scaled product needs depth");
            let b = BSource::Packed(packed);
            // SAFETY: the function's contract
            unsafe { sgemm_from(m, k, n, a, a_strides, b, c, ldc, accumulate, bias, scale) }
        }
    };
}
pub(super) use kernel_entries;
