// Element-wise add with an optional dropout mask, over the n elements:
//   out[i] (+)= x[i] · m[i],   m[i] = keep(seed, i) / (1 − p)   (p = 0: m = 1)
// A residual add is two of these (x = a, then x = b, accumulating); the
// backward of an add or of a dropout is the same kernel on the gradients.
// keep() is core's `model::dropout::keep`: the same 32-bit hash, so every
// backend drops the same elements for the same seed.

struct Params {
    n: u32,
    flags: u32,  // bit 0: accumulate into out; bit 1: apply the dropout mask
    seed: u32,
    p: f32,      // drop probability (with bit 1)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

@compute @workgroup_size(256, 1, 1)
fn add_into(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    var v = x[i];
    if ((params.flags & 2u) != 0u) {
        let h = pcg_hash(params.seed + pcg_hash(i));
        let u = f32(h >> 8u) * (1.0 / 16777216.0);
        v = select(0.0, v / (1.0 - params.p), u >= params.p);
    }
    if ((params.flags & 1u) != 0u) {
        v += out[i];
    }
    out[i] = v;
}
