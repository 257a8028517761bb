//! Revocations an operator's CLI command makes (`hearth user disable`, `session revoke`,
//! `token revoke`, …) reach a running SQLite node through its data dir: the command writes
//! the revoked session and token ids to a file `revoked.<time>.<pid>` (0600, renamed into
//! place whole), and the node reads and deletes such files every 200 ms and announces the
//! ids to its caches. Without this, a revoked credential kept working on the node until its
//! cache entry expired (up to 5 s). A cluster needs none of it: PostgreSQL's NOTIFY reaches
//! every node, the CLI's included.
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::domain::state::revocations::{Handler, LocalRevocations, Revocations};

const PREFIX: &str = "revoked.";
const PARTIAL: &str = ".partial";
/// How often a node looks for notices.
pub const POLL: Duration = Duration::from_millis(200);
/// Ids one file may carry (a command revokes at most an account's sessions and tokens).
const MAX_IDS: usize = 100_000;

/// The CLI's revocations: announced in this process and written for the running node.
#[derive(Debug)]
pub struct NoticeFiles {
    dir: PathBuf,
    local: LocalRevocations,
}

impl NoticeFiles {
    /// Notices for the node whose data dir is `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            local: LocalRevocations::default(),
        }
    }

    fn write(&self, ids: &[u64]) -> std::io::Result<()> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("{PREFIX}{stamp}.{}", std::process::id());
        let partial = self.dir.join(format!("{name}{PARTIAL}"));
        let mut file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&partial)?;
        for id in ids {
            writeln!(file, "{id}")?;
        }
        file.sync_all()?;
        std::fs::rename(&partial, self.dir.join(name))
    }
}

impl Revocations for NoticeFiles {
    fn announce(&self, ids: &[u64]) {
        self.local.announce(ids);
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.write(ids) {
            tracing::warn!(
                error = %e,
                "the running node could not be told of these revocations; they take effect when its caches expire (5 s)"
            );
        }
    }

    fn subscribe(&self, handler: Handler) {
        self.local.subscribe(handler);
    }
}

/// Reads, announces and deletes the notice files in `dir`; the number of ids announced.
pub fn read_notices(dir: &Path, revocations: &dyn Revocations) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut announced = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with(PREFIX) || name.ends_with(PARTIAL) {
            continue;
        }
        let path = entry.path();
        let ids: Vec<u64> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .take(MAX_IDS)
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        revocations.announce(&ids);
        announced += ids.len();
        let _ = std::fs::remove_file(&path);
    }
    announced
}

/// Every [`POLL`], announces the notices CLI commands left in `dir`, until `stop`.
pub fn follow(
    dir: PathBuf,
    revocations: Arc<dyn Revocations>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => return,
            }
            let (dir, r) = (dir.clone(), revocations.clone());
            let _ = tokio::task::spawn_blocking(move || read_notices(&dir, r.as_ref())).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_written_by_one_process_is_read_once_by_another() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        NoticeFiles::new(dir.path()).announce(&[7, 8]);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let node = LocalRevocations::default();
        let s = seen.clone();
        node.subscribe(Arc::new(move |r| {
            if let crate::domain::state::revocations::Revoked::Sessions(ids) = r {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(ids)
            }
        }));
        assert_eq!(read_notices(dir.path(), &node), 2);
        assert_eq!(read_notices(dir.path(), &node), 0, "read once");
        assert_eq!(*seen.lock().unwrap_or_else(|e| e.into_inner()), vec![7, 8]);
    }
}
