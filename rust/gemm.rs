//! The matrix products of the forward and backward passes.
//!
//! This is the only module that calls the matrix-multiply crates. All matrices
//! are row-major; a transposed operand is read through its strides, never
//! copied. A large product is cut into panels of the output, by its shape
//! alone, and the panels run in parallel, each a single-threaded product: every
//! output element is computed the same way on any number of threads.
//!
//! Each panel goes to one of two kernels, chosen by its shape, layout and
//! element type (see [`Kernel`]): `gemm`, which packs its operands into buffers
//! it allocates on every call and is the fastest on large products, or
//! `nano-gemm`, which allocates nothing, has almost no per-call overhead, is
//! faster up to about a million multiply-adds and on every `A B^T` product,
//! and within a few percent of `gemm` up to some millions.

use std::marker::PhantomData;
use std::ops::Range;

use rayon::prelude::*;

use crate::real::Real;
use crate::threads;

/// Products with fewer multiply-adds than this run as one panel: about 10 us
/// of work, less than waking a second thread can save.
const PARALLEL_MIN_MACS: usize = 1 << 20;
/// Target panel width (rows or columns of the output).
const PANEL: usize = 128;
/// Panels are cut at multiples of this, the kernels' register-tile width.
const ALIGN: usize = 16;
const MAX_PANELS: usize = 16;

/// The element types the kernels are compiled for.
pub trait Kernel: Copy {
    /// Products of at most this many multiply-adds go to `nano-gemm`, above it
    /// to `gemm` (`benchmarks/kernels.rs` measures both). In float32 that is
    /// every product of a 784-256-128-10 network at batch 128: `gemm` would be
    /// about 5% faster per epoch there, but it allocates on every call and its
    /// buffers more than double the memory `fit` adds (README). In float64,
    /// where `nano-gemm` falls further behind on large products, the bar is
    /// lower.
    const SMALL_MACS: usize;

    /// `dst = lhs rhs` for an `m x n` `dst`, every operand given by its row and
    /// column strides; `dst` is written without being read.
    ///
    /// # Safety
    ///
    /// The pointers must address valid matrices of these shapes through their
    /// strides, and `dst` must not alias `lhs` or `rhs`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn small(
        m: usize,
        n: usize,
        k: usize,
        dst: (*mut Self, isize, isize),
        lhs: (*const Self, isize, isize),
        rhs: (*const Self, isize, isize),
    );
}

/// The `Kernel` of one element type: its `nano-gemm` entry point and limit.
macro_rules! kernel {
    ($t:ty, $small_macs:expr, $execute:path) => {
        impl Kernel for $t {
            const SMALL_MACS: usize = $small_macs;

            unsafe fn small(
                m: usize,
                n: usize,
                k: usize,
                dst: (*mut $t, isize, isize),
                lhs: (*const $t, isize, isize),
                rhs: (*const $t, isize, isize),
            ) {
                // nano-gemm computes dst = alpha dst + beta lhs rhs and skips
                // reading dst when alpha is zero.
                $execute(
                    m, n, k, dst.0, dst.1, dst.2, lhs.0, lhs.1, lhs.2, rhs.0, rhs.1, rhs.2, 0.0,
                    1.0, false, false,
                );
            }
        }
    };
}

kernel!(f32, 1 << 24, nano_gemm::planless::execute_f32);
kernel!(f64, 1 << 20, nano_gemm::planless::execute_f64);

/// A strided read-only matrix operand.
#[derive(Clone, Copy)]
struct Operand<T> {
    ptr: *const T,
    rs: isize,
    cs: isize,
}

/// The output, shared between the threads that write disjoint panels of it.
#[derive(Clone, Copy)]
struct Output<T> {
    ptr: *mut T,
    rs: isize,
}

// SAFETY: the pointers are only read (operands) or written in disjoint panels
// (output) while the borrows they come from are alive, for the duration of one
// `product` call.
unsafe impl<T: Send> Send for Operand<T> {}
unsafe impl<T: Sync> Sync for Operand<T> {}
unsafe impl<T: Send> Send for Output<T> {}
unsafe impl<T: Sync> Sync for Output<T> {}

