//! The flags every per-video command shares for array jobs: which shard of
//! the list this task runs, and whether finished videos are redone
//! ([`syncseg_core::batch_job`]).

use syncseg_core::batch_job::BatchOptions;

#[derive(clap::Args, Debug, Clone)]
pub struct BatchArgs {
    /// Run only this shard of the list (from 0; needs --num-shards).
    /// Default: SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN) in a Slurm
    /// job array, JOB_COMPLETION_INDEX in a Kubernetes Indexed Job.
    #[arg(long, requires = "videos")]
    pub shard_index: Option<usize>,
    /// Split the list into this many shards, balanced by frames (or bytes).
    /// Default: SLURM_ARRAY_TASK_COUNT; required with JOB_COMPLETION_INDEX.
    #[arg(long, requires = "videos")]
    pub num_shards: Option<usize>,
    /// Redo videos whose outputs already exist (by default they are kept,
    /// so a rerun resumes where a crash or preemption stopped).
    #[arg(long, requires = "videos")]
    pub overwrite: bool,
}

impl BatchArgs {
    pub fn options(&self) -> BatchOptions {
        BatchOptions {
            shard_index: self.shard_index,
            num_shards: self.num_shards,
            overwrite: self.overwrite,
        }
    }
}
