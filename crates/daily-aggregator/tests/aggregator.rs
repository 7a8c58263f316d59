//! The daily aggregator on what the real collector archived from the real
//! broker: its summaries equal ones pandas computes independently from the
//! messages sent, also after a crash in the middle of a run, and when the
//! collector died in the middle of a batch (only committed lines count); a
//! second run changes nothing, and a run after new readings redoes only their
//! days; bad input gets one clear line.

#[path = "../../consumer/tests/common/json.rs"]
mod json;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use json::Message;

fn brokers() -> String {
    local_stack::brokers()
}

/// The collector, built next to this crate's binary by `cargo test --workspace`.
fn collector() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_daily-aggregator")).with_file_name("collector");
    assert!(
        path.is_file(),
        "{} is missing: build the workspace's binaries first (cargo test --workspace does)",
        path.display()
    );
    path
}

async fn create_topic(name: &str, partitions: i32) {
    let spec = topic::TopicSpec {
        name: name.into(),
        partitions,
        replication: 1,
        settle: Duration::from_secs(3),
    };
    topic::reset_topic(&topic::KafkaSettings::new(brokers()), &spec)
        .await
        .expect("create topic");
}

/// Runs `command` to its end (at most two minutes): success and stderr.
fn run(command: Command) -> (bool, String) {
    local_stack::run_to_exit(command, Duration::from_secs(120))
}

struct Setup {
    _temp: tempfile::TempDir,
    archive: PathBuf,
    output: PathBuf,
    topic: String,
}

impl Setup {
    fn new(topic: &str) -> Self {
        let temp = tempfile::tempdir().unwrap();
        Self {
            archive: temp.path().join("archive"),
            output: temp.path().join("daily"),
            topic: topic.to_string(),
            _temp: temp,
        }
    }

    fn collector(&self) -> Command {
        let mut command = Command::new(collector());
        command
            .args([
                "--topic",
                &self.topic,
                "--wait",
                "30",
                "--exit-when-idle",
                "3",
            ])
            .args(["--batch-size", "90"])
            .env("P7_BROKERS", brokers())
            .env("DATA_COLLECTOR_OUTPUT_DIR", &self.archive)
            .env_remove("DATA_COLLECTOR_FORMAT")
            .env_remove("DATA_COLLECTOR_BATCH_SIZE")
            .env_remove("DATA_COLLECTOR_BATCH_TIMEOUT")
            .env_remove("P7_CRASH_POINT");
        command
    }

    fn collect(&self) {
        let (ok, stderr) = run(self.collector());
        assert!(ok, "collector: {stderr}");
    }

    fn aggregator(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_daily-aggregator"));
        command
            .env("DATA_COLLECTOR_OUTPUT_DIR", &self.archive)
            .env("DAILY_AGGREGATOR_OUTPUT_DIR", &self.output)
            .env_remove("P7_CRASH_POINT")
            .env_remove("RUST_LOG");
        command
    }

    fn aggregate(&self) -> String {
        let (ok, stderr) = run(self.aggregator());
        assert!(ok, "daily-aggregator: {stderr}");
        stderr
    }

