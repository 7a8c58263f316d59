//! Where the services started by `scripts/stack up` listen.
//!
//! Each setting comes from its environment variable, or else from the
//! `export` lines `scripts/stack up` writes to `<repo>/.stack/env` (or
//! `$P7_STACK_DIR/env`). Integration tests call these functions; a stack that
//! is not running is a test failure with a message saying how to start it,
//! never a silent skip.

use std::path::{Path, PathBuf};

mod tally;
pub mod terminal;
pub mod unreachable;
pub use tally::Tally;

/// `mysql://root:abc@127.0.0.1:PORT/CS544`
pub fn mysql_url() -> String {
    setting("P7_MYSQL_URL")
}

/// `127.0.0.1:PORT`, the Kafka bootstrap servers.
pub fn brokers() -> String {
    setting("P7_BROKERS")
}

/// `hdfs://127.0.0.1:PORT`
pub fn hdfs_url() -> String {
    setting("P7_HDFS_URL")
}

/// A name no other test run uses: topics and HDFS directories are shared by
/// every test of every run against the same stack.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Creates an empty database on the stack's MariaDB and returns a URL for
/// it, so tests that fill `temperatures` never see each other's rows.
pub async fn fresh_database(prefix: &str) -> String {
    use sqlx::Connection;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);

    let base = mysql_url();
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = sqlx::MySqlConnection::connect(&base)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to the stack's MariaDB at {base}: {err}"));
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .expect("drop database");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let (server, _) = base
        .rsplit_once('/')
        .expect("the MySQL URL names a database");
    format!("{server}/{name}")
}

/// Where `scripts/install-deps` keeps what it installs.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("P7_CACHE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/p7-weather")
        }
    }
}

/// `scripts/stack`, for tests that start, stop or inspect services.
pub fn stack_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/stack")
}

/// Kafka nodes of a test's own (the stack's broker, version and settings) in
/// a state directory of their own; stopped and deleted when dropped.
pub struct PrivateBroker {
    state: PathBuf,
    port: u16,
    controller_port: u16,
    nodes: u16,
}

impl PrivateBroker {
    /// One node on `port`. Starts it and waits until it serves; panics with
    /// the stack's one-line reason if it cannot.
    pub fn start(port: u16) -> PrivateBroker {
        PrivateBroker::launch(port, 1)
    }

    /// A KRaft cluster of `nodes` nodes (1 or 3, as `P7_KAFKA_NODES`), each
    /// broker and controller, on consecutive free ports; with three, topics
    /// get replication 3 and `min.insync.replicas=2` by default.
    pub fn cluster(nodes: u16) -> PrivateBroker {
        PrivateBroker::launch(free_ports(nodes), nodes)
    }

