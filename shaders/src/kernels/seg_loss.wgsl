// The segmentation loss of core's `train::losses` on the ensemble's
// probabilities p `[batch, K, T]`, and its gradient dp = ∂L/∂p:
//   CE   = −Σ_t w_t · log(p[y_t, t] + 1e-10) / n_ce
//   TMSE = λ · Σ_{t ≥ 1, k} pair_t · min((log(p[k,t] + 1e-10) − log(p[k,t−1] + 1e-10))², τ²) / (n_pair · K)
// with w_t the frame's weight (0 on padding and ignored classes),
// pair_t = mask_t · mask_{t−1}, and the previous frame's term detached (as
// the reference: the gradient flows into frame t only). The host knows the
// labels and masks, so it passes 1/n_ce and λ/(n_pair·K). One invocation
// per frame writes dp for every class and the frame's loss into `frame_loss`
// (summed afterwards by reduce.wgsl: one readback per step).

struct SegLossParams {
    classes: u32,
    t_len: u32,
    _pad0: u32,
    _pad1: u32,
    ce_scale: f32,    // 1 / n_ce
    tmse_scale: f32,  // λ / (n_pair · K)
    tau2: f32,        // τ²
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> p: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;   // [batch, T]
@group(0) @binding(3) var<storage, read> mask: array<f32>;     // [batch, T]
@group(0) @binding(4) var<storage, read_write> dp: array<f32>;
@group(0) @binding(5) var<storage, read_write> frame_loss: array<f32>; // [batch, T]
@group(0) @binding(6) var<uniform> sp: SegLossParams;

const LOG_EPS: f32 = 1e-10;

@compute @workgroup_size(256, 1, 1)
fn seg_loss_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let b = gid.y;
    if (t >= sp.t_len) {
        return;
    }
    let f = b * sp.t_len + t;
    let base = b * sp.classes * sp.t_len;
    let w = weight[f];
    let y = labels[f];
    var pair = 0.0;
    if (t > 0u) {
        pair = mask[f] * mask[f - 1u];
    }
    var loss = 0.0;
    for (var k = 0u; k < sp.classes; k++) {
        let idx = base + k * sp.t_len + t;
        let q = p[idx] + LOG_EPS;
        var g = 0.0;
        if (k == y && w != 0.0) {
            loss -= sp.ce_scale * w * log(q);
            g -= sp.ce_scale * w / q;
        }
        if (pair != 0.0) {
            let d = log(q) - log(p[idx - 1u] + LOG_EPS);
            let sq = d * d;
            loss += sp.tmse_scale * pair * min(sq, sp.tau2);
            if (sq < sp.tau2) {
                g += sp.tmse_scale * pair * 2.0 * d / q;
            }
        }
        dp[idx] = g;
    }
    frame_loss[f] = loss;
}
