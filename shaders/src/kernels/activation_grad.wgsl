// Backward of the ReLU fused into a convolution's epilogue, from its output:
//   dx[i] (+)= dy[i] · [y[i] > 0]
// (y = max(z, 0) > 0 exactly where z > 0, so the forward's output is enough).

struct Params {
    n: u32,
    flags: u32,  // bit 0: accumulate into dx
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn relu_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    var v = select(0.0, dy[i], y[i] > 0.0);
    if ((p.flags & 1u) != 0u) {
        v += dx[i];
    }
    dx[i] = v;
}
