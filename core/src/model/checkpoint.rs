//! Model directories: `model.safetensors` (the reference PyTorch state-dict
//! names, 197 tensors for C2F-TCN) plus `model.json` ([`ModelMeta`]), and
//! `adapter.safetensors` when the model has a feature adapter.
//!
//! The files are one unit. Each is written to a temporary name and renamed
//! into place (so none is ever truncated), the weights first; `model.json`
//! is written last and is the commit point: it records the size and CRC-32
//! of the weights files it belongs to (under `files`), and
//! [`SegModel::load`] refuses weights that disagree — what a save
//! interrupted between the renames leaves. A `model.json` without `files`
//! (older syncseg, hand-written) loads unchecked.
//!
//! Model files are untrusted input: [`SegModel::load`] and
//! [`SegModel::from_bundle`] check the metadata ([`ModelMeta::validate`])
//! and every tensor's name, shape, type and values against it before any
//! network is built, so no size in a file makes syncseg allocate more than
//! the file holds.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::adapter::{Adapter, AdapterConfig};
use super::backbone::{BackboneConfig, Network};
use super::config::C2fConfig;
use super::ms_tcn::MsTcnConfig;
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
/// The key of `model.json` recording the weights files it belongs to.
pub const FILES_KEY: &str = "files";
/// The longest training window a model may declare (2^24 frames, 3 days at 60 fps).
pub const MAX_WINDOW_FRAMES: usize = 1 << 24;
/// The most parameters a model may have (2^32: 16 GiB of f32).
pub const MAX_PARAMS: u64 = 1 << 32;

impl From<C2fConfig> for BackboneConfig {
    fn from(c: C2fConfig) -> Self {
        BackboneConfig::C2fTcn(c)
    }
}

impl From<MsTcnConfig> for BackboneConfig {
    fn from(c: MsTcnConfig) -> Self {
        BackboneConfig::MsTcn(c)
    }
}

/// What a model directory says about its model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// The syncseg version that wrote it.
    pub syncseg_version: String,
    /// The network and its widths: the C2F-TCN's under `c2f`, MS-TCN++'s
    /// under `ms_tcn`.
    #[serde(flatten)]
    pub backbone: BackboneConfig,
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
        backbone: impl Into<BackboneConfig>,
        classes: Vec<String>,
        background: Vec<String>,
        window_frames: usize,
    ) -> Self {
        ModelMeta {
            format: FORMAT.to_string(),
            syncseg_version: env!("CARGO_PKG_VERSION").to_string(),
            backbone: backbone.into(),
            classes,
            background,
            window_frames,
            steps: 0,
            provenance: serde_json::Value::Null,
            adapter: None,
        }
    }

    /// The window prediction cuts a `frames`-long video into: the training
    /// window, or the whole video for a causal network, which a stream
    /// runs over the whole video with its state carried along, and whose
    /// offline prediction is the finished stream's, frame for frame.
    pub fn prediction_window(&self, frames: usize) -> usize {
        match &self.backbone {
            BackboneConfig::MsTcn(c) if c.causal.is_some() => frames.max(1),
            _ => self.window_frames,
        }
    }

    /// What is wrong with this description, in one line (`Err`): a format
    /// other than [`FORMAT`], an architecture out of bounds, class names
    /// that are empty, repeated, span lines or do not match the number of
    /// classes, a background class that is not a class, a window of 0
    /// frames, an unusable adapter. [`SegModel::new`] and every loader run it.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format is '{}', expected '{FORMAT}': not a syncseg model description",
                self.format
            ));
        }
        self.backbone.validate().map_err(|e| e.to_string())?;
        if self.classes.len() != self.backbone.num_classes() {
            return Err(format!(
                "model config: {} class names for {} classes (num_classes); give one name per class",
                self.classes.len(),
                self.backbone.num_classes()
            ));
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in self.classes.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(format!(
                    "class {i} has an empty name; every class needs a name (edit `classes`, or the mapping it came from)"
                ));
            }
            if name.chars().any(char::is_control) {
                return Err(format!(
                    "class {i} name {name:?} contains a newline or other control character; class names must be one line of text"
                ));
            }
            if let Some(j) = seen.insert(name, i) {
                return Err(format!(
                    "class name '{name}' is given twice (classes {j} and {i}); class names must be unique"
                ));
            }
        }
        let mut bg_seen = std::collections::HashSet::new();
        for b in &self.background {
            if !seen.contains_key(b.as_str()) {
                return Err(format!(
                    "background class {b:?} is not one of the model's classes; name one of `classes` or remove it"
                ));
            }
            if !bg_seen.insert(b) {
                return Err(format!("background class '{b}' is listed twice"));
            }
        }
        if self.window_frames == 0 || self.window_frames > MAX_WINDOW_FRAMES {
            return Err(format!(
                "window_frames is {}; it must be a number of frames from 1 to {MAX_WINDOW_FRAMES} (the sync release trained on 600)",
                self.window_frames
            ));
        }
        if let Some(a) = &self.adapter {
            a.validate().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The tensors the C2F-TCN's state dict must hold (but
    /// `num_batches_tracked`) and the adapter's, with their shapes, after
    /// [`ModelMeta::validate`], refusing a model of more than [`MAX_PARAMS`]
    /// parameters. Nothing is allocated from the sizes.
    pub fn param_shapes(&self) -> std::result::Result<ParamShapes, String> {
        self.validate()?;
        let net = self.backbone.param_shapes().map_err(|e| e.to_string())?;
        let adapter = self
            .adapter
            .as_ref()
            .map(|a| a.param_shapes(self.backbone.input_dim()));
        let n = super::config::count_params(&net).and_then(|n| {
            n.checked_add(super::config::count_params(
                adapter.as_deref().unwrap_or(&[]),
            )?)
        });
        match n {
            Some(n) if n <= MAX_PARAMS => Ok(ParamShapes { net, adapter }),
            _ => Err(format!(
                "model config: the widths make more than {MAX_PARAMS} parameters"
            )),
        }
    }
}

