// BatchNorm in training mode over a batch of windows x[b][c][t]
// (`batch` windows of `[C, T]`), as core's `MaskedBatchNorm`: the batch
// statistics come from the real frames only (mask[b][t] = 1), every frame
// is normalised with them, and the running statistics follow PyTorch
// (unbiased variance in the running estimate, biased in the normalisation).
//   μ = Σ m·x / n,  σ² = Σ m·(x − μ)² / n,  x̂ = (x − μ) / sqrt(σ² + eps)
//   y = γ·x̂ + β   (optionally followed by ReLU)
// Backward, with g = ∂L/∂y and sums over every frame (padding included,
// since its outputs depend on μ and σ² too):
//   dβ = Σ g,  dγ = Σ g·x̂,  dx = γ/sqrt(σ² + eps) · (g − m·dβ/n − m·x̂·dγ/n)
// (the μ term through σ² vanishes because Σ m·(x − μ) = 0).
// With fewer than two valid frames the running statistics stand in for the
// batch's (eval mode: dx = γ/sqrt(σ² + eps) · g) and are not updated.
// Statistics and parameter gradients: one workgroup per channel, tree sums
// in workgroup memory. `stats` holds [μ (C), σ² (C), n]; `gb` [γ (C), β (C)];
// `dgb` [dγ (C), dβ (C)].

struct Params {
    channels: u32,
    batch: u32,
    t_len: u32,
    flags: u32,     // bn_apply: bit 0 ReLU; bn_grad_params: bit 0 accumulate
    eps: f32,
    momentum: f32,
    _pad0: u32,
    _pad1: u32,
}

const THREADS: u32 = 256u;
// Fewer valid frames than this: eval-mode normalisation (core's
// batch_norm::MIN_BATCH_FRAMES).
const MIN_BATCH_FRAMES: f32 = 2.0;

var<workgroup> red_a: array<f32, 256>;
var<workgroup> red_b: array<f32, 256>;

fn tree_sum(lid: u32) {
    workgroupBarrier();
    for (var half = THREADS / 2u; half > 0u; half /= 2u) {
        if (lid < half) {
            red_a[lid] += red_a[lid + half];
            red_b[lid] += red_b[lid + half];
        }
        workgroupBarrier();
    }
}

// ---- bn_stats: batch statistics and the running-statistics update.
@group(0) @binding(0) var<storage, read> st_x: array<f32>;
@group(0) @binding(1) var<storage, read> st_mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> st_stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> st_running: array<f32>; // [mean (C), var (C)]
@group(0) @binding(4) var<uniform> st_p: Params;

@compute @workgroup_size(256, 1, 1)
fn bn_stats(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let c = wid.x;
    let lid = lid3.x;
    let per = st_p.batch * st_p.t_len;
    var sx = 0.0;
    var sn = 0.0;
    for (var i = lid; i < per; i += THREADS) {
        let b = i / st_p.t_len;
        let t = i - b * st_p.t_len;
        let m = st_mask[i];
        sx += m * st_x[(b * st_p.channels + c) * st_p.t_len + t];
        sn += m;
    }
    red_a[lid] = sx;
    red_b[lid] = sn;
    tree_sum(lid);
    let n = red_b[0];
    let mean = red_a[0] / max(n, 1.0);
    workgroupBarrier();
    var sq = 0.0;
    for (var i = lid; i < per; i += THREADS) {
        let b = i / st_p.t_len;
        let t = i - b * st_p.t_len;
        let d = st_x[(b * st_p.channels + c) * st_p.t_len + t] - mean;
        sq += st_mask[i] * d * d;
    }
    red_a[lid] = sq;
    red_b[lid] = 0.0;
    tree_sum(lid);
    if (lid == 0u && n < MIN_BATCH_FRAMES) {
        // A single valid frame has variance 0: normalise with the running
        // statistics (eval mode) and leave them as they are, as core's
        // MaskedBatchNorm does (1/sqrt(eps) per layer sent the padding to inf).
        st_stats[c] = st_running[c];
        st_stats[st_p.channels + c] = st_running[st_p.channels + c];
        if (c == 0u) {
            st_stats[2u * st_p.channels] = n;
        }
    } else if (lid == 0u) {
        let var_b = red_a[0] / max(n, 1.0);
        st_stats[c] = mean;
        st_stats[st_p.channels + c] = var_b;
        if (c == 0u) {
            st_stats[2u * st_p.channels] = n;
        }
        let unbias = select(1.0, n / (n - 1.0), n > 1.0);
        st_running[c] = (1.0 - st_p.momentum) * st_running[c] + st_p.momentum * mean;
        st_running[st_p.channels + c] = (1.0 - st_p.momentum) * st_running[st_p.channels + c]
            + st_p.momentum * unbias * var_b;
    }
}

