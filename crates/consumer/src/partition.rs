//! One partition's loop: resume where the sink's committed state says, collect
//! a batch, have the sink commit it together with the next offset, repeat.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use report::Report;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use topic::{ClientLog, KafkaSettings};

pub(crate) type PartitionConsumer = StreamConsumer<ClientLog>;
pub(crate) type PartitionQueue = StreamPartitionQueue<ClientLog>;

use crate::sink::{Committed, Sink};
use crate::{ConsumerOptions, Error, Latencies, Result, StartAt};

/// What one partition did during a run.
#[derive(Debug, Clone, Default)]
pub struct PartitionSummary {
    pub partition: i32,
    pub batches: u64,
    pub records: u64,
    /// Messages that were not valid `Report`s, skipped.
    pub skipped: u64,
    /// What the committed state says at the end of the run.
    pub state: String,
    /// From each record's producer timestamp to the commit of its batch.
    pub latencies: Latencies,
    /// When the last batch of the run was committed.
    pub last_commit: Option<Instant>,
}

/// What `next_batch` found.
enum Next {
    Batch(Batch),
    /// The oldest batch file being written is written: commit it.
    UploadEnded,
    /// Shutdown, or idle under `--exit-when-idle`.
    Stop,
}

/// A batch as read from the partition.
#[derive(Default)]
struct Batch {
    /// Valid records, handed to the sink as they arrive.
    records: u64,
    /// Producer timestamps (ms since the epoch) of the records, where known.
    produced_at: Vec<i64>,
    /// Messages that were not a valid Report: skipped, but part of the batch.
    skipped: u64,
    /// The offset after the batch's last message.
    next_offset: i64,
}

impl Batch {
    /// Messages the batch took, valid or not.
    fn taken(&self) -> u64 {
        self.records + self.skipped
    }
}

/// Consumes every partition of `options` until `stop` fires or a partition
/// fails (which stops the others).
///
/// The partitions share `options.clients` Kafka clients (partition `i` of the
/// list goes to client `i % clients`), not one client each: every client keeps
/// its own connections, threads, fetch buffers and read-ahead, and memory grew
/// with every one. More than one, because one client's single fetch stream
/// bounds how fast one process can read (measured, see docs/design.md). Each
/// partition has a queue of its own (`split_partition_queue`), read by its own
/// task, so a slow sink on one partition does not hold up the others. The
/// queues are split off before the assignment is made: librdkafka then never
/// forwards the partitions' messages to the client's main queue (an
/// application-set forward survives the fetch start), so no message can take
/// another path than its partition's queue.
pub(crate) async fn consume_all(
    settings: &KafkaSettings,
    options: &Arc<ConsumerOptions>,
    stop: &CancellationToken,
) -> Result<Vec<PartitionSummary>> {
    // Opening a sink takes its lock and validates its committed state, so a
    // second consumer or a corrupt checkpoint fails before anything is fetched.
    let mut sinks = Vec::with_capacity(options.partitions.len());
    for &partition in &options.partitions {
        sinks.push((partition, Sink::open(options, partition).await?));
    }
    let consumers = create_clients(settings, options, sinks.len())?;
    let Some(count) =
        wait_for_topic(&*consumers[0], &options.topic, options.topic_wait, stop).await?
    else {
        return Ok(sinks
            .into_iter()
            .map(|(partition, sink)| PartitionSummary {
                partition,
                state: sink.describe(),
                ..Default::default()
            })
            .collect());
    };
    let starts = find_starts(&consumers, settings, options, &sinks, count).await?;
    let plans = assign(&consumers, options, sinks, starts)?;
    run(&consumers, options, plans, stop).await
}

/// The Kafka clients the `partitions` are spread over: partition `index` of
/// the list goes to client `index % clients.len()`.
fn create_clients(
    settings: &KafkaSettings,
    options: &ConsumerOptions,
    partitions: usize,
) -> Result<Vec<Arc<PartitionConsumer>>> {
    let mut config = settings.assigned_consumer_config_for(&options.group, partitions);
    if options.exit_when_idle.is_some() {
        // Draining: reaching the end of the partition ends a batch early (see `next_batch`).
        config.set("enable.partition.eof", "true");
    }
    let count = options.clients.clamp(1, partitions.max(1));
    (0..count)
        .map(|_| Ok(Arc::new(config.create_with_context(settings.client_log())?)))
        .collect()
}

