// The SwiGLU gate of ViT-g's feed-forward block, over `[B, 2H, T]` (w12's
// output, halves a and b per window) into `[B, H, T]`:
//   y[i] = silu(a[i]) · b[i] = a[i] / (1 + exp(−a[i])) · b[i]
// with `block` = H·T elements per half.

struct GateParams {
    len: u32,
    block: u32,
}

@group(0) @binding(0) var<storage, read> gate_x: array<f32>;
@group(0) @binding(1) var<storage, read_write> gate_y: array<f32>;
@group(0) @binding(2) var<uniform> gp: GateParams;

@compute @workgroup_size(256, 1, 1)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // 2-D grid: more than 65535 workgroups of 256 along x are not allowed.
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= gp.len) {
        return;
    }
    let at = i / gp.block * 2u * gp.block + i % gp.block;
    let a = gate_x[at];
    gate_y[i] = a / (1.0 + exp(-a)) * gate_x[at + gp.block];
}
