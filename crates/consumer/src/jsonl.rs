//! The JSON Lines archive (the data-collector variant): every record becomes
//! one line of `<dir>/<YYYY-MM-DD>/<station>_<YYYY-MM-DD>.jsonl`, and
//! `<dir>/checkpoints/offset_checkpoint.json` holds the next offset of every
//! partition:
//!
//! ```json
//! {"last_updated": "2026-11-22T10:30:00Z", "offsets": {"weather-raw": {"0": 1234, "1": 1200}}}
//! ```
//!
//! Two input formats (`Format`): the data collector's own JSON readings, each
//! kept as it came in the file of its station's name and its timestamp's UTC
//! day, and the course's protobuf `Report`, as a line of its fields. A message
//! that is neither goes whole (base64) to `<dir>/dead-letters.jsonl`, and the
//! checkpoint counts it under `"skipped"`.
//!
//! Appending to a file is not atomic, so a batch is committed in three steps:
//! 1. the checkpoint is replaced (atomically) by one that also lists, under
//!    `"appending"`, every file the batch touches with its current length;
//! 2. the lines are appended and the file system is synced;
//! 3. the checkpoint is replaced by one with the new offsets and no `"appending"`.
//!
//! A crash before 3 leaves `"appending"` in the checkpoint: the next start cuts
//! every listed file back to its recorded length (removing files the batch
//! created) and reads the batch again from the old offsets. A crash after 3
//! needs nothing. Either way every record is in the archive exactly once.
//! Readers may see lines of a batch before step 3; they are final once the
//! checkpoint's offset has passed them.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Component, Path, PathBuf};

use batch_store::Store;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::crash::{self, CrashPoint};
use crate::lock::OutputLock;
use crate::{Error, Result};

pub const CHECKPOINT_DIR: &str = "checkpoints";
pub const CHECKPOINT_FILE: &str = "offset_checkpoint.json";
/// Where messages that are not readings are kept, at the archive's top, out
/// of the day directories that readers load.
pub const DEAD_LETTERS: &str = "dead-letters.jsonl";

/// What the collected topic's messages are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One UTF-8 JSON object per message, with `station_id` and/or
    /// `station_name`, an RFC 3339 `timestamp` and any other fields.
    Json,
    /// The course's protobuf `Report`.
    Report,
}

impl Format {
    /// The topic this format's users produce to.
    pub fn default_topic(self) -> &'static str {
        match self {
            Format::Json => "weather-raw",
            Format::Report => report::TOPIC,
        }
    }

    /// What a message of this format is called, for warnings.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Json => "a JSON weather reading",
            Format::Report => "a valid Report",
        }
    }
}

/// The checkpoint file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveCheckpoint {
    /// When it was last written (RFC 3339, UTC).
    pub last_updated: String,
    /// Topic → partition → the next offset to read.
    pub offsets: BTreeMap<String, BTreeMap<String, i64>>,
    /// Files an unfinished batch is appending to → their length before it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub appending: BTreeMap<String, u64>,
    /// Topic → partition → messages that were not readings (kept in
    /// `dead-letters.jsonl`), committed with the offsets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, BTreeMap<String, u64>>,
}

impl ArchiveCheckpoint {
    pub fn offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets
            .get(topic)?
            .get(&partition.to_string())
            .copied()
    }

    /// Messages of `partition` of `topic` that went to the dead letters.
    pub fn skipped(&self, topic: &str, partition: i32) -> u64 {
        self.skipped
            .get(topic)
            .and_then(|partitions| partitions.get(&partition.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// The checkpoint in the archive's checkpoint directory `checkpoints`
    /// (empty if there is none yet; an error if it is damaged).
    pub(crate) async fn load(checkpoints: &Store) -> Result<Self> {
        Ok(checkpoints
            .load_state(CHECKPOINT_FILE, Self::parse)
            .await?
            .unwrap_or_default())
    }

    /// Parses and checks a checkpoint's bytes; why they are not one otherwise.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let checkpoint: Self = serde_json::from_slice(bytes).map_err(|err| err.to_string())?;
        for (topic, partitions) in &checkpoint.offsets {
            for (partition, offset) in partitions {
                if partition.parse::<i32>().map_or(true, |p| p < 0) {
                    return Err(format!(
                        "topic {topic}: {partition:?} is not a partition number"
                    ));
                }
                if *offset < 0 {
                    return Err(format!(
                        "topic {topic} partition {partition}: negative offset {offset}"
                    ));
                }
            }
        }
        if let Some(path) = checkpoint.appending.keys().find(|p| !is_archive_path(p)) {
            return Err(format!("{path:?} is not a file of the archive"));
        }
        Ok(checkpoint)
    }
}

/// One line of an archive of `Report`s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub station_id: String,
    pub date: String,
    /// `null` for a reading that is not a finite number (JSON has no NaN).
    pub degrees: Option<f64>,
    pub partition: i32,
    pub offset: i64,
}

