// Backward of multi-head self-attention over time, o = softmax(s) v with
// s_ij = scale·q_i·k_j + bias_j (bias: 0 for a real key, −1e9 for padding,
// from the key mask as in the forward), head h owning rows h·dh … of q, k,
// v and o. Flash-attention's backward, without storing the T×T
// probabilities:
//   stats:  L_i = logsumexp_j s_ij,  D_i = Σ_d dO_i·O_i        (per query)
//   p_ij = exp(s_ij − L_i),  dp_ij = dO_i·v_j,  ds_ij = p_ij·(dp_ij − D_i)
//   dQ_i = scale·Σ_j ds_ij·k_j        (one invocation per query)
//   dK_j = scale·Σ_i ds_ij·q_i,  dV_j = Σ_i p_ij·dO_i   (one per key)
// Every output element has one writer: no atomics. The loops read keys and
// queries straight from storage (a first version: correct, not tiled).
// As in the forward, the frames are independent sequences of `block`
// tokens (i and j range over one sequence) and every tensor is addressed
// through its layout: q, k, v and their gradients (written into one
// buffer `dqkv` at the rows of q, k and v) through the input's, o and dO
// through the output's.

struct Params {
    frames: u32,
    head_dim: u32,  // ≤ MAX_HEAD_DIM
    scale: f32,
    block: u32,     // tokens per independent sequence (frames for one)
    flags: u32,     // bit 0: mask keys; bit 1: accumulate into dqkv
    in_seq: u32,
    in_row: u32,
    out_seq: u32,
    out_row: u32,
    q_row0: u32,
    k_row0: u32,
    v_row0: u32,
}

const MASK_PENALTY: f32 = 1.0e9;
const MAX_HEAD_DIM: u32 = 128u;

// The frames [start, end) of the sequence holding frame `i`.
fn sequence(i: u32, block: u32, frames: u32) -> vec2<u32> {
    let start = i / block * block;
    return vec2<u32>(start, min(start + block, frames));
}

// Where the sequence starting at frame `start` begins in a buffer of
// `seq` elements per sequence, less `start`: token n of row r is then at
// base + r·row + n (u32 arithmetic wraps, so the subtraction is exact).
fn seq_base(p: Params, start: u32, seq: u32) -> u32 {
    return start / p.block * seq - start;
}

// ---- attention_grad_stats: stats[h][i] = (L_i, D_i).
@group(0) @binding(0) var<storage, read> st_q: array<f32>;
@group(0) @binding(1) var<storage, read> st_k: array<f32>;
@group(0) @binding(2) var<storage, read> st_o: array<f32>;
@group(0) @binding(3) var<storage, read> st_do: array<f32>;
@group(0) @binding(4) var<storage, read> st_mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> st_stats: array<f32>;
@group(0) @binding(6) var<uniform> st_p: Params;

@compute @workgroup_size(64, 1, 1)
fn attention_grad_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let h = gid.y;
    let p = st_p;
    if (i >= p.frames) {
        return;
    }
    let dh = p.head_dim;
    let row0 = h * dh;
    let seq = sequence(i, p.block, p.frames);
    let ib = seq_base(p, seq.x, p.in_seq);
    let ob = seq_base(p, seq.x, p.out_seq);
    var qv: array<f32, 128>;
    var dd = 0.0;
    for (var d = 0u; d < dh; d++) {
        qv[d] = st_q[ib + (p.q_row0 + row0 + d) * p.in_row + i] * p.scale;
        let o_at = ob + (row0 + d) * p.out_row + i;
        dd = fma(st_do[o_at], st_o[o_at], dd);
    }
    let masked = (p.flags & 1u) != 0u;
    var m = -3.4e38;
    var l = 0.0;
    for (var j = seq.x; j < seq.y; j++) {
        var s = 0.0;
        if (masked) {
            s = fma(st_mask[j], MASK_PENALTY, -MASK_PENALTY);
        }
        for (var d = 0u; d < dh; d++) {
            s = fma(qv[d], st_k[ib + (p.k_row0 + row0 + d) * p.in_row + j], s);
        }
        let m_new = max(m, s);
        l = l * exp(m - m_new) + exp(s - m_new);
        m = m_new;
    }
    let at = 2u * (h * p.frames + i);
    st_stats[at] = m + log(l);
    st_stats[at + 1u] = dd;
}

// ---- attention_grad_q.
@group(0) @binding(0) var<storage, read> gq_q: array<f32>;
@group(0) @binding(1) var<storage, read> gq_k: array<f32>;
@group(0) @binding(2) var<storage, read> gq_v: array<f32>;
@group(0) @binding(3) var<storage, read> gq_do: array<f32>;
@group(0) @binding(4) var<storage, read> gq_stats: array<f32>;
@group(0) @binding(5) var<storage, read> gq_mask: array<f32>;
@group(0) @binding(6) var<storage, read_write> gq_dq: array<f32>;
@group(0) @binding(7) var<uniform> gq_p: Params;

