// One head's contribution to the C2F-TCN ensemble:
//   out[k, t0 + t] (+)= weight · softmax_k(resample(head, T)[·, t])   for t < len,
// the head resampled to the window's length by the same (index, weight)
// table as `resample_linear`, straight into the video's probability rows.
// Workgroup y is the window of a batch (training): head `[batch, K, t_head]`,
// out `[batch, K, out_stride]`.

struct EnsembleParams {
    classes: u32,
    t_head: u32,     // head length (row stride of `head`)
    len: u32,        // frames written
    out_stride: u32, // row length of `out`
    out_t0: u32,     // first output frame
    accumulate: u32, // 0: overwrite, 1: add
    weight: f32,     // this head's weight / Σ weights
}

@group(0) @binding(0) var<storage, read> head: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> ep: EnsembleParams;

fn logit(hb: u32, k: u32, i0: u32, i1: u32, wt: f32) -> f32 {
    return (1.0 - wt) * head[hb + k * ep.t_head + i0] + wt * head[hb + k * ep.t_head + i1];
}

@compute @workgroup_size(256, 1, 1)
fn ensemble_head(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= ep.len) {
        return;
    }
    let hb = gid.y * ep.classes * ep.t_head;
    let ob = gid.y * ep.classes * ep.out_stride;
    let i0 = table[2u * t];
    let wt = bitcast<f32>(table[2u * t + 1u]);
    let i1 = min(i0 + 1u, ep.t_head - 1u);
    var m = logit(hb, 0u, i0, i1, wt);
    for (var k = 1u; k < ep.classes; k++) {
        m = max(m, logit(hb, k, i0, i1, wt));
    }
    var sum = 0.0;
    for (var k = 0u; k < ep.classes; k++) {
        sum += exp(logit(hb, k, i0, i1, wt) - m);
    }
    for (var k = 0u; k < ep.classes; k++) {
        let idx = ob + k * ep.out_stride + ep.out_t0 + t;
        var v = ep.weight * (exp(logit(hb, k, i0, i1, wt) - m) / sum);
        if (ep.accumulate != 0u) {
            v += out[idx];
        }
        out[idx] = v;
    }
}
