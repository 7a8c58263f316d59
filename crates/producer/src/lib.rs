//! Moves weather rows into the `temperatures` topic: from MySQL (the course
//! producer) or straight from the generator (the f24 variant).
//!
//! Every message is keyed by station, placed in the partition the Java client
//! would choose, and carries its MySQL row id in the `row-id` header. That id
//! is what makes `--resume` exact: within a partition an idempotent producer
//! delivers a gap-free prefix of what it sent, so after a crash the last
//! message of each partition says precisely which rows that partition still
//! needs.

mod resume;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use report::{partition_for_key, Report};
use tokio_util::sync::CancellationToken;
use topic::{ClientLog, KafkaSettings, TopicSpec};
use weather_generator::{Database, WeatherGenerator};

pub use resume::{last_row_ids, ROW_ID_HEADER};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What caused an error, kept as its source.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Topic(#[from] topic::Error),
    #[error(transparent)]
    Database(#[from] weather_generator::db::Error),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[source] KafkaError),
    #[error("the broker at {brokers} is not reachable after {waited:?}: {source}")]
    BrokerUnreachable {
        brokers: String,
        waited: Duration,
        source: KafkaError,
    },
    #[error("topic {topic} does not exist")]
    MissingTopic { topic: String },
    #[error("delivery of row {row_id} failed: {cause}")]
    Delivery {
        row_id: i64,
        #[source]
        cause: KafkaError,
    },
    #[error("reading the last messages of topic {topic}: {cause}")]
    Resume {
        topic: String,
        #[source]
        cause: Cause,
    },
    #[error("{0} records were still unacknowledged when the producer stopped; start it again with --resume to send exactly the rows the topic lacks")]
    Unflushed(i32),
}

/// Where rows come from.
pub enum Source {
    /// New rows of `temperatures`, polled by id.
    Mysql {
        database: Database,
        chunk: u32,
        poll_interval: Duration,
        /// Stop once no new row has appeared for this long (batch loads, benchmarks).
        exit_when_idle: Option<Duration>,
    },
    /// The course sequence itself; a row's id is its position + 1.
    Generator { delay: Duration, rows: Option<u64> },
}

pub struct ProducerOptions {
    pub topic: TopicSpec,
    /// Keep the topic and continue after the rows it already holds,
    /// instead of recreating it as the course producer does.
    pub resume: bool,
    /// How long to wait for the broker at start.
    pub broker_wait: Duration,
}

impl ProducerOptions {
    /// The course producer's way with `topic`: recreated at start, with up
    /// to 2 minutes' wait for the broker (the command line's defaults).
    pub fn recreating(topic: TopicSpec) -> Self {
        Self {
            topic,
            resume: false,
            broker_wait: Duration::from_secs(120),
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub sent: u64,
    pub delivered: u64,
    pub skipped_on_resume: u64,
}

/// Records acknowledgements, the first failure and the latest client error,
/// as librdkafka reports them; logs what librdkafka says as every client does.
struct Deliveries {
    log: ClientLog,
    delivered: AtomicU64,
    failure: Mutex<Option<Error>>,
    client_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.log.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Kept for the stall line.
        self.log.error(error, reason);
        *self
            .client_error
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(reason.to_string());
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<i64>;

    fn delivery(&self, result: &DeliveryResult<'_>, row_id: Box<i64>) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((err, _)) => {
                let mut failure = self
                    .failure
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner());
                failure.get_or_insert(Error::Delivery {
                    row_id: *row_id,
                    cause: err.clone(),
                });
            }
        }
    }
}

impl Deliveries {
    fn new(log: ClientLog) -> Self {
        Self {
            log,
            delivered: AtomicU64::new(0),
            failure: Mutex::new(None),
            client_error: Mutex::new(None),
        }
    }

