//! One partition's loop: resume where the sink's committed state says, collect
//! a batch, have the sink commit it together with the next offset, repeat.

use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use report::Report;
use tokio_util::sync::CancellationToken;
use topic::{KafkaSettings, QuietEnd};

type PartitionConsumer = StreamConsumer<QuietEnd>;

use crate::sink::Sink;
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

/// A batch as read from the partition.
struct Batch {
    /// Valid records, handed to the sink as they arrive.
    records: u64,
    /// Producer timestamps (ms since the epoch) of the records, where known.
    produced_at: Vec<i64>,
    skipped: u64,
    next_offset: i64,
}

pub(crate) async fn consume(
    settings: &KafkaSettings,
    options: &ConsumerOptions,
    partition: i32,
    shutdown: &CancellationToken,
) -> Result<PartitionSummary> {
    let mut sink = Sink::open(options, partition).await?;
    let mut config = settings.assigned_consumer_config(&options.group);
    if options.exit_when_idle.is_some() {
        // Draining: reaching the end of the partition ends a batch early (see `next_batch`).
        config.set("enable.partition.eof", "true");
    }
    let consumer: PartitionConsumer = config.create_with_context(QuietEnd)?;
    let mut summary = PartitionSummary {
        partition,
        ..Default::default()
    };

    let Some((low, _high)) = wait_for_partition(&consumer, options, partition, shutdown).await?
    else {
        summary.state = sink.describe();
        return Ok(summary);
    };
    let (start, skip_below) = match sink.resume_offset() {
        Some(offset) => {
            let fetch_from = tokio::task::block_in_place(|| {
                topic::resume_fetch_offset(settings, &options.topic, partition, offset, low)
            })?;
            let Some(fetch_from) = fetch_from else {
                return Err(Error::OffsetOutOfRange {
                    path: sink.state_path(),
                    partition,
                    offset,
                    low,
                });
            };
            (Offset::Offset(fetch_from), offset)
        }
        None => match options.start {
            StartAt::Earliest => (Offset::Beginning, 0),
            StartAt::Latest => (Offset::End, 0),
        },
    };

    // The start offset travels with the assignment itself, so no fetch ever
    // happens from a position the group (or a default) chose.
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&options.topic, partition, start)?;
    consumer.assign(&assignment)?;
    tracing::info!(partition, ?start, "consuming");

    let mut position = skip_below;
    let mut last_lag_report: Option<Instant> = None;
    while let Some(batch) = next_batch(
        &consumer,
        options,
        partition,
        skip_below,
        &mut position,
        &mut sink,
        shutdown,
    )
    .await?
    {
        if !sink.commit(batch.next_offset, shutdown).await? {
            break;
        }
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
        report_position(&consumer, &options.topic, partition, batch.next_offset);
        if last_lag_report.is_none_or(|at| at.elapsed() >= LAG_REPORT_EVERY) {
            report_lag(&consumer, &options.topic, partition, batch.next_offset);
            last_lag_report = Some(Instant::now());
        }
    }
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

/// Waits for the topic to have the partition; returns its low and high
/// watermarks, or `None` if shut down first.
async fn wait_for_partition(
    consumer: &PartitionConsumer,
    options: &ConsumerOptions,
    partition: i32,
    shutdown: &CancellationToken,
) -> Result<Option<(i64, i64)>> {
    let Some(count) =
        wait_for_topic(consumer, &options.topic, options.topic_wait, shutdown).await?
    else {
        return Ok(None);
    };
    if partition < 0 || partition as usize >= count {
        return Err(Error::UnknownPartition {
            topic: options.topic.clone(),
            partition,
            count,
            max: count - 1,
        });
    }
    let watermarks = tokio::task::block_in_place(|| {
        consumer.fetch_watermarks(&options.topic, partition, Duration::from_secs(10))
    })?;
    Ok(Some(watermarks))
}

