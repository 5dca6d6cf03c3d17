//! Every `.wgsl` file parses and validates with naga for the WebGPU
//! baseline, and the host-side description of each entry point (workgroup
//! size, bindings) matches the shader: the shader is the source of truth.

use std::collections::BTreeSet;

use naga::valid::{Capabilities, ValidationFlags, Validator};
use syncseg_shaders::kernels::{Access, ALL};

/// WebGPU defaults (wgpu `Limits::defaults()`).
const MAX_WORKGROUP_BYTES: u32 = 16 * 1024;
const MAX_INVOCATIONS: u32 = 256;
const MAX_STORAGE_BUFFERS: usize = 8;

fn module(file: &str) -> naga::Module {
    let path = format!("{}/src/kernels/{file}", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    naga::front::wgsl::parse_str(&source)
        .unwrap_or_else(|e| panic!("{path}: {}", e.emit_to_string(&source)))
}

#[test]
fn every_wgsl_file_validates_for_webgpu() {
    let dir = format!("{}/src/kernels", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in &files {
        let m = module(file);
        // No optional capabilities: what every WebGPU implementation takes.
        Validator::new(ValidationFlags::all(), Capabilities::empty())
            .validate(&m)
            .unwrap_or_else(|e| panic!("{file}: {e:?}"));
        // Workgroup memory of the module (shared by its entry points' worst case).
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(m.to_ctx()).unwrap();
        let shared: u32 = m
            .global_variables
            .iter()
            .filter(|(_, v)| v.space == naga::AddressSpace::WorkGroup)
            .map(|(_, v)| layouter[v.ty].size)
            .sum();
        assert!(
            shared <= MAX_WORKGROUP_BYTES,
            "{file}: {shared} bytes of workgroup memory"
        );
        // Every file is described on the host.
        assert!(
            ALL.iter().any(|k| k.file == file),
            "{file} has no host description"
        );
    }
}

#[test]
fn host_descriptions_match_the_shaders() {
    let mut seen = BTreeSet::new();
    for k in ALL {
        assert!(seen.insert(k.entry), "entry {} described twice", k.entry);
        let m = module(k.file);
        let path = format!("{}/src/kernels/{}", env!("CARGO_MANIFEST_DIR"), k.file);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            k.source,
            "{}: the embedded source is the file",
            k.entry
        );
        let ep = m
            .entry_points
            .iter()
            .find(|e| e.name == k.entry)
            .unwrap_or_else(|| panic!("{}: no entry point {}", k.file, k.entry));
        assert_eq!(ep.stage, naga::ShaderStage::Compute);
        assert_eq!(
            ep.workgroup_size, k.workgroup,
            "{}: workgroup size",
            k.entry
        );
        assert!(k.workgroup.iter().product::<u32>() <= MAX_INVOCATIONS);

        // The globals this entry point uses, by binding.
        let info = Validator::new(ValidationFlags::all(), Capabilities::empty())
            .validate(&m)
            .unwrap();
        let ep_index = m
            .entry_points
            .iter()
            .position(|e| e.name == k.entry)
            .unwrap();
        let ep_info = info.get_entry_point(ep_index);
        let mut used: Vec<(u32, Access)> = m
            .global_variables
            .iter()
            .filter(|(h, _)| !ep_info[*h].is_empty())
            .filter_map(|(_, v)| {
                let b = v.binding.as_ref()?;
                assert_eq!(b.group, 0, "{}: everything in group 0", k.entry);
                let access = match v.space {
                    naga::AddressSpace::Uniform => Access::Uniform,
                    naga::AddressSpace::Storage { access } => {
                        if access.contains(naga::StorageAccess::STORE) {
                            Access::ReadWrite
                        } else {
                            Access::Read
                        }
                    }
                    other => panic!("{}: unexpected address space {other:?}", k.entry),
                };
                Some((b.binding, access))
            })
            .collect();
        used.sort_by_key(|(b, _)| *b);
        let expected: Vec<(u32, Access)> = k
            .bindings
            .iter()
            .enumerate()
            .map(|(i, a)| (i as u32, *a))
            .collect();
        assert_eq!(used, expected, "{}: bindings", k.entry);
        let storage = k.bindings.iter().filter(|a| **a != Access::Uniform).count();
        assert!(storage <= MAX_STORAGE_BUFFERS);
        assert_eq!(
            k.bindings.last(),
            Some(&Access::Uniform),
            "{}: parameters last",
            k.entry
        );
    }
}