/// Names and shapes of a model's tensors ([`ModelMeta::param_shapes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamShapes {
    /// The network's.
    pub net: Vec<(String, Vec<usize>)>,
    /// The adapter's, when the model has one.
    pub adapter: Option<Vec<(String, Vec<usize>)>>,
}

/// A segmentation network (C2F-TCN or MS-TCN++) with its variables and metadata.
pub struct SegModel {
    /// The metadata.
    pub meta: ModelMeta,
    /// Every tensor of the state dict but `num_batches_tracked`.
    pub varmap: VarMap,
    /// The network reading `varmap`.
    pub net: Network,
    /// The feature adapter and its own variables (kept apart so that the
    /// network's state dict stays the reference one).
    pub adapter: Option<(Adapter, VarMap)>,
}

impl SegModel {
    /// A freshly initialised model.
    pub fn new(meta: ModelMeta, device: &Device) -> Result<Self> {
        meta.param_shapes().map_err(Error::invalid)?;
        let (net, varmap) = Network::init(&meta.backbone, device)?;
        let adapter = match &meta.adapter {
            Some(cfg) => Some(new_adapter(cfg, meta.backbone.input_dim(), device)?),
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
        let (adapter, varmap) = new_adapter(cfg, self.meta.backbone.input_dim(), &device)?;
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
                    "unexpected tensor '{first}' ({} unexpected in all): not the state dict of this {}",
                    extra.len(),
                    self.meta.backbone.kind()
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
    /// The description and every tensor are checked as [`SegModel::load`]
    /// checks a directory's.
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
        let shapes = meta
            .param_shapes()
            .map_err(|e| bad(format!("its model description is unusable: {e}")))?;
        // Allocates what the file holds, no more.
        let all = candle_core::safetensors::load_buffer(bytes, device)
            .map_err(|e| bad(format!("unreadable tensors ({e})")))?;
        let (adapter, net): (HashMap<String, Tensor>, HashMap<String, Tensor>) = all
            .into_iter()
            .partition(|(k, _)| k.starts_with(BUNDLE_ADAPTER_PREFIX));
        let adapter: HashMap<String, Tensor> = adapter
            .into_iter()
            .map(|(k, v)| (k[BUNDLE_ADAPTER_PREFIX.len()..].to_string(), v))
            .collect();
        let adapter = match (&shapes.adapter, adapter.is_empty()) {
            (Some(_), _) => Some((adapter, source)),
            (None, true) => None,
            (None, false) => {
                return Err(bad(format!(
                    "tensors under '{BUNDLE_ADAPTER_PREFIX}' but a description without an adapter: not a bundle syncseg wrote"
                )))
            }
        };
        SegModel::from_checked(meta, &shapes, &net, source, adapter, device)
    }

    /// Checks `net` (and the adapter's tensors) against `shapes`, then
    /// builds the model from them: nothing is allocated before the sizes
    /// in the description are known to be those of the tensors.
    fn from_checked(
        meta: ModelMeta,
        shapes: &ParamShapes,
        net: &HashMap<String, Tensor>,
        net_source: &Path,
        adapter: Option<(HashMap<String, Tensor>, &Path)>,
        device: &Device,
    ) -> Result<Self> {
        check_tensors(net, &shapes.net, net_source, true)?;
        if let (Some(want), Some((tensors, source))) = (&shapes.adapter, &adapter) {
            check_tensors(tensors, want, source, false)?;
        }
        let mut model = SegModel::new(meta, device)?;
        model.load_state_dict(net, net_source)?;
        if let (Some((_, varmap)), Some((tensors, source))) = (&model.adapter, &adapter) {
            load_vars(varmap, tensors, source)?;
        }
        Ok(model)
    }

    /// Writes [`SegModel::to_bundle`] to `path` atomically.
    pub fn save_bundle(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fsio::write_bytes_atomic(path, &self.to_bundle()?)
    }

    /// Loads a model directory, or a single-file bundle if `path` is a file.
    ///
    /// Refused, with one line naming the file: a description that
    /// [`ModelMeta::validate`] refuses; weights files that `model.json`'s
    /// `files` record says belong to another save; a tensor missing, extra,
    /// of another shape than the description implies, not floating-point, or
    /// holding NaN or ±inf.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        if path.is_file() {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            return SegModel::from_bundle(&bytes, device, path);
        }
        let dir = path;
        let meta_path = dir.join(META_FILE);
        let text = crate::fsio::read_text(&meta_path)?;
        let not_ours = |e: serde_json::Error| {
            Error::format(&meta_path, format!("not a syncseg model description: {e}"))
        };
        let mut value: serde_json::Value = serde_json::from_str(&text).map_err(not_ours)?;
        let files = match value.as_object_mut().and_then(|o| o.remove(FILES_KEY)) {
            None => None,
            Some(v) => Some(
                serde_json::from_value::<BTreeMap<String, FileDigest>>(v).map_err(|e| {
                    Error::format(&meta_path, format!("unreadable '{FILES_KEY}' record: {e}"))
                })?,
            ),
        };
        let meta: ModelMeta = serde_json::from_value(value).map_err(not_ours)?;
        let shapes = meta.param_shapes().map_err(|e| {
            Error::format(
                &meta_path,
                format!("{e} (fix model.json, or re-create the model)"),
            )
        })?;
        let read = |name: &str| -> Result<HashMap<String, Tensor>> {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
                Error::format(&path, format!("not a readable safetensors file ({e})"))
            })?;
            if let Some(want) = files.as_ref().and_then(|f| f.get(name)) {
                let got = FileDigest::of(&bytes);
                if got != *want {
                    return Err(Error::format(
                        &path,
                        format!(
                            "does not belong to the {META_FILE} beside it ({} bytes, CRC-32 {}; {META_FILE} \
                             records {} bytes, CRC-32 {}): a save was interrupted between writing the two. \
                             Save or train again into this folder, or restore both files from one save",
                            got.bytes, got.crc32, want.bytes, want.crc32
                        ),
                    ));
                }
            }
            // The header is consistent with the file: this allocates what it holds.
            candle_core::safetensors::load_buffer(&bytes, device)
                .map_err(|e| Error::format(&path, format!("not a readable safetensors file ({e})")))
        };
        let weights = dir.join(WEIGHTS_FILE);
        let net = read(WEIGHTS_FILE)?;
        let adapter_path = dir.join(ADAPTER_FILE);
        let adapter = match shapes.adapter {
            Some(_) => Some((read(ADAPTER_FILE)?, adapter_path.as_path())),
            None => None,
        };
        SegModel::from_checked(meta, &shapes, &net, &weights, adapter, device)
    }

    /// Writes the model into directory `dir` (created if needed) as one
    /// unit: each weights file is replaced atomically, then `model.json`,
    /// the commit point, recording the size and CRC-32 of the weights files
    /// it belongs to (see the module documentation). A stale
    /// `adapter.safetensors` is removed once the model without one is
    /// committed; other files in `dir` are left alone.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut files = BTreeMap::new();
        let mut write = |name: &str, tensors: HashMap<String, Tensor>| -> Result<()> {
            let path = dir.join(name);
            let mut sorted: Vec<(String, Tensor)> = tensors.into_iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let bytes = safetensors::serialize(sorted, None)
                .map_err(|e| Error::format(&path, format!("cannot write weights: {e}")))?;
            crate::fsio::write_bytes_atomic(&path, &bytes)?;
            files.insert(name.to_string(), FileDigest::of(&bytes));
            Ok(())
        };
        write(WEIGHTS_FILE, self.state_dict()?)?;
        if let Some((_, varmap)) = &self.adapter {
            let tensors: HashMap<String, Tensor> = varmap
                .data()
                .lock()
                .expect("varmap poisoned")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                .collect();
            write(ADAPTER_FILE, tensors)?;
        }
        let mut json = serde_json::to_value(&self.meta).expect("metadata serialises");
        json.as_object_mut().expect("metadata is an object").insert(
            FILES_KEY.to_string(),
            serde_json::to_value(&files).expect("digests serialise"),
        );
        let text = serde_json::to_string_pretty(&json).expect("metadata serialises");
        crate::fsio::write_bytes_atomic(dir.join(META_FILE), text.as_bytes())?;
        if self.adapter.is_none() {
            let stale = dir.join(ADAPTER_FILE);
            match std::fs::remove_file(&stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&stale, e))
                }
                _ => {}
            }
        }
        Ok(())
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
        // syncseg's own reader: candle's panics and over-allocates on
        // malformed files (see `model::pth`).
        let mut pth = super::pth::Pth::open(path)?;
        let has_net = |infos: &[super::pth::PthTensorInfo]| {
            infos.iter().any(|i| {
                i.name.ends_with("inc.conv.conv.0.weight")
                    || i.name.ends_with("PG.conv_1x1_in.weight")
            })
        };
        let mut key = None;
        if !has_net(&pth.tensor_infos(None)?) {
            for k in ["state_dict", "model_state_dict", "model"] {
                if has_net(&pth.tensor_infos(Some(k))?) {
                    key = Some(k);
                    break;
                }
            }
        }
        let entries = pth.read_all(key)?;
        let tensors: HashMap<String, Tensor> = entries
            .into_iter()
            .map(|(k, v)| {
                (
                    k.strip_prefix("module.").map(str::to_string).unwrap_or(k),
                    v,
                )
            })
            .collect();
        let backbone = if tensors.contains_key("PG.conv_1x1_in.weight") {
            BackboneConfig::MsTcn(ms_tcn_config_from_shapes(&tensors, path)?)
        } else {
            BackboneConfig::C2fTcn(config_from_shapes(&tensors, path)?)
        };
        let k = backbone.num_classes();
        let classes = match classes {
            Some(c) if c.len() != k => {
                return Err(Error::format(
                    path,
                    format!(
                        "the checkpoint has {k} classes but the mapping names {}",
                        c.len()
                    ),
                ))
            }
            Some(c) => c,
            None => (0..k).map(|i| format!("class{i}")).collect(),
        };
        // The sync release trained on 600-frame windows (MS-TCN++'s on
        // whole videos; prediction cuts both into windows of this length).
        let meta = ModelMeta::new(backbone, classes, Vec::new(), 600);
        let shapes = meta.param_shapes().map_err(|e| Error::format(path, e))?;
        let mut model = SegModel::from_checked(meta, &shapes, &tensors, path, None, device)?;
        model.meta.provenance = serde_json::json!({ "imported_from": path.display().to_string() });
        Ok(model)
    }

    /// Rebuilds the network over the same variables (after a config change
    /// such as new ensemble weights).
    pub fn rebuild(&mut self) -> Result<()> {
        let vb = VarBuilder::from_varmap(&self.varmap, DType::F32, &self.device());
        self.net = Network::new(&self.meta.backbone, vb)?;
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

/// Reads the architecture off a state dict's shapes (checked against every
/// tensor afterwards, by [`check_tensors`]).
fn config_from_shapes(t: &HashMap<String, Tensor>, path: &Path) -> Result<C2fConfig> {
    let conv = |name: &str| -> Result<[usize; 3]> {
        let x = t.get(name).ok_or_else(|| {
            Error::format(
                path,
                format!("missing tensor '{name}': not a C2F-TCN state dict"),
            )
        })?;
        x.dims().try_into().map_err(|_| {
            Error::format(
                path,
                format!(
                    "tensor '{name}' has shape {:?}, not a 3-D convolution kernel: not a C2F-TCN state dict",
                    x.dims()
                ),
            )
        })
    };
    let inc = conv("inc.conv.conv.0.weight")?;
    let head = conv("outcc.conv.weight")?;
    let mut enc = [0usize; 7];
    enc[0] = inc[0];
    for (i, w) in enc.iter_mut().enumerate().skip(1) {
        *w = conv(&format!("down{i}.max_pool_conv.1.conv.0.weight"))?[0];
    }
    Ok(C2fConfig {
        input_dim: inc[1],
        num_classes: head[0],
        encoder_widths: enc,
        decoder_width: head[1],
        ensemble_weights: [1.0; 6],
        // A state dict does not say the pools' sizes (their number is
        // checked with every shape afterwards): the reference's.
        tpp_pools: super::config::TPP_POOLS.to_vec(),
    })
}

/// Reads an MS-TCN++'s architecture off a state dict's shapes (the
/// release's names; checked against every tensor afterwards). Dropout is
/// not in a state dict: the release's 0.5.
fn ms_tcn_config_from_shapes(t: &HashMap<String, Tensor>, path: &Path) -> Result<MsTcnConfig> {
    let dims = |name: &str| -> Result<Vec<usize>> {
        t.get(name).map(|x| x.dims().to_vec()).ok_or_else(|| {
            Error::format(
                path,
                format!("missing tensor '{name}': not an MS-TCN++ state dict"),
            )
        })
    };
    let count = |f: &dyn Fn(usize) -> String| (0..).take_while(|i| t.contains_key(&f(*i))).count();
    let input = dims("PG.conv_1x1_in.weight")?;
    let out = dims("PG.conv_out.weight")?;
    if input.len() != 3 || out.len() != 3 {
        return Err(Error::format(
            path,
            "PG.conv_1x1_in / PG.conv_out are not 1-D convolution kernels: not an MS-TCN++ state dict",
        ));
    }
    Ok(MsTcnConfig {
        input_dim: input[1],
        num_classes: out[0],
        f_maps: input[0],
        layers_pg: count(&|i| format!("PG.conv_dilated_1.{i}.weight")),
        layers_r: count(&|i| format!("Rs.0.layers.{i}.conv_dilated.weight")).max(1),
        refinements: count(&|s| format!("Rs.{s}.conv_out.weight")),
        dropout: 0.5,
        causal: None,
    })
}

/// What `model.json` records of one weights file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Its length.
    pub bytes: u64,
    /// Its CRC-32 (IEEE), 8 lower-case hex digits.
    pub crc32: String,
}

