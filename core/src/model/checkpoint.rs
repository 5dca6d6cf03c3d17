//! Model directories: `model.safetensors` (the reference PyTorch state-dict
//! names, 197 tensors for C2F-TCN) plus `model.json` ([`ModelMeta`]).
//!
//! Each file is written to a temporary name and renamed into place, so an
//! interrupted save never leaves a truncated file.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::adapter::{Adapter, AdapterConfig};
use super::c2f_tcn::C2fTcn;
use super::config::C2fConfig;
use crate::error::{Error, Result};

/// File names inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The metadata file.
pub const META_FILE: &str = "model.json";
/// The feature adapter's weights, when the model has one.
pub const ADAPTER_FILE: &str = "adapter.safetensors";
/// In a single-file bundle: the safetensors metadata key holding `model.json`.
pub const BUNDLE_META_KEY: &str = "syncseg_model";
/// In a single-file bundle: the prefix of the adapter's tensors.
pub const BUNDLE_ADAPTER_PREFIX: &str = "adapter/";
/// Identifies the JSON as ours.
pub const FORMAT: &str = "syncseg-model";

/// What a model directory says about its model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// The syncseg version that wrote it.
    pub syncseg_version: String,
    /// The architecture and its widths.
    pub c2f: C2fConfig,
    /// Class names, index = output channel.
    pub classes: Vec<String>,
    /// Classes ignored by the training loss (and usual background for evaluation).
    #[serde(default)]
    pub background: Vec<String>,
    /// The window length (frames) the model was trained on; prediction cuts
    /// long videos into windows of this length.
    pub window_frames: usize,
    /// Training steps taken (PyTorch's `num_batches_tracked`).
    #[serde(default)]
    pub steps: u64,
    /// How the weights came to be: settings, epochs, selection score.
    #[serde(default)]
    pub provenance: serde_json::Value,
    /// The feature adapter applied to the input features before the
    /// C2F-TCN (feature distillation), if any; weights in [`ADAPTER_FILE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<AdapterConfig>,
}

impl ModelMeta {
    /// Metadata for a new model.
    pub fn new(
        c2f: C2fConfig,
        classes: Vec<String>,
        background: Vec<String>,
        window_frames: usize,
    ) -> Self {
        ModelMeta {
            format: FORMAT.to_string(),
            syncseg_version: env!("CARGO_PKG_VERSION").to_string(),
            c2f,
            classes,
            background,
            window_frames,
            steps: 0,
            provenance: serde_json::Value::Null,
            adapter: None,
        }
    }
}

/// A C2F-TCN with its variables and metadata.
pub struct SegModel {
    /// The metadata.
    pub meta: ModelMeta,
    /// Every tensor of the state dict but `num_batches_tracked`.
    pub varmap: VarMap,
    /// The network reading `varmap`.
    pub net: C2fTcn,
    /// The feature adapter and its own variables (kept apart so that the
    /// C2F-TCN's state dict stays the reference one).
    pub adapter: Option<(Adapter, VarMap)>,
}

impl SegModel {
    /// A freshly initialised model.
    pub fn new(meta: ModelMeta, device: &Device) -> Result<Self> {
        meta.c2f.validate()?;
        if meta.classes.len() != meta.c2f.num_classes {
            return Err(Error::invalid(format!(
                "model config: {} class names for {} classes",
                meta.classes.len(),
                meta.c2f.num_classes
            )));
        }
        let (net, varmap) = C2fTcn::init(&meta.c2f, device)?;
        let adapter = match &meta.adapter {
            Some(cfg) => Some(new_adapter(cfg, meta.c2f.input_dim, device)?),
            None => None,
        };
        Ok(SegModel {
            meta,
            varmap,
            net,
            adapter,
        })
    }

