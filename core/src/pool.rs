//! Buffer reuse: a per-thread free list of element vectors keyed by length.
//!
//! A training or sampling step allocates the same sizes every iteration. Fresh large
//! allocations come from the OS as untouched pages and fault on first write (about 550 faults
//! per DSM step of the fixture MLP before this pool, ~15% of the step). Dropped tensor buffers
//! park their vectors here instead, and the next op of the same size takes one back.

use std::cell::RefCell;
use std::collections::HashMap;

/// Vectors shorter than this are left to the allocator (no page faults to save).
const MIN_POOLED_LEN: usize = 1024;
/// Most vectors kept per length. A third-order tape (exact score matching) holds dozens of
/// batch-sized tensors at once; keeping only 16 sent the rest back to the OS at the end of each
/// step and they faulted in again (≈200 → ≈65 faults per ESM step at 128, ESM M2 +7%).
/// The byte bound below still caps the pool.
const MAX_PER_LEN: usize = 128;
/// Most bytes parked per thread and element type.
const MAX_POOLED_BYTES: usize = 256 << 20;

#[doc(hidden)]
pub struct Pool<T> {
    free: HashMap<usize, Vec<Vec<T>>>,
    bytes: usize,
}

impl<T> Pool<T> {
    fn new() -> Self {
        Pool {
            free: HashMap::new(),
            bytes: 0,
        }
    }
}

/// An element type with a per-thread pool.
pub trait Pooled: Copy + Sized + 'static {
    #[doc(hidden)]
    fn with_pool<R>(f: impl FnOnce(&mut Pool<Self>) -> R) -> R;
}

thread_local! {
    static POOL_F32: RefCell<Pool<f32>> = RefCell::new(Pool::new());
    static POOL_F64: RefCell<Pool<f64>> = RefCell::new(Pool::new());
}

impl Pooled for f32 {
    fn with_pool<R>(f: impl FnOnce(&mut Pool<f32>) -> R) -> R {
        POOL_F32.with(|p| f(&mut p.borrow_mut()))
    }
}

impl Pooled for f64 {
    fn with_pool<R>(f: impl FnOnce(&mut Pool<f64>) -> R) -> R {
        POOL_F64.with(|p| f(&mut p.borrow_mut()))
    }
}

/// A vector of `n` elements whose contents are unspecified (but initialised): for kernels that
/// overwrite every element.
pub fn take<T: Pooled + Default>(n: usize) -> Vec<T> {
    if n >= MIN_POOLED_LEN {
        let hit = T::with_pool(|p| {
            let v = p.free.get_mut(&n)?.pop()?;
            p.bytes -= n * std::mem::size_of::<T>();
            Some(v)
        });
        if let Some(v) = hit {
            return v;
        }
    }
    vec![T::default(); n]
}

/// A vector of `n` copies of `value`.
pub fn filled<T: Pooled + Default>(n: usize, value: T) -> Vec<T> {
    let mut v = take(n);
    v.fill(value);
    v
}

/// Parks a vector for reuse (or frees it when the pool is full or it is small).
pub fn give<T: Pooled>(v: Vec<T>) {
    let n = v.len();
    if n < MIN_POOLED_LEN || v.capacity() != n {
        return;
    }
    let bytes = n * std::mem::size_of::<T>();
    T::with_pool(|p| {
        if p.bytes + bytes > MAX_POOLED_BYTES {
            return;
        }
        let list = p.free.entry(n).or_default();
        if list.len() < MAX_PER_LEN {
            list.push(v);
            p.bytes += bytes;
        }
    });
}

/// Bytes parked in this thread's pools (both element types).
pub fn pooled_bytes() -> usize {
    f32::with_pool(|p| p.bytes) + f64::with_pool(|p| p.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_reused_and_bounded() {
        let v: Vec<f32> = take(5000);
        let ptr = v.as_ptr();
        give(v);
        let w: Vec<f32> = take(5000);
        assert_eq!(w.as_ptr(), ptr, "the parked vector comes back");
        give(w);
        // small vectors are not pooled
        let before = pooled_bytes();
        give(vec![0f32; 10]);
        assert_eq!(pooled_bytes(), before);
        // the per-length cap holds
        for _ in 0..100 {
            give(vec![0f64; 2048]);
        }
        assert!(pooled_bytes() <= before + MAX_PER_LEN * 2048 * 8);
    }
}
