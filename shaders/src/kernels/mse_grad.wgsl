// The distillation MSE of one level, core's `level_mse` term, and its
// gradient with respect to the student (the teacher is fixed):
//   L  = Σ_{b,k,t} m[b,t] · (s − u)² / (n · K),  n = Σ m
//   ds = 2 · m[b,t] · (s − u) / (n · K)
// on `[batch, K, T]` rows. One invocation per frame: ds for every class,
// and the frame's share of L into `frame_loss` (summed by reduce.wgsl; the
// levels of one step write disjoint ranges of one buffer).

struct MseParams {
    classes: u32,
    t_len: u32,
    flags: u32,   // bit 0: accumulate into ds (levels summed into one head)
    loss_offset: u32, // where this level's frames start in `frame_loss`
    scale: f32,   // 1 / (n · K), from the host's masks
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<storage, read> student: array<f32>;
@group(0) @binding(1) var<storage, read> teacher: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> ds: array<f32>;
@group(0) @binding(4) var<storage, read_write> frame_loss: array<f32>;
@group(0) @binding(5) var<uniform> mp: MseParams;

@compute @workgroup_size(256, 1, 1)
fn masked_mse_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let b = gid.y;
    if (t >= mp.t_len) {
        return;
    }
    let f = b * mp.t_len + t;
    let m = mask[f];
    var loss = 0.0;
    for (var k = 0u; k < mp.classes; k++) {
        let idx = (b * mp.classes + k) * mp.t_len + t;
        let d = student[idx] - teacher[idx];
        loss += m * d * d;
        var g = 2.0 * mp.scale * m * d;
        if ((mp.flags & 1u) != 0u) {
            g += ds[idx];
        }
        ds[idx] = g;
    }
    frame_loss[mp.loss_offset + f] = mp.scale * loss;
}
