// Copies a window of frames out of a longer channel-major buffer, zero
// padding it to the window's length: the windowing of long videos as index
// arithmetic on the device. With a step above 1 it gathers every step-th
// frame (a ViT's CLS tokens, one per image). With a destination offset it
// places the frames later in a zeroed row (the gradient of taking frames).

struct WindowParams {
    rows: u32,
    src_stride: u32, // row length of the source
    src_t0: u32,     // first source frame
    len: u32,        // real frames; frames len..dst_t are zero
    dst_t: u32,      // row length of the destination
    src_step: u32,   // source frames between consecutive destination frames
    dst_t0: u32,     // destination frame of the first copied frame
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> cp: WindowParams;

@compute @workgroup_size(256, 1, 1)
fn copy_window(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let r = gid.y;
    if (t >= cp.dst_t || r >= cp.rows) {
        return;
    }
    var v = 0.0;
    if (t >= cp.dst_t0 && t - cp.dst_t0 < cp.len) {
        v = src[r * cp.src_stride + cp.src_t0 + (t - cp.dst_t0) * cp.src_step];
    }
    dst[r * cp.dst_t + t] = v;
}
