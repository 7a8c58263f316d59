//! Helpers for the producer's tests: a fresh database filled by the real
//! generator, the producer binary as a child process, and the topic's content
//! with each message's partition, key and row id.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::message::{Headers, Message};
use report::Report;
use tokio_util::sync::CancellationToken;
use topic::KafkaSettings;
use weather_generator::{Database, GeneratorOptions, Limit};

pub fn settings() -> KafkaSettings {
    KafkaSettings::new(local_stack::brokers())
}

/// A fresh database holding the first `rows` rows of the course sequence.
pub async fn database_with_rows(rows: u64) -> (String, Database) {
    let url = local_stack::fresh_database("producer").await;
    let database = Database::connect(&url, Duration::from_secs(10))
        .await
        .expect("connect");
    let options = GeneratorOptions {
        delay: Duration::ZERO,
        limit: Limit::Rows(rows),
        bulk: true,
        bulk_rows: 5000,
        resume: false,
    };
    weather_generator::run(&database, &options, &CancellationToken::new())
        .await
        .expect("generate rows");
    (url, database)
}

/// One message as found in the topic.
#[derive(Debug, Clone)]
pub struct Found {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub row_id: i64,
    pub report: Report,
}

/// Every message of the topic's partitions, in offset order per partition.
pub fn topic_messages(topic: &str, partitions: i32) -> Vec<Found> {
    topic_messages_on(&settings(), topic, partitions)
}

/// The same, on the brokers of `settings`.
pub fn topic_messages_on(settings: &KafkaSettings, topic: &str, partitions: i32) -> Vec<Found> {
    let mut found = Vec::new();
    for partition in 0..partitions {
        topic::scan(
            settings,
            topic,
            partition,
            0,
            Duration::from_secs(3),
            |message| {
                let row_id = message
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|h| h.key == producer::ROW_ID_HEADER)
                            .and_then(|h| h.value)
                    })
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                    .expect("every message carries its row id");
                found.push(Found {
                    partition,
                    offset: message.offset(),
                    key: String::from_utf8(message.key().expect("key").to_vec())
                        .expect("utf-8 key"),
                    row_id,
                    report: Report::from_bytes(message.payload().expect("value"))
                        .expect("a Report"),
                });
                true
            },
        )
        .expect("read the topic");
    }
    found
}

pub fn producer_command(topic: &str, mysql_url: &str, log: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_producer"));
    command
        .args([
            "--topic",
            topic,
            "--mysql-url",
            mysql_url,
            "--settle",
            "1",
            "--wait",
            "30",
        ])
        .env("P7_BROKERS", local_stack::brokers())
        .env("RUST_LOG", "info")
        .env_remove("PROJECT")
        .env_remove("AUTOGRADER_DELAY_OVERRIDE_VAL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(local_stack::append_log(log));
    command
}

/// Sends SIGTERM and expects a clean exit.
pub fn terminate(child: &mut Child, log: &std::path::Path) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "producer ignored SIGTERM for 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "producer exited with {status}; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Waits until the topic holds `count` messages.
pub async fn wait_for_messages(
    topic: &str,
    partitions: i32,
    count: usize,
    timeout: Duration,
) -> Vec<Found> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = topic_messages(topic, partitions);
        if found.len() >= count || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn spec_partition(station: &str) -> i32 {
    report::COURSE_PARTITIONS
        .iter()
        .find(|(s, _)| *s == station)
        .unwrap_or_else(|| panic!("unknown station {station}"))
        .1
}
