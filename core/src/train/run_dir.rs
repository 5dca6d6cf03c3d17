//! A training run's output folder: one writer at a time, and `last/`
//! committed as a whole.
//!
//! [`RunDir::open`] takes an exclusive lock on `OUT/.syncseg.lock` (the file
//! holds the writer's pid) for as long as the [`RunDir`] lives; a second
//! writer into the same folder is refused with a message naming the holder.
//! The operating system releases the lock when the process ends, however it
//! ends (kill -9 included), so a lock is never stale.
//!
//! `last/` — the checkpoint a `--resume` continues from — is never modified
//! in place. [`RunDir::commit_last`] fills a new folder and swaps it in:
//!
//! ```text
//! 1. OUT/.last-new/…            every file written and fsynced
//! 2. OUT/.last-new/COMPLETE     the marker, written last
//! 3. OUT/last → OUT/.last-old   (when there is a last/)
//! 4. OUT/.last-new → OUT/last   the commit
//! 5. remove OUT/.last-old
//! ```
//!
//! Readers only ever read `last/`, which is always one whole generation.
//! [`RunDir::open`] finishes or undoes an interrupted commit (under the
//! lock, on every run, resumed or not): without `last/`, a complete
//! `.last-new/` (killed between 3 and 4) is promoted, else `.last-old/` is
//! put back; with `last/`, a complete `.last-new/` (killed between 2 and 3)
//! is promoted too. What remains of `.last-new/` and `.last-old/` is
//! removed, and so are the temporary files (`.*.tmp`) an interrupted atomic
//! write left in `OUT` or `OUT/last`.
//!
//! Test hook: with `SYNCSEG_FAILPOINT=<point>[@<n>]` in the environment the
//! process aborts (as abruptly as kill -9) the `n`-th time (default: first)
//! it reaches `<point>`, one of [`FAILPOINTS`]. Unset, the hook costs one
//! environment lookup per commit step.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The committed checkpoint folder inside `OUT`.
pub const LAST: &str = "last";
/// The lock file inside `OUT`.
pub const LOCK_FILE: &str = ".syncseg.lock";
/// The marker written last into a filled `.last-new/`.
pub const COMPLETE: &str = "COMPLETE";
const NEW: &str = ".last-new";
const OLD: &str = ".last-old";

/// The points where `SYNCSEG_FAILPOINT` can abort the process, in the
/// order a commit reaches them.
pub const FAILPOINTS: &[&str] = &[
    // fit: the epoch's best model is saved to OUT, last/ not yet touched.
    "epoch:best-saved",
    // fit: the model is in .last-new/, the optimiser state not yet.
    "last:partial",
    // Every file is in .last-new/ and fsynced; no marker yet.
    "last:filled",
    // The marker is written; the old last/ is still in place.
    "last:marked",
    // last/ is renamed to .last-old/; .last-new/ not yet renamed.
    "last:retired",
    // .last-new/ is last/; .last-old/ not yet removed.
    "last:promoted",
];

/// The test hook described in the module doc.
pub(crate) fn failpoint(name: &str) {
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var("SYNCSEG_FAILPOINT") else {
        return;
    };
    let (point, nth) = match spec.split_once('@') {
        Some((p, n)) => (p, n.parse::<u64>().unwrap_or(1)),
        None => (spec.as_str(), 1),
    };
    if point != name {
        return;
    }
    if HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        eprintln!("SYNCSEG_FAILPOINT: aborting at {name} (hit {nth})");
        std::process::abort();
    }
}

/// A run's output folder, locked for this process; see the module doc.
#[derive(Debug)]
pub struct RunDir {
    root: PathBuf,
    // Holds the lock until dropped (closing the file releases it).
    _lock: File,
}

