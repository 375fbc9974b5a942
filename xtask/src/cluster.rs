//! Several dev-server instances on one throwaway PostgreSQL and Redis, behind the chaos proxy
//! as a balancer: `cargo xtask run --cluster N`, and what the cluster tests and benchmarks
//! start. Instances keep their port across a restart, so the balancer's list stays right.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use farm_chat_testenv::{Certs, Postgres, Redis};

use crate::{
    proc::{cmd, run},
    server::{self, DevServer},
};

/// A running cluster; everything stops when it is dropped (and, should this process die
/// first, PostgreSQL and Redis stop by themselves).
pub(crate) struct Cluster {
    bin: PathBuf,
    args: Vec<String>,
    /// Each instance's address, kept across restarts.
    pub(crate) addrs: Vec<SocketAddr>,
    instances: Vec<Option<DevServer>>,
    /// The balancer in front, if started.
    balancer: Option<Child>,
    /// Where the balancer listens.
    pub(crate) front: Option<SocketAddr>,
    _redis: Redis,
    _postgres: Postgres,
    /// The test CA and the servers' certificate, with `--tls`.
    _certs: Option<Certs>,
}

impl Cluster {
    /// Starts PostgreSQL, Redis and `n` instances of `bin` with `args` (plus the database
    /// and Redis URLs; each on a free loopback port).
    pub(crate) fn start(n: usize, bin: &Path, args: &[String]) -> Result<Self, String> {
        Self::start_with(n, bin, args, false)
    }

    /// As [`Cluster::start`]; with `tls`, PostgreSQL and Redis take TLS only (as RDS and
    /// ElastiCache with in-transit encryption do), with a CA made for the run: the instances
    /// reach them with `sslmode=verify-full` and `rediss://` as an RBAC user.
    pub(crate) fn start_with(
        n: usize,
        bin: &Path,
        args: &[String],
        tls: bool,
    ) -> Result<Self, String> {
        let certs = if tls {
            println!("xtask: making a CA and a certificate for localhost (openssl)");
            Some(Certs::make("cluster", &["localhost"])?)
        } else {
            None
        };
        println!(
            "xtask: starting PostgreSQL and Redis{} under target/testenv/",
            if tls { " (TLS only)" } else { "" }
        );
        let (postgres, redis) = match &certs {
            Some(certs) => (
                Postgres::start_tls(certs)?,
                Redis::start_tls(certs, "farm-chat", &random_password())?,
            ),
            None => (Postgres::start()?, Redis::start()?),
        };
        let mut common = match &certs {
            Some(certs) => {
                let db = postgres.fresh_database_name("farmchat")?;
                let ca = certs.ca.display().to_string();
                let url = postgres
                    .tcp_url(
                        "localhost",
                        &db,
                        &format!("sslmode=verify-full&sslrootcert={ca}"),
                    )
                    .ok_or("no TLS port")?;
                vec![
                    "--database-url".to_owned(),
                    url,
                    "--redis-url".to_owned(),
                    redis.tls_url(0).ok_or("no TLS port")?,
                    "--redis-ca-cert".to_owned(),
                    ca,
                ]
            }
            None => vec![
                "--database-url".to_owned(),
                postgres.fresh_database("farmchat")?,
                "--redis-url".to_owned(),
                redis.url(0),
            ],
        };
        common.extend(args.iter().cloned());
        let mut cluster = Self {
            bin: bin.to_owned(),
            args: common,
            addrs: Vec::new(),
            instances: Vec::new(),
            balancer: None,
            front: None,
            _redis: redis,
            _postgres: postgres,
            _certs: certs,
        };
        for _ in 0..n {
            let instance = cluster.launch("127.0.0.1:0")?;
            cluster.addrs.push(instance.addr);
            cluster.instances.push(Some(instance));
        }
        Ok(cluster)
    }

    fn launch(&self, addr: &str) -> Result<DevServer, String> {
        let mut args = vec!["--addr".to_owned(), addr.to_owned()];
        args.extend(self.args.iter().cloned());
        DevServer::start_bin(&self.bin, &args)
    }

    /// The process id of instance `i`, while it runs.
    pub(crate) fn pid(&self, i: usize) -> Option<u32> {
        self.instances.get(i)?.as_ref().map(DevServer::pid)
    }

    /// Puts the chaos proxy in front as a balancer on `listen` (`round-robin` or `random`).
    pub(crate) fn balance(&mut self, listen: &str, balance: &str, seed: u64) -> Result<(), String> {
        let bin = server::target_dir().join("debug").join("farm-chat-chaos");
        self.balance_with(&bin, listen, balance, seed)
    }