/// Waits up to `wait` for `topic` to exist; returns its number of
/// partitions, or `None` if shut down first.
pub(crate) async fn wait_for_topic<X: rdkafka::consumer::ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    topic: &str,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<usize>> {
    let started = Instant::now();
    let mut logged = false;
    loop {
        let metadata = tokio::task::block_in_place(|| {
            consumer.fetch_metadata(Some(topic), Duration::from_secs(5))
        });
        let count = match &metadata {
            Ok(metadata) => metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map_or(0, |t| t.partitions().len()),
            Err(_) => 0,
        };
        if count > 0 {
            return Ok(Some(count));
        }
        if started.elapsed() >= wait {
            return Err(Error::NoTopic {
                topic: topic.to_string(),
                waited: wait,
            });
        }
        if !logged {
            let reason = metadata
                .err()
                .map_or_else(|| "topic does not exist yet".to_string(), |e| e.to_string());
            tracing::warn!(%topic, %reason, "waiting for the topic");
            logged = true;
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
/// more is expected. `None` on shutdown.
async fn next_batch(
    consumer: &PartitionConsumer,
    options: &ConsumerOptions,
    partition: i32,
    skip_below: i64,
    position: &mut i64,
    sink: &mut Sink,
    shutdown: &CancellationToken,
) -> Result<Option<Batch>> {
    let mut batch = Batch {
        records: 0,
        produced_at: Vec::new(),
        skipped: 0,
        next_offset: 0,
    };
    let mut taken = 0usize;
    let mut deadline = None;
    while taken < options.batch.max_records.max(1) {
        let message = match deadline {
            None => {
                let idle = options.exit_when_idle.unwrap_or(Duration::MAX);
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return Ok(None),
                    message = tokio::time::timeout(idle, consumer.recv()) => match message {
                        Ok(message) => message,
                        Err(_) => {
                            tracing::info!(partition, "no new records; stopping as asked (--exit-when-idle)");
                            return Ok(None);
                        }
                    },
                }
            }
            // A shutdown ends the batch early; it is still committed. So does
            // running idle under --exit-when-idle: the batch is committed, and
            // the next one stops the partition.
            Some(deadline) => tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                message = tokio::time::timeout_at(
                    options.exit_when_idle.map_or(deadline, |idle| deadline.min(tokio::time::Instant::now() + idle)),
                    consumer.recv(),
                ) => match message {
                    Ok(message) => message,
                    Err(_) => break,
                },
            },
        };
        let message = match message {
            Ok(message) => message,
            // Nothing more to wait for: a batch that has records is complete.
            Err(KafkaError::PartitionEOF(_)) if taken > 0 => break,
            Err(KafkaError::PartitionEOF(_)) => continue,
            Err(err @ KafkaError::MessageConsumption(RDKafkaErrorCode::OffsetOutOfRange)) => {
                return Err(Error::Kafka(err));
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
        taken += 1;
        batch.next_offset = message.offset() + 1;
        match decode(message.payload()) {
            Ok(report) => {
                sink.add(&report, message.offset());
                batch.records += 1;
                batch.produced_at.extend(message.timestamp().to_millis());
            }
            Err(reason) => {
                batch.skipped += 1;
                tracing::warn!(partition, offset = message.offset(), %reason, "skipping a message that is not a valid Report");
            }
        }
        if deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + options.batch.max_wait);
        }
    }
    Ok(Some(batch))
}

fn decode(payload: Option<&[u8]>) -> Result<Report, String> {
    let payload = payload.ok_or("message has no value")?;
    let report = Report::from_bytes(payload).map_err(|err| err.to_string())?;
    if report.station_id.is_empty() {
        return Err("station_id is empty".into());
    }
    if !is_iso_date(&report.date) {
        return Err(format!("date {:?} is not YYYY-MM-DD", report.date));
    }
    Ok(report)
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
fn report_position(consumer: &PartitionConsumer, topic: &str, partition: i32, next_offset: i64) {
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
        assert_eq!(
            decode(Some(&good.to_bytes())).unwrap().station_id,
            "StationA"
        );
        assert!(decode(None).is_err());
        assert!(decode(Some(b"\xff\xff\xff")).is_err());
        assert!(
            decode(Some(b"")).is_err(),
            "an empty value decodes to an empty Report, which is not a reading"
        );
        let bad_date = Report {
            date: "01/01/2000".into(),
            ..good
        };
        assert!(decode(Some(&bad_date.to_bytes())).is_err());
    }
}