/// The archive one collector process writes to; shared by its partitions.
#[derive(Debug)]
pub struct Archive {
    dir: PathBuf,
    checkpoints: Store,
    state: Mutex<ArchiveCheckpoint>,
    _lock: OutputLock,
}

impl Archive {
    /// Takes the archive's lock and finishes what a crash interrupted: files a
    /// batch was appending to are cut back to their committed length.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir: PathBuf = dir.into();
        let checkpoint_dir = dir.join(CHECKPOINT_DIR);
        let lock = OutputLock::acquire(&checkpoint_dir, ".collector.lock", || {
            format!("the archive {}", dir.display())
        })?;
        let checkpoints = Store::local(&checkpoint_dir);
        let mut state = ArchiveCheckpoint::load(&checkpoints).await?;
        if !state.appending.is_empty() {
            let files = std::mem::take(&mut state.appending);
            let root = dir.clone();
            let count = files.len();
            blocking(move || roll_back(&root, &files)).await?;
            save(&checkpoints, &mut state).await?;
            tracing::info!(
                files = count,
                "an interrupted batch was rolled back; it will be read again"
            );
        }
        Ok(Self {
            dir,
            checkpoints,
            state: Mutex::new(state),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.dir.join(CHECKPOINT_DIR).join(CHECKPOINT_FILE)
    }

    /// Where `partition` of `topic` continues; `None` if it has no offset yet.
    pub async fn resume_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.state.lock().await.offset(topic, partition)
    }

    /// Appends the batch's lines and moves `partition` to `next_offset`,
    /// exactly once across crashes (see the module documentation).
    pub async fn commit(
        &self,
        topic: &str,
        partition: i32,
        next_offset: i64,
        batch: BatchLines,
    ) -> Result<()> {
        let mut state = self.state.lock().await;
        crash::begin_commit();
        let dead_letters = batch.dead_letters;
        if !batch.is_empty() {
            let root = self.dir.clone();
            let (files, lengths) = blocking(move || {
                let files = batch.into_files();
                let lengths = current_lengths(&root, &files)?;
                Ok((files, lengths))
            })
            .await?;
            state.appending = lengths;
            self.save(&mut state).await?;
            let root = self.dir.clone();
            blocking(move || append_all(&root, &files)).await?;
            crash::point(CrashPoint::BeforeCheckpoint);
            state.appending.clear();
        }
        state
            .offsets
            .entry(topic.to_string())
            .or_default()
            .insert(partition.to_string(), next_offset);
        if dead_letters > 0 {
            *state
                .skipped
                .entry(topic.to_string())
                .or_default()
                .entry(partition.to_string())
                .or_default() += dead_letters;
        }
        self.save(&mut state).await
    }

    async fn save(&self, state: &mut ArchiveCheckpoint) -> Result<()> {
        save(&self.checkpoints, state).await
    }
}

/// Stamps the checkpoint and replaces the file atomically.
async fn save(checkpoints: &Store, state: &mut ArchiveCheckpoint) -> Result<()> {
    state.last_updated = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let bytes = serde_json::to_vec(state).expect("a checkpoint always serializes");
    checkpoints
        .put_atomic(CHECKPOINT_FILE, Bytes::from(bytes))
        .await?;
    Ok(())
}

/// The archive path of a record: `<date>/<station>_<date>.jsonl`. The date
/// is a validated `YYYY-MM-DD`; bytes of the station id that are not safe in
/// a file name are written `%XX`.
pub fn file_for(station_id: &str, date: &str) -> String {
    let mut path = String::new();
    push_file_for(&mut path, station_id, date);
    path
}

