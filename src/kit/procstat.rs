//! CPU time and resident memory from Linux's /proc: what the bench reports as
//! a gateway's cost per call and per app stream.
//!
//! Two scopes, because the bench meets two kinds of gateway:
//! - another process (`--pid`, or the child the idle bench starts): its whole
//!   CPU time from /proc/PID/stat, which also counts threads that have exited;
//! - a gateway inside the bench's own process, which it shares with the load
//!   generator and the echo apps: only the threads whose names it was given
//!   (see [`crate::kit::hosted`]) count, from /proc/self/task/*/stat. A named
//!   thread that exits during the window takes its time with it, which is
//!   why the hosted runtimes keep their threads for their whole life.
//!
//! CPU time is user + system, in the kernel's clock ticks (normally 10 ms),
//! so a window should hold many ticks of work: seconds, not milliseconds.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

/// The kernel keeps a thread's name (`comm`) to this many bytes.
const COMM_LEN: usize = 15;

/// Whose CPU time to read.
#[derive(Debug, Clone)]
pub enum CpuScope {
    /// Every thread, past and present, of a process.
    Process(u32),
    /// This process's live threads whose name starts with one of these.
    Threads(Vec<String>),
}

impl CpuScope {
    /// User + system time so far.
    pub fn read(&self) -> io::Result<Duration> {
        match self {
            CpuScope::Process(pid) => stat_cpu(&Path::new("/proc").join(pid.to_string())),
            CpuScope::Threads(prefixes) => threads_cpu(prefixes),
        }
    }

    /// How a report names this scope.
    pub fn describe(&self) -> String {
        match self {
            CpuScope::Process(pid) => format!("process {pid}"),
            CpuScope::Threads(prefixes) => format!("threads {}*", prefixes.join("*, ")),
        }
    }
}

/// Resident set size of `pid` in KiB (VmRSS of /proc/PID/status).
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| bad_data(format!("no VmRSS in /proc/{pid}/status")))
}

fn threads_cpu(prefixes: &[String]) -> io::Result<Duration> {
    let mut total = Duration::ZERO;
    let mut matched = 0;
    for task in fs::read_dir("/proc/self/task")? {
        // A thread may exit between the listing and the read: skip it.
        let Ok(stat) = fs::read_to_string(task?.path().join("stat")) else {
            continue;
        };
        let (name, fields) = split_stat(&stat)?;
        if prefixes.iter().any(|p| name_matches(name, p)) {
            total += cpu_of(fields)?;
            matched += 1;
        }
    }
    if matched == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no thread of this process is named {}*",
                prefixes.join("*, ")
            ),
        ));
    }
    Ok(total)
}

fn stat_cpu(proc_dir: &Path) -> io::Result<Duration> {
    let stat = fs::read_to_string(proc_dir.join("stat"))?;
    cpu_of(split_stat(&stat)?.1)
}

/// A thread's name matches `prefix` as far as the kernel kept the name.
fn name_matches(name: &str, prefix: &str) -> bool {
    let kept = &prefix.as_bytes()[..prefix.len().min(COMM_LEN)];
    name.as_bytes().starts_with(kept)
}

/// The name and the fields after it of a stat line. The name is in
/// parentheses and may itself hold spaces and parentheses, so it ends at the
/// last `)`.
fn split_stat(stat: &str) -> io::Result<(&str, &str)> {
    let open = stat.find('(');
    let close = stat.rfind(')');
    match (open, close) {
        (Some(open), Some(close)) if open < close => {
            Ok((&stat[open + 1..close], &stat[close + 1..]))
        }
        _ => Err(bad_data(format!("unexpected stat line: {stat:?}"))),
    }
}

/// utime + stime: fields 14 and 15 of stat, so the 12th and 13th after the
/// name (field 2).
fn cpu_of(fields_after_name: &str) -> io::Result<Duration> {
    let mut fields = fields_after_name.split_whitespace().skip(11);
    let mut ticks = |what: &str| {
        fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| bad_data(format!("stat has no {what}")))
    };
    let total = ticks("utime")? + ticks("stime")?;
    Ok(Duration::from_secs_f64(
        total as f64 / clock_ticks_per_sec(),
    ))
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // USER_HZ is 100 on every Linux the bench targets; sysconf failing is not
    // worth an error path.
    if hz > 0 { hz as f64 } else { 100.0 }
}

fn bad_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_may_hold_spaces_and_parentheses() {
        let line = "42 (a) b) S 1 42 42 0 -1 4194560 1 0 0 0 300 200 0 0 20 0 1 0";
        let (name, fields) = split_stat(line).unwrap();
        assert_eq!(name, "a) b");
        let cpu = cpu_of(fields).unwrap();
        let expected = 500.0 / clock_ticks_per_sec();
        assert!((cpu.as_secs_f64() - expected).abs() < 1e-9);
    }

    #[test]
    fn long_thread_names_match_as_far_as_the_kernel_kept_them() {
        assert!(name_matches("callbackstream-", "callbackstream-actors"));
        assert!(name_matches("gw-worker", "gw-"));
        assert!(!name_matches("callbackstream", "callbackstream-actors"));
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(CpuScope::Process(me).read().is_ok());
        assert!(
            CpuScope::Threads(vec!["no-such-thread".into()])
                .read()
                .is_err()
        );
    }
}