    fn launch(port: u16, nodes: u16) -> PrivateBroker {
        let state = std::env::temp_dir().join(unique_name("p7-broker"));
        // The controllers' ports are checked free together with the
        // brokers': two separate looks could hand out overlapping ranges.
        let controller_port = loop {
            let candidate = free_ports(nodes);
            let overlaps = |a: u16, b: u16| a < b + nodes && b < a + nodes;
            if !overlaps(candidate, port) {
                break candidate;
            }
        };
        let broker = PrivateBroker {
            state,
            port,
            controller_port,
            nodes,
        };
        let output = broker
            .command(&["start-service", "kafka"])
            .output()
            .expect("run scripts/stack");
        assert!(
            output.status.success(),
            "a broker of the test's own did not start: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        broker
    }

    /// The bootstrap list of every node, `127.0.0.1:P,127.0.0.1:P+1,…`.
    pub fn brokers(&self) -> String {
        (0..self.nodes)
            .map(|i| format!("127.0.0.1:{}", self.port + i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Stops node `id` (1-based, the node id the broker reports as leader):
    /// SIGKILL with `kill`, else SIGTERM (a controlled shutdown).
    pub fn stop_node(&self, id: i32, kill: bool) {
        let name = format!("kafka-{id}");
        let mut args = vec!["stop-service", name.as_str()];
        if kill {
            args.push("--kill");
        }
        self.run(&args);
    }

    /// Starts node `id` again and waits until it has rejoined the cluster.
    pub fn start_node(&self, id: i32) {
        self.run(&["start-service", &format!("kafka-{id}")]);
    }

    fn run(&self, args: &[&str]) {
        let output = self.command(args).output().expect("run scripts/stack");
        assert!(
            output.status.success(),
            "scripts/stack {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(stack_script());
        // The test's own nodes, never the shared stack's settings; given on
        // every command (`start-service` writes no env file to read them from).
        command
            .args(args)
            .env("P7_STACK_DIR", &self.state)
            // Taken down by scripts/stack even if this test process is killed.
            .env("P7_STACK_OWNER", std::process::id().to_string())
            .env("P7_KAFKA_PORT", self.port.to_string())
            .env("P7_KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .env("P7_KAFKA_NODES", self.nodes.to_string());
        command
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.command(&["down", "--purge"]).output();
    }
}

/// The first of `count` consecutive loopback ports that were all free a
/// moment ago.
pub fn free_ports(count: u16) -> u16 {
    if count <= 1 {
        return free_port();
    }
    for _ in 0..100 {
        let first = free_port();
        if first.checked_add(count).is_none() {
            continue;
        }
        let all_free = (first..first + count)
            .all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        if all_free {
            return first;
        }
    }
    panic!("no {count} consecutive free loopback ports");
}

/// A Python with pyarrow, pandas and DuckDB (`scripts/install-deps`).
pub fn python_readers() -> PathBuf {
    cache_dir().join("venv-readers/bin/python")
}

/// A Python with the course's clients: kafka-python 2.0.2, hdfs-native,
/// pyarrow, protobuf and grpcio-tools (`scripts/install-deps`).
pub fn python_clients() -> PathBuf {
    cache_dir().join("venv-course/bin/python")
}

/// The course's Python programs need `report_pb2`: generated by grpcio-tools
/// from `proto/report.proto` into a fresh directory, for `PYTHONPATH`.
pub fn python_report_module() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    let proto = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let output = std::process::Command::new(python_clients())
        .args(["-m", "grpc_tools.protoc"])
        .arg(format!("-I{}", proto.display()))
        .arg(format!("--python_out={}", dir.path().display()))
        .arg(proto.join("report.proto"))
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run {} (run scripts/install-deps): {err}",
                python_clients().display()
            )
        });
    assert!(
        output.status.success(),
        "grpc_tools.protoc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}

/// The kafka-python versions the interoperability tests run: the course
/// images' 2.0.2 (the venv's own) and the newest 2.x (a directory of its own
/// in the venv), each as the `PYTHONPATH` that selects it, with `report_pb2`
/// from `report_module` importable too.
pub fn kafka_python_versions(report_module: &Path) -> Vec<(&'static str, std::ffi::OsString)> {
    let newest = cache_dir().join("venv-course/kafka-python-2x");
    assert!(
        newest.join("kafka").is_dir(),
        "{} is missing: run scripts/install-deps",
        newest.display()
    );
    let path = |dirs: &[&Path]| std::env::join_paths(dirs).expect("paths without ':'");
    vec![
        ("2.0.2", path(&[report_module])),
        ("newest 2.x", path(&[&newest, report_module])),
    ]
}

/// A Python program of `tests/python/`.
pub fn python_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(name)
}

/// The directory `scripts/stack` keeps its data, logs and env file in.
pub fn stack_dir() -> PathBuf {
    match std::env::var_os("P7_STACK_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.stack"),
    }
}

/// An HDFS of the test's own (a NameNode and one DataNode, so replication 1)
/// in a state directory of its own; stopped and deleted when dropped.
pub struct PrivateHdfs {
    dir: tempfile::TempDir,
    ports: Vec<(&'static str, u16)>,
}

impl PrivateHdfs {
    /// Starts it and waits until it serves; panics if it cannot.
    pub fn start() -> Self {
        let first = free_ports(5);
        let names = [
            "P7_HDFS_PORT",
            "P7_HDFS_NAMENODE_HTTP_PORT",
            "P7_HDFS_DATANODE_PORT",
            "P7_HDFS_DATANODE_IPC_PORT",
            "P7_HDFS_DATANODE_HTTP_PORT",
        ];
        let hdfs = PrivateHdfs {
            dir: tempfile::tempdir().unwrap(),
            ports: names.into_iter().zip(first..).collect(),
        };
        hdfs.stack(&["start-service", "hdfs"]);
        hdfs
    }

    pub fn url(&self) -> String {
        format!("hdfs://127.0.0.1:{}", self.ports[0].1)
    }

    /// Runs `scripts/stack ARGS` against this HDFS (e.g. to stop its DataNode).
    pub fn stack(&self, args: &[&str]) {
        let mut command = std::process::Command::new(stack_script());
        command
            .args(args)
            .env("P7_STACK_DIR", self.dir.path().join("stack"))
            .env("P7_STACK_OWNER", std::process::id().to_string())
            .env("P7_HDFS_DATANODES", "1");
        for (name, port) in &self.ports {
            command.env(name, port.to_string());
        }
        run_checked(command, args);
    }
}

impl Drop for PrivateHdfs {
    fn drop(&mut self) {
        self.stack(&["down", "--purge"]);
    }
}

/// A loopback port that was free a moment ago, for services a test starts itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

/// A log file programs under test append their stderr to.
pub fn append_log(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|err| panic!("cannot open the log {}: {err}", path.display()))
}

/// Waits up to `timeout` for a child to exit: its status, or `None` if it
/// is still running.
pub fn wait_for_exit(
    child: &mut std::process::Child,
    timeout: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs `command` to its end (at most `timeout`), with no input and its
/// output dropped: whether it succeeded, and its stderr. Panics, with that
/// stderr, if it is still running then.
pub fn run_to_exit(
    mut command: std::process::Command,
    timeout: std::time::Duration,
) -> (bool, String) {
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the program");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).ok();
        text
    });
    match wait_for_exit(&mut child, timeout) {
        Some(status) => (status.success(), reader.join().unwrap()),
        None => {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "{command:?} did not exit within {timeout:?}; stderr:\n{}",
                reader.join().unwrap()
            );
        }
    }
}