/// The block of a row-major output that one panel has just written, handed
/// to the product's epilogue while it is still in cache: rows `rows()` and
/// columns `cols()` of a matrix with `width` columns.
pub struct Block<'a, T> {
    ptr: *mut T,
    width: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    _output: PhantomData<&'a mut [T]>,
}

impl<T> Block<'_, T> {
    /// The columns of the output this block covers.
    #[must_use]
    pub fn cols(&self) -> Range<usize> {
        self.cols.clone()
    }

    /// Calls `f(run, offset)` over the block in runs of contiguous elements,
    /// `offset` being the index of `run[0]` in the whole row-major output: once
    /// for a block of whole rows, else once per row.
    pub fn for_each_run(&mut self, mut f: impl FnMut(&mut [T], usize)) {
        let w = self.width;
        let mut run = |offset: usize, len: usize| {
            // SAFETY: the block lies inside the output, which the product
            // borrows uniquely for its duration, and no other panel's block
            // overlaps it.
            f(
                unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset), len) },
                offset,
            );
        };
        if self.cols.start == 0 && self.cols.end == w {
            run(self.rows.start * w, self.rows.len() * w);
        } else {
            for r in self.rows.clone() {
                run(r * w + self.cols.start, self.cols.len());
            }
        }
    }
}

// SAFETY: a block is only handed to the one panel that wrote it.
unsafe impl<T: Send> Send for Block<'_, T> {}

#[allow(clippy::cast_possible_wrap)]
fn s(x: usize) -> isize {
    x as isize
}

/// How a `m x n` output is cut: along rows (`true`) or columns, into `count` panels.
fn panels(m: usize, k: usize, n: usize) -> (bool, usize) {
    let along_rows = m > n;
    let long = m.max(n);
    if m * k * n < PARALLEL_MIN_MACS || long < PANEL {
        return (along_rows, 1);
    }
    // At least two panels, so that two cores share even a 128-wide product.
    (along_rows, (long / PANEL).clamp(2, MAX_PANELS))
}

/// Whether an `m x k` by `k x n` product runs as one panel, on the calling thread.
#[must_use]
pub fn is_serial(m: usize, k: usize, n: usize) -> bool {
    panels(m, k, n).1 == 1
}