    /// The output directory's summaries, by name, byte for byte.
    fn outputs(&self) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(&self.output)
            .unwrap()
            .map(|entry| entry.unwrap())
            .filter(|entry| entry.file_type().unwrap().is_file())
            .map(|entry| {
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    std::fs::read(entry.path()).unwrap(),
                )
            })
            .collect()
    }

    /// Compares the summaries with pandas' over `readings`.
    fn assert_summaries_of<'a>(&self, readings: impl IntoIterator<Item = &'a Message>) {
        let temp = tempfile::tempdir().unwrap();
        let sent = temp.path().join("sent.jsonl");
        let mut text = String::new();
        let mut count = 0;
        for message in readings {
            if let Some(reading) = &message.reading {
                text.push_str(&reading.line);
                text.push('\n');
                count += 1;
            }
        }
        assert!(count > 0);
        std::fs::write(&sent, text).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_summaries.py");
        let out = local_stack::stdout_of(
            Command::new(local_stack::python_readers())
                .arg(script)
                .arg(&sent)
                .arg(&self.output),
        );
        let result: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(result["problems"], serde_json::json!([]), "{result}");
        assert!(result["groups"].as_u64().unwrap() >= 6, "{result}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn summaries_equal_pandas_over_the_messages_and_survive_crashes_and_reruns() {
    let topic = local_stack::unique_name("aggregator");
    create_topic(&topic, 4).await;
    // 2,000 readings over six days, and messages that are not readings.
    let mut sent = json::fixture(0, 2000, 4, 100);
    json::send(&brokers(), &topic, &sent, Duration::ZERO).await;
    let setup = Setup::new(&topic);
    setup.collect();

    // A run that crashes after the second day's JSON Lines summary, and one
    // that crashes before the third day's checkpoint.
    for crash in ["mid-day@2", "before-checkpoint@3"] {
        let mut crashing = setup.aggregator();
        crashing.env("P7_CRASH_POINT", crash);
        let (ok, stderr) = run(crashing);
        assert!(
            !ok && stderr.contains("crashing on purpose"),
            "{crash}: {stderr}"
        );
    }
    let checkpoint: serde_json::Value = serde_json::from_slice(
        &std::fs::read(setup.output.join("checkpoints/aggregator_checkpoint.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        checkpoint["days"].as_object().unwrap().len(),
        3,
        "each crashed run checkpointed the days it finished: {checkpoint}"
    );
    let stderr = setup.aggregate();
    assert!(stderr.contains("days summarized"), "{stderr}");
    setup.assert_summaries_of(&sent);

    // Again: nothing changed, nothing is written.
    let before = setup.outputs();
    assert_eq!(before.len(), 2 * 6, "{:?}", before.keys());
    let stderr = setup.aggregate();
    assert!(stderr.contains("no day changed, 6 unchanged"), "{stderr}");
    assert_eq!(setup.outputs(), before);

    // New readings of the last day only: that day alone is summarized again.
    let last_day = sent
        .iter()
        .rev()
        .find_map(|m| m.reading.as_ref())
        .unwrap()
        .day
        .clone();
    let more: Vec<Message> = json::fixture(2000, 60, 4, 0)
        .into_iter()
        .filter(|m| m.reading.as_ref().is_some_and(|r| r.day == last_day))
        .collect();
    assert!(!more.is_empty());
    json::send(&brokers(), &topic, &more, Duration::ZERO).await;
    setup.collect();
    let stderr = setup.aggregate();
    assert!(
        stderr.contains(&format!("1 day summarized ({last_day}), 5 unchanged")),
        "{stderr}"
    );
    let after = setup.outputs();
    for (name, bytes) in &before {
        if !name.starts_with(&last_day) {
            assert_eq!(after.get(name), Some(bytes), "{name} was rewritten");
        }
    }
    sent.extend(more);
    setup.assert_summaries_of(&sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_lines_the_collector_committed_are_summarized() {
    let topic = local_stack::unique_name("aggregator-uncommitted");
    create_topic(&topic, 2).await;
    let sent = json::fixture(0, 1200, 2, 0);
    let positions = json::send(&brokers(), &topic, &sent, Duration::ZERO).await;
    let setup = Setup::new(&topic);
    // The collector dies halfway through appending its fourth batch.
    let mut crashing = setup.collector();
    crashing.env("P7_CRASH_POINT", "mid-append@4");
    let (ok, stderr) = run(crashing);
    assert!(!ok && stderr.contains("crashing on purpose"), "{stderr}");
    let checkpoint: serde_json::Value = serde_json::from_slice(
        &std::fs::read(setup.archive.join("checkpoints/offset_checkpoint.json")).unwrap(),
    )
    .unwrap();
    assert!(
        !checkpoint["appending"].as_object().unwrap().is_empty(),
        "{checkpoint}"
    );
    let committed: BTreeMap<i32, i64> = checkpoint["offsets"][&topic]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, o)| (p.parse().unwrap(), o.as_i64().unwrap()))
        .collect();
    let committed_messages: Vec<&Message> = sent
        .iter()
        .zip(&positions)
        .filter(|(_, (p, o))| committed.get(p).is_some_and(|end| o < end))
        .map(|(m, _)| m)
        .collect();
    assert!(committed_messages.len() < sent.len());
    setup.aggregate();
    setup.assert_summaries_of(committed_messages);

    // Once the collector has finished, the rest is summarized too.
    setup.collect();
    setup.aggregate();
    setup.assert_summaries_of(&sent);
}

#[test]
fn bad_input_gets_one_clear_line_and_writes_nothing() {
    let setup = Setup::new("unused");
    let one_line = |command: Command, needle: &str| {
        let (ok, stderr) = run(command);
        assert!(!ok, "{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].starts_with("daily-aggregator: ") && lines[0].contains(needle),
            "{needle}: {stderr}"
        );
    };
    // No archive at all.
    one_line(setup.aggregator(), "is not a directory");

    // An archive the collector has not committed to yet: nothing to do.
    std::fs::create_dir_all(&setup.archive).unwrap();
    let (ok, stderr) = run(setup.aggregator());
    assert!(ok && stderr.contains("nothing committed"), "{stderr}");

    // A corrupt collector checkpoint.
    std::fs::create_dir_all(setup.archive.join("checkpoints")).unwrap();
    let checkpoint = setup.archive.join("checkpoints/offset_checkpoint.json");
    std::fs::write(&checkpoint, "{\"last_updated\": \"2025-").unwrap();
    one_line(setup.aggregator(), "offset_checkpoint.json is corrupt");

    // A committed line changed by hand into something that is not JSON.
    std::fs::write(
        &checkpoint,
        r#"{"last_updated":"2025-12-13T10:30:00Z","offsets":{"weather-raw":{"0":2}}}"#,
    )
    .unwrap();
    std::fs::create_dir_all(setup.archive.join("2025-12-13")).unwrap();
    std::fs::write(
        setup.archive.join("2025-12-13/Madison_2025-12-13.jsonl"),
        "{\"station_id\":\"KMSN\",\"timestamp\":\"2025-12-13T10:30:00Z\",\"temperature\":1}\nnot json\n",
    )
    .unwrap();
    one_line(setup.aggregator(), "Madison_2025-12-13.jsonl line 2");
    assert!(!setup.output.join("2025-12-13.jsonl").exists());

    // A corrupt checkpoint of its own.
    std::fs::write(
        setup.archive.join("2025-12-13/Madison_2025-12-13.jsonl"),
        "{\"station_id\":\"KMSN\",\"timestamp\":\"2025-12-13T10:30:00Z\",\"temperature\":1}\n",
    )
    .unwrap();
    std::fs::write(
        setup.output.join("checkpoints/aggregator_checkpoint.json"),
        "{",
    )
    .unwrap();
    one_line(setup.aggregator(), "aggregator_checkpoint.json");
    std::fs::remove_file(setup.output.join("checkpoints/aggregator_checkpoint.json")).unwrap();

    // Output inside the archive, where loaders would read it as readings.
    let mut inside = setup.aggregator();
    inside.env("DAILY_AGGREGATOR_OUTPUT_DIR", setup.archive.join("daily"));
    one_line(inside, "inside the archive");

    // A second aggregator while one holds the output.
    let held = std::fs::File::create(setup.output.join("checkpoints/.aggregator.lock")).unwrap();
    held.try_lock().unwrap();
    one_line(setup.aggregator(), "another daily-aggregator");
    drop(held);
    let stderr = setup.aggregate();
    assert!(stderr.contains("1 day summarized (2025-12-13)"), "{stderr}");
}