    /// Adds a fresh feature adapter (the identity at start), seeded.
    pub fn attach_adapter(&mut self, cfg: &AdapterConfig, seed: u64) -> Result<()> {
        let device = self.device();
        let (adapter, varmap) = new_adapter(cfg, self.meta.c2f.input_dim, &device)?;
        adapter.init_seeded(&varmap, seed)?;
        self.adapter = Some((adapter, varmap));
        self.meta.adapter = Some(cfg.clone());
        Ok(())
    }

    /// The input of the C2F-TCN for features `x` `[B, D, T]`: the adapted
    /// features when the model has an adapter, else `x` itself.
    pub fn adapt(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        match &self.adapter {
            Some((a, _)) => Ok(a.forward(x, mask)?),
            None => Ok(x.clone()),
        }
    }

    /// A freshly initialised model whose weights depend only on `seed`:
    /// every convolution's weight and bias uniform in ±1/√fan_in (PyTorch's
    /// default for Conv1d), BatchNorm at weight 1, bias 0. candle's own
    /// initialisers draw from an unseeded generator, so training from scratch
    /// would not be reproducible with them.
    pub fn new_seeded(meta: ModelMeta, device: &Device, seed: u64) -> Result<Self> {
        use rand::SeedableRng;
        use rand_distr::Distribution;
        let model = SegModel::new(meta, device)?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        {
            let data = model.varmap.data().lock().expect("varmap poisoned");
            let mut names: Vec<&String> = data.keys().collect();
            names.sort();
            for name in names {
                let Some(stem) = name
                    .strip_suffix(".weight")
                    .or_else(|| name.strip_suffix(".bias"))
                else {
                    continue;
                };
                let Some(weight) = data.get(&format!("{stem}.weight")) else {
                    continue;
                };
                let dims = weight.dims();
                if dims.len() != 3 {
                    continue; // BatchNorm: keep 1 / 0.
                }
                let bound = 1.0 / ((dims[1] * dims[2]) as f32).sqrt();
                let dist = rand_distr::Uniform::new_inclusive(-bound, bound).expect("finite bound");
                let var = &data[name];
                let values: Vec<f32> = (0..var.elem_count())
                    .map(|_| dist.sample(&mut rng))
                    .collect();
                var.set(&Tensor::from_vec(values, var.shape(), device)?)?;
            }
        }
        Ok(model)
    }

    /// The state dict as PyTorch would save it (with `num_batches_tracked`).
    pub fn state_dict(&self) -> Result<HashMap<String, Tensor>> {
        let data = self.varmap.data().lock().expect("varmap poisoned");
        let mut out = HashMap::with_capacity(data.len() + 26);
        for (name, var) in data.iter() {
            if let Some(prefix) = name.strip_suffix(".running_mean") {
                let steps = Tensor::new(self.meta.steps as i64, var.device())?;
                out.insert(format!("{prefix}.num_batches_tracked"), steps);
            }
            out.insert(name.clone(), var.as_tensor().clone());
        }
        Ok(out)
    }

    /// Replaces every variable with the tensor of the same name in `tensors`.
    /// Missing names, extra names and shape mismatches are errors naming
    /// `source` and the tensor; `num_batches_tracked` entries are optional.
    pub fn load_state_dict(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        source: &Path,
    ) -> Result<()> {
        load_vars(&self.varmap, tensors, source)?;
        let data = self.varmap.data().lock().expect("varmap poisoned");
        let mut extra: Vec<&String> = tensors
            .keys()
            .filter(|k| !data.contains_key(*k) && !k.ends_with(".num_batches_tracked"))
            .collect();
        extra.sort();
        if let Some(first) = extra.first() {
            return Err(Error::format(
                source,
                format!(
                    "unexpected tensor '{first}' ({} unexpected in all): not a C2F-TCN state dict",
                    extra.len()
                ),
            ));
        }
        drop(data);
        if let Some(steps) = tensors.get("inc.conv.conv.1.num_batches_tracked") {
            if let Ok(v) = steps
                .to_dtype(DType::F64)
                .and_then(|t| t.to_scalar::<f64>())
            {
                self.meta.steps = v.max(0.0) as u64;
            }
        }
        Ok(())
    }

