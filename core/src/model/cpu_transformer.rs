//! The CPU inference executor's transformer kernels ([`super::cpu_infer`]):
//! LayerNorm over channels, attention, and the element-wise activations,
//! on channel-major windows `[C, T]`, each window (and each head) on its
//! own thread with single-threaded GEMMs.

use rayon::prelude::*;

use super::ops::MASK_PENALTY;

/// Elements below which an element-wise pass stays on one thread.
const PARALLEL_MIN: usize = 1 << 16;

/// Whether `work` elements are worth sharing out (never with one thread,
/// e.g. in the browser's wasm build).
pub(crate) fn parallel(work: usize) -> bool {
    work >= PARALLEL_MIN && super::cpu_conv::threads() > 1
}

/// `f(dst_chunk, src_chunk)` over the `i`-th chunks of `dst` (`chunk`
/// elements each) and `src` (`chunk · ratio`), in parallel when there is
/// enough work.
pub(crate) fn zip_chunks(
    dst: &mut [f32],
    src: &[f32],
    (chunk, ratio): (usize, usize),
    f: impl Fn(&mut [f32], &[f32]) + Sync + Send,
) {
    let (chunk, src_chunk) = (chunk.max(1), (chunk * ratio).max(1));
    if parallel(dst.len()) {
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(src_chunk))
            .for_each(|(d, s)| f(d, s));
    } else {
        dst.chunks_mut(chunk)
            .zip(src.chunks(src_chunk))
            .for_each(|(d, s)| f(d, s));
    }
}

/// Chunks for element-wise passes: large enough to amortise a task.
pub(crate) const ELEMENTWISE_CHUNK: (usize, usize) = (1 << 14, 1);

/// The exact GELU as candle computes it in f32:
/// `(erf(x/√2) + 1) · 0.5 · x`.
pub(crate) fn gelu(x: f32) -> f32 {
    (libm::erff(x * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * x
}

/// SiLU(a) · b.
pub(crate) fn swiglu(a: f32, b: f32) -> f32 {
    a / (1.0 + (-a).exp()) * b
}

/// LayerNorm over the `c` channels of every frame of one window `x` `[c,
/// t]` into `y`: two passes (mean, then the mean squared deviation), the
/// sums vectorised along the frames.
pub(crate) fn layer_norm_window(
    x: &[f32],
    y: &mut [f32],
    (c, t): (usize, usize),
    weight: &[f32],
    bias: &[f32],
    eps: f32,
) {
    let mut mean = vec![0f32; t];
    for row in x.chunks_exact(t) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= c as f32);
    let mut var = vec![0f32; t];
    for row in x.chunks_exact(t) {
        for ((s, &v), &m) in var.iter_mut().zip(row).zip(&mean) {
            let d = v - m;
            *s += d * d;
        }
    }
    let rstd: Vec<f32> = var
        .iter()
        .map(|&s| 1.0 / (s / c as f32 + eps).sqrt())
        .collect();
    for ((yrow, xrow), (&g, &b)) in y
        .chunks_exact_mut(t)
        .zip(x.chunks_exact(t))
        .zip(weight.iter().zip(bias))
    {
        for (((o, &v), &m), &r) in yrow.iter_mut().zip(xrow).zip(&mean).zip(&rstd) {
            *o = (v - m) * r * g + b;
        }
    }
}

/// A matrix view for the gemm crate: pointer, row stride, column stride.
#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

/// `dst[m×n] = scale · lhs[m×k] · rhs[k×n]` on one thread.
///
/// # Safety
/// Every view must address its matrix inside live allocations; `dst` must
/// not overlap the inputs.
unsafe fn gemm_into(
    dst: (*mut f32, isize, isize),
    (m, n, k): (usize, usize, usize),
    lhs: View,
    rhs: View,
    scale: f32,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst.0,
        dst.2,
        dst.1,
        false,
        lhs.ptr,
        lhs.cs,
        lhs.rs,
        rhs.ptr,
        rhs.cs,
        rhs.rs,
        0.0,
        scale,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// Multi-head self-attention over windows: `qkv` `[B, 3W, T]` (q, k, v in
/// row blocks of W per window), into `out` `[B, W, T]`; keys whose `mask`
/// (`[B, T]`) is 0 get `−1e9` added to their scores. Each (window, head)
/// is a task: its scores `[T (queries), T (keys)]` in a per-thread buffer.
pub(crate) fn attention(
    qkv: &[f32],
    out: &mut [f32],
    (w, t): (usize, usize),
    heads: usize,
    mask: Option<&[f32]>,
) {
    let hd = w / heads;
    let run = |(i, o): (usize, &mut [f32])| {
        let (win, h) = (i / heads, i % heads);
        let base = win * 3 * w * t;
        let rows = |r0: usize| &qkv[base + r0 * t..base + (r0 + hd) * t];
        let (q, k, v) = (rows(h * hd), rows(w + h * hd), rows(2 * w + h * hd));
        let m = mask.map(|m| &m[win * t..(win + 1) * t]);
        SCORES.with(|s| attention_head(q, k, v, o, (hd, t), m, &mut s.borrow_mut()));
    };
    if parallel(out.len() * t) {
        out.par_chunks_mut(hd * t).enumerate().for_each(run);
    } else {
        out.chunks_mut(hd * t).enumerate().for_each(run);
    }
}

thread_local! {
    /// One head's scores, reused by the tasks of this thread.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One head: `o` `[hd, T]` = `v · softmax(qᵀk / √hd + mask)ᵀ`, with `q`,
/// `k`, `v` `[hd, T]`.
fn attention_head(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &mut [f32],
    (hd, t): (usize, usize),
    mask: Option<&[f32]>,
    scores: &mut Vec<f32>,
) {
    scores.resize(t * t, 0.0);
    let scale = 1.0 / (hd as f32).sqrt();
    // SAFETY: qᵀ is t×hd at strides (1, t) over q (hd·t); k is hd×t
    // row-major; scores is t×t row-major.
    unsafe {
        gemm_into(
            (scores.as_mut_ptr(), t as isize, 1),
            (t, t, hd),
            View {
                ptr: q.as_ptr(),
                rs: 1,
                cs: t as isize,
            },
            View {
                ptr: k.as_ptr(),
                rs: t as isize,
                cs: 1,
            },
            scale,
        );
    }
    for row in scores.chunks_exact_mut(t) {
        if let Some(m) = mask {
            for (s, &keep) in row.iter_mut().zip(m) {
                if keep == 0.0 {
                    *s -= MASK_PENALTY as f32;
                }
            }
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for s in row.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|s| *s *= inv);
    }
    // SAFETY: v is hd×t row-major; scoresᵀ is t×t at strides (1, t); o is
    // hd×t row-major.
    unsafe {
        gemm_into(
            (o.as_mut_ptr(), t as isize, 1),
            (hd, t, t),
            View {
                ptr: v.as_ptr(),
                rs: t as isize,
                cs: 1,
            },
            View {
                ptr: scores.as_ptr(),
                rs: 1,
                cs: t as isize,
            },
            1.0,
        );
    }
}
