//! A process's memory as the kernel accounts it: RSS (VmRSS, and its high-water mark VmHWM),
//! PSS (`/proc/<pid>/smaps_rollup`: shared pages divided among the processes mapping them) and
//! private (RssAnon: anonymous pages, what the process itself allocated). Sampled while a
//! benchmark runs, for the peak of each.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Figure, figure};

/// One reading, in MiB.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Memory {
    pub rss: f64,
    /// VmHWM: the peak RSS over the life of the process.
    pub rss_peak: f64,
    pub pss: f64,
    /// RssAnon.
    pub private: f64,
}

/// The `<name>: <kB> kB` field of a /proc file, in MiB.
fn kib_field(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
}

/// Read the memory of process `pid`.
pub fn read(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let get = |text: &str, name: &str| {
        kib_field(text, name).with_context(|| format!("no {name} for pid {pid}"))
    };
    Ok(Memory {
        rss: get(&status, "VmRSS")?,
        rss_peak: get(&status, "VmHWM")?,
        pss: get(&rollup, "Pss")?,
        private: get(&status, "RssAnon")?,
    })
}

/// Samples a process every [`SAMPLE_EVERY`] until dropped; [`Sampler::peak`] is the maximum of
/// each field seen (PSS and private are not tracked by the kernel as peaks: sampling is how).
pub struct Sampler {
    peak: Arc<Mutex<Memory>>,
    task: tokio::task::JoinHandle<()>,
}

/// Often enough to catch a burst's peak; reading smaps_rollup costs well under a millisecond.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let peak = Arc::new(Mutex::new(Memory::default()));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            while let Ok(m) = read(pid) {
                {
                    let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
                    p.rss = p.rss.max(m.rss);
                    p.rss_peak = p.rss_peak.max(m.rss_peak);
                    p.pss = p.pss.max(m.pss);
                    p.private = p.private.max(m.private);
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        });
        Sampler { peak, task }
    }

    /// The peak so far, with one last reading folded in.
    pub fn peak(&self, pid: u32) -> Memory {
        let mut p = *self.peak.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(m) = read(pid) {
            p.rss = p.rss.max(m.rss).max(m.rss_peak);
            p.pss = p.pss.max(m.pss);
            p.private = p.private.max(m.private);
        }
        p
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `<prefix>_rss_mib`, `<prefix>_pss_mib`, `<prefix>_private_mib`, with goals on RSS and
/// private where given (`(goal text, limit)`).
pub fn figures(
    m: Memory,
    keys: [&'static str; 3],
    rss_goal: Option<(&'static str, f64)>,
    private_goal: Option<(&'static str, f64)>,
) -> Vec<Figure> {
    let with = |key, v: f64, goal: Option<(&'static str, f64)>| match goal {
        Some((text, limit)) => figure(key, v, "MiB", text, Some(v <= limit)),
        None => figure(key, v, "MiB", "", None),
    };
    vec![
        with(keys[0], m.rss, rss_goal),
        with(keys[1], m.pss, None),
        with(keys[2], m.private, private_goal),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let m = read(std::process::id()).unwrap();
        assert!(m.rss > 0.0 && m.pss > 0.0 && m.private > 0.0, "{m:?}");
        assert!(m.rss_peak >= m.rss && m.pss <= m.rss + 0.01, "{m:?}");
    }

    #[test]
    fn field_parse() {
        let text = "Name:\tx\nVmRSS:\t    2048 kB\nRssAnon:\t1024 kB\n";
        assert_eq!(kib_field(text, "VmRSS"), Some(2.0));
        assert_eq!(kib_field(text, "RssAnon"), Some(1.0));
        assert_eq!(kib_field(text, "Rss"), None);
    }
}