/// Where each partition starts. Finding where to resume can take a few
/// probing fetches per partition (see `topic::resume_fetch_offset`), so the
/// partitions look at once. Every partition is checked before any client is
/// assigned one, so an unknown partition or a lost offset stops the run
/// before anything is written.
async fn find_starts(
    consumers: &[Arc<PartitionConsumer>],
    settings: &KafkaSettings,
    options: &Arc<ConsumerOptions>,
    sinks: &[(i32, Sink)],
    count: usize,
) -> Result<Vec<Start>> {
    let lookups: Vec<_> = sinks
        .iter()
        .enumerate()
        .map(|(index, (partition, sink))| {
            let (consumer, settings, options) = (
                Arc::clone(&consumers[index % consumers.len()]),
                settings.clone(),
                Arc::clone(options),
            );
            let (partition, resume, state_path) =
                (*partition, sink.resume_offset(), sink.state_path());
            tokio::task::spawn_blocking(move || {
                start_of(
                    &*consumer, &settings, &options, partition, count, resume, state_path,
                )
            })
        })
        .collect();
    let mut starts = Vec::with_capacity(lookups.len());
    for lookup in lookups {
        starts.push(lookup.await.map_err(Error::Join)??);
    }
    Ok(starts)
}

/// Splits off each partition's queue, then assigns every client its
/// partitions with their start offsets.
fn assign(
    consumers: &[Arc<PartitionConsumer>],
    options: &ConsumerOptions,
    sinks: Vec<(i32, Sink)>,
    starts: Vec<Start>,
) -> Result<Vec<Plan>> {
    let mut assignments: Vec<TopicPartitionList> = consumers
        .iter()
        .map(|_| TopicPartitionList::new())
        .collect();
    let mut plans = Vec::with_capacity(sinks.len());
    for (index, ((partition, sink), start)) in sinks.into_iter().zip(starts).enumerate() {
        let client = index % consumers.len();
        let consumer = Arc::clone(&consumers[client]);
        let queue = split_queue(&consumer, &options.topic, partition)?;
        // The start offset travels with the assignment itself, so no fetch ever
        // happens from a position the group (or a default) chose.
        assignments[client].add_partition_offset(&options.topic, partition, start.fetch)?;
        tracing::info!(partition, start = ?start.fetch, client, "consuming");
        plans.push(Plan {
            partition,
            sink,
            consumer,
            queue,
            skip_below: start.skip_below,
        });
    }
    for (consumer, assignment) in consumers.iter().zip(&assignments) {
        consumer.assign(assignment)?;
    }
    Ok(plans)
}

/// The partition's own queue, split off `consumer` so that its messages
/// reach only that queue (see `consume_all`).
pub(crate) fn split_queue(
    consumer: &Arc<PartitionConsumer>,
    topic: &str,
    partition: i32,
) -> Result<Arc<PartitionQueue>> {
    consumer
        .split_partition_queue(topic, partition)
        .map(Arc::new)
        .ok_or_else(|| Error::Task {
            partition,
            cause: "librdkafka gave no queue for the partition".into(),
        })
}

