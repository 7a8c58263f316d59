//! Every sink on a three-node KRaft cluster of the test's own (replication 3,
//! `min.insync.replicas=2`) while the leader of a partition is SIGKILLed in
//! the middle of the stream: the four course-form `consumer N`, `consumer
//! --stats` and `collector` ride out the leader change without a restart,
//! and each ends with exactly the topic's records, none twice.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use consumer::jsonl::{ArchiveCheckpoint, Line};
use consumer::stats::PartitionStats;
use topic::KafkaSettings;

fn stats_offsets(dir: &Path) -> BTreeMap<i32, i64> {
    (0..4)
        .filter_map(|p| {
            let bytes = std::fs::read(dir.join(format!("partition-{p}.json"))).ok()?;
            Some((p, PartitionStats::from_json(&bytes).ok()?.offset))
        })
        .collect()
}

fn archive_offsets(dir: &Path, topic: &str) -> BTreeMap<i32, i64> {
    std::fs::read(dir.join("checkpoints/offset_checkpoint.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ArchiveCheckpoint>(&bytes).ok())
        .map(|cp| {
            (0..4)
                .filter_map(|p| Some((p, cp.offset(topic, p)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Every (partition, offset) the archive holds, panicking on a duplicate.
fn archived(dir: &Path) -> BTreeSet<(i32, i64)> {
    let mut seen = BTreeSet::new();
    for day in std::fs::read_dir(dir).unwrap() {
        let day = day.unwrap();
        if day.file_name() == "checkpoints" {
            continue;
        }
        for file in std::fs::read_dir(day.path()).unwrap() {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
            for line in text.lines() {
                let line: Line = serde_json::from_str(line).unwrap();
                assert!(
                    seen.insert((line.partition, line.offset)),
                    "partition {} offset {} archived twice",
                    line.partition,
                    line.offset
                );
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sink_rides_out_a_killed_partition_leader_without_a_duplicate() {
    const ROWS: u64 = 3_000;
    let cluster = local_stack::PrivateBroker::cluster(3);
    let settings = KafkaSettings::new(cluster.brokers());
    let topic = unique("leader-killed-sinks");
    let producing = produce_on(settings.clone(), 3, &topic, ROWS, Duration::from_millis(5)).await;
    let records_in = || {
        topic::end_offsets(&settings, &topic, Duration::from_secs(2))
            .map_or(0, |ends| ends.iter().sum::<i64>())
    };
    wait_until(
        "the first records",
        Duration::from_secs(60),
        || records_in() > 0,
        String::new,
    );

    let output = Output::new(false);
    let logs = tempfile::tempdir().unwrap();
    let log_of = |name: &str| {
        std::fs::read_to_string(logs.path().join(format!("{name}.log"))).unwrap_or_default()
    };
    const SINKS: [&str; 6] = [
        "consumer-0",
        "consumer-1",
        "consumer-2",
        "consumer-3",
        "stats",
        "collector",
    ];
    let all_logs = || {
        SINKS
            .iter()
            .map(|name| format!("--- {name}\n{}", log_of(name)))
            .collect::<String>()
    };
    let spawn = |name: &str, mut command: Command| {
        command
            .env("P7_BROKERS", cluster.brokers())
            .stdout(Stdio::null())
            .stderr(local_stack::append_log(
                &logs.path().join(format!("{name}.log")),
            ))
            .spawn()
            .unwrap()
    };
    let mut sinks = Running(Vec::new());
    for p in 0..4 {
        sinks.0.push(spawn(
            &format!("consumer-{p}"),
            consumer_command(&topic, &output, &[p]),
        ));
    }
    let stats_dir = logs.path().join("stats");
    let mut stats = bare_consumer_command(&topic, &output, &[0, 1, 2, 3]);
    stats.arg("--stats").arg("--stats-dir").arg(&stats_dir);
    sinks.0.push(spawn("stats", stats));
    let archive = logs.path().join("archive");
    let mut collector =
        common::archive::collector(&topic, &archive, &logs.path().join("collector.log"));
    collector
        .args(["--batch-size", "100", "--batch-timeout", "0.2"])
        .env("RUST_LOG", "warn");
    sinks.0.push(spawn("collector", collector));

    // A third of the way in, kill the node leading partition 0.
    wait_until(
        "a third of the rows",
        Duration::from_secs(120),
        || records_in() >= ROWS as i64 / 3,
        all_logs,
    );
    let leader = topic::partition_leader(&settings, &topic, 0, Duration::from_secs(5))
        .unwrap()
        .expect("partition 0 has a leader");
    let killed_at = Instant::now();
    cluster.stop_node(leader, true);
    tokio::time::timeout(Duration::from_secs(180), producing)
        .await
        .expect("the producer finished within 180 s")
        .unwrap();

    let ends: BTreeMap<i32, i64> = (0..4)
        .map(|p| (p, topic_records_on(&settings, &topic, p).len() as i64))
        .collect();
    assert_eq!(ends.values().sum::<i64>(), ROWS as i64);
    wait_until(
        "every sink at the end of every partition",
        Duration::from_secs(120),
        || {
            stats_offsets(&stats_dir) == ends
                && archive_offsets(&archive, &topic) == ends
                && ends
                    .iter()
                    .all(|(p, end)| checkpoint_offset(&output, *p) == *end)
        },
        all_logs,
    );
    eprintln!(
        "measured: node {leader} killed; every sink at the end {:.1} s later",
        killed_at.elapsed().as_secs_f64()
    );
    cluster.start_node(leader);

    // Each sink is still the process that started, and stops cleanly.
    for (child, name) in sinks.0.iter_mut().zip(SINKS) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{name} exited:\n{}",
            log_of(name)
        );
        let status = local_stack::signal_and_wait(child, "TERM");
        assert!(status.success(), "{name}: {status}\n{}", log_of(name));
    }

    let mut archive_expected = BTreeSet::new();
    for p in 0..4 {
        let records = topic_records_on(&settings, &topic, p);
        assert_eq!(
            output.committed(p).await,
            records,
            "partition {p}: Parquet output"
        );
        let mut stats = PartitionStats::default();
        for record in &records {
            stats.add(&record.station_id, &record.date, record.degrees);
        }
        stats.offset = ends[&p];
        let bytes = std::fs::read(stats_dir.join(format!("partition-{p}.json"))).unwrap();
        assert_eq!(
            PartitionStats::from_json(&bytes).unwrap(),
            stats,
            "partition {p}: stats"
        );
        archive_expected.extend((0..ends[&p]).map(|offset| (p, offset)));
    }
    assert_eq!(archived(&archive), archive_expected, "the archive");
}

/// The partition's checkpointed offset (0 without a checkpoint), read without a runtime.
fn checkpoint_offset(output: &Output, partition: i32) -> i64 {
    std::fs::read(
        output
            .checkpoint_dir
            .join(format!("partition-{partition}.json")),
    )
    .ok()
    .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
    .and_then(|v| v["offset"].as_i64())
    .unwrap_or(0)
}
