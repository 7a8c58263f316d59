//! `--status`, what scripts ask instead of reading our state files: after a
//! real run of each sink, its lines say exactly what the committed state
//! says, and a partition with nothing committed says offset 0.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::archive::Archive;
use common::stats::{load, stats_command};
use common::*;

const RECORDS: usize = 40;

fn status_of(mut command: Command) -> Vec<String> {
    let output = command
        .arg("--status")
        .stdout(Stdio::piped())
        .output()
        .expect("run --status");
    assert!(output.status.success(), "--status failed: {output:?}");
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

async fn topic_with_records(name: &str) -> String {
    let topic = unique(name);
    create_topic(&topic, 2).await;
    send(&topic, 2, &readings(0, RECORDS)).await;
    topic
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_status_is_the_checkpoints() {
    let topic = topic_with_records("status-parquet").await;
    let output = Output::new(false);
    let mut run = consumer_command(&topic, &output, &[0]);
    run.args(["--batch-records", "7", "--exit-when-idle", "2"]);
    let (ok, log) = run_to_exit(run, Duration::from_secs(60));
    assert!(ok, "{log}");

    let checkpoint = output
        .checkpoints()
        .load(0)
        .await
        .unwrap()
        .expect("a checkpoint");
    assert!(checkpoint.offset > 0);
    assert_eq!(
        status_of(consumer_command(&topic, &output, &[0, 1])),
        vec![
            format!(
                "partition=0 offset={} batches={}",
                checkpoint.offset,
                checkpoint.batch_id + 1
            ),
            "partition=1 offset=0 batches=0".to_string(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_status_is_the_stats_files() {
    let topic = topic_with_records("status-stats").await;
    let output = Output::new(false);
    let mut run = stats_command(&topic, &output, &[0, 1]);
    run.args(["--exit-when-idle", "2"]);
    let (ok, log) = run_to_exit(run, Duration::from_secs(60));
    assert!(ok, "{log}");

    let expected: Vec<String> = (0..2)
        .map(|partition| {
            let state = load(&output.checkpoint_dir, partition).expect("a stats file");
            let records: u64 = state.stations.values().map(|s| s.count).sum();
            let stations: String = state
                .stations
                .iter()
                .map(|(name, stats)| format!(" {name}={}", stats.count))
                .collect();
            format!(
                "partition={partition} offset={} records={records}{stations}",
                state.offset
            )
        })
        .collect();
    assert_eq!(status_of(stats_command(&topic, &output, &[0, 1])), expected);
    let total: u64 = expected
        .iter()
        .map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("records="))
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, RECORDS as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn collector_status_is_the_archive_checkpoint() {
    let topic = topic_with_records("status-jsonl").await;
    let archive = Archive::new();
    let mut run = archive.command(&topic);
    run.args(["--exit-when-idle", "2", "--batch-timeout", "0.2"]);
    let status = run.status().expect("run the collector");
    assert!(status.success(), "{}", archive.log());

    let offsets = archive.offsets(&topic);
    assert_eq!(offsets.values().sum::<i64>(), RECORDS as i64);
    let expected: Vec<String> = offsets
        .iter()
        .map(|(partition, offset)| format!("partition={partition} offset={offset} skipped=0"))
        .collect();
    assert_eq!(status_of(archive.command(&topic)), expected);
    let mut one = archive.command(&topic);
    one.args(["1", "5"]);
    assert_eq!(
        status_of(one),
        vec![
            format!("partition=1 offset={} skipped=0", offsets[&1]),
            "partition=5 offset=0 skipped=0".to_string()
        ]
    );
}
