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
    /// `None` when pgbouncer is not installed outside CI; in CI it must be.
    pub fn start() -> Option<PgBouncer> {
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            assert!(
                std::env::var_os("CI").is_none(),
                "pgbouncer is not installed (.ci/run installs it)"
            );
            eprintln!("SKIPPED: pgbouncer is not installed (apt-get install pgbouncer)");
            return None;
        };
        let dir = TempDir::new();
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (host, upstream_port, upstream_password) = upstream();
        let password = upstream_password
            .map(|p| format!(" password={p}"))
            .unwrap_or_default();
        let d = dir.0.display();
        let config = format!(
            "[databases]\n* = host={host} port={upstream_port}{password}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = scram-sha-256\nauth_file = {d}/userlist.txt\n\
             pool_mode = transaction\ndefault_pool_size = 1\nmax_client_conn = 50\nlogfile = {d}/pgbouncer.log\n\
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

/// Host, port and password of the test Postgres, from its URL.
fn upstream() -> (String, u16, Option<String>) {
    let url = super::admin_url();
    let (userinfo, after_at) = url.rsplit_once('@').unwrap();
    let password = userinfo
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .filter(|p| !p.starts_with("//"));
    let hostport = after_at.split('/').next().unwrap();
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    (host.to_string(), port.parse().unwrap(), password)
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
