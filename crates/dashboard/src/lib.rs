//! The dashboard: a web page (and an SVG chart for scripts) of the committed
//! weather data — monthly means per station, the latest reading per station,
//! and the health of the pipeline — kept current as batches commit.
//!
//! It reads only what the consumer committed (batches `0..=batch_id` of each
//! checkpoint, see [`view`]), from the same stores the consumer writes to, and
//! on each refresh only the batches committed since the last one.

pub mod chart;
mod lag;
pub mod page;
mod server;
pub mod view;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use batch_store::{CheckpointDir, Store};
use serde::Serialize;
use topic::KafkaSettings;

pub use lag::LagProbe;
pub use server::serve;
pub use view::{CommittedView, Month, RefreshReport, DEFAULT_READ_TIMEOUT};

/// Size of the chart on the page and in `--svg` files.
pub const CHART_SIZE: (u32, u32) = (960, 480);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] batch_store::Error),
    #[error("cannot listen on {addr}: {cause}")]
    Listen {
        addr: SocketAddr,
        #[source]
        cause: std::io::Error,
    },
    #[error("web server: {0}")]
    Serve(#[source] std::io::Error),
    #[error("{0}")]
    Chart(String),
    #[error("cannot write {path}: {cause}")]
    Write {
        path: PathBuf,
        #[source]
        cause: batch_store::Cause,
    },
    #[error("{0}")]
    Unreadable(String),
    #[error("no committed data yet in {store} (checkpoints in {checkpoints})")]
    NoData { store: String, checkpoints: String },
    #[error("no committed readings of {0}")]
    UnknownStations(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the dashboard reads and serves.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    pub store: Store,
    pub checkpoints: CheckpointDir,
    /// Partitions to show; `None`: those with a checkpoint.
    pub partitions: Option<Vec<i32>>,
    pub listen: SocketAddr,
    /// How often new batches are looked for (and the page reloads its figures).
    pub refresh: Duration,
    /// The broker, for lag; `None` leaves lag out.
    pub kafka: Option<(KafkaSettings, String)>,
    /// How long one batch file may take to read before the store counts as unreachable.
    pub read_timeout: Duration,
}

/// Everything one page shows, as of one refresh.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub view: CommittedView,
    /// Lag per partition, why it is unknown, or `None` if no broker is configured.
    pub lag: Option<Result<BTreeMap<i32, i64>, String>>,
    pub refreshed_at: SystemTime,
    /// How long the refresh that made this snapshot took, and what it read.
    pub refresh_took: Duration,
    pub last_refresh: RefreshReport,
}

impl Snapshot {
    /// A snapshot of `view` after `report`, with the lag of its partitions if a broker is given.
    pub async fn take(
        view: &CommittedView,
        report: RefreshReport,
        took: Duration,
        lag: Option<&LagProbe>,
    ) -> Snapshot {
        let lag = match lag {
            None => None,
            Some(probe) => {
                let positions = view
                    .partitions()
                    .iter()
                    .map(|(p, state)| (*p, state.checkpoint.map_or(0, |c| c.offset)))
                    .collect();
                Some(probe.lag(positions).await)
            }
        };
        Snapshot {
            view: view.clone(),
            lag,
            refreshed_at: SystemTime::now(),
            refresh_took: took,
            last_refresh: report,
        }
    }

