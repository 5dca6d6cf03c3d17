// Gradients of the temporal convolution of conv.wgsl,
//   y[co, t] = Σ_{ci, k} w[co, ci, k] · x[ci, t + k·dil − pad] + b[co],
// given dy = ∂L/∂y (after the activation's own backward; the bias gradient
// is row_sum.wgsl):
//   dx[ci, s]    = Σ_{co, k} w[co, ci, k] · dy[co, s − k·dil + pad]
//   dw[co, ci, k] = Σ_t dy[co, t] · x[ci, t + k·dil − pad]
// The two products are tiled like the forward (64×64 output tile, 16-deep
// reduction tile, vec4 accumulators); reads outside a row are zero. Every
// write is a plain store by the one invocation that owns the element (no
// float atomics, which WGSL lacks); `accumulate` adds to what is there, for
// a tensor read by several consumers and for gradients summed over windows.
// Batches: windows back to back (strides in elements); the input gradient
// takes one window per workgroup z, the weight gradient sums over all of
// them inside its reduction.

struct Params {
    cin: u32,     // input channels of this part (rows of x and dx)
    cout: u32,    // output channels (rows of dy read)
    t_in: u32,    // length of x / dx
    t_out: u32,   // length of dy
    k: u32,
    pad: u32,
    dil: u32,
    w_cin: u32,   // C_in of the whole weight
    w_ci0: u32,   // first input channel of this part within the weight
    w_co0: u32,   // first output channel within the weight
    dy_c0: u32,   // first row of dy
    flags: u32,   // bit 0: accumulate into the output
    batch: u32,     // windows
    x_bstride: u32, // elements between windows of x / dx
    dy_bstride: u32,// elements between windows of dy
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;        // dx: w · dw: x
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // dx or dw
@group(0) @binding(3) var<uniform> p: Params;

const TILE: u32 = 64u;
const TILE_R: u32 = 16u;
const THREADS: u32 = 256u;

var<workgroup> a_tile: array<f32, 1024>; // [TILE_R][TILE]
var<workgroup> b_tile: array<f32, 1024>; // [TILE_R][TILE]

fn store(idx: u32, v: f32) {
    if ((p.flags & 1u) != 0u) {
        out[idx] = out[idx] + v;
    } else {
        out[idx] = v;
    }
}

// dx: output tile [ci, s]; reduction over r = (co, k).
@compute @workgroup_size(16, 16, 1)
fn conv1d_grad_input(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let s_base = wid.x * TILE;
    let ci_base = wid.y * TILE;
    let x0 = wid.z * p.x_bstride;
    let dy0 = wid.z * p.dy_bstride;
    let tid = lid.y * 16u + lid.x;
    let r_total = p.cout * p.k;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var r0 = 0u; r0 < r_total; r0 += TILE_R) {
        for (var i = 0u; i < TILE_R * TILE / THREADS; i++) {
            let e = tid + i * THREADS;
            let r = r0 + e / TILE;
            let col = e % TILE;
            var wv = 0.0;
            var gv = 0.0;
            if (r < r_total) {
                let co = r / p.k;
                let kk = r - co * p.k;
                let ci = ci_base + col;
                if (ci < p.cin) {
                    wv = a[((p.w_co0 + co) * p.w_cin + p.w_ci0 + ci) * p.k + kk];
                }
                let t = i32(s_base + col) - i32(kk * p.dil) + i32(p.pad);
                if (t >= 0 && u32(t) < p.t_out) {
                    gv = dy[dy0 + (p.dy_c0 + co) * p.t_out + u32(t)];
                }
            }
            a_tile[e] = wv;
            b_tile[e] = gv;
        }
        workgroupBarrier();
        for (var r = 0u; r < TILE_R; r++) {
            let go = r * TILE + lid.x;
            let gv = vec4<f32>(b_tile[go], b_tile[go + 16u], b_tile[go + 32u], b_tile[go + 48u]);
            let wo = r * TILE + lid.y;
            acc0 = fma(vec4<f32>(a_tile[wo]), gv, acc0);
            acc1 = fma(vec4<f32>(a_tile[wo + 16u]), gv, acc1);
            acc2 = fma(vec4<f32>(a_tile[wo + 32u]), gv, acc2);
            acc3 = fma(vec4<f32>(a_tile[wo + 48u]), gv, acc3);
        }
        workgroupBarrier();
    }
    var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let ci = ci_base + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let s = s_base + lid.x + 16u * j;
            if (ci < p.cin && s < p.t_in) {
                store(x0 + ci * p.t_in + s, acc[i][j]);
            }
        }
    }
}

// dw: output tile [co, r = (ci, k)]; reduction over t.
@compute @workgroup_size(16, 16, 1)
fn conv1d_grad_weight(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let r_base = wid.x * TILE;
    let co_base = wid.y * TILE;
    let tid = lid.y * 16u + lid.x;
    let r_total = p.cin * p.k;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    // The reduction runs over (window, frame) pairs, window-major.
    let tiles_per_window = (p.t_out + TILE_R - 1u) / TILE_R;
    for (var tile = 0u; tile < p.batch * tiles_per_window; tile++) {
        let b = tile / tiles_per_window;
        let t0 = (tile - b * tiles_per_window) * TILE_R;
        let x0 = b * p.x_bstride;
        let dy0 = b * p.dy_bstride;
        for (var i = 0u; i < TILE_R * TILE / THREADS; i++) {
            let e = tid + i * THREADS;
            let t = t0 + e / TILE;
            let col = e % TILE;
            var gv = 0.0;
            var xv = 0.0;
            if (t < p.t_out) {
                let co = co_base + col;
                if (co < p.cout) {
                    gv = dy[dy0 + (p.dy_c0 + co) * p.t_out + t];
                }
                let r = r_base + col;
                if (r < r_total) {
                    let ci = r / p.k;
                    let kk = r - ci * p.k;
                    let src = i32(t) + i32(kk * p.dil) - i32(p.pad);
                    if (src >= 0 && u32(src) < p.t_in) {
                        xv = a[x0 + ci * p.t_in + u32(src)];
                    }
                }
            }
            a_tile[e] = gv;
            b_tile[e] = xv;
        }
        workgroupBarrier();
        for (var tt = 0u; tt < TILE_R; tt++) {
            let xo = tt * TILE + lid.x;
            let xv = vec4<f32>(b_tile[xo], b_tile[xo + 16u], b_tile[xo + 32u], b_tile[xo + 48u]);
            let go = tt * TILE + lid.y;
            acc0 = fma(vec4<f32>(a_tile[go]), xv, acc0);
            acc1 = fma(vec4<f32>(a_tile[go + 16u]), xv, acc1);
            acc2 = fma(vec4<f32>(a_tile[go + 32u]), xv, acc2);
            acc3 = fma(vec4<f32>(a_tile[go + 48u]), xv, acc3);
        }
        workgroupBarrier();
    }
    var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let co = co_base + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let r = r_base + lid.x + 16u * j;
            if (co < p.cout && r < r_total) {
                let ci = r / p.k;
                let kk = r - ci * p.k;
                store(((p.w_co0 + co) * p.w_cin + p.w_ci0 + ci) * p.k + kk, acc[i][j]);
            }
        }
    }
}
