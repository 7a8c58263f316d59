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

#[test]
fn a_failed_download_fails_install_deps_with_one_line() {
    // An empty cache forces the HDFS jars download; the package index is unreachable.
    let cache = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-deps");
    let output = Command::new(script)
        .env("P7_CACHE_DIR", cache.path())
        .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
        .env("PIP_RETRIES", "0")
        .env("PIP_TIMEOUT", "2")
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "install-deps succeeded without a package index"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("install-deps: hdfs jars: ") && line.contains("failed"),
        "{stderr}"
    );
    assert!(
        !cache.path().join("hadoop-jars").exists(),
        "a failed download must not leave jars that look installed"
    );
}