/// Appends the archive path of a record (see `file_for`) to `path`.
fn push_file_for(path: &mut String, station_id: &str, date: &str) {
    use std::fmt::Write as _;
    path.push_str(date);
    path.push('/');
    for (i, byte) in station_id.bytes().enumerate() {
        let safe =
            byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && i > 0);
        if safe {
            path.push(byte as char);
        } else {
            let _ = write!(path, "%{byte:02X}");
        }
    }
    path.push('_');
    path.push_str(date);
    path.push_str(".jsonl");
}

/// Appends the line of one record, newline included, to `out`.
pub fn write_line(out: &mut Vec<u8>, report: &report::Report, partition: i32, offset: i64) {
    /// `Line`, borrowing the record's strings instead of copying them.
    #[derive(Serialize)]
    struct LineRef<'a> {
        station_id: &'a str,
        date: &'a str,
        degrees: Option<f64>,
        partition: i32,
        offset: i64,
    }
    serde_json::to_writer(
        &mut *out,
        &LineRef {
            station_id: &report.station_id,
            date: &report.date,
            degrees: report.degrees.is_finite().then_some(report.degrees),
            partition,
            offset,
        },
    )
    .expect("a line always serializes");
    out.push(b'\n');
}

/// A message of the JSON format that is a usable reading: where it goes, and
/// its text.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonReading<'a> {
    /// `station_name`, or `station_id` where there is no name.
    pub station: String,
    /// The UTC day of `timestamp`, `YYYY-MM-DD`.
    pub day: String,
    /// The message, exactly as it came.
    pub text: &'a str,
}

impl<'a> JsonReading<'a> {
    /// Checks that `payload` is a JSON object with a station and an RFC 3339
    /// timestamp; the reason it is not a reading otherwise.
    pub fn parse(payload: Option<&'a [u8]>) -> Result<Self, String> {
        use serde_json::Value;
        /// The fields a reading needs; every other one is only checked to be JSON.
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            station_id: Option<Value>,
            #[serde(default)]
            station_name: Option<Value>,
            #[serde(default)]
            timestamp: Option<Value>,
        }
        let payload = payload.ok_or("the message has no value")?;
        let text = std::str::from_utf8(payload).map_err(|err| format!("not UTF-8: {err}"))?;
        if !text.trim_start().starts_with('{') {
            return Err("not a JSON object".into());
        }
        let probe: Probe =
            serde_json::from_str(text).map_err(|err| format!("not valid JSON: {err}"))?;
        let usable = |field: &Option<Value>| match field {
            Some(Value::String(text)) if !text.trim().is_empty() => Some(text.clone()),
            Some(Value::Number(number)) => Some(number.to_string()),
            _ => None,
        };
        let station = usable(&probe.station_name)
            .or_else(|| usable(&probe.station_id))
            .ok_or("no station_name or station_id")?;
        let day = match &probe.timestamp {
            Some(Value::String(stamp)) => utc_day(stamp)?,
            Some(other) => return Err(format!("timestamp {other} is not an RFC 3339 string")),
            None => return Err("no timestamp".into()),
        };
        Ok(JsonReading {
            station,
            day,
            text: text.trim(),
        })
    }

    /// Appends the message as one line. A line break in a JSON text can only
    /// be white space between tokens (strings escape theirs), so each becomes
    /// a space; every other byte stays as it came.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        out.extend(self.text.bytes().map(|byte| match byte {
            b'\n' | b'\r' => b' ',
            byte => byte,
        }));
        out.push(b'\n');
    }
}

/// The UTC day of an RFC 3339 timestamp.
fn utc_day(stamp: &str) -> Result<String, String> {
    let instant = chrono::DateTime::parse_from_rfc3339(stamp)
        .map_err(|err| format!("timestamp {stamp:?} is not RFC 3339: {err}"))?;
    let day = instant.with_timezone(&chrono::Utc).date_naive();
    use chrono::Datelike as _;
    if !(1..=9999).contains(&day.year()) {
        return Err(format!(
            "timestamp {stamp:?} is outside the years 1 to 9999"
        ));
    }
    Ok(day.format("%Y-%m-%d").to_string())
}

/// A message that is not a reading, kept whole in `dead-letters.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The message's key, base64 (standard alphabet, padded); `null` if it had none.
    pub key_base64: Option<String>,
    /// The message's value, base64; `null` if it had none.
    pub value_base64: Option<String>,
    /// Why it is not a reading.
    pub reason: String,
}