    /// Copies every weight (C2F-TCN and adapter) from `other`, which must
    /// have the same architecture.
    pub fn copy_weights_from(&mut self, other: &SegModel, source: &Path) -> Result<()> {
        self.load_state_dict(&other.state_dict()?, source)?;
        self.meta.steps = other.meta.steps;
        match (&self.adapter, &other.adapter) {
            (Some((_, mine)), Some((_, theirs))) => {
                let tensors: HashMap<String, Tensor> = theirs
                    .data()
                    .lock()
                    .expect("varmap poisoned")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                    .collect();
                load_vars(mine, &tensors, source)
            }
            (None, None) => Ok(()),
            _ => Err(Error::format(
                source,
                "one model has a feature adapter and the other not",
            )),
        }
    }

    /// The whole model as one safetensors file: the C2F-TCN's state dict,
    /// the adapter's tensors under [`BUNDLE_ADAPTER_PREFIX`], and
    /// `model.json` in the metadata under [`BUNDLE_META_KEY`]. This is what
    /// browsers and editor plugins load (`syncseg export-model`).
    pub fn to_bundle(&self) -> Result<Vec<u8>> {
        let mut tensors = self.state_dict()?;
        if let Some((_, varmap)) = &self.adapter {
            for (k, v) in varmap.data().lock().expect("varmap poisoned").iter() {
                tensors.insert(format!("{BUNDLE_ADAPTER_PREFIX}{k}"), v.as_tensor().clone());
            }
        }
        let meta = serde_json::to_string(&self.meta).expect("metadata serialises");
        let info = HashMap::from([(BUNDLE_META_KEY.to_string(), meta)]);
        let mut sorted: Vec<(String, Tensor)> = tensors.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        safetensors::serialize(sorted, Some(info))
            .map_err(|e| Error::invalid(format!("cannot serialise the model: {e}")))
    }

    /// Reads what [`SegModel::to_bundle`] wrote; `source` names it in errors.
    pub fn from_bundle(bytes: &[u8], device: &Device, source: &Path) -> Result<Self> {
        let bad = |msg: String| Error::format(source, msg);
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a syncseg model bundle ({e})")))?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(BUNDLE_META_KEY))
            .ok_or_else(|| bad(format!("a safetensors file without '{BUNDLE_META_KEY}' metadata: not a syncseg model bundle")))?;
        let meta: ModelMeta = serde_json::from_str(json)
            .map_err(|e| bad(format!("unreadable model description: {e}")))?;
        if meta.format != FORMAT {
            return Err(bad(format!(
                "format is '{}', expected '{FORMAT}'",
                meta.format
            )));
        }
        let all = candle_core::safetensors::load_buffer(bytes, device)
            .map_err(|e| bad(format!("unreadable tensors ({e})")))?;
        let (adapter, net): (HashMap<String, Tensor>, HashMap<String, Tensor>) = all
            .into_iter()
            .partition(|(k, _)| k.starts_with(BUNDLE_ADAPTER_PREFIX));
        let mut model = SegModel::new(meta, device).map_err(|e| bad(e.to_string()))?;
        model.load_state_dict(&net, source)?;
        if let Some((_, varmap)) = &model.adapter {
            let adapter: HashMap<String, Tensor> = adapter
                .into_iter()
                .map(|(k, v)| (k[BUNDLE_ADAPTER_PREFIX.len()..].to_string(), v))
                .collect();
            load_vars(varmap, &adapter, source)?;
        }
        Ok(model)
    }

    /// Writes [`SegModel::to_bundle`] to `path` atomically.
    pub fn save_bundle(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fsio::write_bytes_atomic(path, &self.to_bundle()?)
    }

