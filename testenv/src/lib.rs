//! # farm-chat-testenv
//!
//! Throwaway database servers for tests, benchmarks and `cargo xtask run --cluster`:
//! [`Postgres`] (Debian's PostgreSQL, on a Unix socket only) and [`Redis`] (on a Unix socket
//! only), each in its own directory under `target/`, nothing listening on TCP.
//!
//! A server stops when its handle is dropped, and also when the process that started it ends
//! in any way (a panic that never unwinds, `kill -9`): a watchdog shell started with it waits
//! for that process and then stops the server. Tests that share one server per test binary
//! ([`Postgres::shared`]) rely on that, since statics are never dropped.

pub mod model;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// What went wrong starting a server, said so a person can act on it.
pub type Error = String;

fn root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(cmd: &mut Command) -> Result<(), Error> {
    let out = cmd
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} {:?} failed ({}): {}{}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The workspace's `target/` directory (`CARGO_TARGET_DIR` when set).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), |w| w.join("target"))
}

/// A fresh, empty directory `target/testenv/<name>-<pid>-<n>`.
fn fresh_dir(name: &str) -> Result<PathBuf, Error> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = target_dir()
        .join("testenv")
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it a moment later).
pub fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// A test CA and a server certificate it signed, made with `openssl` (P-256 keys: fast).
#[derive(Debug)]
pub struct Certs {
    dir: PathBuf,
    /// The CA's certificate (PEM): what a client trusts.
    pub ca: PathBuf,
    /// The server's certificate (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
}

impl Certs {
    /// A CA named `name` and a certificate for the DNS names and IP addresses in `names`
    /// (`["localhost"]`, `["localhost", "127.0.0.1"]`), in a fresh directory (removed on drop).
    pub fn make(name: &str, names: &[&str]) -> Result<Self, Error> {
        let dir = fresh_dir(&format!("certs-{name}"))?;
        // Shared certificates live in statics, which are never dropped: go with the process.
        watchdog(&format!("rm -rf {}", dir.display()))?;
        let at = |f: &str| dir.join(f);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(at("ca.key"))
            .arg("-out")
            .arg(at("ca.pem"))
            .args([
                "-days",
                "3",
                "-subj",
                &format!("/CN=farm-chat test CA {name}"),
            ])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]))?;
        run(Command::new("openssl")
            .arg("req")
            .args(ec)
            .arg("-keyout")
            .arg(at("server.key"))
            .arg("-out")
            .arg(at("server.csr"))
            .args([
                "-subj",
                &format!("/CN={}", names.first().copied().unwrap_or("localhost")),
            ]))?;
        let san: Vec<String> = names
            .iter()
            .map(|n| {
                if n.parse::<std::net::IpAddr>().is_ok() {
                    format!("IP:{n}")
                } else {
                    format!("DNS:{n}")
                }
            })
            .collect();
        std::fs::write(
            at("ext.cnf"),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
                san.join(",")
            ),
        )
        .map_err(|e| format!("write ext.cnf: {e}"))?;
        run(Command::new("openssl")
            .args(["x509", "-req", "-in"])
            .arg(at("server.csr"))
            .arg("-CA")
            .arg(at("ca.pem"))
            .arg("-CAkey")
            .arg(at("ca.key"))
            .args(["-CAcreateserial", "-days", "3", "-out"])
            .arg(at("server.pem"))
            .arg("-extfile")
            .arg(at("ext.cnf")))?;
        // Servers that drop privileges (PostgreSQL as `postgres`) read the key through their
        // own copy; the rest read it here.
        Ok(Self {
            ca: at("ca.pem"),
            cert: at("server.pem"),
            key: at("server.key"),
            dir,
        })
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `sh -c script` detached: it waits until this process is gone, then runs `stop`.
fn watchdog(stop: &str) -> Result<(), Error> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop}",
        pid = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("sh: {e}"))
}