    /// The same with the proxy binary `bin` (a release build for benchmarks).
    pub(crate) fn balance_with(
        &mut self,
        bin: &Path,
        listen: &str,
        balance: &str,
        seed: u64,
    ) -> Result<(), String> {
        let mut proxy = Command::new(bin);
        proxy.args(["--listen", listen, "--balance", balance, "--seed"]);
        proxy.arg(seed.to_string());
        for addr in &self.addrs {
            proxy.arg("--upstream").arg(addr.to_string());
        }
        let mut child = proxy
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start farm-chat-chaos: {e}"))?;
        let mut first = String::new();
        if let Some(stdout) = child.stdout.take() {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            first = lines.next().and_then(Result::ok).unwrap_or_default();
            std::thread::spawn(move || lines.for_each(drop));
        }
        let front = first
            .rsplit("http://")
            .next()
            .and_then(|s| s.trim_end_matches('/').parse().ok())
            .ok_or_else(|| format!("the balancer did not start: {first:?}"))?;
        self.front = Some(front);
        self.balancer = Some(child);
        Ok(())
    }

    /// `kill -9` of instance `i`.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut instance) = self.instances.get_mut(i).and_then(Option::take) {
            instance.kill();
        }
    }

    /// Starts instance `i` again on its port (after [`Cluster::kill`]).
    pub(crate) fn restart(&mut self, i: usize) -> Result<(), String> {
        let addr = self.addrs[i].to_string();
        let instance = self.launch(&addr)?;
        self.instances[i] = Some(instance);
        Ok(())
    }

    /// An instance that runs now.
    pub(crate) fn running_addr(&self) -> SocketAddr {
        self.instances
            .iter()
            .flatten()
            .next()
            .map_or(self.addrs[0], |i| i.addr)
    }

    /// Sets `flag`'s value for the instances started from now on (restarts).
    pub(crate) fn set_arg(&mut self, flag: &str, value: &str) {
        match self.args.iter().position(|a| a == flag) {
            Some(at) if at + 1 < self.args.len() => self.args[at + 1] = value.to_owned(),
            _ => self.args.extend([flag.to_owned(), value.to_owned()]),
        }
    }

    /// How many instances there are (running or not).
    pub(crate) fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Waits until the balancer exits (Ctrl-C).
    pub(crate) fn wait(&mut self) -> Result<(), String> {
        match &mut self.balancer {
            Some(child) => child.wait().map(drop).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut balancer) = self.balancer.take() {
            let _ = balancer.kill();
            let _ = balancer.wait();
        }
        for i in 0..self.instances.len() {
            self.kill(i);
        }
    }
}

/// A password for the run's Redis user (never printed: the instances get it in their URL).
fn random_password() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("pw{:016x}", h.finish())
}

/// `cargo xtask run --cluster N [--no-tls] [ARGS…]`: N instances (default 3) behind a
/// round-robin balancer on `--addr` (default 127.0.0.1:3000), on PostgreSQL and Redis over
/// TLS (`--no-tls`: plain Unix sockets); ARGS go to every instance.
pub(crate) fn run_cluster(n: usize, args: &[String]) -> Result<(), String> {
    let mut front = "127.0.0.1:3000".to_owned();
    let mut rest = Vec::new();
    let mut tls = true;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-tls" => tls = false,
            "--addr" => front = args.next().cloned().ok_or("--addr needs an address")?,
            a if a.starts_with("--addr=") => front = a["--addr=".len()..].to_owned(),
            _ => rest.push(arg.clone()),
        }
    }
    if !rest.iter().any(|a| a.starts_with("--static-dir")) {
        rest.extend(["--static-dir".to_owned(), "dist".to_owned()]);
    }
    // Pages come from the balancer's origin, not from the instances' own ports.
    rest.extend(["--public-origin".to_owned(), format!("http://{front}")]);
    let bin = server::build()?;
    run(cmd("cargo").args(["build", "--quiet", "-p", "farm-chat-chaos"]))?;
    let mut cluster = Cluster::start_with(n, &bin, &rest, tls)?;
    cluster.balance(&front, "round-robin", 1)?;
    println!(
        "farm-chat cluster: {n} instances ({}) on PostgreSQL + Redis{}, behind http://{front}/ \
         (Ctrl-C stops everything)",
        cluster
            .addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        if tls { " over TLS" } else { "" },
    );
    cluster.wait()
}