impl RunDir {
    /// Creates `out` if needed, takes its lock (refusing a second writer),
    /// then completes or undoes an interrupted commit and removes stale
    /// temporary files.
    pub fn open(out: impl AsRef<Path>) -> Result<RunDir> {
        let root = out.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        let lock_path = root.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {
                // The pid, for the message a second writer gets.
                let pid = format!("{}\n", std::process::id());
                lock.set_len(0)
                    .and_then(|_| lock.rewind())
                    .and_then(|_| lock.write_all(pid.as_bytes()))
                    .map_err(|e| Error::io(&lock_path, e))?;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another process".to_string(),
                    pid => format!("process {pid}"),
                };
                return Err(Error::invalid(format!(
                    "{}: another syncseg run ({holder}) is writing into this folder \
                     (it holds {LOCK_FILE}); wait for it to finish, or choose another `out`",
                    root.display()
                )));
            }
            // A platform without file locks: run unlocked.
            Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        let dir = RunDir { root, _lock: lock };
        dir.recover()?;
        Ok(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `OUT/last`, the committed checkpoint (which may not exist).
    pub fn last(&self) -> PathBuf {
        self.root.join(LAST)
    }

    /// `OUT/last` if there is one (a run to resume), `None` if not; an
    /// `OUT/last` that cannot be inspected is an error naming it.
    pub fn committed_last(&self) -> Result<Option<PathBuf>> {
        let last = self.last();
        match std::fs::metadata(&last) {
            Ok(m) if m.is_dir() => Ok(Some(last)),
            Ok(_) => Err(Error::format(
                &last,
                "not a folder: remove it, or choose another `out`",
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&last, e)),
        }
    }

    /// Replaces `last/` with what `fill` writes into the folder it is given,
    /// as one unit (see the module doc): on any error or crash, `last/` is
    /// the previous generation or the new one, never a mix.
    pub fn commit_last(&self, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let new = self.root.join(NEW);
        remove_dir_if_exists(&new)?;
        std::fs::create_dir(&new).map_err(|e| Error::io(&new, e))?;
        if let Err(e) = fill(&new) {
            let _ = std::fs::remove_dir_all(&new);
            return Err(e);
        }
        for entry in std::fs::read_dir(&new).map_err(|e| Error::io(&new, e))? {
            let path = entry.map_err(|e| Error::io(&new, e))?.path();
            if path.is_file() {
                sync_file(&path)?;
            }
        }
        failpoint("last:filled");
        let marker = new.join(COMPLETE);
        {
            // Closed at the end of the block, before the folder is synced.
            let mut file = File::create(&marker).map_err(|e| Error::io(&marker, e))?;
            file.write_all(b"a complete syncseg checkpoint\n")
                .and_then(|_| file.sync_all())
                .map_err(|e| Error::io(&marker, e))?;
        }
        sync_dir(&new);
        failpoint("last:marked");
        self.promote()
    }

    /// Swaps a complete `.last-new/` in as `last/`.
    fn promote(&self) -> Result<()> {
        let (last, new, old) = (self.last(), self.root.join(NEW), self.root.join(OLD));
        if last.exists() {
            remove_dir_if_exists(&old)?;
            std::fs::rename(&last, &old).map_err(|e| Error::io(&last, e))?;
            failpoint("last:retired");
        }
        std::fs::rename(&new, &last).map_err(|e| Error::io(&new, e))?;
        sync_dir(&self.root);
        failpoint("last:promoted");
        remove_dir_if_exists(&old)?;
        sync_dir(&self.root);
        Ok(())
    }

    /// Finishes or undoes an interrupted commit; removes stale temporaries.
    fn recover(&self) -> Result<()> {
        let (last, new, old) = (self.last(), self.root.join(NEW), self.root.join(OLD));
        if new.join(COMPLETE).is_file() {
            self.promote()?;
        } else if !last.exists() && old.is_dir() {
            std::fs::rename(&old, &last).map_err(|e| Error::io(&old, e))?;
        }
        remove_dir_if_exists(&new)?;
        remove_dir_if_exists(&old)?;
        for dir in [&self.root, &last] {
            if dir.is_dir() {
                remove_temp_files(dir)?;
            }
        }
        sync_dir(&self.root);
        Ok(())
    }
}

/// Removes the `.*.tmp` files directly in `dir` (what an interrupted
/// atomic write leaves: fsio's `.syncseg-*.tmp`, `.model.safetensors.tmp`).
fn remove_temp_files(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") && entry.path().is_file() {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

fn sync_file(path: &Path) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Flushes a folder's entries (renames) where the platform allows it.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != LOCK_FILE)
            .collect();
        names.sort();
        names
    }

    /// A generation as `commit_last` leaves it in `.last-new/`.
    fn generation(dir: &Path, epoch: &str, complete: bool) {
        write(dir, "weights", epoch);
        write(dir, "progress.json", epoch);
        if complete {
            write(dir, COMPLETE, "");
        }
    }

