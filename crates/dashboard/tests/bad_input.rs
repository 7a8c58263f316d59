//! Nothing committed yet, a corrupt checkpoint, an unreachable HDFS: the page
//! says so plainly and keeps serving; `--svg` fails with one line.

mod common;

use std::process::Command;

use common::*;

#[tokio::test]
async fn with_nothing_committed_the_page_says_so_and_picks_up_the_first_batch() {
    let committed = Committed::local();
    let dashboard = Dashboard::start(&committed, &["--no-lag"]);
    let (status, page) = dashboard.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("No committed data yet"), "{page}");
    assert!(page.contains("does not exist"), "{page}");

    committed
        .write_batch(2, 0, &[("StationA", "2000-01-01", 1.0)])
        .await;
    committed.commit(2, 0, 1).await;
    dashboard.wait_for("the first batch", |s| s["records"] == 1);
    let (_, page) = dashboard.get("/");
    assert!(!page.contains("No committed data yet"), "{page}");
    assert_eq!(station_rows(&page).get("StationA"), Some(&1));
}

#[tokio::test]
async fn a_corrupt_checkpoint_is_reported_and_the_other_partitions_still_shown() {
    let committed = Committed::local();
    committed
        .write_batch(0, 0, &[("StationA", "2000-01-01", 1.0)])
        .await;
    committed.commit(0, 0, 1).await;
    std::fs::write(
        committed.checkpoint_dir.join("partition-1.json"),
        "{\"batch_id\": 3, \"off",
    )
    .unwrap();
    let mut dashboard = Dashboard::start(&committed, &["--no-lag"]);
    let summary = dashboard.summary();
    assert_eq!(summary["records"], 1);
    let problems = summary["problems"].to_string();
    assert!(
        problems.contains("partition-1.json") && problems.contains("corrupt"),
        "{problems}"
    );
    let (status, page) = dashboard.get("/");
    assert_eq!(status, 200);
    assert!(
        page.contains("class=\"problem\"") && page.contains("corrupt"),
        "{page}"
    );
    assert!(dashboard.is_running());

    // Repaired: the problem goes away.
    committed
        .write_batch(1, 0, &[("StationB", "2000-01-01", 2.0)])
        .await;
    committed.commit(1, 0, 1).await;
    dashboard.wait_for("the repaired partition", |s| {
        s["records"] == 2 && s["problems"].as_array().is_some_and(|p| p.is_empty())
    });
}