/// Runs a task per partition, and serves the clients' main queues, until
/// `stop` fires or a partition fails (which stops the others); the first
/// error wins.
async fn run(
    consumers: &[Arc<PartitionConsumer>],
    options: &Arc<ConsumerOptions>,
    plans: Vec<Plan>,
    stop: &CancellationToken,
) -> Result<Vec<PartitionSummary>> {
    let serving = stop.child_token();
    let main_queues: Vec<_> = consumers
        .iter()
        .map(|consumer| {
            tokio::spawn(serve_main_queue(
                Arc::clone(consumer),
                serving.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let mut tasks = JoinSet::new();
    for plan in plans {
        let (options, stop) = (Arc::clone(options), stop.clone());
        tasks.spawn(async move {
            let result = consume_partition(&options, plan, &stop).await;
            if result.is_err() {
                stop.cancel();
            }
            result
        });
    }
    let mut summaries = Vec::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(Error::Join).and_then(|result| result) {
            Ok(summary) => summaries.push(summary),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    serving.cancel();
    for main_queue in main_queues {
        if let Err(err) = main_queue
            .await
            .map_err(Error::Join)
            .and_then(|result| result)
        {
            first_error.get_or_insert(err);
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => {
            summaries.sort_by_key(|s| s.partition);
            Ok(summaries)
        }
    }
}

/// Serves a client's main queue until `serving` is cancelled. It must be
/// served for librdkafka's events; with every partition split off, a message
/// there would be a message no partition task sees, so it stops the run
/// rather than let a commit pass over it.
async fn serve_main_queue(
    consumer: Arc<PartitionConsumer>,
    serving: CancellationToken,
    stop: CancellationToken,
) -> Result<()> {
    loop {
        tokio::select! {
            () = serving.cancelled() => return Ok(()),
            received = consumer.recv() => match received {
                Ok(message) => {
                    stop.cancel();
                    return Err(Error::Task {
                        partition: message.partition(),
                        cause: format!(
                            "offset {} arrived outside its partition's queue; stopped without committing it",
                            message.offset()
                        )
                        .into(),
                    });
                }
                Err(err) => tracing::warn!(error = %err, "consumer error; librdkafka retries by itself"),
            },
        }
    }
}

/// One partition, ready to be read.
pub(crate) struct Plan {
    pub(crate) partition: i32,
    pub(crate) sink: Sink,
    /// The client the partition is assigned to.
    pub(crate) consumer: Arc<PartitionConsumer>,
    pub(crate) queue: Arc<PartitionQueue>,
    /// Records below this offset are already committed (see `next_batch`).
    pub(crate) skip_below: i64,
}

/// Where a partition's fetch starts, and below which offset its records are
/// committed already (a resumed fetch may start before the checkpoint).
pub(crate) struct Start {
    pub(crate) fetch: Offset,
    pub(crate) skip_below: i64,
}

/// Where `partition` starts: just after `resume`, its committed offset (a
/// position the broker must still have), or per `options.start`. Blocking.
pub(crate) fn start_of<C: Consumer<ClientLog>>(
    consumer: &C,
    settings: &KafkaSettings,
    options: &ConsumerOptions,
    partition: i32,
    count: usize,
    resume: Option<i64>,
    state_path: String,
) -> Result<Start> {
    if partition < 0 || partition as usize >= count {
        return Err(Error::UnknownPartition {
            topic: options.topic.clone(),
            partition,
            count,
            max: count - 1,
        });
    }
    // A topic created a moment ago may not have its leaders yet.
    let (low, _high) =
        topic::watermarks(consumer, &options.topic, partition, topic::LEADER_PATIENCE)?;
    Ok(match resume {
        Some(offset) => {
            let fetch_from =
                topic::resume_fetch_offset(settings, &options.topic, partition, offset, low)?;
            let Some(fetch_from) = fetch_from else {
                return Err(Error::OffsetOutOfRange {
                    path: state_path,
                    partition,
                    offset,
                    low,
                    start_over: options.output.start_over(),
                });
            };
            Start {
                fetch: Offset::Offset(fetch_from),
                skip_below: offset,
            }
        }
        None => Start {
            fetch: match options.start {
                StartAt::Earliest => Offset::Beginning,
                StartAt::Latest => Offset::End,
            },
            skip_below: 0,
        },
    })
}

pub(crate) async fn consume_partition(
    options: &ConsumerOptions,
    plan: Plan,
    shutdown: &CancellationToken,
) -> Result<PartitionSummary> {
    let Plan {
        partition,
        mut sink,
        consumer,
        queue,
        skip_below,
    } = plan;
    let mut summary = PartitionSummary {
        partition,
        ..Default::default()
    };
    let mut position = skip_below;
    let mut skips = SkipWarnings::new(sink.skip_note());
    let mut last_lag_report: Option<Instant> = None;
    // Batches handed to the sink and not yet committed, oldest first.
    let mut handed: VecDeque<Batch> = VecDeque::new();
    let mut report = |committed: Committed, handed: &mut VecDeque<Batch>| {
        for batch in handed.drain(..committed.batches) {
            summary.batches += 1;
            summary.last_commit = Some(Instant::now());
            summary.records += batch.records;
            summary.skipped += batch.skipped;
            let committed_at = now_millis();
            for produced in &batch.produced_at {
                summary.latencies.record(committed_at - produced);
            }
            tracing::debug!(
                partition,
                records = batch.records,
                offset = batch.next_offset,
                "batch committed"
            );
            report_position(&consumer, options, partition, batch.next_offset);
            if last_lag_report.is_none_or(|at| at.elapsed() >= LAG_REPORT_EVERY) {
                report_lag(&consumer, &options.topic, partition, batch.next_offset);
                last_lag_report = Some(Instant::now());
            }
        }
        committed.interrupted
    };
    loop {
        let next = next_batch(
            &queue,
            options,
            partition,
            skip_below,
            &mut position,
            &mut sink,
            &mut skips,
            shutdown,
        )
        .await?;
        let committed = match next {
            Next::Batch(batch) => {
                let next_offset = batch.next_offset;
                handed.push_back(batch);
                sink.commit(next_offset, shutdown).await?
            }
            Next::UploadEnded => sink.settle(shutdown).await?,
            Next::Stop => break,
        };
        if report(committed, &mut handed) {
            break;
        }
    }
    let committed = sink.finish(shutdown).await?;
    report(committed, &mut handed);
    skips.flush(partition);
    summary.state = sink.describe();
    tracing::info!(
        partition,
        batches = summary.batches,
        records = summary.records,
        skipped = summary.skipped,
        "stopped"
    );
    Ok(summary)
}

/// Waits up to `wait` for `topic` to exist; returns its number of
/// partitions, or `None` if shut down first. If the broker could not be
/// reached at all, that is the error, not a missing topic.
pub(crate) async fn wait_for_topic<C: Consumer<ClientLog>>(
    consumer: &C,
    topic: &str,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<usize>> {
    let started = Instant::now();
    let mut logged = false;
    loop {
        // Short asks, so a stop is not held up by one that cannot be answered.
        let ask = wait
            .saturating_sub(started.elapsed())
            .clamp(Duration::from_millis(500), Duration::from_secs(2));
        let answer = tokio::task::block_in_place(|| topic::partition_count(consumer, topic, ask));
        let unreachable = match &answer {
            Ok(count) if *count > 0 => return Ok(Some(*count)),
            Ok(_) => None,
            Err(err) => err
                .rdkafka_error_code()
                .filter(|code| topic::is_unreachable(*code))
                .map(|_| err.clone()),
        };
        if !logged {
            let reason = match &answer {
                Err(err) => err.to_string(),
                Ok(_) => "topic does not exist yet".to_string(),
            };
            tracing::warn!(%topic, %reason, "waiting for the topic");
            logged = true;
        }
        if started.elapsed() >= wait {
            return Err(match unreachable {
                Some(source) => Error::Unreachable {
                    brokers: consumer.context().brokers().to_string(),
                    waited: wait,
                    source,
                },
                None => Error::NoTopic {
                    topic: topic.to_string(),
                    waited: wait,
                },
            });
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = shutdown.cancelled() => return Ok(None),
        }
    }
}

/// Collects the next batch: waits for a first message, then takes what is
/// available (or arrives within `max_wait`) up to `max_records`; when draining
/// (`--exit-when-idle`) it also ends at the end of the partition, since nothing
/// more is expected. Waiting for a batch's first record, it returns early
/// when a batch file being written is written, so that batch is committed
/// without waiting for more records.
#[allow(clippy::too_many_arguments)]
async fn next_batch(
    queue: &PartitionQueue,
    options: &ConsumerOptions,
    partition: i32,
    skip_below: i64,
    position: &mut i64,
    sink: &mut Sink,
    skips: &mut SkipWarnings,
    shutdown: &CancellationToken,
) -> Result<Next> {
    let mut batch = Batch::default();
    let mut deadline = None;
    let mut report = Report::default();
    let mut polls = 0u64;
    while batch.taken() < options.batch.max_records.max(1) as u64 {
        polls += 1;
        let received = match deadline {
            None => first_message(queue, options, partition, sink.upload_ended(), shutdown).await,
            Some(deadline) => next_message(queue, options, shutdown, deadline, polls).await,
        };
        let message = match received {
            Received::Message(message) => message,
            Received::BatchComplete => break,
            Received::Return(next) => return Ok(next),
        };
        let message = match message {
            Ok(message) => message,
            // Nothing more to wait for: a batch that has records is complete.
            Err(KafkaError::PartitionEOF(_)) if batch.taken() > 0 => break,
            Err(KafkaError::PartitionEOF(_)) => continue,
            // Apache Kafka's out-of-range answer reaches us as AutoOffsetReset
            // (auto.offset.reset is "error"); tansu's as OffsetOutOfRange. The
            // start was checked against the partition, so a position lost
            // while running means the topic went away under us.
            Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset,
            )) => {
                return Err(Error::TopicRecreated {
                    partition,
                    offset: *position,
                    start_over: options.output.start_over(),
                });
            }
            Err(err) => {
                // Transient broker trouble; librdkafka reconnects by itself.
                tracing::warn!(partition, error = %err, "consumer error; retrying");
                continue;
            }
        };
        // Offsets only move forward: the fetch may start before the resume
        // point (see `topic::scan`), and a record delivered again must not
        // be written twice.
        if message.offset() < *position {
            if message.offset() >= skip_below {
                tracing::warn!(
                    partition,
                    offset = message.offset(),
                    expected = *position,
                    "dropping a record delivered twice"
                );
            }
            continue;
        }
        *position = message.offset() + 1;
        match sink.add(
            &mut report,
            message.key(),
            message.payload(),
            message.offset(),
        ) {
            Ok(()) => {
                batch.records += 1;
                batch.produced_at.extend(message.timestamp().to_millis());
            }
            Err(reason) => {
                batch.skipped += 1;
                skips.warn(partition, message.offset(), &reason);
            }
        }
        if deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + options.batch.max_wait);
        }
    }
    batch.next_offset = *position;
    Ok(Next::Batch(batch))
}

/// What waiting for the next message of a batch gave.
enum Received<'a> {
    Message(rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'a>>),
    /// The batch being collected is complete: its time is up, the partition
    /// went idle under `--exit-when-idle`, or shutdown came.
    BatchComplete,
    /// Before a batch's first record: what the partition does instead.
    Return(Next),
}

/// A batch's first message: waiting for it may also end in a stop (shutdown,
/// or idle under `--exit-when-idle`) or in a written upload to commit.
async fn first_message<'a>(
    queue: &'a PartitionQueue,
    options: &ConsumerOptions,
    partition: i32,
    upload_ended: impl std::future::Future<Output = ()>,
    shutdown: &CancellationToken,
) -> Received<'a> {
    let idle = options.exit_when_idle.unwrap_or(Duration::MAX);
    tokio::select! {
        biased;
        () = shutdown.cancelled() => Received::Return(Next::Stop),
        () = upload_ended => Received::Return(Next::UploadEnded),
        message = tokio::time::timeout(idle, queue.recv()) => match message {
            Ok(message) => Received::Message(message),
            Err(_) => {
                tracing::info!(partition, "no new records; stopping as asked (--exit-when-idle)");
                Received::Return(Next::Stop)
            }
        },
    }
}

/// A later message of the batch that must be complete by `deadline`.
async fn next_message<'a>(
    queue: &'a PartitionQueue,
    options: &ConsumerOptions,
    shutdown: &CancellationToken,
    deadline: tokio::time::Instant,
    polls: u64,
) -> Received<'a> {
    // The next message is usually waiting already: take it without the
    // select and timer below (3-5% more records/s in one process, measured).
    // A shutdown or a passed deadline goes the long way, which handles them;
    // both are looked at every 64 messages (a clock read and a lock per
    // record stood out in profiles). Now and then the task yields, so a
    // partition in full flow does not hold a worker.
    if !polls.is_multiple_of(64)
        || (!shutdown.is_cancelled() && tokio::time::Instant::now() < deadline)
    {
        if polls.is_multiple_of(1024) {
            tokio::task::yield_now().await;
        }
        if let Some(message) = already_ready(queue.recv()) {
            return Received::Message(message);
        }
    }
    // A shutdown ends the batch early; it is still committed. So does
    // running idle under --exit-when-idle: the batch is committed, and the
    // next one stops the partition.
    let until = options.exit_when_idle.map_or(deadline, |idle| {
        deadline.min(tokio::time::Instant::now() + idle)
    });
    tokio::select! {
        biased;
        () = shutdown.cancelled() => Received::BatchComplete,
        message = tokio::time::timeout_at(until, queue.recv()) => match message {
            Ok(message) => Received::Message(message),
            Err(_) => Received::BatchComplete,
        },
    }
}

