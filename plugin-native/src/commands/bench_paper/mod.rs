//! `syncseg bench paper`: the paper's comparisons and studies (Tables 3–6,
//! supplementary Table 1) on the synthetic benchmark, over seeds.
//!
//! Per seed: a new benchmark, the exo teacher and the ego oracle, then one
//! distillation run per cell of [`plan::cells`]. Every finished cell is
//! cached as `cells/seed-K/<cell>.json`, so an interrupted or extended run
//! (more `--seeds`) computes only what is missing. The report (`report.md`,
//! `results.json`, `pairs_fraction.svg`, `drop_rate.svg`) is rewritten after
//! each seed from every cached cell.

mod findings;
mod plan;
mod plots;
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use syncseg_core::fsio::write_bytes_atomic;
use syncseg_core::labels::Mapping;
use syncseg_core::shard::Shard;
use syncseg_core::synth::{Generator, Preset, SynthConfig};

use syncseg_core::pipeline::study::{score, Budget};
use syncseg_core::pipeline::{CpuEngine, Level};

use crate::progress::CliMonitor;
use plan::{Cell, Job};
use report::CellResult;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Benchmark size: small (about 10 minutes a seed on 2 cores) or paper.
    #[arg(long, default_value = "small", value_parser = super::synth::parse_preset)]
    preset: Preset,
    /// Number of seeds (0..N): each a new benchmark and new training runs.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Output folder; re-running with the same folder resumes.
    #[arg(long, default_value = "syncseg-paper")]
    out: PathBuf,
    /// Feature dimension of the benchmark (default: the preset's).
    #[arg(long)]
    dim: Option<usize>,
    /// Epochs of every training run instead of the preset's budget (a quick
    /// look; the report says so).
    #[arg(long)]
    epochs: Option<usize>,
    /// Compute only this shard of the seeds (from 0; needs --num-shards):
    /// seed s belongs to shard s mod N. Default: SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX. Shards share --out; once all have finished, a
    /// run without sharding computes nothing and writes the whole report.
    #[arg(long)]
    shard_index: Option<usize>,
    /// How many shards the seeds are split into (default:
    /// SLURM_ARRAY_TASK_COUNT; required with JOB_COMPLETION_INDEX).
    #[arg(long)]
    num_shards: Option<usize>,
}

/// What the cached cells depend on; a resumed run must match it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BenchConfig {
    preset: Preset,
    dim: Option<usize>,
    epochs: Option<usize>,
}

impl BenchConfig {
    /// The options as command-line flags.
    fn flags(&self) -> String {
        let preset = match self.preset {
            Preset::Small => "small",
            Preset::Paper => "paper",
        };
        let mut s = format!("--preset {preset}");
        if let Some(d) = self.dim {
            s.push_str(&format!(" --dim {d}"));
        }
        if let Some(e) = self.epochs {
            s.push_str(&format!(" --epochs {e}"));
        }
        s
    }
}

const CONFIG_FILE: &str = "bench-paper.json";

fn check_out(out: &Path, config: &BenchConfig) -> anyhow::Result<()> {
    let file = out.join(CONFIG_FILE);
    if file.exists() {
        let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
        let old: BenchConfig = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a bench paper configuration", file.display()))?;
        if &old != config {
            bail!(
                "{}: made with `{}`, not `{}`; choose another --out to start afresh",
                out.display(),
                old.flags(),
                config.flags()
            );
        }
        return Ok(());
    }
    // Another shard may be writing the configuration at this moment: its
    // temporary file is not a foreign output.
    let foreign = |e: std::io::Result<std::fs::DirEntry>| {
        e.map_or(true, |e| {
            !e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(".syncseg-") && n.ends_with(".tmp"))
        })
    };
    if out.exists() && std::fs::read_dir(out)?.any(foreign) {
        bail!(
            "{}: exists and is not a bench paper output; choose another --out",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    write_bytes_atomic(&file, serde_json::to_string_pretty(config)?.as_bytes())?;
    Ok(())
}

/// The seed's benchmark, generated unless a previous run finished it.
fn ensure_data(args: &Args, seed: u64, dir: &Path) -> anyhow::Result<()> {
    let done = dir.join(".complete");
    if done.exists() {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    let gen = Generator::new(SynthConfig::preset(args.preset, seed, args.dim)?)?;
    let pb = crate::progress::bar(gen.len() as u64, "synth", "recordings");
    gen.write(dir, |n, _| pb.set_position(n as u64))?;
    pb.finish_and_clear();
    write_bytes_atomic(&done, b"")?;
    Ok(())
}

fn cell_file(out: &Path, seed: u64, cell: &str) -> PathBuf {
    out.join("cells")
        .join(format!("seed-{seed}"))
        .join(format!("{cell}.json"))
}

fn read_cell(path: &Path) -> Option<CellResult> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("note: {}: unreadable ({e}); recomputing", path.display());
            None
        }
    }
}