    /// Loads a model directory, or a single-file bundle if `path` is a file.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        if path.is_file() {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            return SegModel::from_bundle(&bytes, device, path);
        }
        let dir = path;
        let meta_path = dir.join(META_FILE);
        let text = crate::fsio::read_text(&meta_path)?;
        let meta: ModelMeta = serde_json::from_str(&text).map_err(|e| {
            Error::format(&meta_path, format!("not a syncseg model description: {e}"))
        })?;
        if meta.format != FORMAT {
            return Err(Error::format(
                &meta_path,
                format!("format is '{}', expected '{FORMAT}'", meta.format),
            ));
        }
        let weights = dir.join(WEIGHTS_FILE);
        let tensors = candle_core::safetensors::load(&weights, device).map_err(|e| match e {
            candle_core::Error::Io(io) => Error::io(&weights, io),
            other => Error::format(
                &weights,
                format!("not a readable safetensors file ({other})"),
            ),
        })?;
        let mut model =
            SegModel::new(meta, device).map_err(|e| Error::format(&meta_path, e.to_string()))?;
        model.load_state_dict(&tensors, &weights)?;
        if let Some((_, varmap)) = &model.adapter {
            let path = dir.join(ADAPTER_FILE);
            let tensors = candle_core::safetensors::load(&path, device).map_err(|e| match e {
                candle_core::Error::Io(io) => Error::io(&path, io),
                other => Error::format(&path, format!("not a readable safetensors file ({other})")),
            })?;
            load_vars(varmap, &tensors, &path)?;
        }
        Ok(model)
    }

    /// Writes the model into directory `dir` (created if needed). Each file
    /// is replaced atomically, weights first, then the metadata that
    /// describes them; other files in `dir` are left alone.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let weights = dir.join(WEIGHTS_FILE);
        let tmp = dir.join(format!(".{WEIGHTS_FILE}.tmp"));
        if let Err(e) = candle_core::safetensors::save(&self.state_dict()?, &tmp) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::format(
                &weights,
                format!("cannot write weights: {e}"),
            ));
        }
        std::fs::rename(&tmp, &weights).map_err(|e| Error::io(&weights, e))?;
        if let Some((_, varmap)) = &self.adapter {
            let path = dir.join(ADAPTER_FILE);
            let tmp = dir.join(format!(".{ADAPTER_FILE}.tmp"));
            let tensors: HashMap<String, Tensor> = varmap
                .data()
                .lock()
                .expect("varmap poisoned")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                .collect();
            if let Err(e) = candle_core::safetensors::save(&tensors, &tmp) {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::format(
                    &path,
                    format!("cannot write adapter weights: {e}"),
                ));
            }
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        }
        let json = serde_json::to_string_pretty(&self.meta).expect("metadata serialises");
        crate::fsio::write_bytes_atomic(dir.join(META_FILE), json.as_bytes())
    }

    /// Converts a reference PyTorch checkpoint (a `state_dict` saved with
    /// `torch.save`, optionally under a `state_dict`/`model_state_dict` key
    /// or with DataParallel's `module.` prefix). Input dimension, classes and
    /// widths are read from the tensor shapes.
    pub fn import_pth(
        path: impl AsRef<Path>,
        classes: Option<Vec<String>>,
        device: &Device,
    ) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::io(
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let unreadable = |e: candle_core::Error| {
            Error::format(
                path,
                format!(
                    "not a readable PyTorch checkpoint ({})",
                    one_line(&e.to_string())
                ),
            )
        };
        let mut entries = candle_core::pickle::read_all(path).map_err(unreadable)?;
        if !entries
            .iter()
            .any(|(k, _)| k.ends_with("inc.conv.conv.0.weight"))
        {
            for key in ["state_dict", "model_state_dict", "model"] {
                if let Ok(found) = candle_core::pickle::read_all_with_key(path, Some(key)) {
                    if found
                        .iter()
                        .any(|(k, _)| k.ends_with("inc.conv.conv.0.weight"))
                    {
                        entries = found;
                        break;
                    }
                }
            }
        }
        let tensors: HashMap<String, Tensor> = entries
            .into_iter()
            .map(|(k, v)| {
                (
                    k.strip_prefix("module.").map(str::to_string).unwrap_or(k),
                    v,
                )
            })
            .collect();
        let c2f = config_from_shapes(&tensors, path)?;
        let classes = match classes {
            Some(c) if c.len() != c2f.num_classes => {
                return Err(Error::format(
                    path,
                    format!(
                        "the checkpoint has {} classes but the mapping names {}",
                        c2f.num_classes,
                        c.len()
                    ),
                ))
            }
            Some(c) => c,
            None => (0..c2f.num_classes).map(|i| format!("class{i}")).collect(),
        };
        // The sync release trained on 600-frame windows.
        let meta = ModelMeta::new(c2f, classes, Vec::new(), 600);
        let mut model = SegModel::new(meta, device)?;
        model.load_state_dict(&tensors, path)?;
        model.meta.provenance = serde_json::json!({ "imported_from": path.display().to_string() });
        Ok(model)
    }

    /// Rebuilds the network over the same variables (after a config change
    /// such as new ensemble weights).
    pub fn rebuild(&mut self) -> Result<()> {
        let vb = VarBuilder::from_varmap(&self.varmap, DType::F32, &self.device());
        self.net = C2fTcn::new(&self.meta.c2f, vb)?;
        Ok(())
    }

    /// The device the variables live on.
    pub fn device(&self) -> Device {
        let data = self.varmap.data().lock().expect("varmap poisoned");
        data.values()
            .next()
            .map(|v| v.device().clone())
            .unwrap_or(Device::Cpu)
    }
}