#[tokio::test]
async fn an_unreachable_hdfs_is_reported_and_the_page_keeps_serving() {
    let mut committed = Committed::local();
    // Nothing listens there.
    committed.store_location = format!("hdfs://127.0.0.1:{}", local_stack::free_port());
    for partition in 0..4 {
        committed
            .commit(partition, 0, 10 + i64::from(partition))
            .await;
    }
    let mut dashboard = Dashboard::start(&committed, &["--no-lag", "--read-timeout", "1"]);
    let summary = dashboard.summary();
    assert_eq!(summary["records"], 0);
    // Every checkpoint read locally is listed, though no batch could be read.
    let listed: Vec<(i64, i64)> = summary["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_i64().unwrap(),
                p["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [(0, 10), (1, 11), (2, 12), (3, 13)], "{summary}");
    let problems = summary["problems"].to_string();
    assert!(
        problems.contains("no answer from hdfs://127.0.0.1"),
        "{problems}"
    );
    for _ in 0..3 {
        let (status, page) = dashboard.get("/");
        assert_eq!(status, 200);
        assert!(page.contains("(is it up?)"), "{page}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(dashboard.is_running(), "{}", dashboard.log());
}

#[tokio::test]
async fn a_broker_that_cannot_be_reached_leaves_the_lag_unknown_not_the_page() {
    let committed = Committed::local();
    committed
        .write_batch(0, 0, &[("StationA", "2000-01-01", 1.0)])
        .await;
    committed.commit(0, 0, 1).await;
    let brokers = format!("127.0.0.1:{}", local_stack::free_port());
    let dashboard = Dashboard::start(&committed, &["--brokers", &brokers]);
    let summary = dashboard.summary();
    assert_eq!(summary["records"], 1);
    assert!(
        summary["lag_problem"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "{summary}"
    );
    assert_eq!(summary["partitions"][0]["lag"], serde_json::Value::Null);
    let (_, page) = dashboard.get("/");
    assert!(page.contains("Lag unknown"), "{page}");
}

fn svg_command(committed: &Committed, out: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dashboard"));
    command
        .args(["--store", &committed.store_location])
        .arg("--checkpoint-dir")
        .arg(&committed.checkpoint_dir)
        .arg("--svg")
        .arg(out)
        .env_remove("PROJECT");
    command
}

/// One line on stderr, exit code 1, and no file written.
fn fails_with(mut command: Command, out: &std::path::Path, expected: &str) {
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("dashboard: ") && lines[0].contains(expected),
        "{stderr}"
    );
    assert!(!out.exists(), "a chart was written anyway");
}

#[tokio::test]
async fn svg_refuses_to_draw_from_missing_corrupt_or_unreachable_data() {
    let committed = Committed::local();
    let out = committed.temp.path().join("chart.svg");
    fails_with(svg_command(&committed, &out), &out, "no committed data yet");

    std::fs::create_dir_all(&committed.checkpoint_dir).unwrap();
    fails_with(svg_command(&committed, &out), &out, "no committed data yet");

    std::fs::write(committed.checkpoint_dir.join("partition-0.json"), "garbage").unwrap();
    fails_with(svg_command(&committed, &out), &out, "corrupt");

    committed
        .write_batch(0, 0, &[("StationA", "2000-01-01", 1.0)])
        .await;
    committed.commit(0, 0, 1).await;
    let mut unknown = svg_command(&committed, &out);
    unknown.args(["--station", "StationQ"]);
    fails_with(unknown, &out, "StationQ");

    let mut unreachable = Committed::local();
    unreachable.store_location = format!("hdfs://127.0.0.1:{}", local_stack::free_port());
    unreachable.commit(0, 0, 1).await;
    let mut command = svg_command(&unreachable, &out);
    command.args(["--read-timeout", "1"]);
    fails_with(command, &out, "no answer from hdfs://");

    let output = svg_command(&committed, &out).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.exists());
}

#[test]
fn an_address_in_use_is_one_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let committed = Committed::local();
    let output = Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .args([
            "--store",
            &committed.store_location,
            "--listen",
            &addr,
            "--no-lag",
        ])
        .arg("--checkpoint-dir")
        .arg(&committed.checkpoint_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("dashboard: cannot listen on {addr}: Address already in use (os error 98)")
    );
}

/// With the broker not there and nothing committed yet, the dashboard serves
/// and says each thing once: nothing committed (not again at every refresh),
/// and at most one rate-limited warning from its Kafka client while the lag
/// cannot be read. All of stderr is checked, at the default log level.
#[test]
fn an_unreachable_broker_and_nothing_committed_are_each_said_once() {
    let committed = Committed::local();
    let broker = local_stack::unreachable::broker();
    let mut command = Command::new(env!("CARGO_BIN_EXE_dashboard"));
    command
        .args(["--store", &committed.store_location])
        .arg("--checkpoint-dir")
        .arg(&committed.checkpoint_dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--refresh",
            "0.3",
            "--brokers",
            &broker,
        ])
        .env_remove("PROJECT")
        .env_remove("RUST_LOG");
    // Long enough for the lag reader's client to report the broker.
    let output = local_stack::unreachable::run(command, std::time::Duration::from_secs(13));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("no committed data yet").count(),
        1,
        "{stderr}"
    );
    local_stack::unreachable::assert_quiet(
        "dashboard",
        &broker,
        &stderr,
        &[
            "no committed data yet",
            "dashboard listening on",
            "dashboard: serving",
            "stopping on signal",
        ],
    );
}
