// Gradients of pool.wgsl's max pooling and linear resampling, per channel
// of `[C, T]`, each as a gather: one invocation per input element reads the
// output gradients that element fed (no scatter, no float atomics).
// Dispatch: x over time in blocks of 256, y over channels.

struct MaxPoolGradParams {
    channels: u32,
    t_in: u32,
    t_out: u32,  // floor(t_in / k)
    k: u32,
    flags: u32,  // bit 0: accumulate into dx
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> mp_x: array<f32>;
@group(0) @binding(1) var<storage, read> mp_y: array<f32>;   // the forward's output
@group(0) @binding(2) var<storage, read> mp_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> mp_dx: array<f32>;
@group(0) @binding(4) var<uniform> mp: MaxPoolGradParams;

// dx[c, t] = dy[c, t/k] where x[c, t] is its window's maximum (every tied
// maximum, as core's pooling's backward), 0 elsewhere and after the last
// whole window.
@compute @workgroup_size(256, 1, 1)
fn max_pool_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let c = gid.y;
    if (t >= mp.t_in || c >= mp.channels) {
        return;
    }
    let w = t / mp.k;
    var v = 0.0;
    if (w < mp.t_out && mp_x[c * mp.t_in + t] == mp_y[c * mp.t_out + w]) {
        v = mp_dy[c * mp.t_out + w];
    }
    let idx = c * mp.t_in + t;
    if ((mp.flags & 1u) != 0u) {
        v += mp_dx[idx];
    }
    mp_dx[idx] = v;
}

struct ResampleGradParams {
    channels: u32,
    t_in: u32,    // length of x / dx
    t_up: u32,    // resampled length (frames t_up.. of dy are padding)
    t_out: u32,   // row stride of dy
    dy_c0: u32,   // first row of dy
    flags: u32,   // bit 0: accumulate into dx
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> rg_dy: array<f32>;
// The forward's (i0, weight bits) per output frame.
@group(0) @binding(1) var<storage, read> rg_table: array<u32>;
// starts[i] = the first output frame whose i0 ≥ i, for i = 0 ..= t_in
// (i0 is non-decreasing in the output frame).
@group(0) @binding(2) var<storage, read> rg_starts: array<u32>;
@group(0) @binding(3) var<storage, read_write> rg_dx: array<f32>;
@group(0) @binding(4) var<uniform> rgp: ResampleGradParams;

// dx[c, i] = Σ_{j: i0_j = i} (1 − w_j)·dy[j] + Σ_{j: i0_j + 1 = i} w_j·dy[j]
//          (+ Σ_{j: i0_j = i} w_j·dy[j] at the last frame, where i1 clamps to i0).
@compute @workgroup_size(256, 1, 1)
fn resample_linear_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let c = gid.y;
    if (i >= rgp.t_in || c >= rgp.channels) {
        return;
    }
    let row = (rgp.dy_c0 + c) * rgp.t_out;
    let last = i + 1u == rgp.t_in;
    var v = 0.0;
    for (var j = rg_starts[i]; j < rg_starts[i + 1u]; j++) {
        let wt = bitcast<f32>(rg_table[2u * j + 1u]);
        v += select(1.0 - wt, 1.0, last) * rg_dy[row + j];
    }
    if (i > 0u) {
        for (var j = rg_starts[i - 1u]; j < rg_starts[i]; j++) {
            v += bitcast<f32>(rg_table[2u * j + 1u]) * rg_dy[row + j];
        }
    }
    let idx = c * rgp.t_in + i;
    if ((rgp.flags & 1u) != 0u) {
        v += rg_dx[idx];
    }
    rg_dx[idx] = v;
}
