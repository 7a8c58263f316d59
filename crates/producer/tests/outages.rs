//! A producer started before its services waits for them with a clear log
//! line, then proceeds when they come up.
//!
//! One test stops the shared stack's MariaDB, so every test here holds the
//! stack exclusively (`local_stack::exclusive_stack`).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

async fn wait_for_log(log: &std::path::Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log within {timeout:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_producer_started_before_the_broker_waits_and_then_proceeds() {
    let _stack = local_stack::exclusive_stack();
    let port = local_stack::free_port();
    let brokers = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("producer.log");
    let mut producer = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args([
            "--source",
            "generator",
            "--rows",
            "20",
            "--delay",
            "0",
            "--settle",
            "0",
            "--wait",
            "60",
        ])
        .args(["--brokers", &brokers, "--topic", "late-broker"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_log(
        &log,
        "broker is not reachable yet; retrying",
        Duration::from_secs(20),
    )
    .await;

    // A broker of our own on that port, started while the producer waits.
    let _broker = local_stack::PrivateBroker::start(port);
    let status = local_stack::wait_for_exit(&mut producer, Duration::from_secs(60))
        .expect("the producer did not finish after the broker came up");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{text}");
    assert!(
        text.contains("broker is reachable") && text.contains("delivered=20"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_producer_started_before_mysql_waits_and_then_proceeds() {
    let _stack = local_stack::exclusive_stack();
    let (url, _database) = database_with_rows(25).await;
    local_stack::stack(&["stop-service", "mysql"]);
    let restart = local_stack::restore(&["start-service", "mysql"]);

    let topic = local_stack::unique_name("late-mysql");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("producer.log");
    let mut child = producer_command(&topic, &url, &log).spawn().unwrap();
    wait_for_log(
        &log,
        "MySQL is not reachable yet; retrying",
        Duration::from_secs(20),
    )
    .await;
    drop(restart);

    let found = wait_for_messages(&topic, 4, 25, Duration::from_secs(60)).await;
    terminate(&mut child, &log);
    assert_eq!(found.len(), 25);
}
