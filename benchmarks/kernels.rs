//! The two matrix-multiply crates side by side at the shapes the workloads use,
//! and `backprop_rs::gemm` (panels on the thread pool) at the largest ones.
//!
//! ```sh
//! cargo run --release --example kernels
//! ```
//!
//! Every call computes a row-major `C = A B` (or `A^T B`, `A B^T`, read
//! through strides) on one thread; the figure is the best of five timed
//! batches of calls, in GFLOP/s. The README's kernel table comes from here.
//!
//! It also measures the machine's arithmetic ceiling: vector multiply-adds
//! with no memory traffic at all, on one thread and on every usable core. No
//! product, whatever its kernel, can exceed it.

use std::hint::black_box;
use std::time::Instant;

use backprop_rs::gemm::{matmul, matmul_nt, matmul_tn};

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// `A B`.
    Nn,
    /// `A^T B`, with A stored `k x m`.
    Tn,
    /// `A B^T`, with B stored `n x k`.
    Nt,
}

/// Row and column strides of A and B for a layout.
fn strides(layout: Layout, m: usize, k: usize, n: usize) -> (isize, isize, isize, isize) {
    let s = |x: usize| isize::try_from(x).expect("small shape");
    let (ars, acs) = if layout == Layout::Tn {
        (1, s(m))
    } else {
        (s(k), 1)
    };
    let (brs, bcs) = if layout == Layout::Nt {
        (1, s(k))
    } else {
        (s(n), 1)
    };
    (ars, acs, brs, bcs)
}

/// Best GFLOP/s of `f` over five batches of calls.
fn rate(m: usize, k: usize, n: usize, mut f: impl FnMut()) -> f64 {
    let calls = (200_000_000 / (m * k * n)).clamp(20, 1_000_000);
    f();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..calls {
            f();
        }
        best = best.min(start.elapsed().as_secs_f64() / calls as f64);
    }
    2.0 * (m * k * n) as f64 / best / 1e9
}

fn single_thread(m: usize, k: usize, n: usize, layout: Layout) -> (f64, f64) {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    let mut c = vec![0.0_f32; m * n];
    let (ars, acs, brs, bcs) = strides(layout, m, k, n);
    let rsc = isize::try_from(n).expect("small shape");
    let (pa, pb, pc) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    // SAFETY: the pointers address the three buffers above through strides that
    // stay inside them, and `c` aliases neither operand.
    let gemm = rate(m, k, n, || unsafe {
        gemm::gemm(
            m,
            n,
            k,
            pc,
            1,
            rsc,
            false,
            black_box(pa),
            acs,
            ars,
            pb,
            bcs,
            brs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    });
    // SAFETY: as above.
    let nano = rate(m, k, n, || unsafe {
        nano_gemm::planless::execute_f32(
            m,
            n,
            k,
            pc,
            rsc,
            1,
            black_box(pa),
            ars,
            acs,
            pb,
            brs,
            bcs,
            0.0,
            1.0,
            false,
            false,
        );
    });
    (gemm, nano)
}

/// Independent multiply-add chains per thread: more than the FMA latency
/// times the FMA units, so that the units never wait for a result.
const CHAINS: usize = 12;

/// `CHAINS` chains of 8-lane multiply-adds, `iters` times each: 256-bit
/// instructions, which the crate's oldest supported Rust has. On AMD Zen 4,
/// where a 512-bit multiply-add occupies both 256-bit units, this is the
/// whole ceiling; on a CPU with full-width 512-bit units it is half of it.
///
/// # Safety
///
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chains(iters: usize) -> f32 {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    let mut acc = [_mm256_setzero_ps(); CHAINS];
    let (a, b) = (_mm256_set1_ps(0.999), _mm256_set1_ps(0.001));
    for _ in 0..iters {
        for c in &mut acc {
            *c = _mm256_fmadd_ps(*c, a, b);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &c| _mm256_add_ps(s, c));
    let mut lanes = [0.0_f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    lanes.iter().sum()
}

/// Float32 GFLOP/s of multiply-adds from registers on `threads` threads at
/// once (best of three), or `None` without AVX2 and FMA.
fn fma_ceiling(threads: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return None;
        }
        let iters = 40_000_000;
        // SAFETY: the features `chains` needs were detected above.
        let run = || black_box(unsafe { chains(black_box(iters)) });
        let best = (0..3)
            .map(|_| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(run);
                    }
                });
                start.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        #[allow(clippy::cast_precision_loss)]
        Some((iters * CHAINS * 8 * 2 * threads) as f64 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        None
    }
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!("multiply-adds from registers, GFLOP/s (float32): the ceiling");
    for threads in [1, cores] {
        match fma_ceiling(threads) {
            Some(g) => println!("{:>22} {g:8.1}", format!("{threads} thread(s)")),
            None => println!("{:>22} {:>8}", format!("{threads} thread(s)"), "n/a"),
        }
    }
    println!();

    let shapes = [
        (16, 64, 32, Layout::Nn),
        (16, 32, 10, Layout::Nn),
        (32, 16, 10, Layout::Tn),
        (16, 10, 32, Layout::Nt),
        (64, 16, 32, Layout::Tn),
        (128, 128, 10, Layout::Nn),
        (128, 256, 128, Layout::Nn),
        (128, 784, 128, Layout::Nn),
        (784, 128, 128, Layout::Tn),
        (64, 512, 128, Layout::Nt),
        (256, 1024, 128, Layout::Nt),
        (256, 1024, 128, Layout::Nn),
    ];
    println!("one thread, GFLOP/s (float32)");
    println!("{:>22} {:>8} {:>10}", "m x k x n", "gemm", "nano-gemm");
    for (m, k, n, layout) in shapes {
        let (g, s) = single_thread(m, k, n, layout);
        let note = match layout {
            Layout::Nn => "",
            Layout::Tn => ", A^T",
            Layout::Nt => ", B^T",
        };
        println!("{:>22} {g:8.1} {s:10.1}", format!("{m} x {k} x {n}{note}"));
    }

    println!(
        "\nbackprop_rs::gemm on {} threads, GFLOP/s (float32)",
        backprop_rs::threads::num_threads()
    );
    let (m, k, n) = (128, 784, 256);
    let x = vec![0.5_f32; m * k];
    let w = vec![0.25_f32; k * n];
    let d = vec![0.125_f32; m * n];
    let mut z = vec![0.0_f32; m * n];
    let mut dw = vec![0.0_f32; k * n];
    let mut dx = vec![0.0_f32; m * k];
    backprop_rs::threads::run(|| {
        let fwd = rate(m, k, n, || matmul(m, k, n, black_box(&x), &w, &mut z));
        let dwr = rate(m, k, n, || matmul_tn(k, m, n, black_box(&x), &d, &mut dw));
        let dxr = rate(m, k, n, || matmul_nt(m, n, k, black_box(&d), &w, &mut dx));
        println!("{:>22} {fwd:8.1}", "X W, 128 x 784 x 256");
        println!("{:>22} {dwr:8.1}", "X^T delta");
        println!("{:>22} {dxr:8.1}", "delta W^T");
    });
}