fn new_adapter(
    cfg: &AdapterConfig,
    input_dim: usize,
    device: &Device,
) -> Result<(Adapter, VarMap)> {
    cfg.validate()?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let adapter = Adapter::new(cfg, input_dim, vb)?;
    Ok((adapter, varmap))
}

/// Sets every variable of `varmap` from `tensors`, by name, checking shapes.
/// Sets every variable of `varmap` from the tensor of the same name in
/// `tensors` (in name order, so the first problem reported is stable);
/// a missing name or a shape mismatch is an error naming `source`.
fn load_vars(varmap: &VarMap, tensors: &HashMap<String, Tensor>, source: &Path) -> Result<()> {
    let data = varmap.data().lock().expect("varmap poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let t = tensors.get(name).ok_or_else(|| {
            Error::format(
                source,
                format!("missing tensor '{name}' (shape {:?})", var.shape().dims()),
            )
        })?;
        if t.shape() != var.shape() {
            return Err(Error::format(
                source,
                format!(
                    "tensor '{name}' has shape {:?}, the model expects {:?}",
                    t.shape().dims(),
                    var.shape().dims()
                ),
            ));
        }
        var.set(&t.to_dtype(DType::F32)?.to_device(var.device())?)?;
    }
    Ok(())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads the architecture off a state dict's shapes.
fn config_from_shapes(t: &HashMap<String, Tensor>, path: &Path) -> Result<C2fConfig> {
    let dims = |name: &str| -> Result<Vec<usize>> {
        t.get(name).map(|x| x.dims().to_vec()).ok_or_else(|| {
            Error::format(
                path,
                format!("missing tensor '{name}': not a C2F-TCN state dict"),
            )
        })
    };
    let inc = dims("inc.conv.conv.0.weight")?;
    let head = dims("outcc.conv.weight")?;
    if inc.len() != 3 || head.len() != 3 {
        return Err(Error::format(
            path,
            "inc/outcc weights are not 3-D convolution kernels",
        ));
    }
    let mut enc = [0usize; 7];
    enc[0] = inc[0];
    for (i, w) in enc.iter_mut().enumerate().skip(1) {
        let d = dims(&format!("down{i}.max_pool_conv.1.conv.0.weight"))?;
        *w = d[0];
    }
    Ok(C2fConfig {
        input_dim: inc[1],
        num_classes: head[0],
        encoder_widths: enc,
        decoder_width: head[1],
        ensemble_weights: [1.0; 6],
    })
}
