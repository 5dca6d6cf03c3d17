//! Splitting a list of videos over the tasks of an array job (a Slurm job
//! array, a Kubernetes Indexed Job, N processes started by hand).
//!
//! Every task sees the whole list and computes the same assignment, so the
//! shards need no coordinator: they are disjoint and their union is the list.
//! Shards are balanced by work, not by count — recordings range from
//! seconds to hours — with the longest-processing-time rule: videos in
//! decreasing weight (frames, or bytes where frames are not known cheaply),
//! each to the shard with the least work so far. Ties go to the earlier
//! video and the lower shard, so the assignment is a function of the list
//! (names, weights and order) and the shard count only.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One task's part of a list: shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// This task's shard, `0 ≤ index < count`.
    pub index: usize,
    /// How many shards the list is split into.
    pub count: usize,
}

impl Default for Shard {
    /// The whole list.
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

/// Where a task's shard came from, for the line a job prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSource {
    /// No sharding: the whole list.
    Whole,
    /// `--shard-index` / `--num-shards` (or the options of the library call).
    Arguments,
    /// `SLURM_ARRAY_TASK_ID` and `SLURM_ARRAY_TASK_COUNT`.
    Slurm,
    /// Kubernetes' `JOB_COMPLETION_INDEX` (with the count given).
    Kubernetes,
}

impl std::fmt::Display for ShardSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShardSource::Whole => "no sharding",
            ShardSource::Arguments => "from the arguments",
            ShardSource::Slurm => "from SLURM_ARRAY_TASK_ID",
            ShardSource::Kubernetes => "from JOB_COMPLETION_INDEX",
        })
    }
}