impl DeadLetter {
    pub fn new(
        topic: &str,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        reason: &str,
    ) -> Self {
        use base64::Engine as _;
        let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        DeadLetter {
            topic: topic.to_string(),
            partition,
            offset,
            key_base64: key.map(encode),
            value_base64: value.map(encode),
            reason: reason.to_string(),
        }
    }
}

/// The lines of one batch before they are written: every line end to end in
/// one buffer, in the order the records came, each tagged with its file.
///
/// On the course generator's data every record has a file of its own, and a
/// map from each file to a buffer of its lines cost two allocations per record
/// (about 300 bytes for a 100-byte line). Here a file costs its name once, and
/// a record its line and 16 bytes.
#[derive(Debug, Default)]
pub struct BatchLines {
    /// Archive path → the file's number, in order of first appearance.
    files: HashMap<Box<str>, u32>,
    lines: Vec<u8>,
    /// Per record: its file's number and where its line ends in `lines`.
    records: Vec<(u32, usize)>,
    /// The path of the record being added (reused).
    path: String,
    /// How many of the records are dead letters.
    dead_letters: u64,
}

impl BatchLines {
    /// Adds the line of the `Report` at `offset` to the file of its station and day.
    pub fn add(&mut self, report: &report::Report, partition: i32, offset: i64) {
        self.path.clear();
        push_file_for(&mut self.path, &report.station_id, &report.date);
        self.push(|out| write_line(out, report, partition, offset));
    }

    /// Adds a JSON reading, as it came, to the file of its station and day.
    pub fn add_reading(&mut self, reading: &JsonReading<'_>) {
        self.path.clear();
        push_file_for(&mut self.path, &reading.station, &reading.day);
        self.push(|out| reading.write_line(out));
    }

    /// Adds a message that is not a reading to the dead letters.
    pub fn add_dead_letter(&mut self, letter: &DeadLetter) {
        self.path.clear();
        self.path.push_str(DEAD_LETTERS);
        self.push(|out| {
            serde_json::to_writer(&mut *out, letter).expect("a dead letter always serializes");
            out.push(b'\n');
        });
        self.dead_letters += 1;
    }

    /// Adds the line `write` appends to the file at `self.path`.
    fn push(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let file = match self.files.get(self.path.as_str()) {
            Some(&file) => file,
            None => {
                let file =
                    u32::try_from(self.files.len()).expect("fewer than 2^32 files in a batch");
                self.files.insert(self.path.as_str().into(), file);
                file
            }
        };
        write(&mut self.lines);
        self.records.push((file, self.lines.len()));
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The files of the batch in path order, each with its lines in the order
    /// the records came.
    fn into_files(self) -> BatchFiles {
        let mut paths: Vec<(Box<str>, u32)> = self.files.into_iter().collect();
        paths.sort_unstable();
        // A file's place in path order, by its number.
        let mut rank = vec![0usize; paths.len()];
        for (place, (_, file)) in paths.iter().enumerate() {
            rank[*file as usize] = place;
        }
        // Records grouped by file in path order (a counting sort, so each
        // file's records keep their order): where each file's records start...
        let mut starts = vec![0usize; paths.len() + 1];
        for &(file, _) in &self.records {
            starts[rank[file as usize] + 1] += 1;
        }
        for place in 0..paths.len() {
            starts[place + 1] += starts[place];
        }
        // ...and each record's line, placed there.
        let mut next = starts.clone();
        let mut order = vec![(0usize, 0usize); self.records.len()];
        let mut line_start = 0;
        for &(file, line_end) in &self.records {
            let place = rank[file as usize];
            order[next[place]] = (line_start, line_end);
            next[place] += 1;
            line_start = line_end;
        }
        BatchFiles {
            paths: paths.into_iter().map(|(path, _)| path).collect(),
            starts,
            lines: self.lines,
            order,
        }
    }
}

/// A batch's lines grouped by file (see `BatchLines::into_files`).
struct BatchFiles {
    /// The files, in path order.
    paths: Vec<Box<str>>,
    /// Where each file's lines start in `order` (one more at the end).
    starts: Vec<usize>,
    lines: Vec<u8>,
    /// Every line's range in `lines`, grouped by file.
    order: Vec<(usize, usize)>,
}

impl BatchFiles {
    fn len(&self) -> usize {
        self.paths.len()
    }

