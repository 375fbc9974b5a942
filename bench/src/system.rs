//! What the benchmarks read from the operating system: a process's memory and CPU time, the
//! core count, and the open-files limit (raised with util-linux `prlimit`).

use std::time::Duration;

/// Resident memory of `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// User + system CPU time of `pid` (`/proc/<pid>/stat`, clock ticks of 1/100 s).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The kernel's counters of connections refused at a full listen queue, machine-wide:
/// (`ListenOverflows`, `ListenDrops`) of `TcpExt` in `/proc/net/netstat`. Each counts a SYN
/// (or a handshake's last ACK) the kernel dropped; the client then waits a second or more
/// before it tries again.
pub fn listen_drops() -> Option<(u64, u64)> {
    parse_listen_drops(&std::fs::read_to_string("/proc/net/netstat").ok()?)
}

fn parse_listen_drops(netstat: &str) -> Option<(u64, u64)> {
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let field = |name: &str| -> Option<u64> {
        values
            .get(names.iter().position(|n| *n == name)?)?
            .parse()
            .ok()
    };
    Some((field("ListenOverflows")?, field("ListenDrops")?))
}

/// The machine's cores.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Raises the open-files limit of `pid` to `n` (soft and hard) with `prlimit`; says why not.
pub fn raise_nofile(pid: u32, n: u64) -> Result<(), String> {
    let out = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={n}:{n}"))
        .output()
        .map_err(|e| format!("prlimit: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "prlimit --pid={pid} --nofile={n}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|k| k > 0));
        assert!(cpu_time(me).is_some());
        assert!(cores() >= 1);
    }

    #[test]
    fn reads_the_listen_queue_counters() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                       TcpExt: 0 127 130\n\
                       IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(parse_listen_drops(netstat), Some((127, 130)));
        assert_eq!(parse_listen_drops("IpExt: InNoRoutes\nIpExt: 0\n"), None);
    }
}