impl Shard {
    /// Shard `index` of `count`, checked.
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 {
            return Err(Error::invalid("`num_shards` 0: must be at least 1"));
        }
        if index >= count {
            return Err(Error::invalid(format!(
                "`shard_index` {index}: must be below `num_shards` ({count}); shards count from 0"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Whether this is the whole list.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// The shard a task runs: `index`/`count` where given, else from the
    /// array engine's environment (`env` reads a variable):
    ///
    /// * Slurm: `SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` (divided by
    ///   `SLURM_ARRAY_TASK_STEP` for `--array=0-30:10`) of
    ///   `SLURM_ARRAY_TASK_COUNT`;
    /// * Kubernetes Indexed Job: `JOB_COMPLETION_INDEX` of `count` (the
    ///   Job's `completions`, which the pod's environment does not hold);
    /// * otherwise the whole list.
    pub fn resolve(
        index: Option<usize>,
        count: Option<usize>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Shard, ShardSource)> {
        let var = |name: &str| -> Result<Option<usize>> {
            match env(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                    Error::invalid(format!(
                        "{name}={v:?}: not a non-negative integer (the array engine sets it)"
                    ))
                }),
            }
        };
        match (index, count) {
            (Some(i), Some(n)) => return Ok((Shard::new(i, n)?, ShardSource::Arguments)),
            (Some(_), None) => {
                return Err(Error::invalid(
                    "`shard_index` needs `num_shards` (how many shards the list is split into)",
                ))
            }
            _ => {}
        }
        if let Some(id) = var("SLURM_ARRAY_TASK_ID")? {
            let min = var("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = var("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            let n = match count {
                Some(n) => n,
                None => var("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                    Error::invalid(
                        "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: give `num_shards`",
                    )
                })?,
            };
            // A list (`--array=3,5`) numbers tasks by gaps: its ids are
            // not shard indices (a rerun of some tasks of a bigger array).
            if let Some(max) = var("SLURM_ARRAY_TASK_MAX")? {
                if max < min || (max - min) % step != 0 || (max - min) / step + 1 != n {
                    return Err(Error::invalid(format!(
                        "SLURM_ARRAY_TASK_ID {id}: the array ({min}–{max}, step {step}, {n} tasks) is not a range from its first id; give `shard_index` and `num_shards` (e.g. the task id and the full array's size)"
                    )));
                }
            }
            if id < min || (id - min) % step != 0 {
                return Err(Error::invalid(format!(
                    "SLURM_ARRAY_TASK_ID {id}: not on the array's range (min {min}, step {step}); use --array=A-B[:S] without gaps, or give `shard_index`"
                )));
            }
            let i = (id - min) / step;
            return Shard::new(i, n)
                .map(|s| (s, ShardSource::Slurm))
                .map_err(|e| Error::invalid(format!("SLURM_ARRAY_TASK_ID {id}: {e}")));
        }
        if let Some(i) = var("JOB_COMPLETION_INDEX")? {
            let n = count.ok_or_else(|| {
                Error::invalid(
                    "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job): give `num_shards`, the Job's completions",
                )
            })?;
            return Shard::new(i, n).map(|s| (s, ShardSource::Kubernetes));
        }
        match count {
            None | Some(1) => Ok((Shard::default(), ShardSource::Whole)),
            Some(_) => Err(Error::invalid(
                "`num_shards` needs `shard_index` (or SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX in the environment)",
            )),
        }
    }

    /// The positions in the list (ascending) of the items of this shard,
    /// given every item's weight.
    pub fn pick(&self, weights: &[u64]) -> Vec<usize> {
        assign(weights, self.count)
            .into_iter()
            .enumerate()
            .filter(|&(_, s)| s == self.index)
            .map(|(i, _)| i)
            .collect()
    }
}

/// The shard of every item (longest processing time first; see the module).
/// A weight of 0 counts as 1, so that a list of unknown sizes still spreads
/// evenly.
pub fn assign(weights: &[u64], count: usize) -> Vec<usize> {
    let count = count.max(1);
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Stable: equal weights keep list order.
    order.sort_by(|&a, &b| weights[b].max(1).cmp(&weights[a].max(1)));
    let mut load = vec![0u128; count];
    let mut shard_of = vec![0; weights.len()];
    for i in order {
        // The first shard with the least work.
        let s = (0..count).min_by_key(|&s| (load[s], s)).unwrap_or(0);
        load[s] += u128::from(weights[i].max(1));
        shard_of[i] = s;
    }
    shard_of
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    proptest! {
        #[test]
        fn shards_are_disjoint_and_cover_the_list(
            weights in proptest::collection::vec(0u64..10_000, 0..200),
            count in 1usize..17,
        ) {
            let mut seen = vec![0; weights.len()];
            for index in 0..count {
                let picked = Shard::new(index, count).unwrap().pick(&weights);
                prop_assert!(picked.windows(2).all(|w| w[0] < w[1]));
                for i in picked {
                    seen[i] += 1;
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
        }

        #[test]
        fn shards_are_balanced_within_the_largest_item(
            weights in proptest::collection::vec(1u64..100_000, 1..300),
            count in 1usize..9,
        ) {
            // Greedy LPT: no shard exceeds the mean by more than one item.
            let shard_of = assign(&weights, count);
            let mut load = vec![0u64; count];
            for (i, &s) in shard_of.iter().enumerate() {
                load[s] += weights[i];
            }
            let total: u64 = weights.iter().sum();
            let largest = *weights.iter().max().unwrap();
            let max = *load.iter().max().unwrap();
            prop_assert!(max as f64 <= total as f64 / count as f64 + largest as f64);
        }

        #[test]
        fn assignment_is_a_function_of_the_list(
            weights in proptest::collection::vec(0u64..50, 0..100),
            count in 1usize..8,
        ) {
            prop_assert_eq!(assign(&weights, count), assign(&weights.clone(), count));
        }
    }

    #[test]
    fn long_videos_are_spread_first() {
        // Two hour-long videos and many short ones over two shards: one
        // long video each, the short ones fill in.
        let mut w = vec![10u64; 20];
        w[3] = 1000;
        w[17] = 1000;
        let s = assign(&w, 2);
        assert_ne!(s[3], s[17]);
        let load = |k| {
            (0..w.len())
                .filter(|&i| s[i] == k)
                .map(|i| w[i])
                .sum::<u64>()
        };
        assert_eq!(load(0), load(1));
    }

    #[test]
    fn arguments_win_over_the_environment() {
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        let (s, src) = Shard::resolve(Some(1), Some(2), &e).unwrap();
        assert_eq!(
            (s, src),
            (Shard { index: 1, count: 2 }, ShardSource::Arguments)
        );
    }

    #[test]
    fn slurm_arrays_map_to_shards() {
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            Shard::resolve(None, None, &e).unwrap().0,
            Shard { index: 3, count: 4 }
        );
        // --array=1-8: ids 1..=8.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "8"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
        ]);
        assert_eq!(
            Shard::resolve(None, None, &e).unwrap().0,
            Shard { index: 7, count: 8 }
        );
        // --array=0-30:10: ids 0, 10, 20, 30.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "20"),
            ("SLURM_ARRAY_TASK_STEP", "10"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            Shard::resolve(None, None, &e).unwrap().0,
            Shard { index: 2, count: 4 }
        );
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_STEP", "10"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        let err = Shard::resolve(None, None, &e).unwrap_err().to_string();
        assert!(err.contains("SLURM_ARRAY_TASK_ID 5"), "{err}");
        // A sparse array (--array=1,5,9) cannot be numbered.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "9"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        let err = Shard::resolve(None, None, &e).unwrap_err().to_string();
        assert!(err.contains("must be below"), "{err}");
    }

    #[test]
    fn kubernetes_needs_the_count() {
        let e = env(&[("JOB_COMPLETION_INDEX", "2")]);
        let err = Shard::resolve(None, None, &e).unwrap_err().to_string();
        assert!(err.contains("num_shards"), "{err}");
        let (s, src) = Shard::resolve(None, Some(5), &e).unwrap();
        assert_eq!(
            (s, src),
            (Shard { index: 2, count: 5 }, ShardSource::Kubernetes)
        );
    }

    #[test]
    fn bad_values_are_named() {
        let none = env(&[]);
        assert_eq!(
            Shard::resolve(None, None, &none).unwrap().1,
            ShardSource::Whole
        );
        let err = Shard::resolve(Some(4), Some(4), &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`shard_index` 4"), "{err}");
        let err = Shard::resolve(Some(0), None, &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs `num_shards`"), "{err}");
        let err = Shard::resolve(None, Some(3), &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs `shard_index`"), "{err}");
        let err = Shard::resolve(None, Some(0), &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 1") || err.contains("needs"), "{err}");
        let e = env(&[("SLURM_ARRAY_TASK_ID", "x")]);
        let err = Shard::resolve(None, None, &e).unwrap_err().to_string();
        assert!(err.contains("SLURM_ARRAY_TASK_ID=\"x\""), "{err}");
    }
}
