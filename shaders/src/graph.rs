//! A recorded sequence of dispatches over buffers that are created once:
//! built for one input length, then replayed for every window of that
//! length with only a few parameter blocks rewritten.

use std::sync::Arc;

use crate::gpu::Gpu;
use crate::kernel::Kernel;

/// A buffer of the graph (its own or imported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot(usize);

/// The parameter block of one recorded dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamsId(usize);

enum Step {
    Dispatch {
        kernel: &'static str,
        bind_group: wgpu::BindGroup,
        workgroups: [u32; 3],
    },
    Copy {
        src: Slot,
        src_offset: u64,
        dst: Slot,
        dst_offset: u64,
        bytes: u64,
    },
    Clear {
        slot: Slot,
    },
}

/// Buffers, parameter blocks and steps.
pub struct Graph {
    gpu: Arc<Gpu>,
    buffers: Vec<wgpu::Buffer>,
    params: Vec<wgpu::Buffer>,
    steps: Vec<Step>,
    /// Bytes of the buffers the graph created (not imported), and the
    /// largest of them: what a step costs on the device beyond its inputs.
    owned_bytes: u64,
    largest_owned: u64,
}

impl Graph {
    /// An empty graph on `gpu`.
    pub fn new(gpu: Arc<Gpu>) -> Self {
        Graph {
            gpu,
            buffers: Vec::new(),
            params: Vec::new(),
            steps: Vec::new(),
            owned_bytes: 0,
            largest_owned: 0,
        }
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Uses an existing buffer (weights, the video) in the graph.
    pub fn import(&mut self, buffer: &wgpu::Buffer) -> Slot {
        self.buffers.push(buffer.clone());
        Slot(self.buffers.len() - 1)
    }

    /// A new zeroed buffer of `floats` f32 owned by the graph.
    pub fn alloc(&mut self, floats: usize, label: &str) -> Slot {
        let b = self.gpu.zeros(floats, label);
        self.own(b)
    }

    /// A new buffer holding `data` (e.g. a resampling table).
    pub fn constant_u32(&mut self, data: &[u32], label: &str) -> Slot {
        let b = self.gpu.upload_u32(data, label);
        self.own(b)
    }

    /// A new buffer holding `data`.
    pub fn constant(&mut self, data: &[f32], label: &str) -> Slot {
        let b = self.gpu.upload(data, label);
        self.own(b)
    }

    fn own(&mut self, buffer: wgpu::Buffer) -> Slot {
        self.owned_bytes += buffer.size();
        self.largest_owned = self.largest_owned.max(buffer.size());
        self.import(&buffer)
    }

    /// Bytes of the buffers the graph created ([`Graph::alloc`], the
    /// constants), not of those it imported.
    pub fn owned_bytes(&self) -> u64 {
        self.owned_bytes
    }

    /// The largest buffer the graph created, in bytes.
    pub fn largest_owned_bytes(&self) -> u64 {
        self.largest_owned
    }

    /// The buffer behind `slot`.
    pub fn buffer(&self, slot: Slot) -> &wgpu::Buffer {
        &self.buffers[slot.0]
    }

    /// Records one dispatch of `kernel` over `slots` (its storage bindings in
    /// order) with the parameter block `params` (its uniform binding).
    pub fn dispatch(
        &mut self,
        kernel: &'static Kernel,
        slots: &[Slot],
        params: &[u8],
        workgroups: [u32; 3],
    ) -> ParamsId {
        debug_assert_eq!(slots.len() + 1, kernel.bindings.len(), "{}", kernel.entry);
        let uniform = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(kernel.entry),
            size: params.len().next_multiple_of(16) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.gpu.queue.write_buffer(&uniform, 0, params);
        let mut entries: Vec<wgpu::BindGroupEntry> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: self.buffers[s.0].as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: slots.len() as u32,
            resource: uniform.as_entire_binding(),
        });
        let (_, layout) = self.gpu.pipeline(kernel);
        let bind_group = self
            .gpu
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.entry),
                layout,
                entries: &entries,
            });
        self.params.push(uniform);
        self.steps.push(Step::Dispatch {
            kernel: kernel.entry,
            bind_group,
            workgroups,
        });
        ParamsId(self.params.len() - 1)
    }

    /// Records a buffer-to-buffer copy of `floats` f32.
    pub fn copy(&mut self, src: Slot, dst: Slot, floats: usize) {
        self.copy_range(src, 0, dst, 0, floats);
    }

    /// Records copying `floats` floats from float `src_offset` of `src` to
    /// float `dst_offset` of `dst` (offsets are multiples of 4 bytes, as
    /// wgpu requires).
    pub fn copy_range(
        &mut self,
        src: Slot,
        src_offset: usize,
        dst: Slot,
        dst_offset: usize,
        floats: usize,
    ) {
        self.steps.push(Step::Copy {
            src,
            src_offset: (src_offset * 4) as u64,
            dst,
            dst_offset: (dst_offset * 4) as u64,
            bytes: (floats * 4) as u64,
        });
    }

    /// Records zeroing a whole buffer (a gradient nothing writes this step).
    pub fn clear(&mut self, slot: Slot) {
        self.steps.push(Step::Clear { slot });
    }

    /// Rewrites a recorded dispatch's parameters (takes effect at the next
    /// [`Graph::submit`]).
    pub fn set_params(&self, id: ParamsId, params: &[u8]) {
        self.gpu.queue.write_buffer(&self.params[id.0], 0, params);
    }

    /// Encodes every step into one command buffer and submits it.
    pub fn submit(&self) {
        let mut encoder = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("graph"),
            });
        let mut i = 0;
        while i < self.steps.len() {
            if let Step::Copy {
                src,
                src_offset,
                dst,
                dst_offset,
                bytes,
            } = &self.steps[i]
            {
                encoder.copy_buffer_to_buffer(
                    &self.buffers[src.0],
                    *src_offset,
                    &self.buffers[dst.0],
                    *dst_offset,
                    *bytes,
                );
                i += 1;
                continue;
            }
            if let Step::Clear { slot } = &self.steps[i] {
                encoder.clear_buffer(&self.buffers[slot.0], 0, None);
                i += 1;
                continue;
            }
            // A run of dispatches shares one compute pass (wgpu orders
            // dependent dispatches within it).
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("kernels"),
                timestamp_writes: None,
            });
            while let Some(Step::Dispatch {
                kernel,
                bind_group,
                workgroups,
            }) = self.steps.get(i)
            {
                let (pipeline, _) = &self.gpu.pipelines_by_entry(kernel);
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
                i += 1;
            }
        }
        self.gpu.queue.submit([encoder.finish()]);
    }

    /// Number of recorded dispatches (for logs and benchmarks).
    pub fn dispatches(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Dispatch { .. }))
            .count()
    }
}
