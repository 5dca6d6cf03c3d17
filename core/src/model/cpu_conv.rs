//! The same-padded temporal convolution on the CPU as `k` GEMMs over
//! shifted views of the input, with no im2col buffer, as candle custom ops
//! with their own backward.
//!
//! Tap `j` of a convolution with dilation `d` and `k` taps reads frame
//! `t + o`, `o = j·d − d·⌊k/2⌋` (causal: `o = j·d − d·(k − 1)`), and zero
//! padding outside `0..T`. So
//!
//! ```text
//! y[:, t]        += W_j · x[:, t + o]          (forward)
//! dx[:, t + o]   += W_jᵀ · dy[:, t]            (backward, data)
//! dW_j           += dy[:, t] · x[:, t + o]ᵀ    (backward, weight)
//! ```
//!
//! each over the frames `t` whose `t + o` is inside the window: one GEMM
//! per tap on strided views of the contiguous tensors (`W_j` is the
//! weight's tap-`j` column, stride `k`). candle's `conv1d` instead copies a
//! `[T, cin·k]` im2col matrix (single-threaded, strided gathers) and
//! transposes its result; the autodiff of stacked shifted views (this
//! crate's previous training path) materialised five copies forward and
//! five zero-padded gradients backward. The GEMMs are the `gemm` crate's
//! (candle's own), multi-threaded on candle's thread count.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::cpu_float::{contiguous, in_element_type, CpuFloat as Real};

/// What a convolution computes: taps, their spacing, and whether a ReLU
/// follows (fused into the output pass and its gradient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Taps.
    pub k: usize,
    /// Frames between taps.
    pub dilation: usize,
    /// Taps at and before `t` only (`o = j·d − d·(k − 1)`).
    pub causal: bool,
    /// `relu(conv(x))` rather than `conv(x)`.
    pub relu: bool,
}

impl ConvShape {
    /// Zero frames before the first input frame (a causal convolution's
    /// reach into the past).
    pub(crate) fn left_pad(&self) -> usize {
        super::ops::left_pad(self.k, self.dilation, self.causal)
    }

    /// Frame offset of tap `j`.
    fn offset(&self, j: usize) -> isize {
        (j * self.dilation) as isize - self.left_pad() as isize
    }

    /// For tap `j` over `t` frames: the first output frame, the first input
    /// frame, and how many frames the tap reaches (0 when none).
    fn span(&self, j: usize, t: usize) -> (usize, usize, usize) {
        let o = self.offset(j);
        let out0 = (-o).max(0) as usize;
        let in0 = o.max(0) as usize;
        let n = (t as isize - o.abs()).max(0) as usize;
        (out0, in0, n)
    }
}

/// A matrix view: base pointer, row stride and column stride (elements).
#[derive(Clone, Copy)]
struct View<T> {
    ptr: *const T,
    rs: usize,
    cs: usize,
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` as the convolutions ran before the
/// row split (one multi-threaded GEMM per tap and window): the tests'
/// reference order.
///
/// # Safety
/// As [`matmul_on`].
#[cfg(test)]
unsafe fn matmul<T: Real>(
    dst: *mut T,
    dst_rs: usize,
    dst_cs: usize,
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    lhs: View<T>,
    rhs: View<T>,
) {
    // Below ~32k multiply-adds the rayon hand-off costs more than it saves.
    let parallelism = if m * n * k >= 1 << 15 {
        gemm::Parallelism::Rayon(threads())
    } else {
        gemm::Parallelism::None
    };
    matmul_on(
        parallelism,
        dst,
        dst_rs,
        dst_cs,
        accumulate,
        (m, n, k),
        lhs,
        rhs,
    )
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` on strided views, on `parallelism`.
///
/// # Safety
/// Every view must address `m×k`, `k×n` and `m×n` elements inside live
/// allocations, and `dst` must not overlap `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_on<T: Real>(
    parallelism: gemm::Parallelism,
    dst: *mut T,
    dst_rs: usize,
    dst_cs: usize,
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    lhs: View<T>,
    rhs: View<T>,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        dst_rs as isize,
        accumulate,
        lhs.ptr,
        lhs.cs as isize,
        lhs.rs as isize,
        rhs.ptr,
        rhs.cs as isize,
        rhs.rs as isize,
        T::ONE,
        T::ONE,
        false,
        false,
        false,
        parallelism,
    );
}

