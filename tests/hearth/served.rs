//! `Served`: a real `hearth serve` child process on 127.0.0.1:0 (unless the environment
//! given says otherwise), killed when dropped. Both pipes are read by threads from the
//! start, so a chatty node never blocks on a full pipe (unless a test wants its log pipe
//! full); what it printed is kept.
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Served {
    child: Child,
    /// `host:port` the node listens on.
    pub addr: String,
    /// `http://host:port`.
    pub url: String,
    stdout: Arc<Mutex<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// Standard error held open and never read ([`Served::start_unread_log`]).
    _unread: Option<std::process::ChildStderr>,
    _dir: Option<tempfile::TempDir>,
}

impl Served {
    /// Starts the node on a fresh temporary data dir with `env` overriding the defaults.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self::start_in(&dir.path().join("data"), env);
        s._dir = Some(dir);
        s
    }

    /// Starts the node on `data` with `env` overriding the defaults; returns once it listens.
    pub fn start_in(data: &Path, env: &[(&str, &str)]) -> Self {
        Self::launch(data, env, true)
    }

    /// [`Served::start`] with a standard error that nobody reads: its pipe fills up after
    /// a few dozen KiB, as a stalled log collector's would.
    pub fn start_unread_log(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self::launch(&dir.path().join("data"), env, false);
        s._dir = Some(dir);
        s
    }

    fn launch(data: &Path, env: &[(&str, &str)], read_log: bool) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("serve")
            .env("HEARTH_DATA_DIR", data)
            .env("HEARTH_LISTEN_ADDR", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = child.stderr.take().unwrap();
        let (stderr, unread) = match read_log {
            true => {
                let reader = std::thread::spawn(move || {
                    let mut log = String::new();
                    let _ = err.read_to_string(&mut log);
                    log
                });
                (Some(reader), None)
            }
            false => (None, Some(err)),
        };
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = String::new();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                printed.push_str(&l);
                printed.push('\n');
                l.strip_prefix("listening on ").map(|a| a.trim().to_owned())
            })
            .expect("hearth printed `listening on`");
        let stdout = Arc::new(Mutex::new(printed));
        let keep = stdout.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                if let Ok(mut s) = keep.lock() {
                    s.push_str(&l);
                    s.push('\n');
                }
            }
        });
        Self {
            child,
            url: format!("http://{addr}"),
            addr,
            stdout,
            stderr,
            _unread: unread,
            _dir: None,
        }
    }

    /// The port the node listens on.
    pub fn port(&self) -> &str {
        self.addr.rsplit(':').next().unwrap_or_default()
    }

    /// The first line of standard output containing `needle`, waiting up to 10 s for it.
    pub fn printed_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.stdout.lock().unwrap().clone();
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} in {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP.
    pub fn hangup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Resident memory of the process, in MiB.
    pub fn rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib / 1024
    }

    /// Stops the node and returns everything it logged (standard error). SIGTERM first, so
    /// the node writes out the log lines still queued for its writer thread (a kill loses
    /// them, and on a busy machine the last requests' lines are often still queued); a node
    /// that has not exited after 10 s is killed.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