/// The output of `future` if it is ready at once, without waiting or waking.
fn already_ready<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// Warnings for skipped messages: one per message, with its offset, up to
/// `SkipWarnings::PER_MINUTE` a minute per partition; beyond that they are
/// counted, and the count is told once the minute is over (or at the stop).
/// A topic full of bad messages then cannot drown the log.
struct SkipWarnings {
    note: String,
    since: Option<Instant>,
    warned: u32,
    unwarned: u64,
}

impl SkipWarnings {
    const PER_MINUTE: u32 = 10;

    fn new(note: String) -> Self {
        Self {
            note,
            since: None,
            warned: 0,
            unwarned: 0,
        }
    }

    fn warn(&mut self, partition: i32, offset: i64, reason: &str) {
        if self
            .since
            .is_none_or(|since| since.elapsed() >= Duration::from_secs(60))
        {
            self.flush(partition);
            self.since = Some(Instant::now());
            self.warned = 0;
        }
        if self.warned < Self::PER_MINUTE {
            self.warned += 1;
            tracing::warn!(partition, offset, %reason, "{}", self.note);
        } else {
            self.unwarned += 1;
        }
    }

    /// Tells how many skipped messages had no warning of their own.
    fn flush(&mut self, partition: i32) {
        if self.unwarned > 0 {
            tracing::warn!(
                partition,
                count = self.unwarned,
                "{} more messages were skipped without a warning each (at most {} warnings a minute); \
                 the run summary counts them all",
                self.unwarned,
                Self::PER_MINUTE
            );
            self.unwarned = 0;
        }
    }
}

