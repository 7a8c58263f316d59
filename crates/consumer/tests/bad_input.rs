//! Bad input gets one clear error and a non-zero exit, and never rewrites
//! data or silently starts over from offset 0.

mod common;

use std::process::Command;
use std::time::Duration;

use batch_store::{Checkpoint, DATA_DIR};
use common::*;

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rfind(|line| line.starts_with("consumer: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_checkpoint_stops_the_consumer_without_writing() {
    let topic = unique("corrupt");
    create_topic(&topic, 1).await;
    send(&topic, 1, &readings(0, 10)).await;
    let output = Output::new(false);
    std::fs::create_dir_all(&output.checkpoint_dir).unwrap();
    std::fs::write(
        output.checkpoint_dir.join("partition-0.json"),
        "{\"batch_id\": 3, \"off",
    )
    .unwrap();

    let (ok, stderr) = run_to_exit(consumer_command(&topic, &output, &[0]), EXIT_TIMEOUT);
    assert!(!ok);
    let line = error_line(&stderr);
    assert!(
        line.contains("partition-0.json") && line.contains("corrupt"),
        "{line}"
    );
    assert!(
        output.store().list(DATA_DIR).await.unwrap().is_empty(),
        "nothing may be written"
    );
    let text = std::fs::read_to_string(output.checkpoint_dir.join("partition-0.json")).unwrap();
    assert_eq!(
        text, "{\"batch_id\": 3, \"off",
        "the corrupt file must be left for inspection"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_beyond_the_partition_is_an_error_until_reset_deliberately() {
    let topic = unique("recreated");
    create_topic(&topic, 1).await;
    let reports = readings(0, 10);
    send(&topic, 1, &reports).await;
    let output = Output::new(false);
    output
        .checkpoints()
        .save(
            0,
            &Checkpoint {
                batch_id: 5,
                offset: 500,
            },
        )
        .await
        .unwrap();

    let (ok, stderr) = run_to_exit(consumer_command(&topic, &output, &[0]), EXIT_TIMEOUT);
    assert!(!ok);
    let line = error_line(&stderr);
    assert!(
        line.contains("offset 500") && line.contains("--reset"),
        "{line}"
    );
    assert!(
        output.store().list(DATA_DIR).await.unwrap().is_empty(),
        "nothing may be written"
    );

    let mut reset = consumer_command(&topic, &output, &[0]);
    reset.arg("--reset");
    let mut child = reset.spawn().unwrap();
    output.wait_for_offset(0, 10, Duration::from_secs(60)).await;
    terminate(&mut child, &output);
    let committed = output.committed(0).await;
    assert_eq!(committed.len(), 10);
    assert_eq!(committed, topic_records(&topic, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_partition_is_an_error() {
    let topic = unique("unknown-partition");
    create_topic(&topic, 4).await;
    let output = Output::new(false);
    let (ok, stderr) = run_to_exit(consumer_command(&topic, &output, &[7]), EXIT_TIMEOUT);
    assert!(!ok);
    let line = error_line(&stderr);
    assert!(
        line.contains("partition 7 does not exist") && line.contains("4 partitions"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_consumer_of_the_same_partition_refuses_to_start() {
    let topic = unique("two-writers");
    create_topic(&topic, 1).await;
    let output = Output::new(false);
    let mut first = consumer_command(&topic, &output, &[0]).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (ok, stderr) = run_to_exit(consumer_command(&topic, &output, &[0]), EXIT_TIMEOUT);
    assert!(!ok);
    assert!(
        error_line(&stderr).contains("already being consumed"),
        "{stderr}"
    );
    terminate(&mut first, &output);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undecodable_message_is_skipped_and_reported_and_the_rest_commit_exactly_once() {
    let topic = unique("undecodable");
    create_topic(&topic, 1).await;
    let reports = readings(0, 10);
    let mut messages: Vec<(String, Vec<u8>)> = reports
        .iter()
        .map(|r| (r.station_id.clone(), r.to_bytes()))
        .collect();
    messages.insert(
        5,
        ("StationX".to_string(), b"\xff\xfe not a protobuf".to_vec()),
    );
    send_raw(&topic, 1, &messages).await;
    let output = Output::new(false);

    let mut child = consumer_command(&topic, &output, &[0]).spawn().unwrap();
    output.wait_for_offset(0, 11, Duration::from_secs(60)).await;
    terminate(&mut child, &output);

    let committed = output.committed(0).await;
    let expected: Vec<_> = topic_records(&topic, 0);
    assert_eq!(committed.len(), 10);
    assert_eq!(committed, expected);
    let log = output.log();
    assert!(
        log.contains("skipping a message") && log.contains("offset=5"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_checkpoint_directory_is_an_error() {
    let topic = unique("unwritable");
    let output = Output::new(false);
    let mut command = bare_consumer_command(&topic, &output, &[0]);
    command.args([
        "--store",
        &output.store_location,
        "--checkpoint-dir",
        "/proc/p7-checkpoints",
    ]);
    let (ok, stderr) = run_to_exit(command, EXIT_TIMEOUT);
    assert!(!ok);
    assert!(
        error_line(&stderr).contains("/proc/p7-checkpoints"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsupported_store_url_is_an_error() {
    let output = Output::new(false);
    let mut command = bare_consumer_command("any", &output, &[0]);
    command
        .args(["--store", "s3://bucket/data"])
        .arg("--checkpoint-dir")
        .arg(&output.checkpoint_dir);
    let (ok, stderr) = run_to_exit(command, EXIT_TIMEOUT);
    assert!(!ok);
    assert!(error_line(&stderr).contains("s3://bucket/data"), "{stderr}");
}

/// Each sink waits `--wait` seconds for a broker that is not there, says once
/// that it waits, and ends with one line saying why; the Kafka client adds at
/// most one rate-limited warning, never librdkafka's stream of errors. All of stderr is checked, at the default
/// log level.
#[test]
fn an_unreachable_broker_is_one_line_from_every_sink() {
    let broker = local_stack::unreachable::broker();
    let dir = tempfile::tempdir().unwrap();
    let sink = |program: &'static str, args: Vec<String>| {
        let mut command = Command::new(program);
        command
            .args(args)
            .args(["--brokers", &broker, "--wait", "12"])
            .env_remove("RUST_LOG")
            .env_remove("P7_BROKERS");
        std::thread::spawn(move || local_stack::unreachable::run(command, EXIT_TIMEOUT))
    };
    let path = |name: &str| dir.path().join(name).display().to_string();
    let runs = [
        (
            "consumer",
            sink(
                env!("CARGO_BIN_EXE_consumer"),
                vec![
                    "0".into(),
                    "--store".into(),
                    path("store"),
                    "--checkpoint-dir".into(),
                    path("cp"),
                ],
            ),
        ),
        (
            "consumer --stats",
            sink(
                env!("CARGO_BIN_EXE_consumer"),
                vec![
                    "--stats".into(),
                    "0".into(),
                    "--stats-dir".into(),
                    path("stats"),
                ],
            ),
        ),
        (
            "collector",
            sink(
                env!("CARGO_BIN_EXE_collector"),
                vec!["--output-dir".into(), path("jsonl")],
            ),
        ),
    ];
    for (name, run) in runs {
        let output = run.join().expect("the run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        let program = name.split(' ').next().unwrap();
        let last = format!("{program}: the broker at {broker} is not reachable after 12s");
        assert!(
            stderr.lines().last().is_some_and(|l| l.starts_with(&last)),
            "{name}:\n{stderr}"
        );
        local_stack::unreachable::assert_quiet(
            name,
            &broker,
            &stderr,
            &["waiting for the topic", &last],
        );
        assert_eq!(
            stderr.matches("waiting for the topic").count(),
            1,
            "{name}:\n{stderr}"
        );
    }
}
