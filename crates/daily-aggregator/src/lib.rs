//! The daily aggregator: turns the collector's archive of readings into one
//! summary per station and day, as `<output>/<YYYY-MM-DD>.jsonl` (a line per
//! station) and `<output>/<YYYY-MM-DD>.parquet` (a row per station).
//!
//! It reads only what the collector has committed. The collector appends a
//! batch only after its checkpoint lists every file the batch touches with
//! the file's length before it (`appending`), and clears that list once the
//! batch is committed. So a file's committed length is its `appending`
//! length if the checkpoint lists it, and its whole length otherwise,
//! provided the lengths are taken while that checkpoint is the current one:
//! the files are measured between two reads of the checkpoint, and again if
//! the two differ. A batch started after the second read only adds bytes
//! beyond the lengths taken.
//!
//! Its own checkpoint, `<output>/checkpoints/aggregator_checkpoint.json`,
//! records per day the committed length of every file it summarized. A day
//! is summarized again only when one of those lengths (or the set of files)
//! changed, or one of its summaries is missing. Each summary file is written
//! atomically (temp file, fsync, rename), and the checkpoint after both, so a
//! crash at any moment leaves either the old summaries or the new ones, and
//! the next run redoes the day: the result is a function of the committed
//! lines, so it is the same.

mod summary;

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use batch_store::Store;
use bytes::Bytes;
use consumer::crash::{self, CrashPoint};
use consumer::jsonl::{ArchiveCheckpoint, CHECKPOINT_DIR, CHECKPOINT_FILE};
use serde::{Deserialize, Serialize};

pub use summary::{DaySummary, StationSummary};

/// The aggregator's own checkpoint, in `<output>/checkpoints`.
pub const AGGREGATOR_CHECKPOINT: &str = "aggregator_checkpoint.json";

/// What a run is given.
#[derive(Debug, Clone)]
pub struct Options {
    /// The collector's archive (its `--output-dir`).
    pub archive: PathBuf,
    /// Where the summaries go.
    pub output: PathBuf,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Days summarized (again), in order.
    pub summarized: Vec<String>,
    /// Days whose committed files had not changed.
    pub unchanged: usize,
    /// Whether the archive has no checkpoint yet (nothing committed).
    pub nothing_committed: bool,
    /// Whether a stop came before every changed day was done.
    pub stopped: bool,
}

/// The aggregator's checkpoint: per day, each archive file's committed
/// length that its summaries cover.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorCheckpoint {
    pub last_updated: String,
    pub days: BTreeMap<String, BTreeMap<String, u64>>,
}

/// A day's committed archive files: path (relative to the archive) → length.
type DayFiles = BTreeMap<String, u64>;

/// Summarizes every day whose committed files changed since the last run.
/// `stop` is looked at between days.
pub async fn run(options: &Options, stop: &dyn Fn() -> bool) -> anyhow::Result<RunSummary> {
    let _lock = lock(&options.output)?;
    let checkpoints = Store::local(options.output.join(CHECKPOINT_DIR));
    let outputs = Store::local(&options.output);
    let mut state = load_checkpoint(&checkpoints).await?;
    let Some(days) = committed_files(&options.archive).await? else {
        return Ok(RunSummary {
            nothing_committed: true,
            ..RunSummary::default()
        });
    };
    let mut summary = RunSummary::default();
    for (day, files) in days {
        let done = state.days.get(&day) == Some(&files)
            && options.output.join(format!("{day}.jsonl")).is_file()
            && options.output.join(format!("{day}.parquet")).is_file();
        if done {
            summary.unchanged += 1;
            continue;
        }
        if stop() {
            summary.stopped = true;
            break;
        }
        crash::begin_commit();
        let day_summary = summarize_day(&options.archive, &day, &files)?;
        outputs
            .put_atomic(
                &format!("{day}.jsonl"),
                Bytes::from(day_summary.to_json_lines()),
            )
            .await?;
        crash::point(CrashPoint::MidDay);
        outputs
            .put_atomic(
                &format!("{day}.parquet"),
                day_summary
                    .to_parquet()
                    .with_context(|| format!("day {day}: cannot encode the Parquet summary"))?,
            )
            .await?;
        crash::point(CrashPoint::BeforeCheckpoint);
        state.days.insert(day.clone(), files);
        save_checkpoint(&checkpoints, &mut state).await?;
        tracing::info!(
            %day,
            stations = day_summary.stations.len(),
            readings = day_summary.readings(),
            "summarized"
        );
        summary.summarized.push(day);
    }
    Ok(summary)
}

