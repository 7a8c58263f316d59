//! What the dashboard knows: the committed records, folded into per-station
//! and per-month totals, read incrementally.
//!
//! Only batches `0..=batch_id` of each partition's checkpoint are ever read
//! (a higher-numbered file may be the leftover of a crash and is not data).
//! A refresh reads just the batches committed since the previous one; a
//! checkpoint that moved backwards (the output was started over) makes the
//! next refresh read everything again.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use batch_store::{BatchFile, Checkpoint, CheckpointDir, Store};
use serde::Serialize;

/// A calendar month, e.g. 2000-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    /// 1..=12
    pub month: u32,
}

impl Month {
    /// The month of an ISO date `YYYY-MM-DD`.
    pub fn of_date(date: &str) -> Option<Month> {
        let mut parts = date.splitn(3, '-');
        let year = parts.next()?.parse().ok()?;
        let month = parts
            .next()?
            .parse()
            .ok()
            .filter(|m| (1..=12).contains(m))?;
        parts.next()?;
        Some(Month { year, month })
    }

    /// Months since year 0, so that months are points on a line.
    pub fn index(self) -> i32 {
        self.year * 12 + self.month as i32 - 1
    }

    pub fn from_index(index: i32) -> Month {
        Month {
            year: index.div_euclid(12),
            month: index.rem_euclid(12) as u32 + 1,
        }
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Sum and count of the readings of one station in one month.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MonthTotal {
    pub sum: f64,
    pub count: u64,
}

impl MonthTotal {
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// Everything committed for one station.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Station {
    pub records: u64,
    /// The reading with the latest date (the later record on a tie); `None`
    /// while the station has no dated record.
    pub latest: Option<Latest>,
    pub months: BTreeMap<Month, MonthTotal>,
    /// Records whose date is not `YYYY-MM-DD` (counted, but on no month).
    pub undated: u64,
}

/// A station's reading with the latest date.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latest {
    pub date: String,
    pub degrees: f64,
}

impl Station {
    fn add(&mut self, date: &str, degrees: f64) {
        self.records += 1;
        match Month::of_date(date) {
            Some(month) => {
                let latest = self.latest.get_or_insert_with(Latest::default);
                if date >= latest.date.as_str() {
                    latest.date.clear();
                    latest.date.push_str(date);
                    latest.degrees = degrees;
                }
                let total = self.months.entry(month).or_default();
                total.sum += degrees;
                total.count += 1;
            }
            None => self.undated += 1,
        }
    }

    /// Adds the records of `later`, read after this station's.
    fn merge(&mut self, later: Station) {
        self.records += later.records;
        self.undated += later.undated;
        if let Some(latest) = later.latest {
            if self
                .latest
                .as_ref()
                .is_none_or(|known| latest.date >= known.date)
            {
                self.latest = Some(latest);
            }
        }
        for (month, total) in later.months {
            let known = self.months.entry(month).or_default();
            known.sum += total.sum;
            known.count += total.count;
        }
    }
}

/// What is committed for one partition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionState {
    /// The checkpoint as last read; `None` while the partition has none.
    pub checkpoint: Option<Checkpoint>,
    /// When the checkpoint file was last replaced (the last commit).
    pub committed_at: Option<SystemTime>,
    /// Records read from this partition's committed batches.
    pub records: u64,
    /// The next batch to read: every batch below it has been folded in.
    pub next_batch: u64,
}

/// The outcome of one refresh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshReport {
    /// Batch files read by this refresh.
    pub batches_read: u64,
    /// Records folded in by this refresh.
    pub records_read: u64,
    /// The view was emptied and read again because a checkpoint moved backwards.
    pub started_over: bool,
    /// Why some data could not be read; what could be read still was.
    pub problems: Vec<String>,
}

/// Per partition: its checkpoint (`None`: none yet) and when it was last replaced.
type Checkpoints = BTreeMap<i32, (Option<Checkpoint>, Option<SystemTime>)>;

/// What reading one batch file gave.
enum BatchRead {
    Read {
        records: u64,
        stations: BTreeMap<String, Station>,
    },
    Failed(batch_store::Error),
    /// Not within the read timeout.
    NoAnswer,
}

/// The committed records of a store, folded, kept current by [`CommittedView::refresh`].
#[derive(Debug, Clone)]
pub struct CommittedView {
    store: Store,
    checkpoints: CheckpointDir,
    /// Partitions to show; `None`: every `partition-N.json` in the checkpoint directory.
    only: Option<Vec<i32>>,
    partitions: BTreeMap<i32, PartitionState>,
    stations: BTreeMap<String, Station>,
    read_timeout: Duration,
}

