//! The device: adapter selection, limits, the pipelines of every kernel
//! (created once), buffer helpers and asynchronous readback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::kernel::{Access, Kernel};
use crate::kernels;

/// A wgpu device with every kernel's pipeline.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    /// The adapter's name, driver and backend.
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with.
    pub limits: wgpu::Limits,
    pipelines: HashMap<&'static str, (wgpu::ComputePipeline, wgpu::BindGroupLayout)>,
    /// The first error wgpu reported outside an error scope; checked after
    /// each readback so that a failure is an `Err`, never a panic.
    error: Arc<Mutex<Option<String>>>,
}

impl Gpu {
    /// Opens the preferred adapter (a discrete GPU first; `WGPU_BACKEND`,
    /// `WGPU_ADAPTER_NAME` and `WGPU_POWER_PREF` are honoured) with the
    /// WebGPU default limits, raised to the adapter's for buffer sizes.
    pub async fn new() -> Result<Gpu> {
        // Vulkan, Metal, DX12 or the browser's WebGPU unless WGPU_BACKEND
        // says otherwise: the GL backend lacks compute features we rely on.
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
        let instance = wgpu::Instance::new(desc);
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::from_env()
                .unwrap_or(wgpu::PowerPreference::HighPerformance),
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        };
        let adapter = instance
            .request_adapter(&options)
            .await
            .map_err(|e| Error::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let granted = adapter.limits();
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: granted.max_storage_buffer_binding_size,
            max_buffer_size: granted.max_buffer_size,
            ..wgpu::Limits::defaults()
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("syncseg"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::Device(e.to_string()))?;
        let error = Arc::new(Mutex::new(None));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        let lost = error.clone();
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = lost.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(format!("device lost ({reason:?}): {message}"));
            }
        });
        // Each kernel family is compiled under its own validation scope so
        // that a shader the platform's compiler rejects (Tint in a browser is
        // stricter than naga) is reported by name, not as a later failure.
        let mut pipelines = HashMap::new();
        let mut failures = Vec::new();
        let mut files: Vec<(&'static str, &'static str)> =
            kernels::ALL.iter().map(|k| (k.file, k.source)).collect();
        files.sort_unstable();
        files.dedup();
        for (file, source) in files {
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(file),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            for k in kernels::ALL.iter().filter(|k| k.file == file) {
                pipelines.insert(k.entry, create_pipeline(&device, &module, k));
            }
            if let Some(e) = scope.pop().await {
                failures.push(format!("{file}: {e}"));
            }
        }
        if !failures.is_empty() {
            return Err(Error::Gpu(format!(
                "{} kernel file(s) failed to compile on {:?} {:?}: {}",
                failures.len(),
                info.backend,
                info.name,
                failures.join("; ")
            )));
        }
        let gpu = Gpu {
            device,
            queue,
            info,
            limits,
            pipelines,
            error,
        };
        gpu.check()?;
        Ok(gpu)
    }

    /// The entry points of every compiled kernel, sorted.
    pub fn kernel_entries(&self) -> Vec<&'static str> {
        let mut entries: Vec<&'static str> = self.pipelines.keys().copied().collect();
        entries.sort_unstable();
        entries
    }

    /// Bytes of device memory in live allocations (buffers), from wgpu's
    /// allocator; `None` on backends that do not report it (WebGPU).
    pub fn allocated_bytes(&self) -> Option<u64> {
        self.device
            .generate_allocator_report()
            .map(|r| r.total_allocated_bytes)
    }

    /// "name (backend, device type)", for logs and reports.
    pub fn describe(&self) -> String {
        // Browsers may hide the adapter's name.
        let name = if self.info.name.is_empty() {
            "unnamed adapter"
        } else {
            &self.info.name
        };
        format!(
            "{name} ({:?}, {:?})",
            self.info.backend, self.info.device_type
        )
    }

    /// Whether the adapter is a CPU implementation (lavapipe, SwiftShader,
    /// WARP): correct, and slower than candle on the same cores.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The largest buffer one kernel may bind, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    pub(crate) fn pipeline(&self, k: &Kernel) -> &(wgpu::ComputePipeline, wgpu::BindGroupLayout) {
        self.pipelines_by_entry(k.entry)
    }

    pub(crate) fn pipelines_by_entry(
        &self,
        entry: &str,
    ) -> &(wgpu::ComputePipeline, wgpu::BindGroupLayout) {
        &self.pipelines[entry]
    }

    /// Fails with the first error wgpu reported since the last check.
    pub fn check(&self) -> Result<()> {
        match self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(Error::Gpu(e)),
            None => Ok(()),
        }
    }

    /// Fails unless `floats` f32 fit one binding.
    pub fn check_fits(&self, floats: usize, what: &str) -> Result<()> {
        let bytes = floats as u64 * 4;
        if bytes > self.max_binding_bytes() {
            return Err(Error::Unsupported(format!(
                "{what} needs a {:.1} MiB buffer, above this adapter's limit of {:.1} MiB per binding",
                bytes as f64 / (1 << 20) as f64,
                self.max_binding_bytes() as f64 / (1 << 20) as f64
            )));
        }
        Ok(())
    }

    /// A storage buffer holding `data`.
    pub fn upload(&self, data: &[f32], label: &str) -> wgpu::Buffer {
        self.upload_bytes(bytemuck::cast_slice(data), label)
    }

    /// A storage buffer holding `data` (u32 tables).
    pub fn upload_u32(&self, data: &[u32], label: &str) -> wgpu::Buffer {
        self.upload_bytes(bytemuck::cast_slice(data), label)
    }

    fn upload_bytes(&self, bytes: &[u8], label: &str) -> wgpu::Buffer {
        // Zero-length bindings are invalid: keep at least one element.
        let padded;
        let contents = if bytes.is_empty() {
            padded = [0u8; 4];
            &padded[..]
        } else {
            bytes
        };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            })
    }

    /// A zeroed storage buffer of `floats` f32 (at least one).
    pub fn zeros(&self, floats: usize, label: &str) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (floats.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// Reads the first `floats` f32 of `buffer` back to the host. Async: in a
    /// browser nothing may block on the GPU; natively the device is polled.
    pub async fn read(&self, buffer: &wgpu::Buffer, floats: usize) -> Result<Vec<f32>> {
        let bytes = (floats * 4) as u64;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(e.to_string()))?;
        let mapped = rx
            .await
            .map_err(|_| Error::Gpu("the readback was cancelled".into()))?;
        self.check()?;
        mapped.map_err(|e| Error::Gpu(format!("mapping the readback buffer: {e}")))?;
        let out = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Gpu(e.to_string()))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        Ok(out)
    }
}

/// The pipeline (and its bind group layout) of kernel `k` in `module`.
fn create_pipeline(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    k: &Kernel,
) -> (wgpu::ComputePipeline, wgpu::BindGroupLayout) {
    let layout = bind_group_layout(device, k);
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(k.entry),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(k.entry),
        layout: Some(&pipeline_layout),
        module,
        entry_point: Some(k.entry),
        compilation_options: Default::default(),
        cache: None,
    });
    (pipeline, layout)
}

fn bind_group_layout(device: &wgpu::Device, k: &Kernel) -> wgpu::BindGroupLayout {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = k
        .bindings
        .iter()
        .enumerate()
        .map(|(i, access)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: match access {
                Access::Read | Access::ReadWrite => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *access == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Access::Uniform => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
            },
            count: None,
        })
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(k.entry),
        entries: &entries,
    })
}
