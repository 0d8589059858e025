//! The matrix products of the forward and backward passes.
//!
//! This is the only module that calls the matrix-multiply crate (through
//! [`Real::gemm_raw`]). All matrices are row-major; a transposed operand is read
//! through its strides, never copied.

use crate::real::Real;

#[allow(clippy::cast_possible_wrap)]
fn stride(x: usize) -> isize {
    x as isize
}

/// `C (m x n) = A (m x k) B (k x n) + beta C`.
///
/// # Panics
///
/// If a slice is shorter than its shape requires.
pub fn matmul<T: Real>(m: usize, k: usize, n: usize, a: &[T], b: &[T], beta: T, c: &mut [T]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the lengths were checked above; `c` is a unique borrow.
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            T::one(),
            a.as_ptr(),
            stride(k),
            1,
            b.as_ptr(),
            stride(n),
            1,
            beta,
            c.as_mut_ptr(),
            stride(n),
            1,
        );
    }
}

/// `C (m x n) = A^T B + beta C`, where `a` holds A as `k x m` and `b` holds B as `k x n`.
///
/// # Panics
///
/// If a slice is shorter than its shape requires.
pub fn matmul_tn<T: Real>(m: usize, k: usize, n: usize, a: &[T], b: &[T], beta: T, c: &mut [T]) {
    assert!(a.len() >= k * m && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the lengths were checked above; `c` is a unique borrow.
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            T::one(),
            a.as_ptr(),
            1,
            stride(m),
            b.as_ptr(),
            stride(n),
            1,
            beta,
            c.as_mut_ptr(),
            stride(n),
            1,
        );
    }
}

/// `C (m x n) = A B^T + beta C`, where `a` holds A as `m x k` and `b` holds B as `n x k`.
///
/// # Panics
///
/// If a slice is shorter than its shape requires.
pub fn matmul_nt<T: Real>(m: usize, k: usize, n: usize, a: &[T], b: &[T], beta: T, c: &mut [T]) {
    assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n);
    // SAFETY: the lengths were checked above; `c` is a unique borrow.
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            T::one(),
            a.as_ptr(),
            stride(k),
            1,
            b.as_ptr(),
            1,
            stride(k),
            beta,
            c.as_mut_ptr(),
            stride(n),
            1,
        );
    }
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
        matmul(2, 3, 2, &A, &B, 0.0, &mut c);
        assert_eq!(c, [7.0, -1.0, 16.0, -1.0]);
    }

    #[test]
    fn matmul_tn_reads_transpose_through_strides() {
        // A^T A for A above: [[17, 22, 27], [22, 29, 36], [27, 36, 45]].
        let mut c = [0.0; 9];
        matmul_tn(3, 2, 3, &A, &A, 0.0, &mut c);
        assert_eq!(c, [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]);
    }

    #[test]
    fn matmul_nt_reads_transpose_through_strides_and_accumulates() {
        // A A^T = [[14, 32], [32, 77]], plus beta = 1 times a C of ones.
        let mut c = [1.0; 4];
        matmul_nt(2, 3, 2, &A, &A, 1.0, &mut c);
        assert_eq!(c, [15.0, 33.0, 33.0, 78.0]);
    }
}