@compute @workgroup_size(64, 1, 1)
fn attention_grad_q(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let h = gid.y;
    let p = gq_p;
    if (i >= p.frames) {
        return;
    }
    let dh = p.head_dim;
    let row0 = h * dh;
    let seq = sequence(i, p.block, p.frames);
    let ib = seq_base(p, seq.x, p.in_seq);
    let ob = seq_base(p, seq.x, p.out_seq);
    var qv: array<f32, 128>;
    var dov: array<f32, 128>;
    var acc: array<f32, 128>;
    for (var d = 0u; d < dh; d++) {
        qv[d] = gq_q[ib + (p.q_row0 + row0 + d) * p.in_row + i] * p.scale;
        dov[d] = gq_do[ob + (row0 + d) * p.out_row + i];
        acc[d] = 0.0;
    }
    let at = 2u * (h * p.frames + i);
    let lse = gq_stats[at];
    let dd = gq_stats[at + 1u];
    let masked = (p.flags & 1u) != 0u;
    for (var j = seq.x; j < seq.y; j++) {
        var s = 0.0;
        if (masked) {
            s = fma(gq_mask[j], MASK_PENALTY, -MASK_PENALTY);
        }
        var dp = 0.0;
        for (var d = 0u; d < dh; d++) {
            s = fma(qv[d], gq_k[ib + (p.k_row0 + row0 + d) * p.in_row + j], s);
            dp = fma(dov[d], gq_v[ib + (p.v_row0 + row0 + d) * p.in_row + j], dp);
        }
        let pr = exp(s - lse);
        let ds = pr * (dp - dd);
        for (var d = 0u; d < dh; d++) {
            acc[d] = fma(ds, gq_k[ib + (p.k_row0 + row0 + d) * p.in_row + j], acc[d]);
        }
    }
    for (var d = 0u; d < dh; d++) {
        let idx = ib + (p.q_row0 + row0 + d) * p.in_row + i;
        var val = p.scale * acc[d];
        if ((p.flags & 2u) != 0u) {
            val += gq_dq[idx];
        }
        gq_dq[idx] = val;
    }
}

// ---- attention_grad_kv: dK and dV into the rows of k and v of `dkv`.
@group(0) @binding(0) var<storage, read> gk_q: array<f32>;
@group(0) @binding(1) var<storage, read> gk_k: array<f32>;
@group(0) @binding(2) var<storage, read> gk_v: array<f32>;
@group(0) @binding(3) var<storage, read> gk_do: array<f32>;
@group(0) @binding(4) var<storage, read> gk_stats: array<f32>;
@group(0) @binding(5) var<storage, read> gk_mask: array<f32>;
@group(0) @binding(6) var<storage, read_write> gk_dkv: array<f32>;
@group(0) @binding(7) var<uniform> gk_p: Params;

@compute @workgroup_size(64, 1, 1)
fn attention_grad_kv(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let h = gid.y;
    let p = gk_p;
    if (j >= p.frames) {
        return;
    }
    let dh = p.head_dim;
    let row0 = h * dh;
    let seq = sequence(j, p.block, p.frames);
    let ib = seq_base(p, seq.x, p.in_seq);
    let ob = seq_base(p, seq.x, p.out_seq);
    var kv: array<f32, 128>;
    var vv: array<f32, 128>;
    var dk: array<f32, 128>;
    var dv: array<f32, 128>;
    for (var d = 0u; d < dh; d++) {
        kv[d] = gk_k[ib + (p.k_row0 + row0 + d) * p.in_row + j];
        vv[d] = gk_v[ib + (p.v_row0 + row0 + d) * p.in_row + j];
        dk[d] = 0.0;
        dv[d] = 0.0;
    }
    var bias = 0.0;
    if ((p.flags & 1u) != 0u) {
        bias = fma(gk_mask[j], MASK_PENALTY, -MASK_PENALTY);
    }
    for (var i = seq.x; i < seq.y; i++) {
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < dh; d++) {
            s = fma(gk_q[ib + (p.q_row0 + row0 + d) * p.in_row + i], kv[d], s);
            dp = fma(gk_do[ob + (row0 + d) * p.out_row + i], vv[d], dp);
        }
        let at = 2u * (h * p.frames + i);
        let pr = exp(p.scale * s + bias - gk_stats[at]);
        let ds = pr * (dp - gk_stats[at + 1u]);
        for (var d = 0u; d < dh; d++) {
            dk[d] = fma(ds, gk_q[ib + (p.q_row0 + row0 + d) * p.in_row + i], dk[d]);
            dv[d] = fma(pr, gk_do[ob + (row0 + d) * p.out_row + i], dv[d]);
        }
    }
    let acc = (p.flags & 2u) != 0u;
    for (var d = 0u; d < dh; d++) {
        let ki = ib + (p.k_row0 + row0 + d) * p.in_row + j;
        let vi = ib + (p.v_row0 + row0 + d) * p.in_row + j;
        var a = p.scale * dk[d];
        var b = dv[d];
        if (acc) {
            a += gk_dkv[ki];
            b += gk_dkv[vi];
        }
        gk_dkv[ki] = a;
        gk_dkv[vi] = b;
    }
}
