// One Adam step over a flat parameter buffer, as core's `train::adam::Adam`
// (torch.optim.Adam): L2 weight decay added to the gradient, bias-corrected
// moments. Bias corrections 1 − β^t are computed on the host in f64.
//   g = grad + wd·θ;  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
//   θ −= lr · (m / bc1) / (sqrt(v / bc2) + eps)

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
    _pad3: f32,
}

@group(0) @binding(0) var<storage, read_write> theta: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // 2-D grid: more than 65535 workgroups of 256 per dimension are needed
    // beyond 16M parameters.
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    let th = theta[i];
    let g = grad[i] + p.weight_decay * th;
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    theta[i] = th - p.lr * (mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps);
}
