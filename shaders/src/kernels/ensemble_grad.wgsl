// Backward of ensemble.wgsl's head contribution, out += w·softmax(resample(head)):
//   dz[k, t] = w · s[k, t] · (dp[k, t] − Σ_j s[j, t] · dp[j, t])
// with s recomputed from the head and the resampling table exactly as the
// forward does (nothing is stored between the passes). dz is the gradient
// of the *resampled* logits; pool_grad.wgsl's resample_linear_grad takes it
// back to the head's length. Batched: gid.y is the window; dp and dz are
// `[batch, K, len]`, head `[batch, K, t_head]`.

struct EnsembleGradParams {
    classes: u32,
    t_head: u32,   // head length (row stride of `head`)
    len: u32,      // frames (row stride of dp and dz)
    _pad0: u32,
    weight: f32,   // this head's weight / Σ weights
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<storage, read> head: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read> dp: array<f32>;
@group(0) @binding(3) var<storage, read_write> dz: array<f32>;
@group(0) @binding(4) var<uniform> ep: EnsembleGradParams;

@compute @workgroup_size(256, 1, 1)
fn ensemble_head_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let b = gid.y;
    if (t >= ep.len) {
        return;
    }
    let hb = b * ep.classes * ep.t_head;
    let ob = b * ep.classes * ep.len;
    let i0 = table[2u * t];
    let wt = bitcast<f32>(table[2u * t + 1u]);
    let i1 = min(i0 + 1u, ep.t_head - 1u);
    var m = -3.4e38;
    for (var k = 0u; k < ep.classes; k++) {
        let z = (1.0 - wt) * head[hb + k * ep.t_head + i0] + wt * head[hb + k * ep.t_head + i1];
        m = max(m, z);
    }
    var sum = 0.0;
    var dot = 0.0;
    for (var k = 0u; k < ep.classes; k++) {
        let z = (1.0 - wt) * head[hb + k * ep.t_head + i0] + wt * head[hb + k * ep.t_head + i1];
        let e = exp(z - m);
        sum += e;
        dot += e * dp[ob + k * ep.len + t];
    }
    dot /= sum;
    for (var k = 0u; k < ep.classes; k++) {
        let z = (1.0 - wt) * head[hb + k * ep.t_head + i0] + wt * head[hb + k * ep.t_head + i1];
        let s = exp(z - m) / sum;
        let idx = ob + k * ep.len + t;
        dz[idx] = ep.weight * s * (dp[idx] - dot);
    }
}
