// Sum of each row over time: out[out0 + r] (+)= scale · Σ_t x[(row0 + r)·t_len + t].
// A bias's gradient (Σ_t dy), and the per-channel sums of BatchNorm's
// backward. One workgroup per row, a tree sum in workgroup memory: no
// atomics, and the same summation order on every device.

struct Params {
    t_len: u32,
    row0: u32,   // first row of x
    out0: u32,   // first element of out
    flags: u32,  // bit 0: accumulate into out
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const THREADS: u32 = 256u;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn row_sum(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let base = (p.row0 + wid.x) * p.t_len;
    var s = 0.0;
    for (var t = lid.x; t < p.t_len; t += THREADS) {
        s += x[base + t];
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var half = THREADS / 2u; half > 0u; half /= 2u) {
        if (lid.x < half) {
            partial[lid.x] += partial[lid.x + half];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        let idx = p.out0 + wid.x;
        var v = p.scale * partial[0];
        if ((p.flags & 1u) != 0u) {
            v += out[idx];
        }
        out[idx] = v;
    }
}
