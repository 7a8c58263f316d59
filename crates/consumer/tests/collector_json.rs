//! The collector on the data collector's own kind of data, against the real
//! broker: JSON readings archived as they came, in the file of their
//! station's name and UTC day, exactly once (also under repeated SIGKILLs);
//! messages that are not readings kept whole in the dead letters and counted;
//! and the design's own operations (its `find … | wc -l` count, its pandas
//! loader, `kafka-consumer-groups.sh --describe`) giving what it says.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::Duration;

use common::archive::{collector_of, Archive};
use common::json::{self, Message};
use common::*;

/// The collector with its defaults (`--format json`) on `topic`.
fn json_collector(archive: &Archive, topic: &str) -> Command {
    collector_of(topic, &archive.dir, &archive.log)
}

fn ends(positions: &[(i32, i64)], partitions: i32) -> BTreeMap<i32, i64> {
    let mut ends: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    for &(partition, offset) in positions {
        let end = ends.entry(partition).or_default();
        *end = (*end).max(offset + 1);
    }
    ends
}

fn status_lines(archive: &Archive, topic: &str) -> Vec<String> {
    let out = local_stack::stdout_of(json_collector(archive, topic).arg("--status"));
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn json_readings_are_archived_as_they_came_by_station_name_and_utc_day() {
    let topic = unique("collector-json");
    create_topic(&topic, 4).await;
    // 1,200 readings over four days, and a message that is not a reading
    // after every 60th.
    let sent = json::fixture(0, 1200, 4, 60);
    let bad: Vec<&Message> = sent.iter().filter(|m| m.reading.is_none()).collect();
    assert_eq!(bad.len(), 20);
    let positions = json::send(&local_stack::brokers(), &topic, &sent, Duration::ZERO).await;

    let archive = Archive::new();
    let group = unique("collector-json-group");
    let mut command = json_collector(&archive, &topic);
    command.args([
        "--exit-when-idle",
        "3",
        "--batch-size",
        "70",
        "--group",
        &group,
    ]);
    let (ok, stderr) = run_to_exit(command, Duration::from_secs(120));
    assert!(ok, "{stderr}");

    json::assert_archived_exactly_once(&archive.dir, &topic, &sent, &positions);

    // The checkpoint: the design's shape with the topic's real name, and the
    // messages that were not readings counted per partition.
    let raw: serde_json::Value = serde_json::from_slice(
        &std::fs::read(archive.dir.join("checkpoints/offset_checkpoint.json")).unwrap(),
    )
    .unwrap();
    let keys: Vec<&String> = raw.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["last_updated", "offsets", "skipped"]);
    let want_ends = ends(&positions, 4);
    assert_eq!(archive.offsets(&topic), want_ends);
    let mut bad_per_partition: BTreeMap<i32, u64> = (0..4).map(|p| (p, 0)).collect();
    for message in &bad {
        *bad_per_partition.get_mut(&message.partition).unwrap() += 1;
    }
    let status: Vec<String> = want_ends
        .iter()
        .map(|(p, end)| {
            format!(
                "partition={p} offset={end} skipped={}",
                bad_per_partition[p]
            )
        })
        .collect();
    assert_eq!(status_lines(&archive, &topic), status);

    // Each skipped message has a warning with its partition and offset, and
    // the run summary counts them.
    let log = archive.log() + &stderr;
    for (message, (partition, offset)) in sent.iter().zip(&positions) {
        if message.reading.is_none() {
            assert!(
                log.lines().any(|l| l.contains("skipping a message")
                    && l.contains(&format!("partition={partition} "))
                    && l.contains(&format!("offset={offset} "))
                    && l.contains("dead-letters.jsonl")),
                "no warning for partition {partition} offset {offset}:\n{log}"
            );
        }
    }
    for (partition, count) in &bad_per_partition {
        assert!(
            stderr.contains(&format!("partition {partition}: "))
                && stderr
                    .lines()
                    .any(|l| l.starts_with(&format!("partition {partition}: "))
                        && l.contains(&format!(" {count} skipped this run"))),
            "run summary for partition {partition}:\n{stderr}"
        );
    }

    // The design's count of a day's messages: find … -exec wc -l {} + | tail -1.
    let mut per_day: BTreeMap<&str, usize> = BTreeMap::new();
    for message in &sent {
        if let Some(reading) = &message.reading {
            *per_day.entry(&reading.day).or_default() += 1;
        }
    }
    assert!(per_day.len() >= 4, "{per_day:?}");
    for (day, count) in &per_day {
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#"find "$1/$2" -name "*.jsonl" -exec wc -l {} + | tail -1"#)
            .arg("bash")
            .arg(&archive.dir)
            .arg(day)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let counted: usize = text.split_whitespace().next().unwrap().parse().unwrap();
        assert_eq!(counted, *count, "{day}: {text}");
    }

    // The design's pandas loader, as written, loads every reading with every field.
    let python = local_stack::python_readers();
    let out = local_stack::stdout_of(
        Command::new(&python)
            .arg("-c")
            .arg(
                "import sys, json\n\
             import pandas as pd\n\
             from pathlib import Path\n\
             def load_kafka_streaming_data(data_dir: Path):\n\
             \x20   all_data = []\n\
             \x20   for date_dir in data_dir.glob('*/'):\n\
             \x20       for jsonl_file in date_dir.glob('*.jsonl'):\n\
             \x20           df = pd.read_json(jsonl_file, lines=True)\n\
             \x20           all_data.append(df)\n\
             \x20   return pd.concat(all_data, ignore_index=True)\n\
             df = load_kafka_streaming_data(Path(sys.argv[1])).sort_values('seq')\n\
             print(json.dumps({'rows': len(df), 'columns': sorted(df.columns),\n\
             \x20   'seq': [int(s) for s in df['seq']],\n\
             \x20   'stations': sorted(set(df['station_id'])),\n\
             \x20   'temperature_sum': float(df['temperature'].sum()),\n\
             \x20   'temperature_nulls': int(df['temperature'].isna().sum())}))",
            )
            .arg(&archive.dir),
    );
    let loaded: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(loaded["rows"], 1200);
    assert_eq!(
        loaded["columns"],
        serde_json::json!([
            "conditions",
            "humidity",
            "pressure_hpa",
            "seq",
            "station_id",
            "station_name",
            "temperature",
            "timestamp",
            "wind_mph"
        ])
    );
    let seqs: Vec<u64> = serde_json::from_value(loaded["seq"].clone()).unwrap();
    assert_eq!(seqs, (0..1200).collect::<Vec<u64>>());
    let (mut sum, mut nulls) = (0.0, 0);
    for message in &sent {
        if let Some(reading) = &message.reading {
            let value: serde_json::Value = serde_json::from_str(&reading.line).unwrap();
            match value["temperature"].as_f64() {
                Some(t) => sum += t,
                None => nulls += 1,
            }
        }
    }
    assert!(nulls > 0, "the fixture has readings without a temperature");
    assert_eq!(loaded["temperature_nulls"], nulls);
    let loaded_sum = loaded["temperature_sum"].as_f64().unwrap();
    assert!(
        (loaded_sum - sum).abs() < 1e-6,
        "{loaded_sum} against {sum}"
    );

    // Kafka's own tool shows the collector's group at the end of every partition.
    let brokers = local_stack::brokers();
    let described = describe_group(&brokers, &group);
    for (partition, end) in &want_ends {
        assert!(
            described.lines().any(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                fields.len() >= 6
                    && fields[1] == topic
                    && fields[2] == partition.to_string()
                    && fields[3] == end.to_string()
                    && fields[5] == "0"
            }),
            "partition {partition} at {end} with lag 0 in:\n{described}"
        );
    }

    // A second run finds nothing new and changes nothing.
    let before = json::archive_files(&archive.dir);
    let mut again = json_collector(&archive, &topic);
    again.args(["--exit-when-idle", "2"]);
    let (ok, stderr) = run_to_exit(again, Duration::from_secs(60));
    assert!(ok, "{stderr}");
    assert_eq!(json::archive_files(&archive.dir), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_warnings_are_limited_and_the_rest_counted() {
    let topic = unique("collector-json-flood");
    create_topic(&topic, 1).await;
    // 25 messages in a row that are not readings, then three readings.
    let mut sent: Vec<Message> = (0..25)
        .map(|n| Message {
            partition: 0,
            key: None,
            value: Some(format!("not json {n}").into_bytes()),
            reading: None,
        })
        .collect();
    sent.extend(json::fixture(0, 3, 1, 0));
    let positions = json::send(&local_stack::brokers(), &topic, &sent, Duration::ZERO).await;
    let archive = Archive::new();
    let mut command = json_collector(&archive, &topic);
    command.args(["--exit-when-idle", "2"]);
    let (ok, stderr) = run_to_exit(command, Duration::from_secs(60));
    assert!(ok, "{stderr}");
    json::assert_archived_exactly_once(&archive.dir, &topic, &sent, &positions);
    let log = archive.log() + &stderr;
    let warnings = log
        .lines()
        .filter(|l| l.contains("skipping a message"))
        .count();
    assert_eq!(warnings, 10, "{log}");
    assert!(
        log.contains("15 more messages were skipped without a warning each"),
        "{log}"
    );
    assert!(stderr.contains("25 skipped this run"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkilled_json_collectors_leave_every_message_exactly_once() {
    const READINGS: u64 = 3000;
    let topic = unique("collector-json-chaos");
    create_topic(&topic, 4).await;
    let sent = json::fixture(0, READINGS, 4, 40);
    let sending = {
        let (topic, sent) = (topic.clone(), sent.clone());
        tokio::spawn(async move {
            json::send(
                &local_stack::brokers(),
                &topic,
                &sent,
                Duration::from_millis(2),
            )
            .await
        })
    };
    let archive = Archive::new();
    let start = || -> Child {
        json_collector(&archive, &topic)
            .env("DATA_COLLECTOR_BATCH_SIZE", "25")
            .env("DATA_COLLECTOR_BATCH_TIMEOUT", "0.2")
            .spawn()
            .unwrap()
    };
    let mut running = Running(vec![start()]);
    running
        .kill_and_restart(
            24,
            Duration::from_millis(150),
            Duration::from_millis(500),
            |_| start(),
        )
        .await;
    let positions = sending.await.unwrap();
    archive
        .wait_for_offsets(&topic, &ends(&positions, 4), Duration::from_secs(120))
        .await;
    let status = local_stack::signal_and_wait(&mut running.0[0], "TERM");
    assert!(status.success(), "{status}; log:\n{}", archive.log());
    assert!(
        archive.log().contains("rolled back") || archive.log().matches("collecting").count() > 20,
        "the collector was not restarted:\n{}",
        archive.log()
    );
    json::assert_archived_exactly_once(&archive.dir, &topic, &sent, &positions);
    let skipped: u64 = status_lines(&archive, &topic)
        .iter()
        .map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("skipped="))
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        skipped,
        sent.iter().filter(|m| m.reading.is_none()).count() as u64
    );
}

#[test]
fn the_topic_follows_the_format() {
    // Read from the checkpoint alone: --status needs no broker.
    let archive = Archive::new();
    std::fs::create_dir_all(archive.dir.join("checkpoints")).unwrap();
    std::fs::write(
        archive.dir.join("checkpoints/offset_checkpoint.json"),
        r#"{"last_updated": "2025-12-13T10:30:00Z",
            "offsets": {"weather-raw": {"0": 12345, "1": 12340},
                        "temperatures": {"0": 7}},
            "skipped": {"weather-raw": {"1": 3}}}"#,
    )
    .unwrap();
    let status = |args: &[&str]| -> String {
        let out = local_stack::stdout_of(
            Command::new(env!("CARGO_BIN_EXE_collector"))
                .args(args)
                .arg("--status")
                .env("DATA_COLLECTOR_OUTPUT_DIR", &archive.dir)
                .env_remove("DATA_COLLECTOR_FORMAT"),
        );
        String::from_utf8(out).unwrap()
    };
    assert_eq!(
        status(&[]),
        "partition=0 offset=12345 skipped=0\npartition=1 offset=12340 skipped=3\n"
    );
    assert_eq!(
        status(&["--format", "report"]),
        "partition=0 offset=7 skipped=0\n"
    );
    assert_eq!(
        status(&["--format", "report", "--topic", "weather-raw", "1"]),
        "partition=1 offset=12340 skipped=3\n"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_collector"))
        .args(["--format", "xml", "--status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().filter(|l| l.starts_with("error:")).count() == 1 && stderr.contains("xml"),
        "{stderr}"
    );
}
