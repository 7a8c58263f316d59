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

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use report::{partition_for_key, Report};
use tokio_util::sync::CancellationToken;
use topic::{KafkaSettings, TopicSpec};
use weather_generator::{Database, WeatherGenerator};

pub use resume::{last_row_ids, ROW_ID_HEADER};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Topic(#[from] topic::Error),
    #[error(transparent)]
    Database(#[from] weather_generator::db::Error),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(KafkaError),
    #[error("the broker at {brokers} is not reachable after {waited:?}: {source}")]
    BrokerUnreachable {
        brokers: String,
        waited: Duration,
        source: KafkaError,
    },
    #[error("topic {topic} does not exist")]
    MissingTopic { topic: String },
    #[error("delivery of row {row_id} failed: {reason}")]
    Delivery { row_id: i64, reason: String },
    #[error("reading the last messages of topic {topic}: {reason}")]
    Resume { topic: String, reason: String },
    #[error("{0} messages were still unacknowledged when the flush timed out")]
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

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub sent: u64,
    pub delivered: u64,
    pub skipped_on_resume: u64,
}

/// Records acknowledgements, and the first failure, as librdkafka reports them.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failure: Mutex<Option<Error>>,
}

impl ClientContext for Deliveries {}

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
                    reason: err.to_string(),
                });
            }
        }
    }
}

impl Deliveries {
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
        .create_with_context(Deliveries::default())
        .map_err(Error::Producer)?;
    let mut sender = Sender {
        producer: &producer,
        topic: &options.topic.name,
        partitions,
        last_ids,
        summary: Summary::default(),
        progress_logged_at: std::time::Instant::now(),
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
    let mut summary = sender.summary;

    // Whatever happened, give what is in flight a chance to be acknowledged.
    let flushed = tokio::task::block_in_place(|| producer.flush(Duration::from_secs(30)));
    summary.delivered = producer.context().delivered.load(Ordering::Relaxed);
    outcome?;
    producer.context().take_failure()?;
    if flushed.is_err() {
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
}

/// How often the producer logs how many rows it has sent and had acknowledged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

impl Sender<'_> {
    fn log_progress(&mut self) {
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
                self.send(row.id, &report).await?;
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
            self.send(i64::try_from(row_id).unwrap_or(i64::MAX), &report)
                .await?;
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
    async fn send(&mut self, row_id: i64, report: &Report) -> Result<()> {
        let key = report.station_id.as_bytes();
        let partition = partition_for_key(key, self.partitions);
        if row_id <= self.last_ids[partition as usize] {
            self.summary.skipped_on_resume += 1;
            return Ok(());
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
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((err, _)) => {
                    return Err(Error::Delivery {
                        row_id,
                        reason: err.to_string(),
                    })
                }
            }
        }
        self.summary.sent += 1;
        Ok(())
    }
}
