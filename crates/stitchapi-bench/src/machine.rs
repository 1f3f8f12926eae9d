//! The machine a run measured: cores, CPU model, and this process's resident memory.

/// `nproc`: the CPUs this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The CPU model from `/proc/cpuinfo` (`"unknown"` elsewhere).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// This process's resident memory in bytes (`/proc/self/statm`, 4 KiB pages); `None` where
/// there is no procfs.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// One line naming the machine: `2 cores, AMD EPYC`.
pub fn describe() -> String {
    format!("{} cores (nproc), {}", cores(), cpu_model())
}