    /// Each file's path with its lines, in path order.
    fn iter(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = &[u8]>)> {
        self.paths.iter().enumerate().map(|(place, path)| {
            let lines = self.order[self.starts[place]..self.starts[place + 1]]
                .iter()
                .map(|&(start, end)| &self.lines[start..end]);
            (&**path, lines)
        })
    }
}

/// A relative path inside the archive, as `file_for` makes them.
fn is_archive_path(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn current_lengths(root: &Path, files: &BatchFiles) -> std::io::Result<BTreeMap<String, u64>> {
    let mut lengths = BTreeMap::new();
    for (path, _) in files.iter() {
        let length = match std::fs::metadata(root.join(path)) {
            Ok(metadata) => metadata.len(),
            Err(err) if err.kind() == ErrorKind::NotFound => 0,
            Err(err) => return Err(annotate(err, path)),
        };
        lengths.insert(path.to_string(), length);
    }
    Ok(lengths)
}

fn append_all(root: &Path, files: &BatchFiles) -> std::io::Result<()> {
    let crash_midway = crash::armed(CrashPoint::MidAppend).then(|| files.len().div_ceil(2));
    // A file's lines go out in one write, gathered here.
    let mut bytes = Vec::new();
    for (i, (path, lines)) in files.iter().enumerate() {
        bytes.clear();
        lines.for_each(|line| bytes.extend_from_slice(line));
        let file = root.join(path);
        let mut out = open_for_append(&file).map_err(|err| annotate(err, path))?;
        if crash_midway == Some(i + 1) {
            out.write_all(&bytes[..bytes.len() / 2])?;
            crash::abort(CrashPoint::MidAppend);
        }
        out.write_all(&bytes).map_err(|err| annotate(err, path))?;
    }
    sync_file_system(root)
}

/// Opens `file` for appending, creating it and its day directory as needed.
/// Most files of a batch are in a directory that exists, so the directory is
/// made only when the open says it is missing.
fn open_for_append(file: &Path) -> std::io::Result<File> {
    let open = || OpenOptions::new().create(true).append(true).open(file);
    match open() {
        Err(err) if err.kind() == ErrorKind::NotFound => {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            open()
        }
        result => result,
    }
}

/// Cuts every file back to its committed length; files the batch created go.
/// Everything is checked before anything is cut.
fn roll_back(root: &Path, files: &BTreeMap<String, u64>) -> std::io::Result<()> {
    let mut cuts = Vec::new();
    for (path, &length) in files {
        let file = root.join(path);
        let current = match std::fs::metadata(&file) {
            Ok(metadata) => metadata.len(),
            Err(err) if err.kind() == ErrorKind::NotFound && length == 0 => continue,
            Err(err) => return Err(annotate(err, path)),
        };
        if current < length {
            return Err(std::io::Error::other(format!(
                "{path}: {current} bytes, but {length} were committed before the interrupted batch \
                 (was the file changed by hand?); nothing was changed"
            )));
        }
        cuts.push((path, file, length));
    }
    for (path, file, length) in cuts {
        if length == 0 {
            std::fs::remove_file(&file).map_err(|err| annotate(err, path))?;
        } else {
            OpenOptions::new()
                .write(true)
                .open(&file)
                .and_then(|f| f.set_len(length))
                .map_err(|err| annotate(err, path))?;
        }
    }
    sync_file_system(root)
}

/// One `syncfs` makes every appended file (and new directory) durable, which
/// is far cheaper than an fsync per file when a batch touches thousands.
fn sync_file_system(root: &Path) -> std::io::Result<()> {
    let dir = File::open(root)?;
    rustix::fs::syncfs(&dir).map_err(std::io::Error::from)
}

fn annotate(err: std::io::Error, path: &str) -> std::io::Error {
    std::io::Error::new(err.kind(), format!("{path}: {err}"))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|err| Error::Archive(err.into())),
        Err(join) => Err(Error::Archive(join.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_whatever_the_station_id() {
        assert_eq!(
            file_for("StationA", "2000-01-01"),
            "2000-01-01/StationA_2000-01-01.jsonl"
        );
        assert_eq!(
            file_for("../etc/x y", "2000-01-02"),
            "2000-01-02/%2E.%2Fetc%2Fx%20y_2000-01-02.jsonl"
        );
        assert!(is_archive_path(&file_for("../..", "2000-01-01")));
        assert!(!is_archive_path("../x"));
        assert!(!is_archive_path("/etc/passwd"));
        assert!(!is_archive_path(""));
    }

    #[test]
    fn a_batch_groups_lines_by_file_in_path_order_keeping_their_order_within_a_file() {
        let reading = |station: &str, date: &str| report::Report {
            date: date.into(),
            degrees: 1.0,
            station_id: station.into(),
        };
        let mut batch = BatchLines::default();
        assert!(batch.is_empty());
        let records = [
            reading("StationB", "2000-01-02"),
            reading("StationA", "2000-01-02"),
            reading("StationB", "2000-01-02"),
            reading("StationA", "2000-01-01"),
            reading("StationB", "2000-01-02"),
        ];
        for (offset, record) in records.iter().enumerate() {
            batch.add(record, 2, offset as i64);
        }
        assert_eq!(batch.len(), 5);
        let files = batch.into_files();
        let grouped: Vec<(String, Vec<i64>)> = files
            .iter()
            .map(|(path, lines)| {
                let offsets = lines
                    .map(|line| serde_json::from_slice::<Line>(line).unwrap().offset)
                    .collect();
                (path.to_string(), offsets)
            })
            .collect();
        assert_eq!(
            grouped,
            [
                ("2000-01-01/StationA_2000-01-01.jsonl".to_string(), vec![3]),
                ("2000-01-02/StationA_2000-01-02.jsonl".to_string(), vec![1]),
                (
                    "2000-01-02/StationB_2000-01-02.jsonl".to_string(),
                    vec![0, 2, 4]
                ),
            ]
        );
        assert_eq!(files.len(), 3);
    }

    #[test]
    fn a_line_round_trips_and_nan_becomes_null() {
        let report = report::Report {
            date: "2000-01-01".into(),
            degrees: 23.851454295532143,
            station_id: "StationA".into(),
        };
        let mut text = b"a line before\n".to_vec();
        write_line(&mut text, &report, 3, 17);
        let text = text
            .strip_prefix(b"a line before\n")
            .expect("appended, not replaced");
        assert_eq!(text.last(), Some(&b'\n'));
        let parsed: Line = serde_json::from_slice(text).unwrap();
        assert_eq!(parsed.degrees, Some(23.851454295532143));
        assert_eq!((parsed.partition, parsed.offset), (3, 17));
        let nan = report::Report {
            degrees: f64::NAN,
            ..report
        };
        let mut text = Vec::new();
        write_line(&mut text, &nan, 0, 0);
        let parsed: Line = serde_json::from_slice(&text).unwrap();
        assert_eq!(parsed.degrees, None);
    }

    #[test]
    fn a_json_reading_goes_to_its_station_name_and_utc_day_kept_as_it_came() {
        let text = "{\"station_id\": \"KMSN\", \"station_name\": \"Fond du Lac\",\n \
                    \"timestamp\": \"2025-12-13T23:30:00-06:00\", \"temperature\": 45.20, \
                    \"big\": 12345678901234567890123, \"nested\": {\"a\": [1, \"x\\ny\"]}}";
        let reading = JsonReading::parse(Some(text.as_bytes())).unwrap();
        assert_eq!(reading.station, "Fond du Lac");
        assert_eq!(reading.day, "2025-12-14", "the UTC day, not the local one");
        let mut line = Vec::new();
        reading.write_line(&mut line);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            text.replace('\n', " ") + "\n",
            "every byte but the line break between tokens is kept"
        );
        assert_eq!(
            file_for(&reading.station, &reading.day),
            "2025-12-14/Fond%20du%20Lac_2025-12-14.jsonl"
        );

        let id_only =
            br#"{"station_id": "KMSN", "station_name": "", "timestamp": "2025-12-13T10:30:00Z"}"#;
        assert_eq!(JsonReading::parse(Some(id_only)).unwrap().station, "KMSN");
        let numeric_id = br#"{"station_id": 725, "timestamp": "2025-12-13T10:30:00.5Z"}"#;
        assert_eq!(JsonReading::parse(Some(numeric_id)).unwrap().station, "725");
    }

    #[test]
    fn messages_that_are_not_readings_say_why() {
        for (message, why) in [
            (None, "no value"),
            (Some(&b"\xff{}"[..]), "UTF-8"),
            (Some(b"[\"KMSN\", \"Madison\", \"2025-12-13T10:30:00Z\"]"), "not a JSON object"),
            (Some(b"42"), "not a JSON object"),
            (Some(b"{\"station_id\": \"KMSN\", "), "not valid JSON"),
            (Some(b"{\"station_id\": \"KMSN\"} trailing"), "not valid JSON"),
            (Some(b"{\"timestamp\": \"2025-12-13T10:30:00Z\"}"), "no station"),
            (Some(b"{\"station_id\": \" \", \"timestamp\": \"2025-12-13T10:30:00Z\"}"), "no station"),
            (Some(b"{\"station_id\": \"KMSN\"}"), "no timestamp"),
            (Some(b"{\"station_id\": \"KMSN\", \"timestamp\": \"2025-12-13\"}"), "RFC 3339"),
            (Some(b"{\"station_id\": \"KMSN\", \"timestamp\": 1765621800}"), "RFC 3339"),
            (Some(b"{\"station_id\": \"A\", \"station_id\": \"B\", \"timestamp\": \"2025-12-13T10:30:00Z\"}"), "duplicate"),
        ] {
            let err = JsonReading::parse(message).unwrap_err();
            assert!(err.contains(why), "{message:?}: {err}");
        }
    }

    #[test]
    fn a_dead_letter_keeps_the_message_whole() {
        let letter = DeadLetter::new(
            "weather-raw",
            2,
            17,
            Some(b"KMSN"),
            Some(b"\xff\x00"),
            "not UTF-8",
        );
        let mut batch = BatchLines::default();
        batch.add_dead_letter(&letter);
        assert_eq!(batch.dead_letters, 1);
        let files = batch.into_files();
        let (path, mut lines) = files.iter().next().unwrap();
        assert_eq!(path, DEAD_LETTERS);
        let back: DeadLetter = serde_json::from_slice(lines.next().unwrap()).unwrap();
        assert_eq!(back, letter);
        assert_eq!(back.key_base64.as_deref(), Some("S01TTg=="));
        assert_eq!(back.value_base64.as_deref(), Some("/wA="));
    }

    #[test]
    fn checkpoints_that_would_lose_or_damage_data_are_rejected() {
        let good = br#"{"last_updated":"2026-01-01T00:00:00Z","offsets":{"temperatures":{"0":5}}}"#;
        assert_eq!(
            ArchiveCheckpoint::parse(good)
                .unwrap()
                .offset("temperatures", 0),
            Some(5)
        );
        for bad in [
            &br#"{"last_updated":"x","offsets":{"t":{"0":-1}}}"#[..],
            br#"{"last_updated":"x","offsets":{"t":{"zero":1}}}"#,
            br#"{"last_updated":"x","offsets":{},"appending":{"../../etc/passwd":0}}"#,
            br#"{"last_updated":"x","offsets":{"t":{"0":1}"#,
            b"",
        ] {
            assert!(
                ArchiveCheckpoint::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn roll_back_restores_committed_lengths_and_removes_new_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/old.jsonl"), b"kept\nappended\n").unwrap();
        std::fs::write(dir.path().join("d/new.jsonl"), b"appended\n").unwrap();
        let files = BTreeMap::from([
            ("d/old.jsonl".to_string(), 5),
            ("d/new.jsonl".to_string(), 0),
            ("d/never-written.jsonl".to_string(), 0),
        ]);
        roll_back(dir.path(), &files).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("d/old.jsonl")).unwrap(),
            b"kept\n"
        );
        assert!(!dir.path().join("d/new.jsonl").exists());

        std::fs::write(dir.path().join("d/new.jsonl"), b"appended\n").unwrap();
        let shorter = BTreeMap::from([
            ("d/new.jsonl".to_string(), 0),
            ("d/old.jsonl".to_string(), 100),
        ]);
        let err = roll_back(dir.path(), &shorter).unwrap_err();
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join("d/old.jsonl")).unwrap(),
            b"kept\n"
        );
        assert!(
            dir.path().join("d/new.jsonl").exists(),
            "checked before cutting"
        );
    }
}
