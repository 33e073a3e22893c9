//! Real PostgreSQL servers for tests: a throwaway cluster (`initdb`, then
//! `postgres` as a child process) on 127.0.0.1 with password authentication,
//! so database tests run against the server they will meet in production, not
//! a mock.
//!
//! One server per test binary is enough: each test creates its own database
//! with [`PostgresServer::create_database`] and uses the URL it returns. Hold
//! the server in a `static` `LazyLock` (it is `Send + Sync`); tests that take
//! the server away with [`stop`](PostgresServer::stop) need one of their own.
//!
//! PostgreSQL refuses to run as root, and tests often do (CI containers). The
//! harness then runs `initdb` and `postgres` as `nobody:nogroup` through
//! util-linux's `setpriv`, owns the data directory by that user and opens the
//! directory it was given to others for traversal (mode `o+x`).
//!
//! No server outlives its test binary, even from a `static`, whose `Drop` never
//! runs: `postgres` is started with a parent-death signal (`setpriv
//! --pdeathsig`), so the kernel asks it for an immediate shutdown when the
//! test binary exits, however it exits. (A `static`'s directory stays behind:
//! its `TempDir` is not dropped either.)
//!
//! ```no_run
//! use std::sync::LazyLock;
//! use minehound_testdata::postgres::PostgresServer;
//!
//! static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().unwrap());
//! static SERVER: LazyLock<PostgresServer> =
//!     LazyLock::new(|| PostgresServer::start(DIR.path()).unwrap());
//!
//! let url = SERVER.create_database("claims_expire").unwrap();
//! assert!(url.starts_with("postgres://minehound:"));
//! assert_eq!(SERVER.psql("claims_expire", "SELECT 1 + 1").unwrap(), "2");
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

/// The superuser `initdb` creates, and the user in every URL.
pub const SUPERUSER: &str = "minehound";

/// The user and group the server runs as when the tests run as root: Debian's
/// `nobody` and `nogroup`.
const UNPRIVILEGED: (u32, u32) = (65534, 65534);