    /// The stations to draw: `selected` (in palette order), or all of them.
    pub fn series<'a>(&'a self, selected: Option<&[String]>) -> Vec<chart::Series<'a>> {
        self.view
            .stations()
            .iter()
            .enumerate()
            .filter(|(_, (name, _))| selected.is_none_or(|s| s.iter().any(|x| x == *name)))
            .map(|(colour, (name, station))| chart::Series {
                station: name,
                colour,
                station_data: station,
            })
            .collect()
    }

    pub fn chart_svg(&self, selected: Option<&[String]>) -> Result<String> {
        chart::monthly_svg(&self.series(selected), CHART_SIZE.0, CHART_SIZE.1).map_err(Error::Chart)
    }

    pub fn summary(&self) -> Summary {
        let now = SystemTime::now();
        let since = |at: Option<SystemTime>| {
            at.and_then(|at| now.duration_since(at).ok())
                .map(|d| d.as_secs_f64())
        };
        let lag = self.lag.as_ref().and_then(|lag| lag.as_ref().ok());
        Summary {
            store: self.view.store_location(),
            checkpoints: self.view.checkpoint_dir().display().to_string(),
            records: self.view.records(),
            seconds_since_last_commit: since(self.view.last_commit()),
            problems: self.last_refresh.problems.clone(),
            lag_problem: self
                .lag
                .as_ref()
                .and_then(|lag| lag.as_ref().err().cloned()),
            partitions: self
                .view
                .partitions()
                .iter()
                .map(|(partition, state)| PartitionSummary {
                    partition: *partition,
                    batches: state.checkpoint.map_or(0, |c| c.batch_id + 1),
                    offset: state.checkpoint.map(|c| c.offset),
                    records: state.records,
                    seconds_since_last_commit: since(state.committed_at),
                    lag: lag.and_then(|lag| lag.get(partition).copied()),
                })
                .collect(),
            stations: self
                .view
                .stations()
                .iter()
                .map(|(name, station)| StationSummary {
                    station: name.clone(),
                    records: station.records,
                    latest_date: station.latest.as_ref().map(|latest| latest.date.clone()),
                    latest_degrees: station.latest.as_ref().map(|latest| latest.degrees),
                    monthly_mean: station
                        .months
                        .iter()
                        .map(|(month, total)| (*month, total.mean()))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// The figures of a snapshot, as `/api/summary` serves them.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub store: String,
    pub checkpoints: String,
    pub records: u64,
    pub seconds_since_last_commit: Option<f64>,
    pub problems: Vec<String>,
    pub lag_problem: Option<String>,
    pub partitions: Vec<PartitionSummary>,
    pub stations: Vec<StationSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionSummary {
    pub partition: i32,
    pub batches: u64,
    /// The next offset the consumer reads.
    pub offset: Option<i64>,
    pub records: u64,
    pub seconds_since_last_commit: Option<f64>,
    pub lag: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StationSummary {
    pub station: String,
    pub records: u64,
    /// `None` while the station has no dated record.
    pub latest_date: Option<String>,
    pub latest_degrees: Option<f64>,
    pub monthly_mean: BTreeMap<Month, f64>,
}

/// Reads everything committed once and writes the monthly chart of
/// `stations` (all if empty) to `path` atomically. Anything that could not
/// be read is an error: a chart for a report must not silently leave data out.
pub async fn write_svg(
    store: Store,
    checkpoints: CheckpointDir,
    partitions: Option<Vec<i32>>,
    stations: &[String],
    path: &std::path::Path,
    read_timeout: Duration,
) -> Result<Summary> {
    let mut view =
        CommittedView::new(store, checkpoints, partitions).with_read_timeout(read_timeout);
    let started = std::time::Instant::now();
    let report = view.refresh().await;
    if !report.problems.is_empty() {
        return Err(Error::Unreadable(report.problems.join("; ")));
    }
    if view.records() == 0 {
        return Err(Error::NoData {
            store: view.store_location(),
            checkpoints: view.checkpoint_dir().display().to_string(),
        });
    }
    let unknown: Vec<&str> = stations
        .iter()
        .filter(|s| !view.stations().contains_key(*s))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(Error::UnknownStations(unknown.join(", ")));
    }
    let snapshot = Snapshot::take(&view, report, started.elapsed(), None).await;
    let selected = (!stations.is_empty()).then_some(stations);
    let svg = snapshot.chart_svg(selected)?;
    write_atomically(path, svg.as_bytes()).await?;
    Ok(snapshot.summary())
}

/// Replaces `path` through the store's atomic write: a script reading the
/// file sees the old chart or the new one, never half of one.
async fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let failed = |cause: batch_store::Cause| Error::Write {
        path: path.to_path_buf(),
        cause,
    };
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| failed("not a file name".into()))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    Store::local(dir)
        .put_atomic(&format!("/{name}"), bytes::Bytes::copy_from_slice(bytes))
        .await
        .map_err(|err| failed(err.into()))
}