/// candle's thread count, read once: candle recomputes it on every call
/// (its physical-core count parses `/proc/cpuinfo`, ~5 % of an inference).
pub(crate) fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(candle_core::utils::get_num_threads)
}

/// `y = conv(x) + bias`, then ReLU when `shape.relu`: `x` `[B, cin, T]`,
/// `w` `[cout, cin, k]`, `bias` `[cout]`.
fn forward<T: Real>(
    shape: ConvShape,
    x: &[T],
    w: &[T],
    bias: &[T],
    (b, cin, t): (usize, usize, usize),
) -> Vec<T> {
    let mut y = vec![T::default(); b * bias.len() * t];
    forward_into(shape, x, w, bias, (b, cin, t), &mut y);
    y
}

/// [`forward`] into `y` `[B, cout, T]`, whose contents are overwritten
/// (the CPU inference executor's reused buffers, [`super::cpu_infer`]).
///
/// The output rows are split into one block per thread, and each thread
/// runs its block through every window and tap with single-threaded GEMMs,
/// the bias fill and the ReLU included: one fork-join per convolution
/// rather than one per tap and window (at T = 600 the scheduler's wake-ups
/// between those were ~15 % of an inference), and the epilogue runs in
/// parallel on rows still in cache. The `gemm` crate's depth blocking
/// depends on the depth only, so a row block sums every output in the same
/// order as the whole matrix does: the same bits as one multi-threaded
/// GEMM per tap (a test below checks it).
pub(crate) fn forward_into<T: Real>(
    shape: ConvShape,
    x: &[T],
    w: &[T],
    bias: &[T],
    (b, cin, t): (usize, usize, usize),
    y: &mut [T],
) {
    let k = shape.k;
    let cout = bias.len();
    assert!(
        x.len() == b * cin * t && y.len() == b * cout * t && w.len() == cout * cin * k,
        "cpu conv: buffer sizes do not fit [{b}, {cin}, {t}] → {cout} with {k} taps"
    );
    let out = SendPtr(y.as_mut_ptr());
    for_row_blocks(cout, b * cout * cin * k * t, |rows| {
        // SAFETY: the blocks are disjoint row ranges of every window, so
        // no two threads write one element; `y` outlives the call.
        unsafe { forward_rows(shape, x, w, bias, (b, cin, t), out, rows) }
    });
}

/// `f` over the [`row_blocks`] of `rows` rows, in parallel when there is
/// more than one, returning when all are done.
fn for_row_blocks(rows: usize, macs: usize, f: impl Fn(std::ops::Range<usize>) + Sync + Send) {
    let blocks = row_blocks(rows, macs);
    if blocks.len() == 1 {
        f(0..rows);
    } else {
        use rayon::prelude::*;
        blocks.into_par_iter().for_each(f);
    }
}

/// A pointer that threads writing disjoint parts of one buffer share.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
impl<T> SendPtr<T> {
    /// The pointer (a method, so that closures capture the whole wrapper
    /// rather than its non-`Send` field).
    fn ptr(self) -> *mut T {
        self.0
    }
}

// SAFETY: only used for disjoint writes inside one rayon scope.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// Multiply-adds below which a convolution runs on one thread: waking the
/// pool costs ~10–30 µs, what ~1M multiply-adds take on one core.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// The row blocks of `rows` output rows, one per thread, or one block when
/// `macs` is too little work to share. Every block but the last is a
/// multiple of 16 rows (the f32 microkernel's height) and none is shorter
/// than 16 unless it is the only one: the `gemm` crate computes a one-row
/// product as a matrix-vector product, which sums in another order.
fn row_blocks(rows: usize, macs: usize) -> Vec<std::ops::Range<usize>> {
    let threads = if macs >= PARALLEL_MIN_MACS {
        threads().max(1)
    } else {
        1
    };
    let per = (rows / threads / 16 * 16).max(16);
    let n = (rows / per).clamp(1, threads);
    (0..n)
        .map(|i| i * per..if i + 1 == n { rows } else { (i + 1) * per })
        .collect()
}