/// Decodes a message value into `report` and checks it is a reading.
pub(crate) fn decode(report: &mut Report, payload: Option<&[u8]>) -> Result<(), String> {
    let payload = payload.ok_or("message has no value")?;
    report.decode_from(payload).map_err(|err| err.to_string())?;
    if report.station_id.is_empty() {
        return Err("station_id is empty".into());
    }
    if !is_iso_date(&report.date) {
        return Err(format!("date {:?} is not YYYY-MM-DD", report.date));
    }
    Ok(())
}

fn is_iso_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Tells the consumer group where we are, for lag tools; never read back.
fn report_position(
    consumer: &PartitionConsumer,
    options: &ConsumerOptions,
    partition: i32,
    next_offset: i64,
) {
    let topic = &options.topic;
    if options.subscribe {
        // A group member's commits are refused while the group rebalances;
        // librdkafka's auto-commit sends the stored offset until one is
        // taken (and once more when the partition is taken away).
        // (A list, because storing one offset by itself stores the one after it.)
        let mut position = TopicPartitionList::new();
        let stored = position
            .add_partition_offset(topic, partition, Offset::Offset(next_offset))
            .and_then(|()| consumer.store_offsets(&position));
        if let Err(err) = stored {
            tracing::debug!(partition, error = %err, "could not store the position for the group");
        }
        return;
    }
    let mut position = TopicPartitionList::new();
    if position
        .add_partition_offset(topic, partition, Offset::Offset(next_offset))
        .is_ok()
    {
        if let Err(err) = consumer.commit(&position, CommitMode::Async) {
            tracing::debug!(partition, error = %err, "could not report the position to the group");
        }
    }
}

