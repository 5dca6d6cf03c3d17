//! Throughput of the `gemm` crate (candle's CPU GEMM, with its AVX-512
//! kernels) at the C2F-TCN's convolution shapes: the floor under syncseg's
//! CPU times (BENCHMARKS.md, issue 22). `scripts/bench_vs_pytorch.py gemm`
//! times PyTorch's matmul at the same shapes.
//!
//!     cargo run --release -p syncseg-core --example gemm_peak
fn main() {
    let threads = candle_core::utils::get_num_threads();
    // (rows, columns, depth): the first convolution as one im2col GEMM and
    // as one of its five taps, a 256-wide layer at T/2, a small deep layer,
    // a 1024-deep tap.
    let shapes = [
        (256usize, 600usize, 5120usize),
        (256, 600, 1280),
        (256, 300, 1280),
        (128, 75, 640),
        (256, 600, 1024),
    ];
    for (m, n, k) in shapes {
        let a = vec![1.0f32; m * k];
        let b = vec![1.0f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let iters = 50;
        let mut run = || {
            // SAFETY: a, b, c are m×k, k×n, m×n row-major and distinct.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(threads),
                );
            }
        };
        for _ in 0..5 {
            run();
        }
        let t0 = std::time::Instant::now();
        for _ in 0..iters {
            run();
        }
        let s = t0.elapsed().as_secs_f64() / iters as f64;
        let gflops = 2.0 * (m * n * k) as f64 / s / 1e9;
        println!("{m}x{n}x{k}: {:.3} ms, {gflops:.1} GFLOP/s", s * 1e3);
    }
}
