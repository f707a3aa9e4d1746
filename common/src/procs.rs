//! The processes of this host as `/proc` shows them: pids, argv (kept as bytes, so non-UTF-8
//! paths match exactly), state, parent and process group, open files. Pure reads; signalling
//! is the caller's.

use std::path::Path;

/// Every pid in `/proc` (empty when it cannot be read).
pub fn pids() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// The argv of `pid`, one byte string per argument (`None`: gone or unreadable).
pub fn argv(pid: i32) -> Option<Vec<Vec<u8>>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let raw = raw.strip_suffix(&[0]).unwrap_or(&raw);
    Some(raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect())
}

/// The title of `pid`: its command line with spaces between arguments (how nginx shows
/// "nginx: master process …"; lossy UTF-8, for matching and logs only).
pub fn title(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// Pids whose argv has an argument satisfying `pred`.
pub fn with_arg_matching(pred: impl Fn(&[u8]) -> bool) -> Vec<i32> {
    pids()
        .into_iter()
        .filter(|&pid| argv(pid).is_some_and(|args| args.iter().any(|a| pred(a))))
        .collect()
}

/// Pids with `arg` as one of their arguments, exactly.
pub fn with_arg(arg: &Path) -> Vec<i32> {
    let needle = arg.as_os_str().as_encoded_bytes();
    with_arg_matching(|a| a == needle)
}

/// Pids with an argument naming something inside `dir` (`dir/…`).
pub fn with_arg_under(dir: &Path) -> Vec<i32> {
    let mut prefix = dir.as_os_str().as_encoded_bytes().to_vec();
    prefix.push(b'/');
    with_arg_matching(|a| a.starts_with(&prefix))
}

/// Does an argument of `pid` contain `needle` anywhere (bytes)?
pub fn names(pid: i32, needle: &[u8]) -> bool {
    argv(pid).is_some_and(|args| {
        args.iter()
            .any(|a| needle.is_empty() || a.windows(needle.len()).any(|w| w == needle))
    })
}

/// Does `pid` hold a file under `dir` open (its `/proc/PID/fd` links)?
pub fn holds_file_under(pid: i32, dir: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.starts_with(dir)))
    })
}

/// The fields of `/proc/PID/stat` after the parenthesised command that callers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z` (zombie), …
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
}

/// `/proc/PID/stat` of `pid` (`None`: gone).
pub fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The [`Stat`] of one `/proc/PID/stat` line (pure; the command may hold spaces and `)`).
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some(Stat { state, ppid, pgrp })
}

/// Is `pid` a live (non-zombie) process?
pub fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z')
}

/// Live children of `ppid`.
pub fn children(ppid: i32) -> Vec<i32> {
    pids()
        .into_iter()
        .filter(|&pid| stat(pid).is_some_and(|s| s.ppid == ppid && s.state != 'Z'))
        .collect()
}

/// Live members of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    pids()
        .into_iter()
        .filter(|&pid| stat(pid).is_some_and(|s| s.pgrp == pgid && s.state != 'Z'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_hostile_commands() {
        let s = parse_stat("42 (a) b (c)) S 7 42 42 0 -1").unwrap();
        assert_eq!(
            s,
            Stat {
                state: 'S',
                ppid: 7,
                pgrp: 42
            }
        );
        assert_eq!(parse_stat("42 (x) Z 1 5").unwrap().state, 'Z');
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn this_process_and_a_child_by_argument() {
        let me = std::process::id() as i32;
        assert!(alive(me));
        assert!(pids().contains(&me));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ceph.conf");
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30", "sh"])
            .arg(&file)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Until exec, /proc shows the forked test binary's argv.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !with_arg(&file).contains(&pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(with_arg(&file).contains(&pid));
        assert!(with_arg_under(dir.path()).contains(&pid));
        assert!(!with_arg_under(&dir.path().join("other")).contains(&pid));
        let sibling = std::path::PathBuf::from(format!("{}x", dir.path().display()));
        assert!(!with_arg_under(&sibling).contains(&pid));
        assert!(names(pid, b"ceph.co"));
        assert!(children(me).contains(&pid));
        assert_eq!(stat(pid).unwrap().ppid, me);
        assert!(title(pid).starts_with("sh -c sleep 30 sh "));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!alive(pid));
    }
}
