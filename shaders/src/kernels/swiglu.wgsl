// The SwiGLU gate of ViT-g's feed-forward block, in place:
//   a[i] = silu(a[i]) · b[i] = a[i] / (1 + exp(−a[i])) · b[i]
// over two halves of w12's output (each a channel-major `[H, T]` buffer).

struct GateParams {
    len: u32,
}

@group(0) @binding(0) var<storage, read_write> gate_a: array<f32>;
@group(0) @binding(1) var<storage, read> gate_b: array<f32>;
@group(0) @binding(2) var<uniform> gp: GateParams;

@compute @workgroup_size(256, 1, 1)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // 2-D grid: more than 65535 workgroups of 256 along x are not allowed.
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= gp.len) {
        return;
    }
    let a = gate_a[i];
    gate_a[i] = a / (1.0 + exp(-a)) * gate_b[i];
}