/// The stdout of `command`, run to its end; panics with its stderr unless it
/// succeeds. Both are captured even where `command` sent them elsewhere.
pub fn stdout_of(command: &mut std::process::Command) -> Vec<u8> {
    use std::process::Stdio;
    let out = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the program");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Sends `signal` (e.g. "INT", "TERM", "STOP") to process `pid`; panics if
/// it cannot.
pub fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -{signal} {pid} failed");
}

/// Sends `signal` to a child and waits for it to exit.
pub fn signal_and_wait(child: &mut std::process::Child, name: &str) -> std::process::ExitStatus {
    signal(child.id(), name);
    child.wait().expect("wait for the child")
}

/// Runs `scripts/stack ARGS` against the shared stack; panics if it fails.
pub fn stack(args: &[&str]) {
    let mut command = std::process::Command::new(stack_script());
    command.args(args);
    run_checked(command, args);
}

/// The same, returning what it printed on standard output (e.g. `hdfs -stat`).
pub fn stack_output(args: &[&str]) -> String {
    let output = std::process::Command::new(stack_script())
        .args(args)
        .output()
        .expect("run scripts/stack");
    assert!(
        output.status.success(),
        "scripts/stack {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a `scripts/stack` command made with `args`; panics if it fails.
fn run_checked(mut command: std::process::Command, args: &[&str]) {
    let status = command.status().expect("run scripts/stack");
    assert!(status.success(), "scripts/stack {args:?} failed");
}

/// Runs `scripts/stack ARGS` when dropped, so a stopped or frozen service
/// comes back even when an assertion fails. A failure is printed, not
/// raised: it may happen while a failed test unwinds.
#[must_use = "the service is restored when this is dropped"]
pub fn restore(args: &[&str]) -> Restore {
    Restore(args.iter().map(|arg| arg.to_string()).collect())
}

pub struct Restore(Vec<String>);

impl Drop for Restore {
    fn drop(&mut self) {
        match std::process::Command::new(stack_script())
            .args(&self.0)
            .status()
        {
            Ok(status) if status.success() => {}
            outcome => eprintln!("scripts/stack {:?} failed: {outcome:?}", self.0),
        }
    }
}

/// This process's hold on `<stack dir>/tests.lock`: shared from its first
/// look-up of a setting until it exits, so a test of another process that
/// stops, freezes or reconfigures a service (see [`exclusive_stack`]) waits
/// for this one to end. cargo runs test binaries one after another, so the
/// lock is normally free; it makes the requirement explicit instead of
/// relying on that (a runner with a process per test, or two `cargo test`
/// at once against one stack, is then safe too).
fn stack_lock() -> &'static std::fs::File {
    static LOCK: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| {
        let path = stack_dir().join("tests.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|err| {
                panic!(
                    "cannot open {} ({err}): start the services with `scripts/stack up`",
                    path.display()
                )
            });
        file.lock_shared()
            .unwrap_or_else(|err| panic!("cannot lock {}: {err}", path.display()));
        file
    })
}

