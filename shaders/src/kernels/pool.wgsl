// Max pooling and linear resampling along time, per channel of `[C, T]`.
// Dispatch: x over time in blocks of 256, y over channels.

struct PoolParams {
    channels: u32,
    t_in: u32,
    t_out: u32,  // floor(t_in / k)
    k: u32,      // kernel = stride
}

@group(0) @binding(0) var<storage, read> pool_x: array<f32>;
@group(0) @binding(1) var<storage, read_write> pool_y: array<f32>;
@group(0) @binding(2) var<uniform> pp: PoolParams;

@compute @workgroup_size(256, 1, 1)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let c = gid.y;
    if (t >= pp.t_out || c >= pp.channels) {
        return;
    }
    let base = c * pp.t_in + t * pp.k;
    var m = pool_x[base];
    for (var j = 1u; j < pp.k; j++) {
        m = max(m, pool_x[base + j]);
    }
    pool_y[c * pp.t_out + t] = m;
}

struct ResampleParams {
    channels: u32,
    t_in: u32,
    t_up: u32,    // resampled length; frames t_up..t_out are zero padding
    t_out: u32,   // row stride of the output
    out_c0: u32,  // first output row
}

@group(0) @binding(0) var<storage, read> rs_x: array<f32>;
// Per output frame: (source index i0, bitcast weight w); y = (1−w)·x[i0] + w·x[min(i0+1, t_in−1)].
// Computed on the host in f64 exactly as the CPU model's interpolation matrix.
@group(0) @binding(1) var<storage, read> rs_table: array<u32>;
@group(0) @binding(2) var<storage, read_write> rs_y: array<f32>;
@group(0) @binding(3) var<uniform> rp: ResampleParams;

@compute @workgroup_size(256, 1, 1)
fn resample_linear(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let c = gid.y;
    if (t >= rp.t_out || c >= rp.channels) {
        return;
    }
    var v = 0.0;
    if (t < rp.t_up) {
        let i0 = rs_table[2u * t];
        let wt = bitcast<f32>(rs_table[2u * t + 1u]);
        let i1 = min(i0 + 1u, rp.t_in - 1u);
        v = (1.0 - wt) * rs_x[c * rp.t_in + i0] + wt * rs_x[c * rp.t_in + i1];
    }
    rs_y[(rp.out_c0 + c) * rp.t_out + t] = v;
}