/// How long `postgres` may take to accept connections, or to shut down.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest path a Unix socket can have (`sun_path`, without its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The directory of PostgreSQL's programs (`initdb`, `postgres`, `psql`,
/// `pg_isready`): `$MINEHOUND_PG_BINDIR`, else the newest Debian
/// `/usr/lib/postgresql/VERSION/bin` that holds `initdb`.
pub fn bin_dir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MINEHOUND_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    newest.map(|(_, bin)| bin).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no PostgreSQL server programs in /usr/lib/postgresql/*/bin \
             (apt-get install postgresql-15 postgresql-client-15, \
             or set MINEHOUND_PG_BINDIR to a directory holding initdb and postgres)",
        )
    })
}

/// A PostgreSQL server of its own for tests, listening on 127.0.0.1 with
/// `scram-sha-256` password authentication; shut down when dropped.
///
/// Durability is traded for speed (`fsync=off`): the data outlives
/// [`stop`](Self::stop) and [`start_again`](Self::start_again), not a crash of
/// the machine.
#[derive(Debug)]
pub struct PostgresServer {
    bin: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    port: u16,
    password: String,
    /// The uid and gid the server runs as, when they differ from ours.
    run_as: Option<(u32, u32)>,
    /// The `postgres` process while it runs.
    child: Option<Child>,
}

// A `static` `LazyLock<PostgresServer>` needs both.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<PostgresServer>();
};

impl PostgresServer {
    /// Creates a cluster in `dir` (its `data` directory, the Unix socket
    /// directory `sock`, the log `postgres.log`) and starts it on a free port,
    /// returning once it accepts connections.
    ///
    /// `dir` should be empty and belong to this server; it is created if
    /// missing. As root, `dir` is made traversable by others and every parent
    /// of it must already be (a directory under `/tmp` is).
    pub fn start(dir: &Path) -> io::Result<PostgresServer> {
        let bin = bin_dir()?;
        fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let run_as = (effective_uid()? == 0).then_some(UNPRIVILEGED);
        if let Some((uid, _)) = run_as {
            open_for_traversal(&dir, uid)?;
        }
        let socket_dir = dir.join("sock");
        let socket_path_len = socket_dir.as_os_str().len() + "/.s.PGSQL.65535".len();
        if socket_path_len > MAX_SOCKET_PATH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is too deep for PostgreSQL's Unix socket ({socket_path_len} bytes, \
                     at most {MAX_SOCKET_PATH}): start the server in a shorter directory",
                    dir.display()
                ),
            ));
        }
        let data = dir.join("data");
        for private in [&data, &socket_dir] {
            fs::create_dir(private)?;
            fs::set_permissions(private, fs::Permissions::from_mode(0o700))?;
            if let Some((uid, gid)) = run_as {
                std::os::unix::fs::chown(private, Some(uid), Some(gid))?;
            }
        }
        let mut server = PostgresServer {
            bin,
            data,
            socket_dir,
            log: dir.join("postgres.log"),
            port: 0,
            password: random_password()?,
            run_as,
            child: None,
        };
        server.initdb(&dir)?;
        // The port is free when chosen, but another process may take it
        // before `postgres` binds it: then try another.
        let mut attempts = 3;
        loop {
            server.port = free_port()?;
            let log_before = fs::metadata(&server.log).map_or(0, |m| m.len());
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(_)
                    if attempts > 1
                        && log_since(&server.log, log_before).contains("already in use") =>
                {
                    attempts -= 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Turns TLS on with `tls`'s certificate and key, and refuses every TCP
    /// connection without it (`hostssl` only in `pg_hba.conf`): a client that
    /// connects after this spoke TLS.
    pub fn require_tls(&mut self, tls: &crate::registry::Tls) -> io::Result<()> {
        for (from, name) in [(&tls.cert, "server.crt"), (&tls.key, "server.key")] {
            let to = self.data.join(name);
            fs::copy(from, &to)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(0o600))?;
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(&to, Some(uid), Some(gid))?;
            }
        }
        let hba_path = self.data.join("pg_hba.conf");
        let hba = fs::read_to_string(&hba_path)?;
        let hba: String = hba
            .lines()
            .map(|line| match line.strip_prefix("host ") {
                Some(rest) => format!("hostssl {rest}\n"),
                None => format!("{line}\n"),
            })
            .collect();
        fs::write(&hba_path, hba)?;
        self.psql(
            "postgres",
            "ALTER SYSTEM SET ssl = on; ALTER SYSTEM SET ssl_cert_file = 'server.crt'; \
             ALTER SYSTEM SET ssl_key_file = 'server.key'; SELECT pg_reload_conf();",
        )?;
        // The reload is asynchronous: wait until new sessions see it.
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while self.psql("postgres", "SHOW ssl")? != "on" {
            if Instant::now() > deadline {
                return Err(io::Error::other("PostgreSQL did not turn TLS on"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The TCP port on 127.0.0.1; the same after [`start_again`](Self::start_again).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password of [`SUPERUSER`] (random, URL-safe).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The URL of `database`:
    /// `postgres://minehound:PASSWORD@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Creates the database `name` and returns its [`url`](Self::url).
    ///
    /// Names are ASCII letters, digits, `_` and `-`, at most 63 bytes (longer
    /// ones PostgreSQL would silently cut, and the URL would name another
    /// database).
    pub fn create_database(&self, name: &str) -> io::Result<String> {
        let valid = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if name.is_empty() || name.len() > 63 || !valid {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("database name {name:?}: use 1 to 63 ASCII letters, digits, '_' or '-'"),
            ));
        }
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url(name))
    }

    /// Runs `sql` (one or more statements) in `database` with `psql` over
    /// TCP, stopping at the first error, and returns the rows it printed:
    /// unaligned, `|` between columns, one row per line, without command tags
    /// or the last newline. Fails with `psql`'s stderr.
    pub fn psql(&self, database: &str, sql: &str) -> io::Result<String> {
        let psql = self.bin.join("psql");
        let mut child = Command::new(&psql)
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-f", "-", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={} user={SUPERUSER} dbname={database} \
                 sslmode=prefer connect_timeout=10",
                self.port
            ))
            .env("PGPASSWORD", &self.password)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot run {} (apt-get install postgresql-client-15): {e}",
                        psql.display()
                    ),
                )
            })?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        // Written on its own thread: psql prints while it reads, and a full
        // stdout pipe would otherwise block both sides.
        let output = std::thread::scope(|scope| {
            scope.spawn(move || stdin.write_all(sql.as_bytes()));
            child.wait_with_output()
        })?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "psql on database {database:?} ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            )));
        }
        let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        Ok(stdout)
    }

    /// Shuts the server down (a fast shutdown: clients are disconnected) and
    /// waits for it to exit; connections are refused until
    /// [`start_again`](Self::start_again). Does nothing if it is not running.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            shut_down(child, "INT", STARTUP_TIMEOUT);
        }
    }

    /// Starts the server again on the same port and data after
    /// [`stop`](Self::stop); does nothing if it is running.
    pub fn start_again(&mut self) -> io::Result<()> {
        if let Some(child) = &mut self.child {
            if child.try_wait()?.is_none() {
                return Ok(());
            }
            self.child = None;
        }
        self.spawn()
    }

    /// The server's log so far (`initdb`'s output first), for assertion
    /// messages.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    /// Where the server writes its log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// A command that runs `program` as the server's user, and dies when the
    /// thread that started it ends.
    fn server_command(&self, program: &str) -> Command {
        let mut command = Command::new("setpriv");
        if let Some((uid, gid)) = self.run_as {
            command.arg(format!("--reuid={uid}"));
            command.arg(format!("--regid={gid}"));
            command.arg("--clear-groups");
        }
        // SIGQUIT is an immediate shutdown: unlike SIGKILL it still lets the
        // server remove its shared memory segment.
        command.args(["--pdeathsig", "SIGQUIT"]);
        command.arg(self.bin.join(program));
        command
    }

    fn log_file(&self) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .open(&self.log)
    }

    fn initdb(&self, dir: &Path) -> io::Result<()> {
        let pwfile = dir.join("pwfile");
        fs::write(&pwfile, format!("{}\n", self.password))?;
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))?;
        }
        let log = self.log_file()?;
        let status = self
            .server_command("initdb")
            .arg("-D")
            .arg(&self.data)
            .args([
                "--auth=scram-sha-256",
                &format!("--username={SUPERUSER}"),
                "--encoding=UTF8",
                "--locale=C",
                // The server runs with fsync=off: syncing here would only be slow.
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status();
        let _ = fs::remove_file(&pwfile);
        let status = status.map_err(|e| self.cannot_run("initdb", e))?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "initdb failed ({status}); log {}:\n{}",
                self.log.display(),
                self.log()
            )))
        }
    }

    /// Starts `postgres` and waits until it accepts connections.
    fn spawn(&mut self) -> io::Result<()> {
        let log = self.log_file()?;
        let mut command = self.server_command("postgres");
        command
            .arg("-D")
            .arg(&self.data)
            .arg("-k")
            .arg(&self.socket_dir)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child =
            spawn_from_lasting_thread(command).map_err(|e| self.cannot_run("postgres", e))?;
        self.child = Some(child);
        let ready = self.wait_ready();
        if ready.is_err()
            && let Some(child) = self.child.take()
        {
            shut_down(child, "QUIT", Duration::from_secs(10));
        }
        ready
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("spawned");
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "postgres exited ({status}) on port {}; log {}:\n{}",
                    self.port,
                    self.log.display(),
                    self.log()
                )));
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-t", "1", "-p"])
                .arg(self.port.to_string())
                .status()
                .map_err(|e| self.cannot_run("pg_isready", e))?;
            if ready.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "postgres did not accept connections on port {} within {} s; log {}:\n{}",
                        self.port,
                        STARTUP_TIMEOUT.as_secs(),
                        self.log.display(),
                        self.log()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn cannot_run(&self, program: &str, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!(
                "cannot run {} through setpriv (util-linux; apt-get install postgresql-15 \
                 postgresql-client-15): {e}",
                self.bin.join(program).display()
            ),
        )
    }
}

impl Drop for PostgresServer {
    /// An immediate shutdown: nothing needs to survive a test.
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            shut_down(child, "QUIT", Duration::from_secs(10));
        }
    }
}

/// Sends the postmaster `signal` (`INT` fast, `QUIT` immediate shutdown) and
/// waits for it, killing it after `timeout`.
fn shut_down(mut child: Child, signal: &str, timeout: Duration) {
    // The shell's builtin kill: std only sends SIGKILL, and procps's kill is
    // not on every Debian machine.
    let _ = Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\"", "sh", signal])
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Ok(Some(_)) | Err(_) => return,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` from a thread that lives as long as the process.
///
/// The kernel sends the parent-death signal when the *thread* that forked the
/// child ends, not the process: a server started by a test's thread would die
/// with that test, though a `static` shares it with the tests after it.
fn spawn_from_lasting_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Result<mpsc::Sender<SpawnRequest>, String>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("postgres-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .map(|_| requests)
            .map_err(|e| e.to_string())
    });
    let spawner = spawner
        .as_ref()
        .map_err(|e| io::Error::other(format!("cannot start the spawner thread: {e}")))?;
    let (reply, answer) = mpsc::channel();
    spawner
        .send((command, reply))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}

/// This process's effective uid, from `/proc/self/status`.
fn effective_uid() -> io::Result<u32> {
    let status = fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        .ok_or_else(|| io::Error::other("no effective uid in /proc/self/status"))
}

/// Lets others traverse `dir` (a `tempfile` directory is 0700) and checks
/// that every parent already lets them, so `uid` can reach the data.
fn open_for_traversal(dir: &Path, uid: u32) -> io::Result<()> {
    let mode = fs::metadata(dir)?.permissions().mode();
    fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o011))?;
    for parent in dir.ancestors().skip(1) {
        let mode = fs::metadata(parent)?.permissions().mode();
        if mode & 0o001 == 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "PostgreSQL runs as uid {uid} here (it refuses root) and cannot reach {}: \
                     {} is mode {:o}, closed to others; start it in a directory under /tmp",
                    dir.display(),
                    parent.display(),
                    mode & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

/// 32 hex digits from the kernel's random source: nothing to escape in a URL
/// or a connection string.
fn random_password() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// What was appended to the log after its first `offset` bytes.
fn log_since(log: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(log)
        && file.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = file.read_to_string(&mut text);
    }
    text
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// The uids (real, effective, saved, filesystem) of process `pid`.
    fn uids(pid: u32) -> Vec<u32> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap();
        line.split_whitespace()
            .map(|id| id.parse().unwrap())
            .collect()
    }

    /// Gone, or a zombie nobody reaped (a container's init may not).
    fn has_exited(pid: u32) -> bool {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[test]
    fn serves_databases_and_keeps_data_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        // Started by a thread that ends at once: the server must outlive it,
        // as it outlives the first test in a `static`.
        let mut server = std::thread::spawn(move || PostgresServer::start(&path))
            .join()
            .unwrap()
            .unwrap();
        let port = server.port();
        // Time for a wrongly aimed parent-death signal to take the server down.
        std::thread::sleep(Duration::from_millis(200));

        let url = server.create_database("scans").unwrap();
        assert_eq!(
            url,
            format!(
                "postgres://minehound:{}@127.0.0.1:{port}/scans",
                server.password()
            )
        );
        server.create_database("queue").unwrap();
        let rows = server
            .psql(
                "scans",
                "CREATE TABLE findings (id int, rule text);\n\
                 INSERT INTO findings VALUES (1, 'xmrig-config'), (2, 'stratum-url');\n\
                 SELECT id, rule FROM findings ORDER BY id;",
            )
            .unwrap();
        assert_eq!(rows, "1|xmrig-config\n2|stratum-url");
        let other = server.psql("queue", "SELECT count(*) FROM findings");
        let err = other.unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        let err = server.create_database("x; DROP").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        let expected_uid = match effective_uid().unwrap() {
            0 => UNPRIVILEGED.0,
            uid => uid,
        };
        let pid = server.child.as_ref().unwrap().id();
        assert_eq!(uids(pid), vec![expected_uid; 4], "postgres (pid {pid})");
        let data = server
            .psql("postgres", "SELECT current_setting('data_directory')")
            .unwrap();
        assert_eq!(fs::metadata(&data).unwrap().uid(), expected_uid, "{data}");

        server.stop();
        let err = server.psql("scans", "SELECT 1").unwrap_err().to_string();
        assert!(err.contains("127.0.0.1"), "{err}");

        server.start_again().unwrap();
        assert_eq!(server.port(), port);
        assert_eq!(
            server
                .psql("scans", "SELECT rule FROM findings WHERE id = 2")
                .unwrap(),
            "stratum-url",
            "log:\n{}",
            server.log()
        );
        let log = server.log();
        assert_eq!(
            log.matches("ready to accept connections").count(),
            2,
            "{log}"
        );

        drop(server);
        assert!(has_exited(pid));
    }

    /// Set, it makes the test below play the test binary it kills: start a
    /// server in this directory, write its pid there, wait to be killed.
    const CHILD_DIR: &str = "MINEHOUND_PG_TEST_CHILD_DIR";

    /// Kills the child test binary even when an assertion fails first.
    struct KillOnDrop(Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn server_dies_with_the_test_binary() {
        if let Some(dir) = std::env::var_os(CHILD_DIR) {
            let dir = PathBuf::from(dir);
            let server = PostgresServer::start(&dir.join("pg")).unwrap();
            let pid = server.child.as_ref().unwrap().id();
            fs::write(dir.join("pid.tmp"), pid.to_string()).unwrap();
            fs::rename(dir.join("pid.tmp"), dir.join("pid")).unwrap();
            std::thread::sleep(Duration::from_secs(300));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut test_binary = KillOnDrop(
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "postgres::tests::server_dies_with_the_test_binary",
                    "--quiet",
                ])
                .env(CHILD_DIR, dir.path())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pid_file = dir.path().join("pid");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !pid_file.exists() {
            assert!(
                test_binary.0.try_wait().unwrap().is_none(),
                "child test ended"
            );
            assert!(Instant::now() < deadline, "no server in the child test");
            std::thread::sleep(Duration::from_millis(50));
        }
        let pid: u32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
        assert!(!has_exited(pid));

        // SIGKILL: no destructor, no atexit, only the kernel.
        test_binary.0.kill().unwrap();
        test_binary.0.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !has_exited(pid) {
            assert!(
                Instant::now() < deadline,
                "postgres (pid {pid}) outlived its test binary"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