/// Rows `rows` of every window of `y = conv(x) + bias` (then ReLU), on
/// this thread.
///
/// # Safety
/// `y` must address `[b, cout, t]` elements, `cout = bias.len()`, that no
/// other thread touches in `rows`.
unsafe fn forward_rows<T: Real>(
    shape: ConvShape,
    x: &[T],
    w: &[T],
    bias: &[T],
    (b, cin, t): (usize, usize, usize),
    y: SendPtr<T>,
    rows: std::ops::Range<usize>,
) {
    let cout = bias.len();
    for (win, xb) in x.chunks(cin * t).enumerate().take(b) {
        // SAFETY: rows `rows` of window `win` are rows·t elements from
        // there; the input view of every tap's span stays inside the
        // window's rows since in0 + n ≤ t.
        window_rows(
            shape,
            |j| shape.span(j, t),
            (xb.as_ptr(), t, cin),
            w,
            bias,
            rows.clone(),
            (y.0.add((win * cout + rows.start) * t), t),
            t,
        );
    }
}

/// Input channels per GEMM call. The `gemm` crate picks its depth
/// blocking from all three matrix sizes (up to 64 × 64 outputs it cuts at
/// 512, above it splits the depth evenly), so one output frame would sum
/// its channels in two orders at two frame counts: a stream's few frames
/// and a file's thousands. Calls of at most 512 channels are one block at
/// every size; the split is the one `gemm` makes itself for large
/// matrices on this machine (1024 → 2 × 512), so the bits stay as before.
const DEPTH_BLOCK: usize = 512;

/// The channel ranges of [`DEPTH_BLOCK`]-bounded, even GEMM calls over
/// `cin` channels.
fn depth_blocks(cin: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let parts = cin.div_ceil(DEPTH_BLOCK).max(1);
    let per = cin.div_ceil(parts);
    (0..parts).map(move |i| i * per..((i + 1) * per).min(cin))
}

/// Rows `rows` of one window's `y = conv(x) + bias` (then ReLU), on this
/// thread: the bias, then for each tap `j` one GEMM per [`depth_blocks`]
/// over the frames it reaches, `span(j)` = (first output frame, first
/// input frame, frames), then the ReLU. Every forward convolution, whole
/// files and streams alike, runs this, so a frame's output has the same
/// bits whichever way it was computed.
///
/// # Safety
/// `x` (base, row stride, channels) must address `cin` rows holding every
/// tap's span; `y` (base of row `rows.start`, row stride) must address
/// `rows.len()` rows of every span's output frames, which no other thread
/// touches; neither may overlap the other.
#[allow(clippy::too_many_arguments)]
unsafe fn window_rows<T: Real>(
    shape: ConvShape,
    span: impl Fn(usize) -> (usize, usize, usize),
    (x, x_rs, cin): (*const T, usize, usize),
    w: &[T],
    bias: &[T],
    rows: std::ops::Range<usize>,
    (y, y_rs): (*mut T, usize),
    frames: usize,
) {
    let (k, m) = (shape.k, rows.len());
    for (i, &bo) in bias[rows.clone()].iter().enumerate() {
        std::slice::from_raw_parts_mut(y.add(i * y_rs), frames).fill(bo);
    }
    for j in 0..k {
        let (out0, in0, n) = span(j);
        for c in depth_blocks(cin) {
            // W_j's rows `rows`, channels `c` are m×|c| at stride (cin·k,
            // k) from w[rows.start·cin·k + c.start·k + j].
            matmul_on(
                gemm::Parallelism::None,
                y.add(out0),
                y_rs,
                1,
                true,
                (m, n, c.len()),
                View {
                    ptr: w.as_ptr().add((rows.start * cin + c.start) * k + j),
                    rs: cin * k,
                    cs: k,
                },
                View {
                    ptr: x.add(c.start * x_rs + in0),
                    rs: x_rs,
                    cs: 1,
                },
            );
        }
    }
    if shape.relu {
        for i in 0..m {
            for v in std::slice::from_raw_parts_mut(y.add(i * y_rs), frames) {
                // NaN to 0 as well, as candle's relu does.
                if (*v).partial_cmp(&T::default()) != Some(std::cmp::Ordering::Greater) {
                    *v = T::default();
                }
            }
        }
    }
}

