//! `PgServer`: a real PostgreSQL server (Debian's package, installed by
//! scripts/install-test-deps.sh) started for one test as the unprivileged `postgres` user in
//! a temporary directory, on a free loopback port, and stopped when dropped. Tests that need
//! it are `#[ignore = "needs PostgreSQL …"]`: a plain `cargo test` reports them ignored, and
//! `bash scripts/test.sh` (which installs PostgreSQL) runs them with `--include-ignored`,
//! where a missing server fails them.
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// The server options (`pg_ctl -o`), so a stopped server starts again the same.
    opts: String,
}

fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

/// Runs `cmd` as the `postgres` user when we are root (PostgreSQL refuses to run as root).
fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> Command {
    let tool = bin.join(tool);
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut c = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool);
        c
    } else {
        Command::new(tool)
    };
    c.args(args);
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(55432)
}

impl PgServer {
    /// A fresh server; panics, saying how to install it, when PostgreSQL is missing.
    pub fn start() -> Self {
        Self::start_with(None, "")
    }

    /// A fresh server that counts each statement's calls and plans (`pg_stat_statements`,
    /// shipped with the server), for tests of what the store asks of it.
    pub fn start_counting() -> Self {
        Self::start_with(
            None,
            " -c shared_preload_libraries=pg_stat_statements \
             -c pg_stat_statements.track_planning=on",
        )
    }

    /// A fresh server that takes TCP connections only over TLS, with this certificate and
    /// key (PEM); local socket connections stay open for setup.
    pub fn start_tls(cert: &str, key: &str) -> Self {
        Self::start_with(Some((cert, key)), "")
    }

    fn start_with(tls: Option<(&str, &str)>, extra: &str) -> Self {
        let Some(bin) = bin_dir() else {
            panic!("this test needs PostgreSQL, which is not installed: run `bash scripts/test.sh` (it installs it with scripts/install-test-deps.sh)");
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("pgdata");
        let _ = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status();
        let ok = as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "hearth",
                "-A",
                "trust",
                "--no-sync",
            ],
        )
        .output()
        .unwrap();
        assert!(
            ok.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let port = free_port();
        let mut opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            dir.path().display()
        );
        opts.push_str(extra);
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            let (cert_file, key_file) = (data.join("server.crt"), data.join("server.key"));
            std::fs::write(&cert_file, cert).unwrap();
            std::fs::write(&key_file, key).unwrap();
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            )
            .unwrap();
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data)
                .status();
            opts.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let log = dir.path().join("pg.log");
        let ok = as_postgres(
            &bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        )
        .output()
        .unwrap();
        assert!(
            ok.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        Self {
            dir,
            bin,
            port,
            opts,
        }
    }
}

impl PgServer {
    fn ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("pgdata");
        let mut all = vec!["-D", data.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = as_postgres(&self.bin, "pg_ctl", &all).output().unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl restart -m fast`: every connection is closed; returns once it serves again.
    pub fn restart(&self) {
        let log = self.dir.path().join("pg.log");
        self.ctl(&["-l", log.to_str().unwrap(), "-m", "fast", "-w", "restart"]);
    }

    /// `pg_ctl stop -m fast`.
    pub fn stop(&self) {
        self.ctl(&["-m", "fast", "-w", "stop"]);
    }

    /// Starts a stopped server again (same options); returns once it serves.
    pub fn start_again(&self) {
        let log = self.dir.path().join("pg.log");
        self.ctl(&["-l", log.to_str().unwrap(), "-o", &self.opts, "-w", "start"]);
    }

    /// Calls of the statements of database `db` whose text is `LIKE` `pattern`, as
    /// `pg_stat_statements` counted them (a server from [`PgServer::start_counting`]).
    pub fn calls_like(&self, db: &str, pattern: &str) -> i64 {
        let sql = format!(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '{pattern}'"
        );
        self.sql(db, &sql)[0].parse().unwrap()
    }

    /// Runs `sql` on database `db` as the superuser; the rows' first columns as text.
    pub fn sql(&self, db: &str, sql: &str) -> Vec<String> {
        let url = format!("postgres://hearth@127.0.0.1:{}/{db}", self.port);
        let sql = sql.to_owned();
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            c.simple_query(&sql)
                .unwrap()
                .into_iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                })
                .collect()
        })
        .join()
        .unwrap()
    }
}

/// A URL for database `db` of the server on `port`, created if it does not exist yet.
pub fn url_on(port: u16, db: &str) -> String {
    {
        let admin = format!("postgres://hearth@127.0.0.1:{port}/postgres");
        let (db, name) = (db.to_owned(), db.to_owned());
        // The synchronous driver may not run inside the test's runtime: a thread of its own.
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            let exists = c
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
                .unwrap()
                .is_some();
            if !exists {
                c.batch_execute(&format!("CREATE DATABASE \"{db}\""))
                    .unwrap();
            }
        })
        .join()
        .unwrap();
        format!("postgres://hearth@127.0.0.1:{port}/{name}")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("pgdata");
        let _ = as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ],
        )
        .output();
    }
}
