//! The WGSL kernels, one file per family, each beside the Rust that
//! describes its entry points (workgroup size, bindings) and encodes its
//! dispatches. The descriptions here are the single source of truth for the
//! host side; a test checks each against what naga reads from the shader.

pub mod activation_grad;
pub mod adam;
pub mod add;
pub mod attention;
pub mod attention_grad;
pub mod batch_norm;
pub mod conv;
pub mod conv_grad;
pub mod copy;
pub mod ensemble;
pub mod ensemble_grad;
pub mod gelu;
pub mod layer_norm;
pub mod layer_norm_grad;
pub mod mse_grad;
pub mod pool;
pub mod pool_grad;
pub mod reduce;
pub mod row_sum;
pub mod seg_loss;
pub mod swiglu;

pub use crate::kernel::{Access, Kernel};

/// Every kernel, for pipeline creation and validation.
pub const ALL: &[Kernel] = &[
    conv::CONV1D,
    pool::MAX_POOL,
    pool::RESAMPLE_LINEAR,
    copy::COPY_WINDOW,
    ensemble::ENSEMBLE_HEAD,
    layer_norm::LAYER_NORM,
    attention::ATTENTION,
    reduce::REDUCE_SUM,
    swiglu::SWIGLU,
    conv_grad::CONV1D_GRAD_INPUT,
    conv_grad::CONV1D_GRAD_WEIGHT,
    row_sum::ROW_SUM,
    activation_grad::RELU_GRAD,
    adam::ADAM_STEP,
    pool_grad::MAX_POOL_GRAD,
    pool_grad::RESAMPLE_LINEAR_GRAD,
    batch_norm::BN_STATS,
    batch_norm::BN_APPLY,
    batch_norm::BN_GRAD_PARAMS,
    batch_norm::BN_GRAD_INPUT,
    ensemble_grad::ENSEMBLE_HEAD_GRAD,
    seg_loss::SEG_LOSS_GRAD,
    mse_grad::MASKED_MSE_GRAD,
    layer_norm_grad::LAYER_NORM_GRAD,
    gelu::GELU,
    gelu::GELU_GRAD,
    attention_grad::ATTENTION_GRAD_STATS,
    attention_grad::ATTENTION_GRAD_Q,
    attention_grad::ATTENTION_GRAD_KV,
    add::ADD_INTO,
];

/// Number of workgroups of `size` that cover `n` items.
pub(crate) fn groups(n: usize, size: u32) -> u32 {
    n.div_ceil(size as usize) as u32
}

/// Workgroups per row of the 2-D grid of the element-wise kernels (WebGPU
/// allows 65535 per dimension); they index `gid.x + gid.y · nwg.x · 256`.
const ROW: usize = 4096;

/// The 2-D grid of 256-wide workgroups covering `len` elements.
pub(crate) fn elementwise_grid(len: usize) -> [u32; 3] {
    let wgs = len.div_ceil(256).max(1);
    if wgs <= ROW {
        [wgs as u32, 1, 1]
    } else {
        [ROW as u32, wgs.div_ceil(ROW) as u32, 1]
    }
}
