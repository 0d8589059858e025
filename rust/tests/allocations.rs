//! Training allocates nothing per batch once its buffers exist: a counting
//! global allocator watches a whole epoch after a warm-up epoch.
//!
//! Products small enough for `nano-gemm` allocate nothing (in float32 that
//! covers a 784-256-128-10 network at batch 128), so a network made only of
//! them allocates nothing at all during an epoch. The `gemm` crate,
//! which takes the large products, allocates its packing buffers inside each
//! call (it takes no caller-provided workspace; `matrixmultiply` does the
//! same), so for a network with large layers the test measures what each of a
//! step's products allocates on its own and requires the epoch to allocate
//! exactly that and nothing more. The README's limitations say so.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use backprop_rs::gemm::{matmul, matmul_nt, matmul_tn};
use backprop_rs::{train_epoch, Activation, Loss, Network, Sgd, Targets, Velocity, Workspace};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static TURN: Mutex<()> = Mutex::new(());

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_of(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// What the matrix products of one step of `rows` rows allocate, called alone.
fn product_allocations(widths: &[(usize, usize)], rows: usize) -> usize {
    let mut total = 0;
    for (l, &(fan_in, fan_out)) in widths.iter().enumerate() {
        let a = vec![0.5_f32; rows * fan_in];
        let w = vec![0.25_f32; fan_in * fan_out];
        let d = vec![0.125_f32; rows * fan_out];
        let mut z = vec![0.0_f32; rows * fan_out];
        let mut dw = vec![0.0_f32; fan_in * fan_out];
        let mut below = vec![0.0_f32; rows * fan_in];
        total += allocations_of(|| matmul(rows, fan_in, fan_out, &a, &w, &mut z));
        total += allocations_of(|| matmul_tn(fan_in, rows, fan_out, &a, &d, &mut dw));
        if l > 0 {
            total += allocations_of(|| matmul_nt(rows, fan_out, fan_in, &d, &w, &mut below));
        }
    }
    total
}

/// Allocations during a steady-state epoch of `n` samples in batches of `batch`
/// (the last one smaller), and what that epoch's matrix products alone allocate.
fn epoch_allocations(
    specs: &[(usize, usize, Activation)],
    n: usize,
    batch: usize,
) -> (usize, usize) {
    // The counter is global: the tests take turns so as not to count each other.
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let f = specs[0].0;
    let mut net = Network::<f32>::new(specs, Loss::CrossEntropy).unwrap();
    for layer in &mut net.layers {
        for (i, w) in layer.w.iter_mut().enumerate() {
            *w = ((i % 17) as f32 - 8.0) * 0.03;
        }
    }
    let x: Vec<f32> = (0..n * f).map(|i| ((i % 255) as f32) / 255.0).collect();
    let labels: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
    let order: Vec<u32> = (0..n as u32).rev().collect();
    let sgd = Sgd {
        lr: 0.01,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-4,
    };
    let mut ws = Workspace::new(&net, batch).unwrap();
    let mut velocity = Velocity::default();
    let mut run = |net: &mut Network<f32>, velocity: &mut Velocity<f32>| {
        train_epoch::<f32, ()>(
            net,
            &mut ws,
            &x,
            Targets::Labels(&labels),
            &order,
            batch,
            &sgd,
            velocity,
            &mut |_| Ok(()),
        )
        .unwrap()
    };

    run(&mut net, &mut velocity);
    // Let the pool threads go back to sleep, so that their idle bookkeeping
    // (the job queues' deferred frees) does not fall into the count.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let stats = run(&mut net, &mut velocity);
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(stats.steps, n.div_ceil(batch));
    let widths: Vec<(usize, usize)> = specs.iter().map(|&(i, o, _)| (i, o)).collect();
    // Warm the products' own thread-local buffers before measuring them.
    product_allocations(&widths, batch);
    let expected =
        (n / batch) * product_allocations(&widths, batch) + product_allocations(&widths, n % batch);
    (during, expected)
}

// Handing an epoch to the thread pool allocates a few times per epoch: the
// pool's job queues grow in blocks and free old ones later, and the threads
// that poll for the epoch's products are started as jobs. That is per epoch,
// not per batch: the pool epochs below take 100 steps and allocate at most
// this often beyond their products.
const PER_EPOCH: usize = 8;

/// Allocations of a steady-state epoch of 100 full batches beyond what its
/// products alone allocate, and the products' count.
fn beyond_products(specs: &[(usize, usize, Activation)], batch: usize) -> (usize, usize) {
    let (during, products) = epoch_allocations(specs, 100 * batch, batch);
    assert!(
        during >= products,
        "{during} allocations, fewer than the products' {products}"
    );
    (during - products, products)
}

#[test]
fn an_epoch_of_small_layers_allocates_nothing_per_batch() {
    let specs = [
        (64, 32, Activation::Relu),
        (32, 16, Activation::Gelu),
        (16, 10, Activation::Softmax),
    ];
    // 1000 rows in batches of 16: 62 full batches and a smaller last one. The
    // epoch stays on the calling thread.
    let (during, products) = epoch_allocations(&specs, 1000, 16);
    assert_eq!(products, 0, "these products should all go to nano-gemm");
    assert!(
        during <= 1,
        "a steady-state epoch of 63 steps allocated {during} times"
    );
}

#[test]
fn an_epoch_of_fashion_sized_layers_allocates_nothing_per_batch() {
    // 784-256-128-10 at batch 128: in float32 every product goes to nano-gemm.
    let specs = [
        (784, 256, Activation::Relu),
        (256, 128, Activation::Relu),
        (128, 10, Activation::Softmax),
    ];
    let (beyond, products) = beyond_products(&specs, 128);
    assert_eq!(products, 0, "these products should all go to nano-gemm");
    assert!(
        beyond <= PER_EPOCH,
        "a steady-state epoch of 100 steps allocated {beyond} times"
    );
}

#[test]
fn an_epoch_of_large_layers_allocates_only_inside_the_products() {
    // 128 x 4096 x 128 is cut into two panels of 2^25 multiply-adds: gemm's.
    let specs = [
        (4096, 128, Activation::Relu),
        (128, 10, Activation::Softmax),
    ];
    let (beyond, products) = beyond_products(&specs, 128);
    assert!(products > 0, "the 4096 x 128 products should go to gemm");
    assert!(
        beyond <= PER_EPOCH,
        "a steady-state epoch of 100 steps allocated {beyond} times beyond its products'"
    );
}