// ---- bn_apply: y = γ·x̂ + β (ReLU with flags bit 0), every frame.
@group(0) @binding(0) var<storage, read> ap_x: array<f32>;
@group(0) @binding(1) var<storage, read> ap_stats: array<f32>;
@group(0) @binding(2) var<storage, read> ap_gb: array<f32>;
@group(0) @binding(3) var<storage, read_write> ap_y: array<f32>;
@group(0) @binding(4) var<uniform> ap_p: Params;

// Dispatch: x over time in blocks of 256, y over channels, z over windows.
@compute @workgroup_size(256, 1, 1)
fn bn_apply(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let c = gid.y;
    let b = gid.z;
    if (t >= ap_p.t_len || c >= ap_p.channels) {
        return;
    }
    let idx = (b * ap_p.channels + c) * ap_p.t_len + t;
    let inv = inverseSqrt(ap_stats[ap_p.channels + c] + ap_p.eps);
    var v = ap_gb[c] * (ap_x[idx] - ap_stats[c]) * inv + ap_gb[ap_p.channels + c];
    if ((ap_p.flags & 1u) != 0u) {
        v = max(v, 0.0);
    }
    ap_y[idx] = v;
}

// ---- bn_grad_params: dγ = Σ g·x̂, dβ = Σ g over every frame.
@group(0) @binding(0) var<storage, read> gp_x: array<f32>;
@group(0) @binding(1) var<storage, read> gp_dy: array<f32>;
@group(0) @binding(2) var<storage, read> gp_stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> gp_dgb: array<f32>;
@group(0) @binding(4) var<uniform> gp_p: Params;

@compute @workgroup_size(256, 1, 1)
fn bn_grad_params(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let c = wid.x;
    let lid = lid3.x;
    let per = gp_p.batch * gp_p.t_len;
    let mean = gp_stats[c];
    let inv = inverseSqrt(gp_stats[gp_p.channels + c] + gp_p.eps);
    var sg = 0.0;
    var sgx = 0.0;
    for (var i = lid; i < per; i += THREADS) {
        let b = i / gp_p.t_len;
        let t = i - b * gp_p.t_len;
        let idx = (b * gp_p.channels + c) * gp_p.t_len + t;
        let g = gp_dy[idx];
        sg += g;
        sgx += g * (gp_x[idx] - mean) * inv;
    }
    red_a[lid] = sgx;
    red_b[lid] = sg;
    tree_sum(lid);
    if (lid == 0u) {
        var dg = red_a[0];
        var db = red_b[0];
        if ((gp_p.flags & 1u) != 0u) {
            dg += gp_dgb[c];
            db += gp_dgb[gp_p.channels + c];
        }
        gp_dgb[c] = dg;
        gp_dgb[gp_p.channels + c] = db;
    }
}

// ---- bn_grad_input: dx from g and this step's dγ, dβ (before any
// accumulation into them: `dgb` must hold this batch's sums only).
@group(0) @binding(0) var<storage, read> gi_x: array<f32>;
@group(0) @binding(1) var<storage, read> gi_dy: array<f32>;
@group(0) @binding(2) var<storage, read> gi_mask: array<f32>;
@group(0) @binding(3) var<storage, read> gi_stats: array<f32>;
@group(0) @binding(4) var<storage, read> gi_gb: array<f32>;
@group(0) @binding(5) var<storage, read> gi_dgb: array<f32>;
@group(0) @binding(6) var<storage, read_write> gi_dx: array<f32>;
@group(0) @binding(7) var<uniform> gi_p: Params;

// Dispatch as bn_apply; flags bit 0: accumulate into dx.
@compute @workgroup_size(256, 1, 1)
fn bn_grad_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let c = gid.y;
    let b = gid.z;
    if (t >= gi_p.t_len || c >= gi_p.channels) {
        return;
    }
    let idx = (b * gi_p.channels + c) * gi_p.t_len + t;
    let n_valid = gi_stats[2u * gi_p.channels];
    let n = max(n_valid, 1.0);
    let inv = inverseSqrt(gi_stats[gi_p.channels + c] + gi_p.eps);
    let xhat = (gi_x[idx] - gi_stats[c]) * inv;
    let m = gi_mask[b * gi_p.t_len + t];
    let dg = gi_dgb[c];
    let db = gi_dgb[gi_p.channels + c];
    var v = gi_gb[c] * inv * (gi_dy[idx] - m * (db + xhat * dg) / n);
    if (n_valid < MIN_BATCH_FRAMES) {
        // Eval-mode normalisation: the statistics are constants.
        v = gi_gb[c] * inv * gi_dy[idx];
    }
    if ((gi_p.flags & 1u) != 0u) {
        v += gi_dx[idx];
    }
    gi_dx[idx] = v;
}