    #[test]
    fn a_commit_replaces_last_as_a_whole() {
        let out = tempfile::tempdir().unwrap();
        let run = RunDir::open(out.path()).unwrap();
        assert_eq!(run.committed_last().unwrap(), None);
        for epoch in ["1", "2"] {
            run.commit_last(|dir| {
                write(dir, "weights", epoch);
                write(dir, "progress.json", epoch);
                Ok(())
            })
            .unwrap();
            let last = run.committed_last().unwrap().unwrap();
            assert_eq!(read(&last, "weights"), epoch);
            assert_eq!(read(&last, "progress.json"), epoch);
        }
        assert_eq!(entries(out.path()), ["last"]);
        assert_eq!(entries(&run.last()), [COMPLETE, "progress.json", "weights"]);
    }

    #[test]
    fn a_failed_fill_keeps_the_previous_generation() {
        let out = tempfile::tempdir().unwrap();
        let run = RunDir::open(out.path()).unwrap();
        run.commit_last(|dir| {
            write(dir, "weights", "1");
            Ok(())
        })
        .unwrap();
        let err = run
            .commit_last(|dir| {
                write(dir, "weights", "2");
                Err(Error::invalid("disk full"))
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(read(&run.last(), "weights"), "1");
        assert_eq!(entries(out.path()), ["last"]);
    }

    /// Each state a crash can leave, and the generation a resume then sees.
    #[test]
    fn recovery_after_a_crash_at_each_step_of_a_commit() {
        // (what is on disk, the generation `last/` holds after open).
        type Setup = fn(&Path);
        let cases: [(&str, Setup, Option<&str>); 7] = [
            (
                "first commit, filling",
                |o| generation(&o.join(NEW), "1", false),
                None,
            ),
            (
                "first commit, marked",
                |o| generation(&o.join(NEW), "1", true),
                Some("1"),
            ),
            (
                "filling",
                |o| {
                    generation(&o.join(LAST), "1", true);
                    generation(&o.join(NEW), "2", false);
                },
                Some("1"),
            ),
            (
                "marked",
                |o| {
                    generation(&o.join(LAST), "1", true);
                    generation(&o.join(NEW), "2", true);
                },
                Some("2"),
            ),
            (
                "retired",
                |o| {
                    generation(&o.join(OLD), "1", true);
                    generation(&o.join(NEW), "2", true);
                },
                Some("2"),
            ),
            (
                "promoted",
                |o| {
                    generation(&o.join(OLD), "1", true);
                    generation(&o.join(LAST), "2", true);
                },
                Some("2"),
            ),
            (
                "retired, .last-new lost",
                |o| generation(&o.join(OLD), "1", true),
                Some("1"),
            ),
        ];
        for (name, setup, expect) in cases {
            let out = tempfile::tempdir().unwrap();
            setup(out.path());
            // Temporaries of interrupted atomic writes go too.
            write(out.path(), ".syncseg-Ab12.tmp", "x");
            write(out.path(), ".model.safetensors.tmp", "x");
            if out.path().join(LAST).is_dir() {
                write(&out.path().join(LAST), ".optimizer.safetensors.tmp", "x");
            }
            write(out.path(), "model.safetensors", "best");
            let run = RunDir::open(out.path()).unwrap();
            let last = run.committed_last().unwrap();
            assert_eq!(
                last.as_deref().map(|l| read(l, "weights")).as_deref(),
                expect,
                "{name}"
            );
            if let Some(last) = last {
                assert_eq!(read(&last, "progress.json"), expect.unwrap(), "{name}");
                assert!(
                    !entries(&last).iter().any(|n| n.ends_with(".tmp")),
                    "{name}"
                );
            }
            let mut left = vec!["model.safetensors"];
            if expect.is_some() {
                left.insert(0, "last");
            }
            assert_eq!(entries(out.path()), left, "{name}");
        }
    }

    #[test]
    fn a_second_writer_is_refused_and_the_lock_ends_with_the_first() {
        let out = tempfile::tempdir().unwrap();
        let first = RunDir::open(out.path()).unwrap();
        let err = RunDir::open(out.path()).unwrap_err().to_string();
        assert!(
            err.contains(&out.path().display().to_string())
                && err.contains(&format!("process {}", std::process::id()))
                && err.contains("another `out`"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        drop(first);
        RunDir::open(out.path()).unwrap();
    }

    #[test]
    fn last_that_is_a_file_is_named() {
        let out = tempfile::tempdir().unwrap();
        write(out.path(), LAST, "x");
        let run = RunDir::open(out.path()).unwrap();
        let err = run.committed_last().unwrap_err().to_string();
        assert!(err.contains("last: not a folder"), "{err}");
    }
}
