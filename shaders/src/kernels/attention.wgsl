// Multi-head self-attention over time with an online softmax (flash-attention
// style): each workgroup owns 64 queries of one head and streams the keys and
// values through workgroup memory in tiles of 16, so the T×T score matrix is
// never stored and any number of frames fits. Head h owns rows h·dh …
// (h+1)·dh − 1 of q, k, v and out. The frames are independent sequences of
// `block` tokens each (one for a single window; a batch's windows, a ViT's
// images): workgroup z owns sequence z, whose queries attend only to its
// own keys. Token n of row r is at `(n / block)·seq + r·row + n % block`
// (see `SeqLayout`): the inputs with their own strides and row offsets (q,
// k and v may be one fused buffer), the output with its own. With bit 0 of
// `flags`, key j's score gets `key_mask[j]·1e9 − 1e9` (0 for a real frame,
// −1e9 for padding, as core's adapter masks keys).

struct AttnParams {
    frames: u32,
    head_dim: u32,  // ≤ MAX_HEAD_DIM
    scale: f32,     // 1/√head_dim
    block: u32,     // tokens per independent sequence (frames for one)
    flags: u32,     // bit 0: mask keys
    in_seq: u32,    // q, k, v: elements between sequences
    in_row: u32,    //          and between rows
    out_seq: u32,   // out: the same
    out_row: u32,
    q_row0: u32,    // first row of q, k and v in their buffers
    k_row0: u32,
    v_row0: u32,
}

const MASK_PENALTY: f32 = 1.0e9;

const BQ: u32 = 64u;
const BK: u32 = 16u;
const MAX_HEAD_DIM: u32 = 128u;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> key_mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<uniform> ap: AttnParams;

var<workgroup> k_tile: array<f32, 2048>; // [MAX_HEAD_DIM][BK]
var<workgroup> v_tile: array<f32, 2048>;


@compute @workgroup_size(64, 1, 1)
fn attention(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let seq0 = wid.z * ap.block;
    let seq_end = min(seq0 + ap.block, ap.frames);
    let qi = seq0 + wid.x * BQ + lid.x;
    let row0 = wid.y * ap.head_dim;
    let valid = qi < seq_end;
    let dh = ap.head_dim;
    // Sequence z's first element in the inputs and in the output: token n
    // of row r is at base + r·row + (n − seq0).
    let in_base = wid.z * ap.in_seq - seq0;
    let out_base = wid.z * ap.out_seq - seq0;
    var qv: array<f32, 128>;
    var acc: array<f32, 128>;
    for (var d = 0u; d < dh; d++) {
        var val = 0.0;
        if (valid) {
            val = q[in_base + (ap.q_row0 + row0 + d) * ap.in_row + qi] * ap.scale;
        }
        qv[d] = val;
        acc[d] = 0.0;
    }
    let biased = (ap.flags & 1u) != 0u;
    var m = -1.0e30;
    var l = 0.0;
    let n_tiles = (seq_end - seq0 + BK - 1u) / BK;
    for (var tile = 0u; tile < n_tiles; tile++) {
        let key0 = seq0 + tile * BK;
        for (var e = lid.x; e < dh * BK; e += BQ) {
            let d = e / BK;
            let key = key0 + e % BK;
            var kv = 0.0;
            var vv = 0.0;
            if (key < seq_end) {
                kv = k[in_base + (ap.k_row0 + row0 + d) * ap.in_row + key];
                vv = v[in_base + (ap.v_row0 + row0 + d) * ap.in_row + key];
            }
            k_tile[e] = kv;
            v_tile[e] = vv;
        }
        workgroupBarrier();
        let n_keys = min(BK, seq_end - key0);
        var s: array<f32, 16>;
        var tile_max = m;
        for (var j = 0u; j < n_keys; j++) {
            var dot = 0.0;
            if (biased) {
                dot = fma(key_mask[key0 + j], MASK_PENALTY, -MASK_PENALTY);
            }
            for (var d = 0u; d < dh; d++) {
                dot = fma(qv[d], k_tile[d * BK + j], dot);
            }
            s[j] = dot;
            tile_max = max(tile_max, dot);
        }
        let correction = exp(m - tile_max);
        l *= correction;
        for (var d = 0u; d < dh; d++) {
            acc[d] *= correction;
        }
        for (var j = 0u; j < n_keys; j++) {
            let pj = exp(s[j] - tile_max);
            l += pj;
            for (var d = 0u; d < dh; d++) {
                acc[d] = fma(pj, v_tile[d * BK + j], acc[d]);
            }
        }
        m = tile_max;
        workgroupBarrier();
    }
    if (valid) {
        for (var d = 0u; d < dh; d++) {
            o[out_base + (row0 + d) * ap.out_row + qi] = acc[d] / l;
        }
    }
}