/// The last `n` output frames of a causal convolution, into `y`
/// `[cout, n]` (overwritten): `x` holds `cin` rows at stride `x_rs`, each
/// the `reach = dilation·(k − 1)` frames before the first output frame
/// then the `n` frames up to the last (zeros before the start of the
/// stream). The same GEMMs as [`forward_into`] over a whole file, so the
/// same bits; a stream keeps `x` in a ring ([`crate::stream`]).
pub(crate) fn forward_causal_tail(
    shape: ConvShape,
    x: &[f32],
    x_rs: usize,
    w: &[f32],
    bias: &[f32],
    n: usize,
    y: &mut [f32],
) {
    let (k, cout) = (shape.k, bias.len());
    let reach = shape.left_pad();
    let cin = w.len() / (cout * k).max(1);
    assert!(
        shape.causal
            && w.len() == cout * cin * k
            && y.len() == cout * n
            && x_rs >= reach + n
            && x.len() >= (cin.max(1) - 1) * x_rs + reach + n,
        "cpu conv: a causal tail of {n} frames does not fit its buffers"
    );
    // SAFETY: tap j reads columns reach + o_j .. reach + o_j + n ⊂ 0 ..
    // reach + n of every row (o_j ∈ [−reach, 0]), inside `x` (asserted);
    // `y` is cout rows of n.
    unsafe {
        window_rows(
            shape,
            |j| (0, (reach as isize + shape.offset(j)) as usize, n),
            (x.as_ptr(), x_rs, cin),
            w,
            bias,
            0..cout,
            (y.as_mut_ptr(), n),
            n,
        );
    }
}

/// `dx` `[B, cin, T]` from `dy` `[B, cout, T]` and `w` `[cout, cin, k]`,
/// the rows of `dx` split across threads as [`forward_into`] splits `y`.
fn backward_data<T: Real>(
    shape: ConvShape,
    dy: &[T],
    w: &[T],
    b: usize,
    cin: usize,
    cout: usize,
    t: usize,
) -> Vec<T> {
    let k = shape.k;
    let mut dx = vec![T::default(); b * cin * t];
    let out = SendPtr(dx.as_mut_ptr());
    for_row_blocks(cin, b * cout * cin * k * t, |rows| {
        let m = rows.len();
        for (win, dyb) in dy.chunks(cout * t).enumerate().take(b) {
            for j in 0..k {
                let (out0, in0, n) = shape.span(j, t);
                // SAFETY: rows `rows` of W_jᵀ are m×cout at stride (k,
                // cin·k) from w[rows.start·k + j]; dy's view cout×n from
                // dyb[out0]; dx's m×n from row rows.start of window `win`
                // at in0, rows no other block writes.
                unsafe {
                    matmul_on(
                        gemm::Parallelism::None,
                        out.ptr().add((win * cin + rows.start) * t + in0),
                        t,
                        1,
                        true,
                        (m, n, cout),
                        View {
                            ptr: w.as_ptr().add(rows.start * k + j),
                            rs: k,
                            cs: cin * k,
                        },
                        View {
                            ptr: dyb.as_ptr().add(out0),
                            rs: t,
                            cs: 1,
                        },
                    );
                }
            }
        }
    });
    dx
}

/// `dW` `[cout, cin, k]` from `dy` `[B, cout, T]` and `x` `[B, cin, T]`,
/// summed over the batch, the rows of `dW` split across threads.
fn backward_weight<T: Real>(
    shape: ConvShape,
    dy: &[T],
    x: &[T],
    b: usize,
    cin: usize,
    cout: usize,
    t: usize,
) -> Vec<T> {
    let k = shape.k;
    let mut dw = vec![T::default(); cout * cin * k];
    let out = SendPtr(dw.as_mut_ptr());
    for_row_blocks(cout, b * cout * cin * k * t, |rows| {
        let m = rows.len();
        for (dyb, xb) in dy.chunks(cout * t).zip(x.chunks(cin * t)).take(b) {
            for j in 0..k {
                let (out0, in0, n) = shape.span(j, t);
                // SAFETY: rows `rows` of dW_j are m×cin at stride (cin·k,
                // k) from dw[rows.start·cin·k + j], rows no other block
                // writes; dy's view m×n from row rows.start of dyb at
                // out0; xᵀ's n×cin from xb[in0] at stride (1, t).
                unsafe {
                    matmul_on(
                        gemm::Parallelism::None,
                        out.ptr().add(rows.start * cin * k + j),
                        cin * k,
                        k,
                        true,
                        (m, cin, n),
                        View {
                            ptr: dyb.as_ptr().add(rows.start * t + out0),
                            rs: t,
                            cs: 1,
                        },
                        View {
                            ptr: xb.as_ptr().add(in0),
                            rs: 1,
                            cs: t,
                        },
                    );
                }
            }
        }
    });
    dw
}

