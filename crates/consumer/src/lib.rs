//! The consumer: each assigned partition of the topic becomes a sequence of
//! Parquet batch files `partition-N-batch-M.parquet` (or, in stats mode, one
//! running per-station stats file), exactly once across crashes.
//!
//! The commit order is the whole guarantee (see `sink/parquet.rs`, and docs/design.md):
//! 1. write `/data/partition-N-batch-M.parquet.tmp` and close it (durable);
//! 2. rename it over `/data/partition-N-batch-M.parquet`;
//! 3. replace `partition-N.json` with `{"batch_id": M, "offset": next}` atomically.
//!
//! A crash before 3 leaves the old checkpoint, so the restart rewrites batch M
//! from the same offset (replacing any file of that name); a crash after 3
//! continues with batch M + 1. Readers trust batches `0..=batch_id` only.

pub mod crash;
mod group;
pub mod jsonl;
mod latency;
mod lock;
mod owner;
mod partition;
mod sink;
pub mod stats;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use batch_store::{CheckpointDir, Store};
use tokio_util::sync::CancellationToken;
use topic::KafkaSettings;

pub use latency::Latencies;
pub use owner::NO_FENCING_ENV;
pub use partition::PartitionSummary;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] batch_store::Error),
    #[error("cannot use checkpoint directory {dir}: {cause}")]
    CheckpointDir {
        dir: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("{what} is already being consumed by another process (lock {lock} is held)")]
    AlreadyRunning { what: String, lock: String },
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {topic} did not appear within {waited:?} (is the producer running?)")]
    NoTopic { topic: String, waited: Duration },
    #[error("the broker at {brokers} is not reachable after {waited:?}: {source}")]
    Unreachable {
        brokers: String,
        waited: Duration,
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "topic {topic} has {count} partitions (0..={max}); partition {partition} does not exist"
    )]
    UnknownPartition {
        topic: String,
        partition: i32,
        count: usize,
        max: usize,
    },
    #[error(
        "checkpoint {path} says partition {partition} continues at offset {offset}, but the partition \
         (first offset {low}) no longer holds the record before it: the topic was probably recreated. \
         Nothing was written. {start_over}"
    )]
    OffsetOutOfRange {
        path: String,
        partition: i32,
        offset: i64,
        low: i64,
        start_over: String,
    },
    #[error(
        "partition {partition}: the broker no longer has offset {offset}, where this consumer was \
         reading: the topic was probably deleted and recreated while it ran (the producer does that \
         at every start), or retention removed records it had not read yet. What was committed is \
         intact and nothing more was written. {start_over}"
    )]
    TopicRecreated {
        partition: i32,
        offset: i64,
        start_over: String,
    },
    #[error(transparent)]
    Topic(#[from] topic::Error),
    #[error("JSON Lines archive: {0}")]
    Archive(#[source] batch_store::Cause),
    #[error("partition {partition} failed: {cause}")]
    Task {
        partition: i32,
        #[source]
        cause: batch_store::Cause,
    },
    #[error("a task of the consumer failed: {0}")]
    Join(#[source] tokio::task::JoinError),
}

/// What the consumer produces.
#[derive(Debug, Clone)]
pub enum Output {
    /// Parquet batch files in `store` and `partition-N.json` checkpoints in `checkpoints`.
    Parquet {
        store: Store,
        checkpoints: CheckpointDir,
    },
    /// Per-station running stats with the offset, `partition-N.json` in `dir` (f24 variant).
    Stats { dir: CheckpointDir },
    /// One line per record in `<dir>/<date>/<station>_<date>.jsonl`, with the
    /// offsets of all partitions in one checkpoint (the data-collector variant).
    JsonLines {
        archive: Arc<jsonl::Archive>,
        format: jsonl::Format,
    },
}

impl Output {
    /// How to start over deliberately from the topic's beginning, for the
    /// messages that say the committed position no longer exists.
    pub(crate) fn start_over(&self) -> String {
        match self {
            Output::Parquet { .. } => "Start over deliberately with --reset (it removes the \
                checkpoint and writes from batch 0 at offset 0)"
                .into(),
            Output::Stats { .. } => "Start over deliberately with --reset (it removes the \
                stats file and counts again from offset 0)"
                .into(),
            Output::JsonLines { archive, .. } => format!(
                "Start over deliberately in an empty --output-dir (or move {} away)",
                archive.dir().display()
            ),
        }
    }
}

/// Where a partition without a committed offset starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartAt {
    /// Its first record.
    #[default]
    Earliest,
    /// Records produced from now on.
    Latest,
}

/// How records are grouped into batches (files, or stats updates).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most records in one file.
    pub max_records: usize,
    /// After the first record of a batch, how long to keep collecting. Zero
    /// gives the course's behaviour: one file per poll of what has arrived.
    pub max_wait: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_records: 500,
            max_wait: Duration::ZERO,
        }
    }
}

