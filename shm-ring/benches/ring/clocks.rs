//! The benchmark's clocks and meters: CLOCK_MONOTONIC stamps, this process's and the machine's
//! CPU time, preemptions, and the load of everything else while a figure was measured.

/// CLOCK_MONOTONIC in ns: the same clock in every process, unlike `Instant`'s origin.
#[inline(always)]
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// User + system CPU time of this process in ns, and its voluntary and involuntary context
/// switches (sleeps, and preemptions by other work).
pub(crate) fn self_usage() -> (u64, u64, u64) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        ru.ru_nvcsw as u64,
        ru.ru_nivcsw as u64,
    )
}

/// Involuntary context switches of the calling thread: how often other work preempted it.
pub(crate) fn thread_preemptions() -> u64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    ru.ru_nivcsw as u64
}

/// utime + stime of another process from /proc/<pid>/stat, in clock ticks.
pub(crate) fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state); utime and stime
    // are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

pub(crate) fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Busy (user, nice, system, irq, softirq) and stolen time of the whole machine, in clock ticks,
/// and the number of context switches since boot.
pub(crate) fn machine_ticks() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let ctxt = stat
        .lines()
        .find_map(|l| l.strip_prefix("ctxt "))
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is included in user)
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7), ctxt)
}

/// CPU time of this process and of its reaped children, in ns.
pub(crate) fn our_cpu_ns() -> u64 {
    let mut total = 0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable rusage.
        if unsafe { libc::getrusage(who, &mut ru) } == 0 {
            let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
            total += tv(ru.ru_utime) + tv(ru.ru_stime);
        }
    }
    total
}

/// How busy the machine was with other work while a figure was measured: CPU used by processes
/// other than this bench and its children, and time the hypervisor stole, both in cores; and
/// context switches per second, machine-wide (the bench's own spinning sides make few, so a high
/// rate means other processes waking up, each of which can preempt a spinning side for
/// microseconds even when they use little CPU). Call `load` only after every child started since
/// `start` has been reaped.
pub(crate) struct LoadMeter {
    pub(crate) wall_ns: u64,
    pub(crate) busy: u64,
    pub(crate) steal: u64,
    pub(crate) ctxt: u64,
    pub(crate) ours_ns: u64,
}

#[derive(Clone, Copy)]
pub(crate) struct Load {
    pub(crate) other_cores: f64,
    pub(crate) steal_cores: f64,
    pub(crate) switches_per_s: f64,
}

impl LoadMeter {
    pub(crate) fn start() -> Self {
        let (busy, steal, ctxt) = machine_ticks();
        LoadMeter {
            wall_ns: now_ns(),
            busy,
            steal,
            ctxt,
            ours_ns: our_cpu_ns(),
        }
    }

    pub(crate) fn load(&self) -> Load {
        let (busy, steal, ctxt) = machine_ticks();
        let secs = (now_ns() - self.wall_ns) as f64 / 1e9;
        let tick = 1.0 / clock_ticks_per_sec() as f64;
        let ours = (our_cpu_ns() - self.ours_ns) as f64 / 1e9;
        Load {
            other_cores: (((busy - self.busy) as f64 * tick - ours) / secs).max(0.0),
            steal_cores: (steal - self.steal) as f64 * tick / secs,
            switches_per_s: (ctxt - self.ctxt) as f64 / secs,
        }
    }
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "other load {:.2} cores, steal {:.2} cores, {:.0} context switches/s",
            self.other_cores, self.steal_cores, self.switches_per_s
        )
    }
}

/// Spins until CLOCK_MONOTONIC reaches `t`; returns the time it read last.
#[inline(always)]
pub(crate) fn spin_until(t: u64) -> u64 {
    loop {
        let now = now_ns();
        if now >= t {
            return now;
        }
        std::hint::spin_loop();
    }
}
