// Sum reductions as two-pass trees (WebGPU has no float atomics): pass 1
// writes one partial sum per workgroup, pass 2 (`mode` 1) sums the partials
// in a single workgroup. Mode 0 sums (a − b)², the distillation MSE's
// numerator; mode 1 sums a.

struct ReduceParams {
    n: u32,
    mode: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> ra: array<f32>;
@group(0) @binding(1) var<storage, read> rb: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@group(0) @binding(3) var<uniform> rp2: ReduceParams;

var<workgroup> scratch: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn reduce_sum(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let stride = nwg.x * WG;
    var sum = 0.0;
    for (var i = wid.x * WG + lid.x; i < rp2.n; i += stride) {
        if (rp2.mode == 0u) {
            let d = ra[i] - rb[i];
            sum = fma(d, d, sum);
        } else {
            sum += ra[i];
        }
    }
    scratch[lid.x] = sum;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half = half / 2u) {
        if (lid.x < half) {
            scratch[lid.x] += scratch[lid.x + half];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        partial[wid.x] = scratch[0];
    }
}
