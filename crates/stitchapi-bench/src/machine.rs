//! The machine a run measured: cores, CPU model, this process's resident memory and this
//! thread's CPU time.

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

/// The CPU time this thread has run (`CLOCK_THREAD_CPUTIME_ID`): on a shared machine, time
/// spent preempted by other processes is not counted. `None` where the OS has no such clock.
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    #[cfg(unix)]
    {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Some(std::time::Duration::new(
            u64::try_from(now.tv_sec).ok()?,
            u32::try_from(now.tv_nsec).ok()?,
        ))
    }
    #[cfg(not(unix))]
    {
        None
    }
}
