//! `scripts/stack` itself: a port that is already taken stops `up` with one
//! line naming the service and the port, and nothing is left running.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use local_stack::free_port;

/// No process of the stack in `state` is running.
fn assert_nothing_running(state: &std::path::Path) {
    let stray = Command::new("pgrep")
        .args(["-f", &state.display().to_string()])
        .output()
        .unwrap();
    assert!(
        stray.stdout.is_empty(),
        "processes left running: {}",
        String::from_utf8_lossy(&stray.stdout)
    );
}

fn stack(state: &std::path::Path, ports: &[(&str, u16)], args: &[&str]) -> std::process::Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/stack");
    let mut command = Command::new(script);
    command.args(args).env("P7_STACK_DIR", state);
    for (name, port) in ports {
        command.env(name, port.to_string());
    }
    command.output().expect("run scripts/stack")
}

#[test]
fn a_port_in_use_fails_up_with_one_line_and_starts_nothing() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let state = tempfile::tempdir().unwrap();
    let ports = [
        ("P7_MYSQL_PORT", free_port()),
        ("P7_KAFKA_PORT", taken_port),
        ("P7_KAFKA_CONTROLLER_PORT", free_port()),
        ("P7_HDFS_PORT", free_port()),
        ("P7_HDFS_NAMENODE_HTTP_PORT", free_port()),
        ("P7_HDFS_DATANODE_PORT", free_port()),
        ("P7_HDFS_DATANODE_IPC_PORT", free_port()),
        ("P7_HDFS_DATANODE_HTTP_PORT", free_port()),
    ];

    let up = stack(state.path(), &ports, &["up"]);
    assert!(
        !up.status.success(),
        "up succeeded although port {taken_port} is taken"
    );
    let stderr = String::from_utf8_lossy(&up.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.contains("kafka") && line.contains(&taken_port.to_string()) && line.contains("in use"),
        "{stderr}"
    );

    let status = stack(state.path(), &ports, &["status"]);
    assert_eq!(
        status.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    assert_nothing_running(state.path());
    drop(taken);
}

#[test]
fn a_missing_java_fails_up_with_one_line_and_leaves_nothing_running() {
    // A PATH with every command of the machine except `java`.
    let bin = tempfile::tempdir().unwrap();
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let link = bin.path().join(&name);
            if name != "java" && !link.exists() {
                std::os::unix::fs::symlink(entry.path(), link).unwrap();
            }
        }
    }
    let state = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/stack");
    let mut command = Command::new(script);
    command
        .arg("up")
        .env("P7_STACK_DIR", state.path())
        .env("PATH", bin.path());
    for name in [
        "P7_MYSQL_PORT",
        "P7_KAFKA_PORT",
        "P7_KAFKA_CONTROLLER_PORT",
        "P7_HDFS_PORT",
        "P7_HDFS_NAMENODE_HTTP_PORT",
        "P7_HDFS_DATANODE_PORT",
        "P7_HDFS_DATANODE_IPC_PORT",
        "P7_HDFS_DATANODE_HTTP_PORT",
    ] {
        command.env(name, free_port().to_string());
    }
    let up = command.output().unwrap();
    assert!(!up.status.success(), "up succeeded without java");
    let stderr = String::from_utf8_lossy(&up.stderr);
    let line = stderr
        .lines()
        .rfind(|l| l.contains("java"))
        .unwrap_or_default();
    assert!(line.contains("java not found"), "{stderr}");
    assert_nothing_running(state.path());
}

fn install_deps(cache: &std::path::Path, repository: &str) -> std::process::Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-deps");
    Command::new(script)
        .env("P7_CACHE_DIR", cache)
        .env("P7_MAVEN_REPOSITORY", repository)
        .env_remove("P7_KAFKA_VERSION")
        .env_remove("P7_BROKER")
        .output()
        .unwrap()
}

/// The last line install-deps printed, and that it names the Kafka jars.
fn assert_kafka_jars_failed(output: &std::process::Output, cause: &str) {
    assert!(
        !output.status.success(),
        "install-deps succeeded: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("install-deps: kafka jars: ") && line.contains("failed"),
        "{stderr}"
    );
    let log = line
        .rsplit_once("(see ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no log named in {line:?}"));
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains(cause), "no {cause:?} in {log}:\n{text}");
}

/// No Kafka version was left where the stack would take it for installed.
fn assert_no_kafka_installed(cache: &std::path::Path) {
    let left: Vec<_> = std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            (name.starts_with("kafka-") && !name.ends_with(".log")) || name.starts_with(".maven")
        })
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_failed_download_fails_install_deps_with_one_line() {
    // An empty cache forces the Kafka jars download; the repository is unreachable.
    let cache = tempfile::tempdir().unwrap();
    let output = install_deps(cache.path(), "http://127.0.0.1:9/maven2");
    assert_kafka_jars_failed(&output, "Failed to read artifact descriptor");
    assert_no_kafka_installed(cache.path());
}

#[test]
fn a_jar_whose_checksum_does_not_match_fails_install_deps_with_one_line() {
    // A Maven repository served from a copy of the cache's, with Kafka's jar
    // changed after its .sha1 was written.
    let source = local_stack::cache_dir().join("m2");
    assert!(
        source.join("org/apache/kafka").is_dir(),
        "{} has no Kafka: run scripts/install-deps",
        source.display()
    );
    let served = tempfile::tempdir().unwrap();
    let root = served.path().join("maven2");
    // Hard links: cheap, and the one file changed is replaced, not written through.
    let copied = Command::new("cp")
        .arg("-al")
        .arg(&source)
        .arg(&root)
        .status()
        .unwrap();
    assert!(copied.success());
    let jar = root.join("org/apache/kafka/kafka_2.13/3.6.2/kafka_2.13-3.6.2.jar");
    let mut bytes = std::fs::read(&jar).unwrap();
    std::fs::remove_file(&jar).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&jar, bytes).unwrap();
    let port = free_port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(served.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the repository server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let cache = tempfile::tempdir().unwrap();
    let output = install_deps(cache.path(), &format!("http://127.0.0.1:{port}/maven2"));
    let _ = server.kill();
    let _ = server.wait();
    assert_kafka_jars_failed(&output, "Checksum validation failed");
    assert_no_kafka_installed(cache.path());
}

/// A test's own services go when the test process does, even if it is killed
/// before its clean-up runs (Ctrl+C under `cargo test` or scripts/faults):
/// with P7_STACK_OWNER set, scripts/stack takes the stack down and deletes
/// its directory once that process is gone.
#[test]
fn a_stack_owned_by_a_killed_process_is_taken_down_and_deleted() {
    let parent = tempfile::tempdir().unwrap();
    let state = parent.path().join("stack");
    let mut owner = Command::new("sleep").arg("600").spawn().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/stack");
    let started = Command::new(script)
        .args(["start-service", "mysql"])
        .env("P7_STACK_DIR", &state)
        .env("P7_STACK_OWNER", owner.id().to_string())
        .env("P7_MYSQL_PORT", free_port().to_string())
        .output()
        .expect("run scripts/stack");
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let running = Command::new("pgrep")
        .args(["-f", &state.display().to_string()])
        .output()
        .unwrap();
    assert!(!running.stdout.is_empty(), "MariaDB is not running");

    owner.kill().unwrap();
    owner.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while state.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(!state.exists(), "{} is still there", state.display());
    assert_nothing_running(&state);
}
