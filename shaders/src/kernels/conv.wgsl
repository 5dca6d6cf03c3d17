// Temporal convolution as an implicitly im2col'd, tiled matrix product:
//   y[out_c0 + co, t] (+)= act( Σ_{ci, k} w[w_co0 + co, w_ci0 + ci, k] · x[ci, t + k·dil − pad] + b[w_co0 + co] )
// x is one part of the input's channels (a concatenation is several
// dispatches with `accumulate`, each reading its own part at its own `w_ci0`);
// reads outside [0, t_in) are zero (the padding is index arithmetic).
// BatchNorm is folded into w and b on the host. A 1×1 convolution is a
// linear layer over channel-major `[C, T]` activations. Workgroup z is the
// window of a batch: x and y advance by their batch strides (0 for one).

struct Params {
    cin: u32,     // channels in this input part
    cout: u32,    // output channels computed by this dispatch
    t_in: u32,    // input length (row stride of x)
    t_out: u32,   // output length (row stride of y)
    k: u32,       // kernel size
    pad: u32,     // left zero padding
    dil: u32,     // dilation
    w_cin: u32,   // C_in of the whole weight
    w_ci0: u32,   // first input channel of this part within the weight
    w_co0: u32,   // first output channel within the weight and bias
    out_c0: u32,  // first output row within y
    flags: u32,   // bit 0: accumulate into y; bit 1: add bias; bits 2-3: 0 none, 1 ReLU, 2 GELU (erf)
    x_bstride: u32, // elements between windows of x
    y_bstride: u32, // elements between windows of y
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const TILE_CO: u32 = 64u;
const TILE_T: u32 = 64u;
const TILE_R: u32 = 16u;
const THREADS: u32 = 256u;

var<workgroup> w_tile: array<f32, 1024>; // [TILE_R][TILE_CO]
var<workgroup> x_tile: array<f32, 1024>; // [TILE_R][TILE_T]

// erf with |error| < 1.2e-7 (Numerical Recipes' erfc, Chebyshev fit).
fn erf_approx(v: f32) -> f32 {
    let z = abs(v);
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277)))))))));
    return select(r - 1.0, 1.0 - r, v >= 0.0);
}

@compute @workgroup_size(16, 16, 1)
fn conv1d(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let t_base = wid.x * TILE_T;
    let co_base = wid.y * TILE_CO;
    let x0 = wid.z * p.x_bstride;
    let y0 = wid.z * p.y_bstride;
    let tid = lid.y * 16u + lid.x;
    let r_total = p.cin * p.k;
    let n_tiles = (r_total + TILE_R - 1u) / TILE_R;
    // acc[i] holds output channel co_base + lid.y + 16·i at frames
    // t_base + lid.x + 16·j, j = 0..3 (vector lanes).
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var tile = 0u; tile < n_tiles; tile++) {
        let r0 = tile * TILE_R;
        for (var i = 0u; i < TILE_R * TILE_CO / THREADS; i++) {
            let e = tid + i * THREADS;
            // Weight tile element (r, co).
            let wr = r0 + e / TILE_CO;
            let wco = co_base + e % TILE_CO;
            var wv = 0.0;
            if (wr < r_total && wco < p.cout) {
                let ci = wr / p.k;
                let kk = wr - ci * p.k;
                wv = w[((p.w_co0 + wco) * p.w_cin + p.w_ci0 + ci) * p.k + kk];
            }
            w_tile[e] = wv;
            // Input tile element (r, t): the im2col column read in place.
            let xr = r0 + e / TILE_T;
            let xt = t_base + e % TILE_T;
            var xv = 0.0;
            if (xr < r_total) {
                let ci = xr / p.k;
                let kk = xr - ci * p.k;
                let src = i32(xt) + i32(kk * p.dil) - i32(p.pad);
                if (src >= 0 && u32(src) < p.t_in) {
                    xv = x[x0 + ci * p.t_in + u32(src)];
                }
            }
            x_tile[e] = xv;
        }
        workgroupBarrier();
        for (var r = 0u; r < TILE_R; r++) {
            let xo = r * TILE_T + lid.x;
            let xv = vec4<f32>(x_tile[xo], x_tile[xo + 16u], x_tile[xo + 32u], x_tile[xo + 48u]);
            let wo = r * TILE_CO + lid.y;
            acc0 = fma(vec4<f32>(w_tile[wo]), xv, acc0);
            acc1 = fma(vec4<f32>(w_tile[wo + 16u]), xv, acc1);
            acc2 = fma(vec4<f32>(w_tile[wo + 32u]), xv, acc2);
            acc3 = fma(vec4<f32>(w_tile[wo + 48u]), xv, acc3);
        }
        workgroupBarrier();
    }
    var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    let accumulate = (p.flags & 1u) != 0u;
    let add_bias = (p.flags & 2u) != 0u;
    let act = (p.flags >> 2u) & 3u;
    for (var i = 0u; i < 4u; i++) {
        let co = co_base + lid.y + 16u * i;
        if (co >= p.cout) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let t = t_base + lid.x + 16u * j;
            if (t >= p.t_out) {
                continue;
            }
            let idx = y0 + (p.out_c0 + co) * p.t_out + t;
            var v = acc[i][j];
            if (add_bias) {
                v += b[p.w_co0 + co];
            }
            if (accumulate) {
                v += y[idx];
            }
            if (act == 1u) {
                v = max(v, 0.0);
            } else if (act == 2u) {
                v = 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752));
            }
            y[idx] = v;
        }
    }
}