/// Kafka clients one process spreads its partitions over, unless told otherwise.
pub const DEFAULT_CLIENTS: u64 = 2;

#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub topic: String,
    /// Group the consumer reports its offsets to, for lag tools only; with
    /// `subscribe`, the group whose members share the partitions.
    pub group: String,
    /// The partitions to consume; ignored with `subscribe`.
    pub partitions: Vec<i32>,
    /// Group mode: the group hands out the partitions (see `group.rs`).
    pub subscribe: bool,
    /// Kafka clients the partitions are spread over (at most one per partition).
    pub clients: usize,
    pub output: Output,
    pub batch: BatchLimits,
    /// Forget the checkpoints and start again at offset 0, batch 0.
    pub reset: bool,
    /// Where a partition without a checkpoint starts.
    pub start: StartAt,
    /// How long to wait for the topic to exist.
    pub topic_wait: Duration,
    /// Stop a partition once no record has arrived for this long (batch loads, benchmarks).
    pub exit_when_idle: Option<Duration>,
}

/// How `consumer` and `collector` run, the flags they share.
#[derive(clap::Args, Debug, Clone)]
pub struct RunFlags {
    /// Kafka clients the partitions are spread over. One client's fetch
    /// stream bounds how fast it reads; each one costs memory.
    #[arg(long, env = "P7_CLIENTS", default_value_t = DEFAULT_CLIENTS,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub clients: u64,

    /// Seconds to wait for the topic to exist.
    #[arg(long, default_value_t = 120.0, value_parser = program::parse_seconds)]
    pub wait: f64,

    /// Drain and stop: a batch also ends at the end of its partition, and a
    /// partition stops once no record has arrived for this many seconds.
    #[arg(long, value_parser = program::parse_seconds)]
    pub exit_when_idle: Option<f64>,
}

impl RunFlags {
    pub fn topic_wait(&self) -> Duration {
        Duration::from_secs_f64(self.wait)
    }

    pub fn exit_when_idle(&self) -> Option<Duration> {
        self.exit_when_idle.map(Duration::from_secs_f64)
    }
}

/// The run summary on stderr: per partition what it committed this run and
/// its state now, the produce → committed latency, and the throughput.
pub fn print_run_summary(started: std::time::Instant, summaries: &[PartitionSummary]) {
    let mut all = Latencies::default();
    for summary in summaries {
        eprintln!(
            "partition {}: {} batches, {} records, {} skipped this run; now {}",
            summary.partition, summary.batches, summary.records, summary.skipped, summary.state,
        );
        all.merge(&summary.latencies);
    }
    if let (Some(p50), Some(p99)) = (all.quantile(0.5), all.quantile(0.99)) {
        eprintln!(
            "produce -> committed latency over {} records: p50 {p50} ms, p99 {p99} ms",
            all.count()
        );
    }
    if let Some(line) = throughput(started, summaries) {
        eprintln!("{line}");
    }
}

/// "N records committed in S s (R records/s)", timed from `started` to the
/// last commit of the run; `None` if nothing was committed.
fn throughput(started: std::time::Instant, summaries: &[PartitionSummary]) -> Option<String> {
    let last = summaries.iter().filter_map(|s| s.last_commit).max()?;
    let records: u64 = summaries.iter().map(|s| s.records).sum();
    let seconds = last.duration_since(started).as_secs_f64().max(1e-9);
    Some(format!(
        "{records} records committed in {seconds:.2} s ({:.0} records/s, from start to the last commit)",
        records as f64 / seconds
    ))
}

/// All partitions of `topic`, once it exists (waiting up to `wait`);
/// `None` if shut down first.
pub async fn topic_partitions(
    settings: &KafkaSettings,
    topic: &str,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<Vec<i32>>> {
    let consumer: rdkafka::consumer::BaseConsumer<topic::ClientLog> = settings
        .assigned_consumer_config("metadata")
        .create_with_context(settings.client_log())?;
    let count = partition::wait_for_topic(&consumer, topic, wait, shutdown).await?;
    Ok(count.map(|count| (0..count as i32).collect()))
}

/// Consumes every partition of `options` concurrently until `shutdown` fires
/// or one of them fails (which stops the others).
pub async fn run(
    settings: &KafkaSettings,
    options: &ConsumerOptions,
    shutdown: &CancellationToken,
) -> Result<Vec<PartitionSummary>> {
    let options = Arc::new(options.clone());
    if options.subscribe {
        return group::consume_group(settings, &options, &shutdown.child_token()).await;
    }
    partition::consume_all(settings, &options, &shutdown.child_token()).await
}
