// LayerNorm over the channels of each frame of `[B, C, block]` (frames =
// B·block; block = frames for one channel-major `[C, T]`): one thread per
// frame, so every channel read is coalesced across the workgroup. Two
// passes (mean, then the mean squared deviation), as the CPU model
// computes it.

struct NormParams {
    channels: u32,
    frames: u32,
    eps: f32,
    block: u32,
}

// Channel 0 of frame t; channel c is `np.block` further per channel.
fn base(t: u32) -> u32 {
    return t / np.block * np.channels * np.block + t % np.block;
}

@group(0) @binding(0) var<storage, read> ln_x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> ln_y: array<f32>;
@group(0) @binding(4) var<uniform> np: NormParams;

@compute @workgroup_size(256, 1, 1)
fn layer_norm(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= np.frames) {
        return;
    }
    let b0 = base(t);
    var sum = 0.0;
    for (var c = 0u; c < np.channels; c++) {
        sum += ln_x[b0 + c * np.block];
    }
    let mean = sum / f32(np.channels);
    var sq = 0.0;
    for (var c = 0u; c < np.channels; c++) {
        let d = ln_x[b0 + c * np.block] - mean;
        sq += d * d;
    }
    let inv = 1.0 / sqrt(sq / f32(np.channels) + np.eps);
    for (var c = 0u; c < np.channels; c++) {
        let idx = b0 + c * np.block;
        ln_y[idx] = (ln_x[idx] - mean) * inv * gamma[c] + beta[c];
    }
}