/// Held by a test that stops, freezes or reconfigures a shared service: no
/// other test of this process (cargo runs them on parallel threads, and
/// every test of such a binary takes this) and no other process using the
/// stack runs beside it. Dropping it gives the stack back.
pub struct ExclusiveStack {
    _in_process: std::sync::MutexGuard<'static, ()>,
}

pub fn exclusive_stack() -> ExclusiveStack {
    static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let in_process = IN_PROCESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let lock = stack_lock();
    // From shared to exclusive: let go first, so two processes upgrading at
    // once cannot wait on each other.
    lock.unlock().expect("unlock the stack's test lock");
    lock.lock().expect("lock the stack's test lock exclusively");
    ExclusiveStack {
        _in_process: in_process,
    }
}

impl Drop for ExclusiveStack {
    fn drop(&mut self) {
        let lock = stack_lock();
        let _ = lock.unlock();
        let _ = lock.lock_shared();
    }
}

/// Looks a setting up; panics with instructions when the stack is not up,
/// because every caller is a test or tool that cannot run without it.
pub fn setting(name: &str) -> String {
    stack_lock();
    if let Ok(value) = std::env::var(name) {
        if !value.is_empty() {
            return value;
        }
    }
    let env_file = stack_dir().join("env");
    let text = std::fs::read_to_string(&env_file).unwrap_or_else(|err| {
        panic!(
            "{name} is not set and {} cannot be read ({err}): start the services with `scripts/stack up`",
            env_file.display()
        )
    });
    parse_env_file(&text, name).unwrap_or_else(|| {
        panic!(
            "{name} is missing from {}: restart the services with `scripts/stack up`",
            env_file.display()
        )
    })
}

/// Finds `export NAME=value` (or `NAME=value`, optionally quoted) in a shell env file.
fn parse_env_file(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line.split_once('=')?;
        (key.trim() == name).then(|| {
            value
                .trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::parse_env_file;

    #[test]
    fn reads_export_lines_with_or_without_quotes() {
        let text = "# made by scripts/stack\nexport P7_BROKERS=127.0.0.1:19092\nP7_HDFS_URL='hdfs://127.0.0.1:19000'\n";
        assert_eq!(
            parse_env_file(text, "P7_BROKERS").as_deref(),
            Some("127.0.0.1:19092")
        );
        assert_eq!(
            parse_env_file(text, "P7_HDFS_URL").as_deref(),
            Some("hdfs://127.0.0.1:19000")
        );
        assert_eq!(parse_env_file(text, "P7_MYSQL_URL"), None);
    }
}