/// Trains and scores one cell of one seed.
fn compute_cell(
    args: &Args,
    seed: u64,
    cell: &Cell,
    data: &Path,
    models: &Path,
    mapping: &Mapping,
) -> anyhow::Result<CellResult> {
    let started = Instant::now();
    let mut b = Budget::for_preset(args.preset);
    if let Some(e) = args.epochs {
        b.epochs = e;
        b.distill_epochs = e;
    }
    let dir = models.join(&cell.id);
    if dir.exists() {
        // A run interrupted before its result was cached.
        std::fs::remove_dir_all(&dir).with_context(|| dir.display().to_string())?;
    }
    let mut pairs = None;
    match &cell.job {
        Job::Train { view } => {
            let (inputs, options) = b.train(data, view, dir.clone(), seed);
            syncseg_core::pipeline::train(
                &inputs,
                &options,
                &mut CpuEngine,
                &mut CliMonitor::train(),
            )?;
        }
        Job::Distill(job) => {
            let (mut inputs, mut options) = b.distill(
                data,
                models.join(job.teacher),
                dir.clone(),
                Level::Tas,
                job.pairing,
                seed,
            );
            inputs.teacher_view = Some(job.teacher_view.into());
            inputs.student_view = Some(job.student_view.into());
            options.loss = job.loss;
            options.pairs_fraction = job.pairs_fraction;
            options.drop_rate = job.drop_rate;
            options.levels = Some(job.levels.clone());
            if !job.held_out {
                inputs.val_videos = None;
            }
            if job.loss.is_uda() {
                let split = |s: &str| data.join(format!("splits/{}_{s}.bundle", job.teacher_view));
                inputs.task_videos = Some(split("train"));
                inputs.task_val_videos = Some(split("val"));
            }
            let report = syncseg_core::pipeline::distill(
                &inputs,
                &options,
                &mut CpuEngine,
                &mut CliMonitor::distill(),
            )?;
            pairs = Some(report.pairs);
        }
    }
    let mut scores = BTreeMap::new();
    for view in cell.test_views {
        let (s, _) = score(&dir, data, view, mapping)?;
        scores.insert(view.to_string(), s);
    }
    Ok(CellResult {
        cell: cell.id.clone(),
        seed,
        scores,
        pairs,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The cells of `seed` still to compute, in plan order (teachers first): the
/// uncached ones; the students of a teacher computed again (their cached
/// results came from the old teacher); and a cached teacher whose model is
/// gone when a student of it needs it, with all its students.
fn pending_cells<'a>(cells: &'a [Cell], out: &Path, seed: u64, models: &Path) -> Vec<&'a Cell> {
    let teacher_of = |c: &Cell| match &c.job {
        Job::Distill(d) => Some(d.teacher),
        Job::Train { .. } => None,
    };
    let mut pending: Vec<bool> = cells
        .iter()
        .map(|c| read_cell(&cell_file(out, seed, &c.id)).is_none())
        .collect();
    for (i, c) in cells.iter().enumerate() {
        if teacher_of(c).is_some() || pending[i] {
            continue;
        }
        let needed = cells
            .iter()
            .zip(&pending)
            .any(|(s, &p)| p && teacher_of(s) == Some(c.id.as_str()));
        let model = models
            .join(&c.id)
            .join(syncseg_core::model::checkpoint::META_FILE);
        if needed && !model.exists() {
            pending[i] = true;
        }
    }
    for i in 0..cells.len() {
        if let Some(t) = teacher_of(&cells[i]) {
            let ti = cells
                .iter()
                .position(|c| c.id == t)
                .expect("the plan names its teachers");
            pending[i] |= pending[ti];
        }
    }
    cells
        .iter()
        .zip(pending)
        .filter(|(_, p)| *p)
        .map(|(c, _)| c)
        .collect()
}

/// Every cached cell of seeds 0..seeds.
fn cached_results(out: &Path, seeds: u64) -> Vec<CellResult> {
    let cells = plan::cells();
    (0..seeds)
        .flat_map(|seed| {
            cells
                .iter()
                .filter_map(move |c| read_cell(&cell_file(out, seed, &c.id)))
        })
        .collect()
}

fn write_report(args: &Args, out: &Path, results: &[CellResult]) -> anyhow::Result<()> {
    let config = BenchConfig {
        preset: args.preset,
        dim: args.dim,
        epochs: args.epochs,
    };
    let tables = report::summarize(&plan::tables(), results);
    let found = findings::findings(&tables);
    let seeds: std::collections::BTreeSet<u64> = results.iter().map(|r| r.seed).collect();
    let compute: f64 = results.iter().map(|r| r.seconds).sum();
    let mut md = String::from("# The paper's comparisons on the synthetic benchmark\n\n");
    md.push_str(&format!(
        "`syncseg bench paper {} --seeds {}`: {} seed(s), {:.1} min of training and scoring in all.\n\
         Scores are means ± sample standard deviations over seeds, on the ego test split \
         (exo for the EXO → EXO and EGO → EXO lines), background left out of segments and kept in MoF. \
         The training budget is the demo's{}.\n\n",
        config.flags(),
        args.seeds,
        seeds.len(),
        compute / 60.0,
        match args.epochs {
            Some(e) => format!(", except {e} epoch(s) for every run (a quick look, not the benchmark)"),
            None => String::new(),
        }
    ));
    md.push_str("## Findings\n\n");
    md.push_str(&findings::findings_markdown(&found));
    md.push_str("\n\"Within noise\": the difference of means is no larger than the larger of the two standard deviations.\n\n## Tables\n\n");
    for t in &tables {
        md.push_str(&report::table_markdown(t));
        md.push('\n');
        match t.id.as_str() {
            "table4" => {
                md.push_str("![Scores against the fraction of pairs](pairs_fraction.svg)\n\n")
            }
            "table5" => md.push_str("![Scores against the drop rate](drop_rate.svg)\n\n"),
            _ => {}
        }
    }
    md.push_str(
        "The UDA losses (MMD, DCORAL, GRL) train with the task loss on the labelled exo training \
         split and random exo/ego videos, selected on the exo validation split; the alignment \
         losses (TCC, SDTW) and Rnd. MSE on random pairs (* = another recording of the same \
         procedure, no held-out selection); the synchronized runs on the 16 adaptation pairs, \
         selected by the lowest distillation loss on the 4 held-out pairs. No ego label is read \
         by any adaptation run.\n",
    );
    for t in &tables {
        let (file, x) = match t.id.as_str() {
            "table4" => ("pairs_fraction.svg", "pairs used (%)"),
            "table5" => ("drop_rate.svg", "frames dropped per view (%)"),
            _ => continue,
        };
        write_bytes_atomic(out.join(file), plots::study_svg(t, x)?.as_bytes())?;
    }
    let json = serde_json::json!({
        "config": config,
        "seeds": seeds,
        "tables": tables,
        "findings": found,
        "cells": results,
    });
    write_bytes_atomic(
        out.join("results.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    write_bytes_atomic(out.join("report.md"), md.as_bytes())?;
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if args.epochs == Some(0) {
        bail!("--epochs must be positive");
    }
    let config = BenchConfig {
        preset: args.preset,
        dim: args.dim,
        epochs: args.epochs,
    };
    let (shard, source) =
        Shard::resolve(args.shard_index, args.num_shards, |k| std::env::var(k).ok())?;
    // Seeds cost alike: the balanced assignment is round robin.
    let seeds: Vec<u64> = shard
        .pick(&vec![1; args.seeds as usize])
        .into_iter()
        .map(|s| s as u64)
        .collect();
    if !shard.is_whole() {
        eprintln!(
            "[bench paper] shard {} of {} ({source}): seeds {:?}",
            shard.index, shard.count, seeds
        );
    }
    check_out(&args.out, &config)?;
    let cells = plan::cells();
    let total = seeds.len() * cells.len();
    let started = Instant::now();
    let (mut done, mut computed, mut computed_secs) = (0usize, 0usize, 0.0f64);
    for &seed in &seeds {
        let root = args.out.join(format!("seed-{seed}"));
        let data = root.join("data");
        let models = root.join("models");
        let pending = pending_cells(&cells, &args.out, seed, &models);
        done += cells.len() - pending.len();
        if pending.is_empty() {
            continue;
        }
        ensure_data(&args, seed, &data)?;
        let mapping = Mapping::read(data.join("mapping.txt"))?;
        for cell in pending {
            let eta = if computed > 0 {
                let left = (total - done) as f64 * computed_secs / computed as f64;
                format!(", eta {:.0} min", left / 60.0)
            } else {
                String::new()
            };
            eprintln!(
                "[bench paper] cell {}/{total} (seed {seed}, {}){eta}",
                done + 1,
                cell.id
            );
            let result = compute_cell(&args, seed, cell, &data, &models, &mapping)
                .with_context(|| format!("bench paper: seed {seed}, cell {}", cell.id))?;
            computed_secs += result.seconds;
            computed += 1;
            done += 1;
            let file = cell_file(&args.out, seed, &cell.id);
            std::fs::create_dir_all(file.parent().expect("has a parent"))?;
            write_bytes_atomic(&file, serde_json::to_string_pretty(&result)?.as_bytes())?;
        }
        write_report(&args, &args.out, &cached_results(&args.out, args.seeds))?;
    }
    let results = cached_results(&args.out, args.seeds);
    write_report(&args, &args.out, &results)?;
    let tables = report::summarize(&plan::tables(), &results);
    println!(
        "{}",
        findings::findings_markdown(&findings::findings(&tables))
    );
    println!(
        "{computed} cell(s) computed, {} cached; wrote {}/report.md, results.json, pairs_fraction.svg and drop_rate.svg in {:.0} s",
        total - computed,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(out: &Path, cell: &str) {
        let r = CellResult {
            cell: cell.into(),
            seed: 0,
            scores: BTreeMap::new(),
            pairs: None,
            seconds: 0.0,
        };
        let f = cell_file(out, 0, cell);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, serde_json::to_string(&r).unwrap()).unwrap();
    }

    fn ids(cells: &[&Cell]) -> Vec<String> {
        cells.iter().map(|c| c.id.clone()).collect()
    }

    #[test]
    fn pending_cells_follow_their_teachers() {
        let dir = tempfile::tempdir().unwrap();
        let (out, models) = (dir.path(), dir.path().join("models"));
        let cells = plan::cells();
        assert_eq!(pending_cells(&cells, out, 0, &models).len(), cells.len());
        for c in &cells {
            cache(out, &c.id);
        }
        for c in [plan::EXO_TEACHER, plan::EGO_ORACLE] {
            let meta = models
                .join(c)
                .join(syncseg_core::model::checkpoint::META_FILE);
            std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
            std::fs::write(meta, "{}").unwrap();
        }
        assert!(pending_cells(&cells, out, 0, &models).is_empty());

        // An uncached student alone.
        std::fs::remove_file(cell_file(out, 0, "mmd")).unwrap();
        assert_eq!(ids(&pending_cells(&cells, out, 0, &models)), ["mmd"]);

        // Its teacher's model gone: the teacher and all its students again.
        std::fs::remove_dir_all(models.join(plan::EXO_TEACHER)).unwrap();
        let pending = ids(&pending_cells(&cells, out, 0, &models));
        assert_eq!(pending[0], plan::EXO_TEACHER);
        assert_eq!(
            pending.len(),
            cells.len() - 2,
            "all but the ego oracle and its student"
        );
        assert!(!pending.iter().any(|c| c == "reverse-ego-to-exo"));
    }
}