    fn take_failure(&self) -> Result<()> {
        match self
            .failure
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
        {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// Runs until `shutdown` fires (or a generator source runs out), then flushes
/// everything in flight. Any delivery that fails after librdkafka's retries
/// ends the run with an error: a row is never dropped silently.
pub async fn run(
    settings: &KafkaSettings,
    options: &ProducerOptions,
    source: Source,
    shutdown: &CancellationToken,
) -> Result<Summary> {
    resume::wait_for_broker(settings, options.broker_wait, shutdown).await?;

    let (partitions, last_ids) = if options.resume {
        let last = resume::prepare_resume(settings, &options.topic).await?;
        (last.len() as i32, last)
    } else {
        topic::reset_topic(settings, &options.topic).await?;
        (
            options.topic.partitions,
            vec![0; options.topic.partitions as usize],
        )
    };
    // Rows at or below this id are in every partition already.
    let resume_after = last_ids.iter().copied().min().unwrap_or(0);
    if options.resume {
        tracing::info!(topic = %options.topic.name, ?last_ids, "resuming after the rows already in the topic");
    }

    let producer: ThreadedProducer<Deliveries> = settings
        .producer_config()
        .create_with_context(Deliveries::new(settings.client_log()))
        .map_err(Error::Producer)?;
    let mut sender = Sender {
        producer: &producer,
        topic: &options.topic.name,
        partitions,
        last_ids,
        summary: Summary::default(),
        progress_logged_at: std::time::Instant::now(),
        acknowledgements: Acknowledgements::new(),
    };

    let outcome = match source {
        Source::Mysql {
            database,
            chunk,
            poll_interval,
            exit_when_idle,
        } => {
            sender
                .send_from_mysql(
                    &database,
                    resume_after,
                    chunk,
                    poll_interval,
                    exit_when_idle,
                    shutdown,
                )
                .await
        }
        Source::Generator { delay, rows } => {
            sender
                .send_from_generator(resume_after, delay, rows, shutdown)
                .await
        }
    };

    // Whatever happened, wait for what is in flight to be acknowledged: as
    // long as it takes, or for FLUSH_GRACE once asked to stop.
    let mut stopping_since = None;
    let flushed = loop {
        if tokio::task::block_in_place(|| producer.flush(Duration::from_secs(1))).is_ok() {
            break true;
        }
        sender.watch_acknowledgements();
        if shutdown.is_cancelled() || outcome.is_err() {
            let since = *stopping_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= FLUSH_GRACE {
                break false;
            }
        }
    };
    let summary = Summary {
        delivered: producer.context().delivered.load(Ordering::Relaxed),
        ..sender.summary
    };
    outcome?;
    producer.context().take_failure()?;
    if !flushed {
        return Err(Error::Unflushed(producer.in_flight_count()));
    }
    tracing::info!(
        sent = summary.sent,
        delivered = summary.delivered,
        "producer stopped"
    );
    Ok(summary)
}

struct Sender<'a> {
    producer: &'a ThreadedProducer<Deliveries>,
    topic: &'a str,
    partitions: i32,
    /// Per partition, the highest row id it already holds.
    last_ids: Vec<i64>,
    summary: Summary,
    progress_logged_at: std::time::Instant,
    acknowledgements: Acknowledgements,
}

/// How often the producer logs how many rows it has sent and had acknowledged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// How long records may wait for an acknowledgement before the producer says
/// so, and how often it repeats that while they still wait.
const STALL_AFTER: Duration = Duration::from_secs(10);

/// How long a producer asked to stop still waits for acknowledgements.
const FLUSH_GRACE: Duration = Duration::from_secs(30);

/// Whether acknowledgements keep coming while records are in flight.
struct Acknowledgements {
    delivered: u64,
    /// When `delivered` last moved, or nothing was in flight.
    moving_at: std::time::Instant,
    /// When the producer last said it is waiting, if it is.
    stall_logged_at: Option<std::time::Instant>,
}

impl Acknowledgements {
    fn new() -> Self {
        Acknowledgements {
            delivered: 0,
            moving_at: std::time::Instant::now(),
            stall_logged_at: None,
        }
    }
}

impl Sender<'_> {
    /// Logs, every STALL_AFTER, while records in flight get no
    /// acknowledgement, and once when acknowledgements resume.
    fn watch_acknowledgements(&mut self) {
        let context = self.producer.context();
        let delivered = context.delivered.load(Ordering::Relaxed);
        let in_flight = self.producer.in_flight_count();
        let state = &mut self.acknowledgements;
        if delivered != state.delivered || in_flight == 0 {
            if state.stall_logged_at.take().is_some() {
                tracing::info!(
                    waited_s = state.moving_at.elapsed().as_secs(),
                    "the brokers acknowledge records again"
                );
            }
            state.delivered = delivered;
            state.moving_at = std::time::Instant::now();
            return;
        }
        let waited = state.moving_at.elapsed();
        let due = match state.stall_logged_at {
            None => waited >= STALL_AFTER,
            Some(at) => at.elapsed() >= STALL_AFTER,
        };
        if due {
            state.stall_logged_at = Some(std::time::Instant::now());
            let client_error = context
                .client_error
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .clone()
                .unwrap_or_else(|| "none reported".to_string());
            tracing::warn!(
                unacknowledged = in_flight,
                waited_s = waited.as_secs(),
                last_client_error = %client_error,
                "no record acknowledged for {}s (a partition without a leader, or fewer in-sync replicas than min.insync.replicas?); holding them and retrying until the brokers take them",
                waited.as_secs()
            );
        }
    }

    fn log_progress(&mut self) {
        self.watch_acknowledgements();
        if self.progress_logged_at.elapsed() >= PROGRESS_EVERY {
            self.progress_logged_at = std::time::Instant::now();
            tracing::info!(
                sent = self.summary.sent,
                delivered = self.producer.context().delivered.load(Ordering::Relaxed),
                "progress"
            );
        }
    }

    async fn send_from_mysql(
        &mut self,
        database: &Database,
        mut after: i64,
        chunk: u32,
        poll_interval: Duration,
        exit_when_idle: Option<Duration>,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let mut last_row_seen = std::time::Instant::now();
        while !shutdown.is_cancelled() {
            self.producer.context().take_failure()?;
            self.log_progress();
            let rows = tokio::select! {
                rows = database.rows_after(after, chunk) => rows?,
                () = shutdown.cancelled() => break,
            };
            let Some(last) = rows.last() else {
                if exit_when_idle.is_some_and(|idle| last_row_seen.elapsed() >= idle) {
                    tracing::info!("no new rows; exiting as asked (--exit-when-idle)");
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(poll_interval) => {}
                    () = shutdown.cancelled() => {}
                }
                continue;
            };
            after = last.id;
            last_row_seen = std::time::Instant::now();
            for row in &rows {
                let report = Report {
                    date: row.date.to_string(),
                    degrees: row.degrees,
                    station_id: row.station_id.clone(),
                };
                if !self.send(row.id, &report, shutdown).await? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Sends the course sequence up to row id `rows` (or forever).
    async fn send_from_generator(
        &mut self,
        after: i64,
        delay: Duration,
        rows: Option<u64>,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let mut generator = WeatherGenerator::starting_at(u64::try_from(after).unwrap_or(0));
        loop {
            let row_id = generator.position() + 1;
            if shutdown.is_cancelled() || rows.is_some_and(|rows| row_id > rows) {
                return Ok(());
            }
            self.producer.context().take_failure()?;
            self.log_progress();
            let Some(reading) = generator.next() else {
                return Ok(());
            };
            let report = Report {
                date: reading.date.to_string(),
                degrees: reading.degrees,
                station_id: reading.station_id.into(),
            };
            let row_id = i64::try_from(row_id).unwrap_or(i64::MAX);
            if !self.send(row_id, &report, shutdown).await? {
                return Ok(());
            }
            if !delay.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => {}
                }
            }
        }
    }

    /// Queues one record, unless its partition already holds it; waits while
    /// librdkafka's queue is full.
    /// `false`: asked to stop while the queue was full; the row was not sent.
    async fn send(
        &mut self,
        row_id: i64,
        report: &Report,
        shutdown: &CancellationToken,
    ) -> Result<bool> {
        let key = report.station_id.as_bytes();
        let partition = partition_for_key(key, self.partitions);
        if row_id <= self.last_ids[partition as usize] {
            self.summary.skipped_on_resume += 1;
            return Ok(true);
        }
        let payload = report.to_bytes();
        let id_text = row_id.to_string();
        loop {
            let headers = OwnedHeaders::new().insert(Header {
                key: ROW_ID_HEADER,
                value: Some(id_text.as_bytes()),
            });
            let record = BaseRecord::with_opaque_to(self.topic, Box::new(row_id))
                .partition(partition)
                .key(key)
                .payload(&payload)
                .headers(headers);
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if shutdown.is_cancelled() {
                        // Not sent: a later `--resume` sends it.
                        return Ok(false);
                    }
                    self.watch_acknowledgements();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((err, _)) => return Err(Error::Delivery { row_id, cause: err }),
            }
        }
        self.summary.sent += 1;
        Ok(true)
    }
}