/// The directory of Debian's PostgreSQL programs (the newest version installed), or of
/// `initdb` on `PATH`.
fn postgres_bin() -> Result<PathBuf, Error> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .ok_or_else(|| {
            "PostgreSQL is not installed: `cargo xtask bootstrap` installs it (as root), or \
             `apt-get install postgresql`"
                .to_owned()
        })
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root (PostgreSQL refuses
/// to run as root).
fn pg_command(bin: &Path, program: &str, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

/// A throwaway PostgreSQL server: its own data directory, a Unix socket in it, no TCP (or,
/// [`Postgres::start_tls`], TLS on a loopback port and nothing else), no fsync (tests need
/// speed, not durability across power loss). Stopped on drop.
#[derive(Debug)]
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// The loopback port of a TLS-only server.
    tls_port: Option<u16>,
}

impl Postgres {
    /// Initialises and starts a server in a fresh directory under `target/testenv/`.
    pub fn start() -> Result<Self, Error> {
        Self::launch(None)
    }

    /// A server that takes TLS connections only (`ssl = on`, `hostssl` alone in
    /// `pg_hba.conf`, like RDS with `rds.force_ssl`) on a free port of 127.0.0.1, with the
    /// certificate `certs` made (its Unix socket stays, for `createdb`).
    pub fn start_tls(certs: &Certs) -> Result<Self, Error> {
        Self::launch(Some(certs))
    }

    fn options(&self) -> String {
        let mut options = format!(
            "-k {} -c fsync=off -c full_page_writes=off -c max_connections=300",
            self.dir.display()
        );
        match self.tls_port {
            None => options.push_str(" -c listen_addresses=''"),
            Some(port) => options.push_str(&format!(
                " -c listen_addresses=127.0.0.1 -p {port} -c ssl=on -c ssl_cert_file={dir}/server.pem -c ssl_key_file={dir}/server.key",
                dir = self.dir.display()
            )),
        }
        options
    }

    fn launch(certs: Option<&Certs>) -> Result<Self, Error> {
        let bin = postgres_bin()?;
        let dir = fresh_dir("pg")?;
        let as_postgres = root();
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(&dir))?;
        }
        let data = dir.join("data");
        run(pg_command(&bin, "initdb", as_postgres)
            .args(["-D"])
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .args(["--locale", "C"]))?;
        let tls_port = match certs {
            None => None,
            Some(certs) => {
                // The key must be the server user's and unreadable to others.
                std::fs::copy(&certs.cert, dir.join("server.pem"))
                    .map_err(|e| format!("copy the certificate: {e}"))?;
                std::fs::copy(&certs.key, dir.join("server.key"))
                    .map_err(|e| format!("copy the key: {e}"))?;
                run(Command::new("chmod").arg("600").arg(dir.join("server.key")))?;
                if as_postgres {
                    run(Command::new("chown")
                        .arg("postgres:")
                        .arg(dir.join("server.pem"))
                        .arg(dir.join("server.key")))?;
                }
                // TLS from 127.0.0.1 only; the local socket (createdb, the watchdog) as before.
                std::fs::write(
                    data.join("pg_hba.conf"),
                    "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
                )
                .map_err(|e| format!("write pg_hba.conf: {e}"))?;
                Some(free_port()?)
            }
        };
        let server = Self {
            dir: dir.clone(),
            bin: bin.clone(),
            as_postgres,
            tls_port,
        };
        watchdog(&format!(
            "{} -D {} -m immediate stop; rm -rf {}",
            if as_postgres {
                format!("runuser -u postgres -- {}", bin.join("pg_ctl").display())
            } else {
                bin.join("pg_ctl").display().to_string()
            },
            data.display(),
            dir.display()
        ))?;
        run(pg_command(&bin, "pg_ctl", as_postgres)
            .arg("-D")
            .arg(&data)
            .args(["-o", &server.options(), "-l"])
            .arg(dir.join("log"))
            .args(["-w", "start"]))?;
        Ok(server)
    }

    /// One server for this whole process (a test binary), started on first use and stopped
    /// when the process ends.
    pub fn shared() -> Result<&'static Self, Error> {
        static SHARED: OnceLock<Result<Postgres, Error>> = OnceLock::new();
        SHARED
            .get_or_init(Self::start)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The TLS port of a [`Postgres::start_tls`] server.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// The URL of database `name` over TCP to `host` (`127.0.0.1` or `localhost`) with these
    /// libpq parameters (`sslmode=verify-full&sslrootcert=…`), on a TLS server.
    pub fn tcp_url(&self, host: &str, name: &str, params: &str) -> Option<String> {
        let port = self.tls_port?;
        Some(format!(
            "postgresql://postgres@{host}:{port}/{name}{}{params}",
            if params.is_empty() { "" } else { "?" }
        ))
    }

    /// Creates an empty database and returns its name (for [`Postgres::tcp_url`]). Names are
    /// made unique per process.
    pub fn fresh_database_name(&self, name: &str) -> Result<String, Error> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{name}_{}_{n}", std::process::id());
        let mut createdb = Command::new(self.bin.join("createdb"));
        createdb.arg("-h").arg(&self.dir);
        if let Some(port) = self.tls_port {
            // The socket's name carries the port.
            createdb.args(["-p", &port.to_string()]);
        }
        run(createdb.args(["-U", "postgres", &name]))?;
        Ok(name)
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgresql:///{name}?host={}&user=postgres",
            self.dir.display()
        )
    }

    /// Creates an empty database and returns its URL. Names are made unique per process.
    pub fn fresh_database(&self, name: &str) -> Result<String, Error> {
        Ok(self.url(&self.fresh_database_name(name)?))
    }

    /// Stops the server now (immediate mode: like a crash, the next start recovers). Its data
    /// stays until the handle is dropped.
    pub fn stop(&self) -> Result<(), Error> {
        run(pg_command(&self.bin, "pg_ctl", self.as_postgres)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"]))
    }

    /// Starts the server again on the same data after [`Postgres::stop`].
    pub fn restart(&self) -> Result<(), Error> {
        run(pg_command(&self.bin, "pg_ctl", self.as_postgres)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &self.options(), "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "start"]))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A throwaway Redis server on a Unix socket (and, [`Redis::start_tls`], TLS on a loopback
/// port), nothing saved to disk. Stopped on drop.
#[derive(Debug)]
pub struct Redis {
    dir: PathBuf,
    pid: std::sync::Mutex<u32>,
    tls: Option<RedisTls>,
}

/// A TLS Redis's port and its one user (ElastiCache's RBAC).
#[derive(Debug)]
struct RedisTls {
    port: u16,
    user: String,
    password: String,
}

impl Redis {
    /// Starts a server in a fresh directory under `target/testenv/`.
    pub fn start() -> Result<Self, Error> {
        Self::start_with(None, None)
    }

    /// A server like ElastiCache with in-transit encryption and RBAC: TLS only on a free
    /// port of 127.0.0.1 (`--port 0 --tls-port N`, the certificate `certs` made), and one
    /// user `user` with `password` (the `default` user is off).
    pub fn start_tls(certs: &Certs, user: &str, password: &str) -> Result<Self, Error> {
        Self::start_with(
            Some(certs),
            Some(RedisTls {
                port: free_port()?,
                user: user.to_owned(),
                password: password.to_owned(),
            }),
        )
    }

    fn start_with(certs: Option<&Certs>, tls: Option<RedisTls>) -> Result<Self, Error> {
        let dir = fresh_dir("redis")?;
        if let (Some(certs), Some(tls)) = (certs, &tls) {
            std::fs::write(
                dir.join("redis.conf"),
                format!(
                    "tls-port {port}\nport 0\ntls-cert-file {cert}\ntls-key-file {key}\n\
                     tls-ca-cert-file {ca}\ntls-auth-clients no\nbind 127.0.0.1\n\
                     user default off\nuser {user} on >{password} ~* &* +@all\n",
                    port = tls.port,
                    cert = certs.cert.display(),
                    key = certs.key.display(),
                    ca = certs.ca.display(),
                    user = tls.user,
                    password = tls.password,
                ),
            )
            .map_err(|e| format!("write redis.conf: {e}"))?;
        }
        let redis = Self {
            pid: std::sync::Mutex::new(0),
            dir,
            tls,
        };
        redis.launch()?;
        watchdog(&format!(
            "kill $(cat {pidfile}) 2>/dev/null; rm -rf {dir}",
            pidfile = redis.dir.join("pid").display(),
            dir = redis.dir.display()
        ))?;
        Ok(redis)
    }

    /// One server for this whole process, started on first use and stopped when it ends.
    pub fn shared() -> Result<&'static Self, Error> {
        static SHARED: OnceLock<Result<Redis, Error>> = OnceLock::new();
        SHARED
            .get_or_init(Self::start)
            .as_ref()
            .map_err(Clone::clone)
    }

    fn launch(&self) -> Result<(), Error> {
        let socket = self.socket();
        let _ = std::fs::remove_file(&socket);
        let mut command = Command::new("redis-server");
        if self.tls.is_some() {
            command.arg(self.dir.join("redis.conf"));
        } else {
            command.args(["--port", "0"]);
        }
        let child = command
            .arg("--unixsocket")
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--maxclients", "10000", "--logfile"])
            .arg(self.dir.join("log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "redis-server: {e}. `cargo xtask bootstrap` installs it (as root), or \
                     `apt-get install redis-server`"
                )
            })?;
        let pid = child.id();
        std::fs::write(self.dir.join("pid"), pid.to_string())
            .map_err(|e| format!("write pid file: {e}"))?;
        *self.pid.lock().unwrap_or_else(|p| p.into_inner()) = pid;
        // Reap it in the background so a killed server leaves no zombie.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server did not open {} within 10 s",
                    socket.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Its socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("r.sock")
    }

    /// The `rediss://user:password@localhost:port/db` URL of a [`Redis::start_tls`] server.
    pub fn tls_url(&self, db: u8) -> Option<String> {
        let tls = self.tls.as_ref()?;
        Some(format!(
            "rediss://{}:{}@localhost:{}/{db}",
            tls.user, tls.password, tls.port
        ))
    }

    /// The URL of logical database `db` (0–15).
    pub fn url(&self, db: u8) -> String {
        format!("redis+unix://{}?db={db}", self.socket().display())
    }

    /// Kills the server (its data is gone: nothing is saved) and starts a new, empty one on
    /// the same socket.
    pub fn restart_empty(&self) -> Result<(), Error> {
        self.kill();
        self.launch()
    }

    /// Kills the server.
    pub fn kill(&self) {
        let pid = *self.pid.lock().unwrap_or_else(|p| p.into_inner());
        let _ = Command::new("kill")
            .arg("-9")
            .arg(pid.to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
