// Backward of layer_norm.wgsl (LayerNorm over the channels of each frame of
// `[B, C, block]`), one thread per frame as the forward:
//   x̂ = (x − μ)·r,  r = 1/sqrt(σ² + eps),  y = γ·x̂ + β,  g = ∂L/∂y
//   dx[c] = r · (g[c]·γ[c] − mean_c(g·γ) − x̂[c] · mean_c(g·γ·x̂))
// and, for the parameters' gradients (row sums over time, row_sum.wgsl),
// gx̂[c, t] = g·x̂ is written beside dx: dγ = Σ_t gx̂, dβ = Σ_t g.

struct NormParams {
    channels: u32,
    frames: u32,
    eps: f32,
    flags: u32,  // bit 0: accumulate into dx
    block: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read_write> gxhat: array<f32>;
@group(0) @binding(5) var<uniform> np: NormParams;

// Channel 0 of frame t; channel c is `np.block` further per channel.
fn base(t: u32) -> u32 {
    return t / np.block * np.channels * np.block + t % np.block;
}

@compute @workgroup_size(256, 1, 1)
fn layer_norm_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= np.frames) {
        return;
    }
    let b0 = base(t);
    let n = f32(np.channels);
    var sum = 0.0;
    for (var c = 0u; c < np.channels; c++) {
        sum += x[b0 + c * np.block];
    }
    let mean = sum / n;
    var sq = 0.0;
    for (var c = 0u; c < np.channels; c++) {
        let d = x[b0 + c * np.block] - mean;
        sq += d * d;
    }
    let r = 1.0 / sqrt(sq / n + np.eps);
    var sg = 0.0;
    var sgx = 0.0;
    for (var c = 0u; c < np.channels; c++) {
        let idx = b0 + c * np.block;
        let gg = dy[idx] * gamma[c];
        sg += gg;
        sgx += gg * (x[idx] - mean) * r;
    }
    sg /= n;
    sgx /= n;
    for (var c = 0u; c < np.channels; c++) {
        let idx = b0 + c * np.block;
        let xh = (x[idx] - mean) * r;
        var v = r * (dy[idx] * gamma[c] - sg - xh * sgx);
        if ((np.flags & 1u) != 0u) {
            v += dx[idx];
        }
        dx[idx] = v;
        gxhat[idx] = dy[idx] * xh;
    }
}