/// `C = A B` with `C` row-major `m x n` (row stride `n`), `A` and `B` strided.
///
/// # Safety
///
/// `a` and `b` must address valid `m x k` and `k x n` matrices through their
/// strides, and `c` must be valid for `m * n` writes and not alias them.
unsafe fn product<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: Operand<T>,
    b: Operand<T>,
    c: Output<T>,
    then: &(dyn Fn(&mut Block<'_, T>) + Sync),
) {
    if m == 0 || n == 0 {
        return;
    }
    let (along_rows, count) = panels(m, k, n);
    let long = if along_rows { m } else { n };
    // Panel boundaries depend on the shape only.
    let edge = |p: usize| (p * long / count).next_multiple_of(ALIGN).min(long);
    let run = move |p: usize| {
        // Capture the whole operands, not their raw-pointer fields.
        let (a, b, c) = (&a, &b, &c);
        let (lo, hi) = (edge(p), edge(p + 1));
        if lo >= hi {
            return;
        }
        // SAFETY: each panel writes its own rows or columns of `c`.
        let (rows, cols) = if along_rows {
            (lo..hi, 0..n)
        } else {
            (0..m, lo..hi)
        };
        unsafe {
            if along_rows {
                serial(
                    hi - lo,
                    k,
                    n,
                    a.ptr.offset(s(lo) * a.rs),
                    *a,
                    b.ptr,
                    *b,
                    c.ptr.offset(s(lo) * c.rs),
                    c.rs,
                );
            } else {
                serial(
                    m,
                    k,
                    hi - lo,
                    a.ptr,
                    *a,
                    b.ptr.offset(s(lo) * b.cs),
                    *b,
                    c.ptr.add(lo),
                    c.rs,
                );
            }
        }
        #[allow(clippy::cast_sign_loss)]
        then(&mut Block {
            ptr: c.ptr,
            width: c.rs as usize,
            rows,
            cols,
            _output: PhantomData,
        });
    };
    if count == 1 {
        run(0);
    } else {
        threads::run(|| (0..count).into_par_iter().for_each(run));
    }
}

/// One single-threaded product into a row-major block of `c`.
#[allow(clippy::too_many_arguments)]
unsafe fn serial<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    a_strides: Operand<T>,
    b: *const T,
    b_strides: Operand<T>,
    c: *mut T,
    rsc: isize,
) {
    // `B` read transposed (unit row stride) is the `A B^T` of the backward pass.
    let transposed_b = b_strides.rs == 1 && b_strides.cs != 1;
    if transposed_b || m * k * n <= T::SMALL_MACS {
        return T::small(
            m,
            n,
            k,
            (c, rsc, 1),
            (a, a_strides.rs, a_strides.cs),
            (b, b_strides.rs, b_strides.cs),
        );
    }
    // gemm computes dst = alpha dst + beta lhs rhs; with read_dst false, dst = lhs rhs.
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        rsc,
        false,
        a,
        a_strides.cs,
        a_strides.rs,
        b,
        b_strides.cs,
        b_strides.rs,
        T::zero(),
        T::one(),
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// `C (m x n) = A (m x k) B (k x n)`.
///
/// # Panics
///
/// If a slice is shorter than its shape requires.
pub fn matmul<T: Real>(m: usize, k: usize, n: usize, a: &[T], b: &[T], c: &mut [T]) {
    matmul_then(m, k, n, a, b, c, |_| {});
}

/// [`matmul`], then `then` on each block of `C` as soon as it is written, on
/// the thread that wrote it.
///
/// # Panics
///
/// If a slice is shorter than its shape requires.
pub fn matmul_then<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
    then: impl Fn(&mut Block<'_, T>) + Sync,
) {
    strided(m, k, n, (a, s(k), 1), (b, s(n), 1), c, &then);
}

/// `C (m x n) = A^T B`, where `a` holds A as `k x m` and `b` holds B as `k x n`.
///
/// # Panics
///
/// If a slice is shorter than its shape requires.
pub fn matmul_tn<T: Real>(m: usize, k: usize, n: usize, a: &[T], b: &[T], c: &mut [T]) {
    matmul_tn_then(m, k, n, a, b, c, |_| {});
}

/// [`matmul_tn`], then `then` on each block of `C` as [`matmul_then`] does.
///
/// # Panics
///
/// If a slice is shorter than its shape requires.
pub fn matmul_tn_then<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
    then: impl Fn(&mut Block<'_, T>) + Sync,
) {
    strided(m, k, n, (a, 1, s(m)), (b, s(n), 1), c, &then);
}

/// `C (m x n) = A B^T`, where `a` holds A as `m x k` and `b` holds B as `n x k`.
///
/// # Panics
///
/// If a slice is shorter than its shape requires.
pub fn matmul_nt<T: Real>(m: usize, k: usize, n: usize, a: &[T], b: &[T], c: &mut [T]) {
    matmul_nt_then(m, k, n, a, b, c, |_| {});
}

/// [`matmul_nt`], then `then` on each block of `C` as [`matmul_then`] does.
///
/// # Panics
///
/// If a slice is shorter than its shape requires.
pub fn matmul_nt_then<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
    then: impl Fn(&mut Block<'_, T>) + Sync,
) {
    strided(m, k, n, (a, s(k), 1), (b, 1, s(k)), c, &then);
}

/// `C (m x n, row-major) = A B` with A and B read through the row and column
/// strides given with each, then `then` on each block of `C`.
///
/// # Panics
///
/// If a slice is shorter than its shape requires. The strides are those of a
/// dense `m x k` (or `k x m`) and `k x n` (or `n x k`) matrix, so these
/// lengths bound every element read.
fn strided<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    (a, a_rs, a_cs): (&[T], isize, isize),
    (b, b_rs, b_cs): (&[T], isize, isize),
    c: &mut [T],
    then: &(dyn Fn(&mut Block<'_, T>) + Sync),
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let a = Operand {
        ptr: a.as_ptr(),
        rs: a_rs,
        cs: a_cs,
    };
    let b = Operand {
        ptr: b.as_ptr(),
        rs: b_rs,
        cs: b_cs,
    };
    let c = Output {
        ptr: c.as_mut_ptr(),
        rs: s(n),
    };
    // SAFETY: the lengths were checked above; `c` is a unique borrow.
    unsafe { product(m, k, n, a, b, c, then) }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A = [[1, 2, 3], [4, 5, 6]] (2 x 3), B = [[1, 0], [0, 1], [2, -1]] (3 x 2);
    // A B = [[7, -1], [16, -1]], worked by hand.
    const A: [f64; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    const B: [f64; 6] = [1.0, 0.0, 0.0, 1.0, 2.0, -1.0];

    #[test]
    fn matmul_matches_hand_product() {
        let mut c = [0.0; 4];
        matmul(2, 3, 2, &A, &B, &mut c);
        assert_eq!(c, [7.0, -1.0, 16.0, -1.0]);
    }

    #[test]
    fn matmul_tn_reads_transpose_through_strides() {
        // A^T A for A above: [[17, 22, 27], [22, 29, 36], [27, 36, 45]].
        let mut c = [0.0; 9];
        matmul_tn(3, 2, 3, &A, &A, &mut c);
        assert_eq!(c, [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]);
    }

    #[test]
    fn matmul_nt_reads_transpose_through_strides() {
        // A A^T = [[14, 32], [32, 77]].
        let mut c = [0.0; 4];
        matmul_nt(2, 3, 2, &A, &A, &mut c);
        assert_eq!(c, [14.0, 32.0, 32.0, 77.0]);
    }

    /// Integer-valued entries keep every product exact, so a naive triple loop
    /// is an exact reference for the panelled, threaded one. The output starts
    /// as NaN, so a kernel that read it would show.
    fn check_against_naive(m: usize, k: usize, n: usize) {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 3) % 7) as f32 - 3.0).collect();
        let want =
            |i: usize, j: usize| -> f32 { (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum() };

        let mut c = vec![f32::NAN; m * n];
        matmul(m, k, n, &a, &b, &mut c);
        for i in 0..m {
            for j in 0..n {
                assert_eq!(c[i * n + j], want(i, j), "A B ({i}, {j}) of {m}x{k}x{n}");
            }
        }

        // The same product with A stored transposed (k x m), then B (n x k).
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let mut c = vec![f32::NAN; m * n];
        matmul_tn(m, k, n, &at, &b, &mut c);
        for i in 0..m {
            for j in 0..n {
                assert_eq!(c[i * n + j], want(i, j), "A^T B ({i}, {j}) of {m}x{k}x{n}");
            }
        }
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c = vec![f32::NAN; m * n];
        matmul_nt(m, k, n, &a, &bt, &mut c);
        for i in 0..m {
            for j in 0..n {
                assert_eq!(c[i * n + j], want(i, j), "A B^T ({i}, {j}) of {m}x{k}x{n}");
            }
        }
    }

    #[test]
    fn panelled_products_match_a_naive_product() {
        check_against_naive(300, 70, 40); // cut along rows
        check_against_naive(33, 90, 517); // cut along columns, ragged last panel
        check_against_naive(5, 3, 7); // one panel
    }

    #[test]
    fn both_kernels_match_a_naive_product() {
        // Below, at and above the size where products move from nano-gemm to gemm.
        check_against_naive(16, 64, 32);
        check_against_naive(1, 1, 1);
        check_against_naive(64, 256, 64); // 2^20 multiply-adds
        check_against_naive(64, 4096, 64); // one panel of 2^24: nano-gemm in float32
        check_against_naive(64, 4097, 64); // just above: gemm, except A B^T
        check_against_naive(130, 129, 70);
    }

    #[test]
    fn panels_depend_on_shape_only() {
        assert_eq!(panels(128, 784, 256), (false, 2));
        assert_eq!(panels(784, 128, 256), (true, 6));
        assert_eq!(panels(128, 256, 128), (false, 2));
        assert_eq!(panels(16, 64, 32), (false, 1));
        assert_eq!(panels(360, 64, 32), (true, 1)); // below 2^20 multiply-adds
    }
}
