//! The collector (JSON Lines archive) as a child process, and the check
//! that its archive holds the topic exactly once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use batch_store::Record;
use consumer::jsonl::{ArchiveCheckpoint, Line};

use super::topic_records;

/// The collector of the course's `Report`s on `topic`, archiving into `dir`.
pub fn collector(topic: &str, dir: &Path, log: &Path) -> Command {
    let mut command = collector_of(topic, dir, log);
    command.env("DATA_COLLECTOR_FORMAT", "report");
    command
}

/// The collector on `topic` with its defaults (the JSON format), archiving into `dir`.
pub fn collector_of(topic: &str, dir: &Path, log: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_collector"));
    command
        .arg("--topic")
        .arg(topic)
        .arg("--wait")
        .arg("30")
        .env("P7_BROKERS", local_stack::brokers())
        .env_remove("DATA_COLLECTOR_FORMAT")
        .env("DATA_COLLECTOR_OUTPUT_DIR", dir)
        .env_remove("DATA_COLLECTOR_BATCH_SIZE")
        .env_remove("DATA_COLLECTOR_BATCH_TIMEOUT")
        .env_remove("DATA_COLLECTOR_OFFSET_RESET")
        .env_remove("P7_CRASH_POINT")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(local_stack::append_log(log));
    command
}

pub struct Archive {
    pub dir: PathBuf,
    pub log: PathBuf,
    _temp: tempfile::TempDir,
}

impl Archive {
    pub fn new() -> Self {
        let temp = tempfile::tempdir().unwrap();
        Self {
            dir: temp.path().join("archive"),
            log: temp.path().join("collector.log"),
            _temp: temp,
        }
    }

    pub fn command(&self, topic: &str) -> Command {
        collector(topic, &self.dir, &self.log)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn checkpoint(&self) -> Option<ArchiveCheckpoint> {
        let bytes = std::fs::read(self.dir.join("checkpoints/offset_checkpoint.json")).ok()?;
        Some(serde_json::from_slice(&bytes).expect("a complete checkpoint"))
    }

    pub fn offsets(&self, topic: &str) -> BTreeMap<i32, i64> {
        self.checkpoint()
            .and_then(|cp| cp.offsets.get(topic).cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|(p, o)| (p.parse().unwrap(), o))
            .collect()
    }

    /// Every line of every archive file, with the file it is in.
    pub fn lines(&self) -> Vec<(String, Line)> {
        let mut lines = Vec::new();
        for day in std::fs::read_dir(&self.dir).unwrap() {
            let day = day.unwrap();
            let name = day.file_name().to_string_lossy().into_owned();
            if name == "checkpoints" || name == consumer::jsonl::DEAD_LETTERS {
                continue;
            }
            for file in std::fs::read_dir(day.path()).unwrap() {
                let file = file.unwrap();
                let relative = format!("{name}/{}", file.file_name().to_string_lossy());
                let text = std::fs::read_to_string(file.path()).unwrap();
                assert!(
                    text.ends_with('\n'),
                    "{relative} ends in a partial line: {text:?}"
                );
                for line in text.lines() {
                    let parsed: Line = serde_json::from_str(line)
                        .unwrap_or_else(|err| panic!("{relative}: {line:?}: {err}"));
                    lines.push((relative.clone(), parsed));
                }
            }
        }
        lines
    }

    pub async fn wait_for_offsets(
        &self,
        topic: &str,
        want: &BTreeMap<i32, i64>,
        timeout: Duration,
    ) {
        let deadline = Instant::now() + timeout;
        while &self.offsets(topic) != want {
            assert!(
                Instant::now() < deadline,
                "offsets {:?}, wanted {want:?}; log:\n{}",
                self.offsets(topic),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The topic's content by partition and offset.
pub fn topic_content(topic: &str, partitions: i32) -> BTreeMap<(i32, i64), Record> {
    let mut all = BTreeMap::new();
    for partition in 0..partitions {
        for (offset, record) in topic_records(topic, partition).into_iter().enumerate() {
            all.insert((partition, offset as i64), record);
        }
    }
    all
}

/// The archive holds exactly the topic's records: each once, in the file of
/// its day and station, with the checkpoint at the end of every partition.
pub fn assert_exactly_once(archive: &Archive, topic: &str, partitions: i32) {
    let expected = topic_content(topic, partitions);
    let mut seen: BTreeMap<(i32, i64), Record> = BTreeMap::new();
    for (file, line) in archive.lines() {
        assert_eq!(
            file,
            format!("{0}/{1}_{0}.jsonl", line.date, line.station_id),
            "a record in the wrong file"
        );
        let record = Record {
            station_id: line.station_id,
            date: line.date,
            degrees: line.degrees.expect("a finite reading"),
        };
        if let Some(earlier) = seen.insert((line.partition, line.offset), record) {
            panic!(
                "partition {} offset {} archived twice ({earlier:?}); log:\n{}",
                line.partition,
                line.offset,
                archive.log()
            );
        }
    }
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(k)).collect();
    assert!(missing.is_empty(), "records missing: {missing:?}");
    assert_eq!(seen, expected, "the archive differs from the topic");
    let mut ends = BTreeMap::new();
    for (partition, offset) in expected.keys() {
        ends.insert(*partition, offset + 1);
    }
    assert_eq!(archive.offsets(topic), ends, "checkpoint offsets");
    assert!(archive.checkpoint().unwrap().appending.is_empty());
}
