// Backward of multi-head self-attention over time, o = softmax(s) v with
// s_ij = scale·q_i·k_j + bias_j (bias: 0 for a real key, −1e9 for padding,
// as core's adapter masks keys), on channel-major `[heads·dh, T]` tensors
// (head h owns rows h·dh …). Flash-attention's backward, without storing
// the T×T probabilities:
//   stats:  L_i = logsumexp_j s_ij,  D_i = Σ_d dO_i·O_i        (per query)
//   p_ij = exp(s_ij − L_i),  dp_ij = dO_i·v_j,  ds_ij = p_ij·(dp_ij − D_i)
//   dQ_i = scale·Σ_j ds_ij·k_j        (one invocation per query)
//   dK_j = scale·Σ_i ds_ij·q_i,  dV_j = Σ_i p_ij·dO_i   (one per key)
// Every output element has one writer: no atomics. The loops read keys and
// queries straight from storage (a first version: correct, not tiled).
// As in the forward, the frames may be independent sequences of `block`
// tokens (a batch of windows side by side): i and j range over one sequence.

struct Params {
    frames: u32,
    head_dim: u32,  // ≤ MAX_HEAD_DIM
    scale: f32,
    flags: u32,     // bit 0: accumulate into dq / dk, dv
    block: u32,     // tokens per independent sequence (frames for one)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// The frames [start, end) of the sequence holding frame `i`.
fn sequence(i: u32, block: u32, frames: u32) -> vec2<u32> {
    let start = i / block * block;
    return vec2<u32>(start, min(start + block, frames));
}

const MAX_HEAD_DIM: u32 = 128u;

// ---- attention_grad_stats: stats[h][i] = (L_i, D_i).
@group(0) @binding(0) var<storage, read> st_q: array<f32>;
@group(0) @binding(1) var<storage, read> st_k: array<f32>;
@group(0) @binding(2) var<storage, read> st_o: array<f32>;
@group(0) @binding(3) var<storage, read> st_do: array<f32>;
@group(0) @binding(4) var<storage, read> st_bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> st_stats: array<f32>;
@group(0) @binding(6) var<uniform> st_p: Params;

@compute @workgroup_size(64, 1, 1)
fn attention_grad_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let h = gid.y;
    if (i >= st_p.frames) {
        return;
    }
    let dh = st_p.head_dim;
    let row0 = h * dh;
    var qv: array<f32, 128>;
    var dd = 0.0;
    for (var d = 0u; d < dh; d++) {
        let idx = (row0 + d) * st_p.frames + i;
        qv[d] = st_q[idx] * st_p.scale;
        dd = fma(st_do[idx], st_o[idx], dd);
    }
    var m = -3.4e38;
    var l = 0.0;
    let seq = sequence(i, st_p.block, st_p.frames);
    for (var j = seq.x; j < seq.y; j++) {
        var s = st_bias[j];
        for (var d = 0u; d < dh; d++) {
            s = fma(qv[d], st_k[(row0 + d) * st_p.frames + j], s);
        }
        let m_new = max(m, s);
        l = l * exp(m - m_new) + exp(s - m_new);
        m = m_new;
    }
    let at = 2u * (h * st_p.frames + i);
    st_stats[at] = m + log(l);
    st_stats[at + 1u] = dd;
}

// ---- attention_grad_q.
@group(0) @binding(0) var<storage, read> gq_q: array<f32>;
@group(0) @binding(1) var<storage, read> gq_k: array<f32>;
@group(0) @binding(2) var<storage, read> gq_v: array<f32>;
@group(0) @binding(3) var<storage, read> gq_do: array<f32>;
@group(0) @binding(4) var<storage, read> gq_stats: array<f32>;
@group(0) @binding(5) var<storage, read> gq_bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> gq_dq: array<f32>;
@group(0) @binding(7) var<uniform> gq_p: Params;