/// `conv(x, w) + bias` (then ReLU) as a differentiable candle op.
struct ConvOp(ConvShape);

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "syncseg-temporal-conv"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, cin, t) = xl.shape().dims3()?;
        let (cout, wcin, k) = wl.shape().dims3()?;
        if wcin != cin || k != self.0.k || bl.shape().dims1()? != cout {
            candle_core::bail!(
                "cpu conv: input {:?}, weight {:?}, bias {:?} do not fit a {}-tap convolution",
                xl.shape(),
                wl.shape(),
                bl.shape(),
                self.0.k
            );
        }
        let y = in_element_type!(xs, T => forward::<T>(
            self.0,
            contiguous(xs, xl, "cpu conv: the input")?,
            contiguous(ws, wl, "cpu conv: the weight")?,
            contiguous(bs, bl, "cpu conv: the bias")?,
            (b, cin, t),
        ));
        Ok((y, Shape::from((b, cout, t))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _bias: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = if self.0.relu {
            (dy * y.gt(0.0)?.to_dtype(dy.dtype())?)?
        } else {
            dy.clone()
        };
        let dy = dy.contiguous()?;
        let dx = dy.apply_op2_no_bwd(w, &BackwardData(self.0))?;
        let dw = dy.apply_op2_no_bwd(x, &BackwardWeight(self.0))?;
        // Over the frames (the contiguous axis), then the windows: candle
        // reduces several axes at once by a single-threaded strided walk,
        // ~8 % of a batch-4 training step.
        let db = dy.sum(2)?.sum(0)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `dx` from `(dy, w)`.
struct BackwardData(ConvShape);

impl CustomOp2 for BackwardData {
    fn name(&self) -> &'static str {
        "syncseg-temporal-conv-backward-data"
    }

    fn cpu_fwd(
        &self,
        dys: &CpuStorage,
        dyl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, cout, t) = dyl.shape().dims3()?;
        let (_, cin, _) = wl.shape().dims3()?;
        let dx = in_element_type!(dys, T => backward_data::<T>(
            self.0,
            contiguous(dys, dyl, "cpu conv: the gradient")?,
            contiguous(ws, wl, "cpu conv: the weight")?,
            b,
            cin,
            cout,
            t,
        ));
        Ok((dx, Shape::from((b, cin, t))))
    }
}

/// `dW` from `(dy, x)`.
struct BackwardWeight(ConvShape);

impl CustomOp2 for BackwardWeight {
    fn name(&self) -> &'static str {
        "syncseg-temporal-conv-backward-weight"
    }

    fn cpu_fwd(
        &self,
        dys: &CpuStorage,
        dyl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, cout, t) = dyl.shape().dims3()?;
        let (_, cin, _) = xl.shape().dims3()?;
        let dw = in_element_type!(dys, T => backward_weight::<T>(
            self.0,
            contiguous(dys, dyl, "cpu conv: the gradient")?,
            contiguous(xs, xl, "cpu conv: the input")?,
            b,
            cin,
            cout,
            t,
        ));
        Ok((dw, Shape::from((cout, cin, self.0.k))))
    }
}

