// Exact (erf) GELU and its derivative, element-wise, for training: the
// convolution's fused GELU epilogue (conv.wgsl) keeps only the output,
// while the backward needs the input z.
//   gelu(z) = z·Φ(z),  gelu'(z) = Φ(z) + z·φ(z)
// `erf_approx` is conv.wgsl's (WGSL has no includes).

struct GeluParams {
    n: u32,
    flags: u32,  // gelu_grad: bit 0 accumulate into dz
    _pad0: u32,
    _pad1: u32,
}

// erf with |error| < 1.2e-7 (Numerical Recipes' erfc, Chebyshev fit).
fn erf_approx(v: f32) -> f32 {
    let z = abs(v);
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277)))))))));
    return select(r - 1.0, 1.0 - r, v >= 0.0);
}

@group(0) @binding(0) var<storage, read> fw_z: array<f32>;
@group(0) @binding(1) var<storage, read_write> fw_y: array<f32>;
@group(0) @binding(2) var<uniform> fw_p: GeluParams;

@compute @workgroup_size(256, 1, 1)
fn gelu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= fw_p.n) {
        return;
    }
    let z = fw_z[i];
    fw_y[i] = 0.5 * z * (1.0 + erf_approx(z * 0.70710678118654752));
}

@group(0) @binding(0) var<storage, read> bw_z: array<f32>;
@group(0) @binding(1) var<storage, read> bw_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> bw_dz: array<f32>;
@group(0) @binding(3) var<uniform> bw_p: GeluParams;

@compute @workgroup_size(256, 1, 1)
fn gelu_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= bw_p.n) {
        return;
    }
    let z = bw_z[i];
    let cdf = 0.5 * (1.0 + erf_approx(z * 0.70710678118654752));
    let pdf = 0.3989422804014327 * exp(-0.5 * z * z);
    var v = bw_dy[i] * (cdf + z * pdf);
    if ((bw_p.flags & 1u) != 0u) {
        v += bw_dz[i];
    }
    bw_dz[i] = v;
}
