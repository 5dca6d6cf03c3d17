//! The process's memory, as the kernel counts it: what long training runs
//! log per epoch and the memory soak tests assert on.
//!
//! Read from `/proc/self/status` (Linux); `None` where there is no such
//! file (other systems, wasm), so callers log nothing rather than fail.

/// Resident memory now and at its peak, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemoryUsage {
    /// Resident set size now (`VmRSS`).
    pub rss_bytes: u64,
    /// The largest resident set size so far (`VmHWM`, what
    /// `/usr/bin/time -f %M` reports at exit).
    pub peak_rss_bytes: u64,
}

/// The process's memory now, or `None` where the system does not say.
pub fn usage() -> Option<MemoryUsage> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status(&status)
}

/// `VmRSS` and `VmHWM` of a `/proc/<pid>/status` text.
fn parse_status(status: &str) -> Option<MemoryUsage> {
    Some(MemoryUsage {
        rss_bytes: kb_field(status, "VmRSS:")?,
        peak_rss_bytes: kb_field(status, "VmHWM:")?,
    })
}

/// Memory the system can give this process without swapping
/// (`MemAvailable` of `/proc/meminfo`), or `None` where it does not say.
pub fn available_bytes() -> Option<u64> {
    kb_field(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable:",
    )
}

/// The `NAME:   1234 kB` line of a /proc text, in bytes.
fn kb_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kb: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// `bytes` as MiB with one decimal, for progress lines.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernel_fields() {
        let s = "Name:\tsyncseg\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(
            parse_status(s),
            Some(MemoryUsage {
                rss_bytes: 1024 * 1024,
                peak_rss_bytes: 2048 * 1024
            })
        );
        assert_eq!(parse_status("Name: x\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory() {
        let m = usage().expect("Linux has /proc/self/status");
        assert!(m.rss_bytes > 0 && m.peak_rss_bytes >= m.rss_bytes);
    }
}