impl FileDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        FileDigest {
            bytes: bytes.len() as u64,
            crc32: format!("{:08x}", crc32fast::hash(bytes)),
        }
    }
}

/// Checks `tensors` against `want`: every name present with its shape, a
/// floating-point type and finite values; no other names (but
/// `num_batches_tracked` when `state_dict`). Errors name `source`.
fn check_tensors(
    tensors: &HashMap<String, Tensor>,
    want: &[(String, Vec<usize>)],
    source: &Path,
    state_dict: bool,
) -> Result<()> {
    let bad = |msg: String| Error::format(source, msg);
    let mut sorted: Vec<&(String, Vec<usize>)> = want.iter().collect();
    sorted.sort();
    for (name, shape) in sorted {
        let t = tensors
            .get(name)
            .ok_or_else(|| bad(format!("missing tensor '{name}' (shape {shape:?})")))?;
        if t.dims() != shape.as_slice() {
            return Err(bad(format!(
                "tensor '{name}' has shape {:?}, the model description implies {shape:?}",
                t.dims()
            )));
        }
        if !t.dtype().is_float() {
            return Err(bad(format!(
                "tensor '{name}' holds {:?} values, weights must be floating-point",
                t.dtype()
            )));
        }
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "tensor '{name}' holds {} at index {i}: the weights are corrupt or training diverged; \
                 use another checkpoint",
                values[i]
            )));
        }
    }
    let known: std::collections::HashSet<&str> = want.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<&String> = tensors
        .keys()
        .filter(|k| {
            !(known.contains(k.as_str()) || state_dict && k.ends_with(".num_batches_tracked"))
        })
        .collect();
    extra.sort();
    if let Some(first) = extra.first() {
        return Err(bad(format!(
            "unexpected tensor '{first}' ({} unexpected in all): not the model its description describes",
            extra.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ModelMeta {
        ModelMeta::new(
            C2fConfig::scaled(6, 3, 0.05),
            vec!["a".into(), "b".into(), "c".into()],
            vec!["a".into()],
            400,
        )
    }

    fn saved(adapter: bool, seed: u64) -> (tempfile::TempDir, SegModel) {
        let dir = tempfile::tempdir().unwrap();
        let mut m = SegModel::new_seeded(meta(), &Device::Cpu, seed).unwrap();
        if adapter {
            m.attach_adapter(&AdapterConfig::small(), seed).unwrap();
        }
        m.save(dir.path()).unwrap();
        (dir, m)
    }

    fn edit_json(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
        let path = dir.join(META_FILE);
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }

    fn load_err(path: &Path) -> String {
        let err = SegModel::load(path, &Device::Cpu)
            .err()
            .expect("must be refused")
            .to_string();
        assert!(!err.contains('\n'), "one line: {err}");
        err
    }

    /// A bundle of `model`'s tensors with `meta` as its description.
    fn bundle_with(model: &SegModel, meta: &serde_json::Value) -> Vec<u8> {
        let bytes = model.to_bundle().unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let info = HashMap::from([(BUNDLE_META_KEY.to_string(), meta.to_string())]);
        let mut views = st.tensors();
        views.sort_by(|a, b| a.0.cmp(&b.0));
        safetensors::serialize(views, Some(info)).unwrap()
    }

    fn bundle_err(model: &SegModel, f: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut meta = serde_json::to_value(&model.meta).unwrap();
        f(&mut meta);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        std::fs::write(&path, bundle_with(model, &meta)).unwrap();
        let err = load_err(&path);
        assert!(err.contains("m.safetensors"), "{err}");
        err
    }

    #[test]
    fn round_trip_records_the_weights() {
        let (dir, m) = saved(true, 1);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(META_FILE)).unwrap())
                .unwrap();
        let files = &json[FILES_KEY];
        for name in [WEIGHTS_FILE, ADAPTER_FILE] {
            let bytes = std::fs::read(dir.path().join(name)).unwrap();
            assert_eq!(
                serde_json::from_value::<FileDigest>(files[name].clone()).unwrap(),
                FileDigest::of(&bytes)
            );
        }
        let back = SegModel::load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(back.meta, m.meta);
        // Saving without the adapter removes its stale weights.
        let plain = SegModel::new_seeded(meta(), &Device::Cpu, 2).unwrap();
        plain.save(dir.path()).unwrap();
        assert!(!dir.path().join(ADAPTER_FILE).exists());
        assert!(SegModel::load(dir.path(), &Device::Cpu)
            .unwrap()
            .adapter
            .is_none());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }

    #[test]
    fn huge_sizes_in_model_json_are_refused_before_allocating() {
        // 2^31 aborted ("memory allocation of 558345748480 bytes failed"),
        // 2^62 panicked ("capacity overflow").
        for v in [1u64 << 31, 1 << 62, u64::MAX] {
            let (dir, _) = saved(false, 0);
            edit_json(dir.path(), |j| j["c2f"]["input_dim"] = v.into());
            let err = load_err(dir.path());
            assert!(
                err.contains("model.json") && err.contains("input_dim"),
                "{err}"
            );
            let (dir, _) = saved(false, 0);
            edit_json(dir.path(), |j| j["c2f"]["encoder_widths"][4] = v.into());
            let err = load_err(dir.path());
            assert!(
                err.contains("model.json") && err.contains("encoder_widths"),
                "{err}"
            );
            let (dir, _) = saved(true, 0);
            edit_json(dir.path(), |j| j["adapter"]["ffn"] = v.into());
            let err = load_err(dir.path());
            assert!(err.contains("model.json") && err.contains("ffn"), "{err}");
        }
        // Within the bounds but not what the weights hold: refused on the
        // shapes, before the network is built (1 << 20 × 1 << 20 would be 4 TiB).
        let (dir, _) = saved(false, 0);
        edit_json(dir.path(), |j| {
            j["c2f"]["input_dim"] = (1u64 << 20).into();
            j["c2f"]["decoder_width"] = (1u64 << 20).into();
        });
        let err = load_err(dir.path());
        assert!(err.contains("parameters"), "{err}");
        let (dir, _) = saved(false, 0);
        edit_json(dir.path(), |j| j["c2f"]["input_dim"] = 7.into());
        let err = load_err(dir.path());
        assert!(
            err.contains("model.safetensors") && err.contains("inc.conv.conv.0.weight"),
            "{err}"
        );
    }

    #[test]
    fn huge_sizes_in_a_bundle_are_refused() {
        let mut m = SegModel::new_seeded(meta(), &Device::Cpu, 0).unwrap();
        for v in [1u64 << 31, 1 << 62] {
            let err = bundle_err(&m, |j| j["c2f"]["input_dim"] = v.into());
            assert!(err.contains("input_dim"), "{err}");
            let err = bundle_err(&m, |j| j["c2f"]["encoder_widths"][0] = v.into());
            assert!(err.contains("encoder_widths"), "{err}");
        }
        let err = bundle_err(&m, |j| j["c2f"]["num_classes"] = 4.into());
        assert!(err.contains("class names"), "{err}");
        m.attach_adapter(&AdapterConfig::small(), 0).unwrap();
        let err = bundle_err(&m, |j| j["adapter"]["width"] = (1u64 << 31).into());
        assert!(err.contains("width"), "{err}");
        let err = bundle_err(&m, |j| j["adapter"]["layers"] = (1u64 << 40).into());
        assert!(err.contains("layers"), "{err}");
        let err = bundle_err(&m, |j| j["adapter"]["layers"] = 3.into());
        assert!(err.contains("missing tensor 'layers.2"), "{err}");
        let err = bundle_err(&m, |j| {
            j.as_object_mut().unwrap().remove("adapter");
        });
        assert!(err.contains("adapter/"), "{err}");
        let err = bundle_err(&m, |j| j["window_frames"] = 0.into());
        assert!(err.contains("window_frames is 0"), "{err}");
    }

    #[test]
    fn bad_descriptions_are_refused_at_load_and_creation() {
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|j| j["window_frames"] = 0.into()),
                "window_frames is 0",
            ),
            (
                Box::new(|j| j["classes"][1] = "a".into()),
                "'a' is given twice",
            ),
            (
                Box::new(|j| j["classes"][2] = "".into()),
                "class 2 has an empty name",
            ),
            (
                Box::new(|j| j["classes"][2] = " ".into()),
                "class 2 has an empty name",
            ),
            (Box::new(|j| j["classes"][0] = "x\ny".into()), "newline"),
            (
                Box::new(|j| j["background"][0] = "sky".into()),
                "background class \"sky\"",
            ),
            (
                Box::new(|j| j["format"] = "other".into()),
                "format is 'other'",
            ),
        ];
        for (edit, want) in cases {
            let (dir, _) = saved(false, 0);
            edit_json(dir.path(), &edit);
            let err = load_err(dir.path());
            assert!(
                err.contains("model.json") && err.contains(want),
                "{want}: {err}"
            );
            let mut m = serde_json::to_value(meta()).unwrap();
            edit(&mut m);
            if let Ok(meta) = serde_json::from_value::<ModelMeta>(m) {
                let err = SegModel::new(meta, &Device::Cpu).err().unwrap().to_string();
                assert!(err.contains(want), "new: {want}: {err}");
            }
        }
    }

    #[test]
    fn non_finite_weights_are_refused() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let (dir, m) = saved(false, 0);
            let mut sd = m.state_dict().unwrap();
            let w = &sd["outcc.conv.bias"];
            let mut v = w.to_vec1::<f32>().unwrap();
            v[1] = bad;
            sd.insert(
                "outcc.conv.bias".into(),
                Tensor::new(v, &Device::Cpu).unwrap(),
            );
            candle_core::safetensors::save(&sd, dir.path().join(WEIGHTS_FILE)).unwrap();
            // As a hand-made pair: no digest.
            edit_json(dir.path(), |j| {
                j.as_object_mut().unwrap().remove(FILES_KEY);
            });
            let err = load_err(dir.path());
            assert!(
                err.contains("model.safetensors")
                    && err.contains("outcc.conv.bias")
                    && err.contains("index 1"),
                "{err}"
            );
        }
    }

    #[test]
    fn weights_of_another_save_are_refused() {
        let (a, _) = saved(true, 1);
        let (b, _) = saved(true, 2);
        for name in [WEIGHTS_FILE, ADAPTER_FILE] {
            let (c, _) = saved(true, 1);
            std::fs::copy(b.path().join(name), c.path().join(name)).unwrap();
            let err = load_err(c.path());
            assert!(
                err.contains(name)
                    && err.contains("interrupted")
                    && err.contains("Save or train again"),
                "{err}"
            );
        }
        // Without the record (an older or hand-written model.json) the pair loads.
        std::fs::copy(b.path().join(WEIGHTS_FILE), a.path().join(WEIGHTS_FILE)).unwrap();
        edit_json(a.path(), |j| {
            j.as_object_mut().unwrap().remove(FILES_KEY);
        });
        SegModel::load(a.path(), &Device::Cpu).unwrap();
        // A malformed record is an error, not ignored.
        edit_json(a.path(), |j| j[FILES_KEY] = "yes".into());
        assert!(load_err(a.path()).contains("'files'"));
    }

    #[test]
    fn zero_dimensional_weights_in_a_pth_are_errors() {
        use super::super::pth::tests::{pth, Entry};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.pth");
        for (name, shape) in [
            ("inc.conv.conv.0.weight", vec![]),
            ("inc.conv.conv.0.weight", vec![4, 6]),
        ] {
            let mut entries = vec![Entry::new(name, "0", &shape)];
            entries.push(Entry::new("outcc.conv.weight", "1", &[3, 4, 1]));
            std::fs::write(&path, pth(&entries, false)).unwrap();
            let err = SegModel::import_pth(&path, None, &Device::Cpu)
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains("w.pth") && err.contains("not a 3-D convolution kernel"),
                "{err}"
            );
        }
        // The whole state dict is checked, not only the shapes the
        // architecture is read from.
        let m = SegModel::new_seeded(meta(), &Device::Cpu, 0).unwrap();
        let sd = m.state_dict().unwrap();
        let mut entries: Vec<Entry> = Vec::new();
        let mut names: Vec<&String> = sd
            .keys()
            .filter(|k| !k.ends_with("num_batches_tracked"))
            .collect();
        names.sort();
        for (i, n) in names.iter().enumerate() {
            let mut shape = sd[*n].dims().to_vec();
            if n.as_str() == "up.conv.conv.0.weight" {
                shape[1] += 1;
            }
            entries.push(Entry::new(n, &i.to_string(), &shape));
        }
        std::fs::write(&path, pth(&entries, false)).unwrap();
        let err = SegModel::import_pth(&path, None, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("up.conv.conv.0.weight") && err.contains("implies"),
            "{err}"
        );
    }
}