/// How often (after its first batch) each partition logs how far behind the end of the partition it is.
const LAG_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Logs the committed offset and the lag: records in the partition after it.
/// (tansu reports a high watermark that can trail the real end by up to one
/// record batch, so there the figure can be low by that much.)
fn report_lag(consumer: &PartitionConsumer, topic: &str, partition: i32, next_offset: i64) {
    let watermarks = tokio::task::block_in_place(|| {
        consumer.fetch_watermarks(topic, partition, Duration::from_secs(2))
    });
    match watermarks {
        Ok((_, high)) => tracing::info!(
            partition,
            offset = next_offset,
            lag = (high - next_offset).max(0),
            "committed"
        ),
        Err(err) => tracing::debug!(partition, error = %err, "could not read the partition's end"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_reports_become_records() {
        let good = Report {
            date: "2000-01-01".into(),
            degrees: 1.5,
            station_id: "StationA".into(),
        };
        let mut report = Report::default();
        decode(&mut report, Some(&good.to_bytes())).unwrap();
        assert_eq!(report, good);
        assert!(decode(&mut report, None).is_err());
        assert!(decode(&mut report, Some(b"\xff\xff\xff")).is_err());
        assert!(
            decode(&mut report, Some(b"")).is_err(),
            "an empty value decodes to an empty Report, which is not a reading"
        );
        let bad_date = Report {
            date: "01/01/2000".into(),
            ..good.clone()
        };
        assert!(decode(&mut report, Some(&bad_date.to_bytes())).is_err());
    }

    #[test]
    fn a_reused_report_keeps_nothing_of_the_previous_record() {
        let long = Report {
            date: "2000-01-01".into(),
            degrees: 1.5,
            station_id: "StationWithALongName".into(),
        };
        let short = Report {
            date: "2000-01-02".into(),
            degrees: 0.0,
            station_id: "S".into(),
        };
        let mut report = Report::default();
        decode(&mut report, Some(&long.to_bytes())).unwrap();
        decode(&mut report, Some(&short.to_bytes())).unwrap();
        assert_eq!(report, short, "degrees 0.0 is not encoded at all in proto3");
    }
}