/// One aggregator per output directory: a second would race on the checkpoint.
fn lock(output: &Path) -> anyhow::Result<std::fs::File> {
    let dir = output.join(CHECKPOINT_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(".aggregator.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another daily-aggregator is writing {} (lock {} is held)",
            output.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

async fn load_checkpoint(checkpoints: &Store) -> anyhow::Result<AggregatorCheckpoint> {
    Ok(checkpoints
        .load_state(AGGREGATOR_CHECKPOINT, |bytes| {
            serde_json::from_slice::<AggregatorCheckpoint>(bytes).map_err(|err| err.to_string())
        })
        .await?
        .unwrap_or_default())
}

async fn save_checkpoint(
    checkpoints: &Store,
    state: &mut AggregatorCheckpoint,
) -> anyhow::Result<()> {
    state.last_updated = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let bytes = serde_json::to_vec(state).expect("a checkpoint always serializes");
    checkpoints
        .put_atomic(AGGREGATOR_CHECKPOINT, Bytes::from(bytes))
        .await?;
    Ok(())
}

/// How many times the archive is measured before giving up on a checkpoint
/// that keeps changing under the measurement.
const MEASURE_TRIES: u32 = 200;

/// The archive's committed files by day; `None` if the collector has not
/// committed anything yet (no checkpoint). See the module documentation.
pub async fn committed_files(archive: &Path) -> anyhow::Result<Option<BTreeMap<String, DayFiles>>> {
    if !archive.is_dir() {
        bail!(
            "{} is not a directory (the collector's --output-dir, DATA_COLLECTOR_OUTPUT_DIR)",
            archive.display()
        );
    }
    let checkpoint_path = archive.join(CHECKPOINT_DIR).join(CHECKPOINT_FILE);
    let read = |path: &Path| match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    for _ in 0..MEASURE_TRIES {
        let Some(before) = read(&checkpoint_path)? else {
            return Ok(None);
        };
        let lengths = measure(archive)?;
        if read(&checkpoint_path)?.as_ref() != Some(&before) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let checkpoint = ArchiveCheckpoint::parse(&before).map_err(|reason| {
            anyhow::anyhow!("{} is corrupt: {reason}", checkpoint_path.display())
        })?;
        let mut days: BTreeMap<String, DayFiles> = BTreeMap::new();
        for (file, length) in lengths {
            let committed = checkpoint.appending.get(&file).copied().unwrap_or(length);
            if committed == 0 {
                continue;
            }
            let day = file.split('/').next().expect("a day directory").to_string();
            days.entry(day).or_default().insert(file, committed);
        }
        return Ok(Some(days));
    }
    bail!(
        "{} changed every time the archive was measured ({MEASURE_TRIES} tries); nothing was written",
        checkpoint_path.display()
    )
}

/// Every `<YYYY-MM-DD>/*.jsonl` file of the archive with its length now.
fn measure(archive: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let cannot = |path: &Path| format!("cannot list {}", path.display());
    let mut lengths = BTreeMap::new();
    for day in std::fs::read_dir(archive).with_context(|| cannot(archive))? {
        let day = day.with_context(|| cannot(archive))?;
        let name = day.file_name().to_string_lossy().into_owned();
        if !summary::is_day(&name) || !day.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        for file in std::fs::read_dir(day.path()).with_context(|| cannot(&day.path()))? {
            let file = file.with_context(|| cannot(&day.path()))?;
            let file_name = file.file_name().to_string_lossy().into_owned();
            if !file_name.ends_with(".jsonl") {
                continue;
            }
            let length = match file.metadata() {
                Ok(metadata) => metadata.len(),
                // Removed by a rollback between the listing and now.
                Err(err) if err.kind() == ErrorKind::NotFound => continue,
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("cannot read {}", file.path().display()))
                }
            };
            lengths.insert(format!("{name}/{file_name}"), length);
        }
    }
    Ok(lengths)
}

/// Reads the committed part of each file of `day` and summarizes it.
fn summarize_day(archive: &Path, day: &str, files: &DayFiles) -> anyhow::Result<DaySummary> {
    let mut summary = DaySummary::new(day);
    for (file, &length) in files {
        let path = archive.join(file);
        let mut bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if (bytes.len() as u64) < length {
            bail!(
                "{}: {} bytes, but {length} are committed (was it changed by hand?); nothing was written for {day}",
                path.display(),
                bytes.len()
            );
        }
        bytes.truncate(length as usize);
        if bytes.last() != Some(&b'\n') {
            bail!(
                "{}: the committed part ends mid-line (was it changed by hand?); nothing was written for {day}",
                path.display()
            );
        }
        let station = summary.station(file);
        for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            station.add(line).map_err(|reason| {
                anyhow::anyhow!(
                    "{} line {}: {reason}; nothing was written for {day}",
                    path.display(),
                    number + 1
                )
            })?;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lengths_of_a_batch_being_appended_are_its_lengths_before_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path();
        std::fs::create_dir_all(archive.join("checkpoints")).unwrap();
        std::fs::create_dir_all(archive.join("2025-12-13")).unwrap();
        std::fs::write(archive.join("2025-12-13/A_2025-12-13.jsonl"), "{}\n{}\n").unwrap();
        std::fs::write(archive.join("2025-12-13/B_2025-12-13.jsonl"), "{}\n").unwrap();
        std::fs::write(archive.join("2025-12-13/notes.txt"), "x").unwrap();
        std::fs::write(archive.join("dead-letters.jsonl"), "{}\n").unwrap();
        assert_eq!(committed_files(archive).await.unwrap(), None);
        std::fs::write(
            archive.join("checkpoints/offset_checkpoint.json"),
            r#"{"last_updated":"x","offsets":{"t":{"0":3}},
                "appending":{"2025-12-13/A_2025-12-13.jsonl":3,"2025-12-13/B_2025-12-13.jsonl":0}}"#,
        )
        .unwrap();
        let days = committed_files(archive).await.unwrap().unwrap();
        assert_eq!(
            days,
            BTreeMap::from([(
                "2025-12-13".to_string(),
                BTreeMap::from([("2025-12-13/A_2025-12-13.jsonl".to_string(), 3)])
            )])
        );
    }
}
