//! Multilayer perceptrons trained by exact backpropagation.
//!
//! The pure Rust core: activations, losses, dense layers, the network's forward
//! and backward passes, SGD, and the epoch loop. The PyO3 bindings live in
//! [`python`], compiled only with the `python` feature, so `cargo test` needs no
//! Python.
//!
//! Conventions: matrices are row-major with one sample per row; `W` is
//! `fan_in x fan_out`; losses are means over the batch (and over outputs for the
//! element-wise ones).

pub mod activation;
pub mod dense;
pub mod error;
pub mod gemm;
pub mod loss;
pub mod network;
pub mod optim;
pub mod real;
pub mod threads;
pub mod train;

#[cfg(feature = "python")]
mod python;

pub use activation::Activation;
pub use error::{Error, Result};
pub use loss::{Loss, Targets};
pub use network::Network;
pub use optim::{Sgd, Velocity};
pub use real::Real;
pub use train::{train_epoch, EpochStats, Stop, Workspace};
