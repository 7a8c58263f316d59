//! Bad input to the producer: one clear error line, a non-zero exit, no panic.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the producer and returns (exit code, stderr).
fn producer(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_producer"));
    command
        .args(args)
        .env_remove("PROJECT")
        .env_remove("P7_MYSQL_URL")
        .env("P7_BROKERS", local_stack::brokers())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let output = command.output().expect("run producer");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the producer hung on bad input"
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "the producer panicked: {stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing may go to stdout");
    (output.status.code(), stderr)
}

fn last_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or_default()
}

#[test]
fn unreachable_mysql() {
    let (code, stderr) = producer(
        &[
            "--mysql-url",
            "mysql://root:abc@127.0.0.1:1/CS544",
            "--wait",
            "1",
        ],
        &[],
    );
    assert_eq!(code, Some(1));
    let line = last_line(&stderr);
    assert!(
        line.starts_with(
            "producer: MySQL at mysql://root@127.0.0.1:1/CS544 did not become reachable"
        ),
        "{line}"
    );
}

#[test]
fn wrong_password() {
    let url = local_stack::mysql_url().replacen(":abc@", ":not-the-password@", 1);
    let (code, stderr) = producer(&["--mysql-url", &url], &[]);
    assert_eq!(code, Some(1));
    let line = last_line(&stderr);
    assert!(
        line.contains("refused the login") && !line.contains("not-the-password"),
        "{line}"
    );
}

#[tokio::test]
async fn missing_table() {
    let url = local_stack::fresh_database("no_table").await;
    let topic = local_stack::unique_name("missing-table");
    let (code, stderr) = producer(
        &["--mysql-url", &url, "--topic", &topic, "--settle", "0"],
        &[],
    );
    assert_eq!(code, Some(1));
    let line = last_line(&stderr);
    assert!(
        line.contains("temperatures") && line.contains("doesn't exist"),
        "{line}"
    );
}

#[test]
fn unreachable_broker() {
    let (code, stderr) = producer(
        &[
            "--source",
            "generator",
            "--brokers",
            "127.0.0.1:1",
            "--wait",
            "2",
        ],
        &[],
    );
    assert_eq!(code, Some(1));
    let line = last_line(&stderr);
    assert!(
        line.starts_with("producer: the broker at 127.0.0.1:1 is not reachable"),
        "{line}"
    );
}

#[test]
fn no_project_and_no_mysql_url() {
    let (code, stderr) = producer(&[], &[]);
    assert_eq!(code, Some(1));
    let line = last_line(&stderr);
    assert!(
        line.contains("PROJECT is not set") && line.contains("mysql-1"),
        "{line}"
    );
}

#[test]
fn fewer_than_one_partition_and_non_numbers_are_usage_errors() {
    for args in [
        &["--partitions", "0"][..],
        &["--partitions", "four"],
        &["--chunk", "abc"],
        &["--delay=-1"],
    ] {
        let (code, stderr) = producer(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: invalid value"),
            "{args:?}: {stderr}"
        );
    }
}

/// The producer waits `--wait` seconds for a broker that is not there and
/// then says so in one line; before it, at most its Kafka client's one
/// warning. All of stderr is checked, at the default log level. librdkafka's
/// errors for the same broker came as a burst of dozens of lines in about
/// half the runs, so it runs a dozen times.
#[test]
fn an_unreachable_broker_is_one_line() {
    let broker = local_stack::unreachable::broker();
    for run in 0..12 {
        let mut command = Command::new(env!("CARGO_BIN_EXE_producer"));
        command
            .args([
                "--brokers",
                &broker,
                "--mysql-url",
                &local_stack::mysql_url(),
            ])
            .args(["--wait", "2", "--exit-when-idle", "1"])
            .env_remove("RUST_LOG");
        let output = local_stack::unreachable::run(command, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "run {run}: {stderr}");
        let expected = format!("producer: the broker at {broker} is not reachable after 2s");
        assert!(
            stderr
                .lines()
                .last()
                .is_some_and(|l| l.starts_with(&expected)),
            "run {run}:\n{stderr}"
        );
        local_stack::unreachable::assert_quiet("producer", &broker, &stderr, &[&expected]);
    }
}
