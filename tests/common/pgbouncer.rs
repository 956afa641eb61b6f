//! A private PgBouncer in transaction mode, in front of the test Postgres,
//! with password authentication (`postgres` / [`PgBouncer::PASSWORD`]).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

pub struct PgBouncer {
    pub port: u16,
    child: Child,
    dir: TempDir,
}

impl PgBouncer {
    pub const PASSWORD: &'static str = "bouncer-secret";

    /// Starts one with `default_pool_size = 1`, so every client shares one
    /// server connection per database (what breaks named statements).
    /// `None` when pgbouncer is not installed outside CI; under CI it must
    /// be ([`super::missing_tool`]).
    pub fn start() -> Option<PgBouncer> {
        Self::start_with_pool(1)
    }

    /// Starts one with `pool_size` server connections per database (several
    /// let a session lock stay on one that a new client may never use).
    pub fn start_with_pool(pool_size: u32) -> Option<PgBouncer> {
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            super::missing_tool(
                "pgbouncer",
                "apt-get install pgbouncer; .ci/run installs it",
            );
            return None;
        };
        let dir = TempDir::new();
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = super::server();
        // The server's own user and password, quoted as PgBouncer reads
        // them (a quote doubled).
        let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
        let password = server
            .password
            .as_deref()
            .map(|p| format!(" password={}", quote(p)))
            .unwrap_or_default();
        let (host, upstream_port, user) = (&server.host, server.port, quote(&server.user));
        let d = dir.0.display();
        let config = format!(
            "[databases]\n* = host={host} port={upstream_port} user={user}{password}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = scram-sha-256\nauth_file = {d}/userlist.txt\n\
             pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 50\nlogfile = {d}/pgbouncer.log\n\
             pidfile = {d}/pgbouncer.pid\nignore_startup_parameters = extra_float_digits,options\n"
        );
        std::fs::write(dir.0.join("pgbouncer.ini"), config).unwrap();
        std::fs::write(
            dir.0.join("userlist.txt"),
            format!("\"postgres\" \"{}\"\n", Self::PASSWORD),
        )
        .unwrap();
        let mut cmd = Command::new(binary);
        // PgBouncer refuses to run as root; CI runs as root.
        if running_as_root() {
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(dir.0.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not start: {:?}",
                std::fs::read_to_string(dir.0.join("pgbouncer.log"))
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(PgBouncer { port, child, dir })
    }

    /// URL through PgBouncer to `database` with `password`.
    pub fn url(&self, database: &str, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