/// `conv(x, w) + bias` (then ReLU when `shape.relu`) over `x` `[B, cin,
/// T]`, `w` `[cout, cin, k]`, `bias` `[cout]`: differentiable, on the CPU
/// (f32 or f64).
pub fn conv1d_same(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    shape: ConvShape,
) -> candle_core::Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &bias.contiguous()?, ConvOp(shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gradcheck::{check, rand, var};
    use candle_core::{DType, Device};

    fn shapes() -> Vec<ConvShape> {
        let mut out = Vec::new();
        for (k, dilation) in [(1, 1), (3, 1), (5, 1), (3, 2), (3, 8), (4, 1)] {
            for relu in [false, true] {
                for causal in [false, true] {
                    out.push(ConvShape {
                        k,
                        dilation,
                        causal,
                        relu,
                    });
                }
            }
        }
        out
    }

    /// Forward equals candle's `conv1d` (+ bias, + ReLU) for every tap
    /// count and dilation, also when the window is shorter than a tap's
    /// reach (those taps see only padding).
    #[test]
    fn forward_matches_candle_conv1d() {
        let dev = Device::Cpu;
        for shape in shapes() {
            for t in [1, 2, 3, 9, 20] {
                let (b, cin, cout) = (2, 3, 4);
                let x = Tensor::from_vec(rand(&[b, cin, t], 1), (b, cin, t), &dev).unwrap();
                let w =
                    Tensor::from_vec(rand(&[cout, cin, shape.k], 2), (cout, cin, shape.k), &dev)
                        .unwrap();
                let bias = Tensor::from_vec(rand(&[cout], 3), cout, &dev).unwrap();
                let ours = conv1d_same(&x, &w, &bias, shape).unwrap();
                let d = shape.dilation;
                // candle pads symmetrically: for an even k its output is
                // one frame longer, the first T frames are ours. A causal
                // convolution is candle's over the input padded on the
                // left only.
                let theirs = if shape.causal {
                    x.pad_with_zeros(2, d * (shape.k - 1), 0)
                        .unwrap()
                        .conv1d(&w, 0, 1, d, 1)
                        .unwrap()
                } else {
                    x.conv1d(&w, d * (shape.k / 2), 1, d, 1).unwrap()
                };
                let theirs = theirs
                    .narrow(2, 0, t)
                    .unwrap()
                    .broadcast_add(&bias.reshape((1, cout, 1)).unwrap())
                    .unwrap();
                let theirs = if shape.relu {
                    theirs.relu().unwrap()
                } else {
                    theirs
                };
                let diff = (ours - theirs)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                assert!(diff < 1e-12, "{shape:?} T={t}: {diff}");
            }
        }
    }

    /// The row-block split gives the bits of one whole-matrix GEMM per tap
    /// (the order the forward summed in before it was split), for blocks
    /// of any size, also ones that are not multiples of the microkernel.
    #[test]
    fn row_blocks_sum_in_the_whole_matrix_order() {
        for (k, dilation, cout, cin, t) in [
            (5, 1, 64, 96, 300),
            (3, 4, 50, 40, 77),
            (1, 1, 33, 128, 600),
        ] {
            let shape = ConvShape {
                k,
                dilation,
                causal: false,
                relu: true,
            };
            let b = 2;
            let x: Vec<f32> = rand(&[b, cin, t], 1).iter().map(|&v| v as f32).collect();
            let w: Vec<f32> = rand(&[cout, cin, k], 2).iter().map(|&v| v as f32).collect();
            let bias: Vec<f32> = rand(&[cout], 3).iter().map(|&v| v as f32).collect();
            // The reference: bias, then one multi-threaded GEMM per tap
            // and window over all rows, then ReLU.
            let mut want = vec![0f32; b * cout * t];
            for (yb, xb) in want.chunks_mut(cout * t).zip(x.chunks(cin * t)) {
                for (row, &bo) in yb.chunks_mut(t).zip(&bias) {
                    row.fill(bo);
                }
                for j in 0..k {
                    let (out0, in0, n) = shape.span(j, t);
                    unsafe {
                        matmul(
                            yb.as_mut_ptr().add(out0),
                            t,
                            1,
                            true,
                            (cout, n, cin),
                            View {
                                ptr: w.as_ptr().add(j),
                                rs: cin * k,
                                cs: k,
                            },
                            View {
                                ptr: xb.as_ptr().add(in0),
                                rs: t,
                                cs: 1,
                            },
                        );
                    }
                }
            }
            want.iter_mut()
                .filter(|v| (**v).partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater))
                .for_each(|v| *v = 0.0);
            #[allow(clippy::single_range_in_vec_init)]
            for blocks in [
                vec![0..cout],
                vec![0..16, 16..cout],
                vec![0..7, 7..cout - 5, cout - 5..cout],
            ] {
                let mut got = vec![f32::NAN; b * cout * t];
                let out = SendPtr(got.as_mut_ptr());
                for rows in blocks.clone() {
                    unsafe { forward_rows(shape, &x, &w, &bias, (b, cin, t), out, rows) };
                }
                let differ = want
                    .iter()
                    .zip(&got)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(differ, 0, "k={k} cout={cout} blocks {blocks:?}");
            }
            let mut got = vec![f32::NAN; b * cout * t];
            forward_into(shape, &x, &w, &bias, (b, cin, t), &mut got);
            let differ: Vec<(usize, f32, f32)> = want
                .iter()
                .zip(&got)
                .enumerate()
                .filter(|(_, (a, b))| a.to_bits() != b.to_bits())
                .map(|(i, (a, b))| (i, *a, *b))
                .collect();
            assert!(
                differ.is_empty(),
                "k={k} cout={cout}: {} differ, first {:?}",
                differ.len(),
                &differ[..differ.len().min(5)]
            );
        }
    }

    /// The backward GEMMs split by rows give the bits of whole-matrix
    /// GEMMs per tap and window, in the order the backward summed before.
    #[test]
    fn backward_row_blocks_sum_in_the_whole_matrix_order() {
        let (k, cout, cin, t, b) = (5, 48, 80, 300, 2);
        let shape = ConvShape {
            k,
            dilation: 2,
            causal: false,
            relu: false,
        };
        let f =
            |n: &[usize], seed| -> Vec<f32> { rand(n, seed).iter().map(|&v| v as f32).collect() };
        let (dy, w, x) = (
            f(&[b, cout, t], 1),
            f(&[cout, cin, k], 2),
            f(&[b, cin, t], 3),
        );
        let (mut dx, mut dw) = (vec![0f32; b * cin * t], vec![0f32; cout * cin * k]);
        for win in 0..b {
            let (dyb, xb) = (&dy[win * cout * t..], &x[win * cin * t..]);
            for j in 0..k {
                let (out0, in0, n) = shape.span(j, t);
                unsafe {
                    matmul(
                        dx.as_mut_ptr().add(win * cin * t + in0),
                        t,
                        1,
                        true,
                        (cin, n, cout),
                        View {
                            ptr: w.as_ptr().add(j),
                            rs: k,
                            cs: cin * k,
                        },
                        View {
                            ptr: dyb.as_ptr().add(out0),
                            rs: t,
                            cs: 1,
                        },
                    );
                    matmul(
                        dw.as_mut_ptr().add(j),
                        cin * k,
                        k,
                        true,
                        (cout, cin, n),
                        View {
                            ptr: dyb.as_ptr().add(out0),
                            rs: t,
                            cs: 1,
                        },
                        View {
                            ptr: xb.as_ptr().add(in0),
                            rs: 1,
                            cs: t,
                        },
                    );
                }
            }
        }
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(u, v)| u.to_bits() == v.to_bits());
        assert!(same(&dx, &backward_data(shape, &dy, &w, b, cin, cout, t)));
        assert!(same(&dw, &backward_weight(shape, &dy, &x, b, cin, cout, t)));
    }

    /// The blocks cover every row once, in multiples of 16 but the last.
    #[test]
    fn row_blocks_cover_the_rows() {
        for rows in [1, 15, 16, 33, 256, 1000] {
            for macs in [0, 1 << 30] {
                let blocks = row_blocks(rows, macs);
                assert_eq!(blocks.first().unwrap().start, 0);
                assert_eq!(blocks.last().unwrap().end, rows);
                for pair in blocks.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                    assert_eq!(pair[0].len() % 16, 0);
                    assert!(pair[1].len() >= 16);
                }
                if macs == 0 {
                    assert_eq!(blocks.len(), 1);
                }
            }
        }
    }

    /// Finite-difference check of the custom backward (data, weight and
    /// bias) in f64, with and without the fused ReLU.
    #[test]
    fn gradients_match_finite_differences() {
        for shape in shapes() {
            for t in [2, 7] {
                let x = var(&[2, 3, t], 1);
                let w = var(&[2, 3, shape.k], 2);
                // Bias away from the ReLU's kink, where the gradient jumps.
                let bias = var(&[2], 3);
                let vars = [x.clone(), w.clone(), bias.clone()];
                check(&vars, &|| {
                    conv1d_same(x.as_tensor(), w.as_tensor(), bias.as_tensor(), shape).unwrap()
                });
            }
        }
    }

    /// The op refuses a weight that does not match its tap count, and f32
    /// runs as f64 does.
    #[test]
    fn refuses_mismatched_weights_and_runs_f32() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 3, 5), DType::F32, &dev).unwrap();
        let w = Tensor::ones((2, 3, 3), DType::F32, &dev).unwrap();
        let b = Tensor::ones(2, DType::F32, &dev).unwrap();
        let shape = ConvShape {
            k: 5,
            dilation: 1,
            causal: false,
            relu: false,
        };
        assert!(conv1d_same(&x, &w, &b, shape).is_err());
        let y = conv1d_same(&x, &w, &b, ConvShape { k: 3, ..shape }).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [1.0; 10]
        );
    }
}