@compute @workgroup_size(64, 1, 1)
fn attention_grad_q(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let h = gid.y;
    if (i >= gq_p.frames) {
        return;
    }
    let dh = gq_p.head_dim;
    let row0 = h * dh;
    let frames = gq_p.frames;
    var qv: array<f32, 128>;
    var dov: array<f32, 128>;
    var acc: array<f32, 128>;
    for (var d = 0u; d < dh; d++) {
        let idx = (row0 + d) * frames + i;
        qv[d] = gq_q[idx] * gq_p.scale;
        dov[d] = gq_do[idx];
        acc[d] = 0.0;
    }
    let at = 2u * (h * frames + i);
    let lse = gq_stats[at];
    let dd = gq_stats[at + 1u];
    let seq = sequence(i, gq_p.block, frames);
    for (var j = seq.x; j < seq.y; j++) {
        var s = gq_bias[j];
        var dp = 0.0;
        for (var d = 0u; d < dh; d++) {
            s = fma(qv[d], gq_k[(row0 + d) * frames + j], s);
            dp = fma(dov[d], gq_v[(row0 + d) * frames + j], dp);
        }
        let p = exp(s - lse);
        let ds = p * (dp - dd);
        for (var d = 0u; d < dh; d++) {
            acc[d] = fma(ds, gq_k[(row0 + d) * frames + j], acc[d]);
        }
    }
    for (var d = 0u; d < dh; d++) {
        let idx = (row0 + d) * frames + i;
        var val = gq_p.scale * acc[d];
        if ((gq_p.flags & 1u) != 0u) {
            val += gq_dq[idx];
        }
        gq_dq[idx] = val;
    }
}

// ---- attention_grad_kv.
@group(0) @binding(0) var<storage, read> gk_q: array<f32>;
@group(0) @binding(1) var<storage, read> gk_k: array<f32>;
@group(0) @binding(2) var<storage, read> gk_v: array<f32>;
@group(0) @binding(3) var<storage, read> gk_do: array<f32>;
@group(0) @binding(4) var<storage, read> gk_stats: array<f32>;
@group(0) @binding(5) var<storage, read> gk_bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> gk_dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> gk_dv: array<f32>;
@group(0) @binding(8) var<uniform> gk_p: Params;

@compute @workgroup_size(64, 1, 1)
fn attention_grad_kv(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let h = gid.y;
    if (j >= gk_p.frames) {
        return;
    }
    let dh = gk_p.head_dim;
    let row0 = h * dh;
    let frames = gk_p.frames;
    var kv: array<f32, 128>;
    var vv: array<f32, 128>;
    var dk: array<f32, 128>;
    var dv: array<f32, 128>;
    for (var d = 0u; d < dh; d++) {
        let idx = (row0 + d) * frames + j;
        kv[d] = gk_k[idx];
        vv[d] = gk_v[idx];
        dk[d] = 0.0;
        dv[d] = 0.0;
    }
    let bias = gk_bias[j];
    let seq = sequence(j, gk_p.block, frames);
    for (var i = seq.x; i < seq.y; i++) {
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < dh; d++) {
            let idx = (row0 + d) * frames + i;
            s = fma(gk_q[idx], kv[d], s);
            dp = fma(gk_do[idx], vv[d], dp);
        }
        let at = 2u * (h * frames + i);
        let p = exp(gk_p.scale * s + bias - gk_stats[at]);
        let ds = p * (dp - gk_stats[at + 1u]);
        for (var d = 0u; d < dh; d++) {
            let idx = (row0 + d) * frames + i;
            dk[d] = fma(ds, gk_q[idx], dk[d]);
            dv[d] = fma(p, gk_do[idx], dv[d]);
        }
    }
    let acc = (gk_p.flags & 1u) != 0u;
    for (var d = 0u; d < dh; d++) {
        let idx = (row0 + d) * frames + j;
        var a = gk_p.scale * dk[d];
        var b = dv[d];
        if (acc) {
            a += gk_dk[idx];
            b += gk_dv[idx];
        }
        gk_dk[idx] = a;
        gk_dv[idx] = b;
    }
}