/// How long one batch file may take to read before the store counts as
/// unreachable for this refresh (the HDFS client itself retries forever).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

impl CommittedView {
    pub fn new(store: Store, checkpoints: CheckpointDir, only: Option<Vec<i32>>) -> Self {
        Self {
            store,
            checkpoints,
            only,
            partitions: BTreeMap::new(),
            stations: BTreeMap::new(),
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }

    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    pub fn store_location(&self) -> String {
        self.store.location()
    }

    pub fn checkpoint_dir(&self) -> &Path {
        self.checkpoints.dir()
    }

    pub fn partitions(&self) -> &BTreeMap<i32, PartitionState> {
        &self.partitions
    }

    pub fn stations(&self) -> &BTreeMap<String, Station> {
        &self.stations
    }

    pub fn records(&self) -> u64 {
        self.partitions.values().map(|p| p.records).sum()
    }

    /// The most recent commit of any partition.
    pub fn last_commit(&self) -> Option<SystemTime> {
        self.partitions
            .values()
            .filter_map(|p| p.committed_at)
            .max()
    }

    /// Reads the batches committed since the last refresh. A partition that
    /// cannot be read (corrupt checkpoint, unreachable store, missing batch)
    /// keeps what was read before and is named in the report's problems.
    pub async fn refresh(&mut self) -> RefreshReport {
        let mut report = RefreshReport::default();
        let Some(checkpoints) = self.read_checkpoints(&mut report.problems).await else {
            return report;
        };
        if self.moved_back(&checkpoints) {
            self.partitions.clear();
            self.stations.clear();
            report.started_over = true;
        }
        // Every partition with a checkpoint is listed, whether or not the
        // store answers: its batches are read once it does.
        let mut store_answers = true;
        for (partition, (checkpoint, committed_at)) in checkpoints {
            let state = self.partitions.entry(partition).or_default();
            state.checkpoint = checkpoint;
            state.committed_at = committed_at;
            if let Some(checkpoint) = checkpoint.filter(|_| store_answers) {
                store_answers = self
                    .read_new_batches(partition, checkpoint, &mut report)
                    .await;
            }
        }
        report
    }

    /// The checkpoint of every partition to show, with when it was last
    /// replaced; `None` if the partitions cannot even be listed.
    async fn read_checkpoints(&self, problems: &mut Vec<String>) -> Option<Checkpoints> {
        let mut partitions = match self.partition_numbers().await {
            Ok(partitions) => partitions,
            Err(problem) => {
                problems.push(problem);
                return None;
            }
        };
        // A partition read before whose checkpoint is gone has nothing
        // committed any more: looking it up again finds no checkpoint, which
        // counts as moving back.
        partitions.extend(self.partitions.keys().copied());
        partitions.sort_unstable();
        partitions.dedup();
        let mut checkpoints = BTreeMap::new();
        for partition in partitions {
            match self.checkpoints.load(partition).await {
                Ok(checkpoint) => {
                    let committed_at = self
                        .checkpoints
                        .store()
                        .modified(&CheckpointDir::file_name(partition))
                        .await
                        .ok();
                    checkpoints.insert(partition, (checkpoint, committed_at));
                }
                Err(err) => problems.push(format!("partition {partition}: {err}")),
            }
        }
        Some(checkpoints)
    }

    /// Whether a checkpoint is behind what was read: the output was started over.
    fn moved_back(&self, checkpoints: &Checkpoints) -> bool {
        checkpoints.iter().any(|(partition, (checkpoint, _))| {
            let Some(known) = self.partitions.get(partition) else {
                return false;
            };
            let next_batch = checkpoint.map_or(0, |c| c.batch_id + 1);
            let offset = checkpoint.map_or(0, |c| c.offset);
            next_batch < known.next_batch || offset < known.checkpoint.map_or(0, |c| c.offset)
        })
    }

    /// Folds in the batches of `partition` not read yet, up to `checkpoint`'s.
    /// `false` if the store did not answer in time: every other read would
    /// wait as long, so they are left to the next refresh.
    async fn read_new_batches(
        &mut self,
        partition: i32,
        checkpoint: Checkpoint,
        report: &mut RefreshReport,
    ) -> bool {
        loop {
            let next_batch = self.partitions.entry(partition).or_default().next_batch;
            if next_batch > checkpoint.batch_id {
                return true;
            }
            match self
                .read_batch(&BatchFile::new(partition, next_batch))
                .await
            {
                BatchRead::Read { records, stations } => {
                    for (name, station) in stations {
                        match self.stations.get_mut(&name) {
                            Some(known) => known.merge(station),
                            None => {
                                self.stations.insert(name, station);
                            }
                        }
                    }
                    let state = self.partitions.entry(partition).or_default();
                    state.records += records;
                    state.next_batch += 1;
                    report.batches_read += 1;
                    report.records_read += records;
                }
                BatchRead::Failed(err) => {
                    report
                        .problems
                        .push(format!("partition {partition}: {err}"));
                    return true;
                }
                BatchRead::NoAnswer => {
                    report.problems.push(format!(
                        "cannot read the store: no answer from {} within {:?} (is it up?)",
                        self.store.location(),
                        self.read_timeout
                    ));
                    return false;
                }
            }
        }
    }

    /// One batch file, folded apart: merged only once the whole file was
    /// read, so a file that fails halfway adds nothing (it is read again next
    /// time).
    async fn read_batch(&self, file: &BatchFile) -> BatchRead {
        let mut stations: BTreeMap<String, Station> = BTreeMap::new();
        let folding = &mut stations;
        let read = batch_store::visit_batch(&self.store, file, |station, date, degrees| {
            match folding.get_mut(station) {
                Some(entry) => entry.add(date, degrees),
                None => folding
                    .entry(station.to_string())
                    .or_default()
                    .add(date, degrees),
            }
        });
        match tokio::time::timeout(self.read_timeout, read).await {
            Ok(Ok(records)) => BatchRead::Read {
                records: records as u64,
                stations,
            },
            Ok(Err(err)) => BatchRead::Failed(err),
            Err(_) => BatchRead::NoAnswer,
        }
    }

    async fn partition_numbers(&self) -> Result<Vec<i32>, String> {
        if let Some(only) = &self.only {
            return Ok(only.clone());
        }
        let dir = self.checkpoints.dir();
        if !self.checkpoints.is_local() {
            let names = self.checkpoints.store().list("").await.map_err(|err| {
                format!(
                    "cannot list the checkpoint directory {}: {err}",
                    dir.display()
                )
            })?;
            let mut partitions: Vec<i32> = names
                .iter()
                .filter_map(|name| {
                    name.strip_prefix("partition-")?
                        .strip_suffix(".json")?
                        .parse()
                        .ok()
                })
                .collect();
            partitions.sort_unstable();
            return Ok(partitions);
        }
        let entries = std::fs::read_dir(dir).map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "no committed data yet: the checkpoint directory {} does not exist",
                    dir.display()
                )
            } else {
                format!(
                    "cannot list the checkpoint directory {}: {err}",
                    dir.display()
                )
            }
        })?;
        let mut partitions: Vec<i32> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name();
                let rest = name
                    .to_str()?
                    .strip_prefix("partition-")?
                    .strip_suffix(".json")?;
                rest.parse().ok().filter(|p: &i32| *p >= 0)
            })
            .collect();
        partitions.sort_unstable();
        Ok(partitions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_come_from_iso_dates() {
        assert_eq!(
            Month::of_date("2000-02-29"),
            Some(Month {
                year: 2000,
                month: 2
            })
        );
        assert_eq!(Month::of_date("2000-13-01"), None);
        assert_eq!(Month::of_date("2000-01"), None);
        assert_eq!(Month::of_date("yesterday"), None);
        let month = Month::of_date("1999-12-31").unwrap();
        assert_eq!(Month::from_index(month.index()), month);
        assert_eq!(Month::from_index(month.index() + 1).to_string(), "2000-01");
    }

    #[test]
    fn a_station_keeps_its_latest_reading_and_monthly_totals() {
        let mut station = Station::default();
        station.add("2000-01-02", 3.0);
        station.add("2000-01-01", 1.0);
        station.add("2000-02-01", 5.0);
        station.add("not a date", 9.0);
        assert_eq!(station.records, 4);
        assert_eq!(station.undated, 1);
        assert_eq!(
            station.latest,
            Some(Latest {
                date: "2000-02-01".into(),
                degrees: 5.0
            })
        );
        let january = station.months[&Month {
            year: 2000,
            month: 1,
        }];
        assert_eq!((january.count, january.mean()), (2, 2.0));
    }
}
