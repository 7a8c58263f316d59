//! Reading a partition from a given offset without trusting the broker to
//! handle offsets inside record batches.
//!
//! Kafka answers a fetch that starts inside a record batch with the whole
//! batch and lets the client drop the records before the requested offset.
//! tansu 0.6 instead answers with the *next* batch, silently skipping the rest
//! of the batch the offset falls in, and reports a high watermark of
//! `base offset of the last batch + 1`. Code that resumes at an exact offset
//! therefore first finds a start at or before it from which the record at
//! that offset is really delivered, then drops what comes before. On Kafka
//! the first probe already succeeds, so the cost there is one fetch.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::{ClientLog, Error, KafkaSettings, Result};

/// Reads `partition` from `start`, calling `visit` with each message until it
/// returns `false`, the partition's end is reached, or nothing arrives for `quiet`.
pub fn scan(
    settings: &KafkaSettings,
    topic: &str,
    partition: i32,
    start: i64,
    quiet: Duration,
    mut visit: impl FnMut(&BorrowedMessage<'_>) -> bool,
) -> Result<()> {
    let failed = |source: KafkaError| Error::Scan {
        topic: topic.to_string(),
        partition,
        source,
    };
    let mut config = settings.assigned_consumer_config("scan");
    config
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "error");
    let consumer: BaseConsumer<ClientLog> = config
        .create_with_context(settings.client_log())
        .map_err(failed)?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(start))
        .map_err(failed)?;
    consumer.assign(&assignment).map_err(failed)?;

    let mut last_activity = Instant::now();
    while last_activity.elapsed() < quiet {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                last_activity = Instant::now();
                if !visit(&message) {
                    return Ok(());
                }
            }
            // The end of the partition, however the broker words it.
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(()),
            // A start past the end: tansu answers OffsetOutOfRange; Apache
            // Kafka's answer makes librdkafka try auto.offset.reset, which is
            // "error" here, and report AutoOffsetReset instead.
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset,
            ))) => return Ok(()),
            // A node of the cluster down or a leader moving: librdkafka
            // reconnects and follows the new leader by itself.
            Some(Err(KafkaError::MessageConsumption(code))) if transient(code) => {
                tracing::debug!(topic, partition, error = %code, "scan: transient broker error")
            }
            Some(Err(err)) => return Err(failed(err)),
        }
    }
    Ok(())
}

/// Errors a client recovers from by itself once the cluster does.
fn transient(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::RequestTimedOut
    )
}

/// Where to fetch from so that the records from `next` on are all delivered,
/// having checked that the record at `next - 1` (the last one a checkpoint
/// covers) still exists. `None` if it does not: the topic was recreated or
/// truncated, and resuming would silently skip or repeat data.
pub fn resume_fetch_offset(
    settings: &KafkaSettings,
    topic: &str,
    partition: i32,
    next: i64,
    low: i64,
) -> Result<Option<i64>> {
    if next <= low {
        return Ok((next == low).then_some(low));
    }
    let last = next - 1;
    let mut back = 1i64;
    loop {
        let start = (next - back).max(low);
        let mut first = None;
        let mut found_last = false;
        scan(
            settings,
            topic,
            partition,
            start,
            Duration::from_secs(2),
            |message| {
                first.get_or_insert(message.offset());
                found_last |= message.offset() == last;
                message.offset() < last
            },
        )?;
        match first {
            Some(first) if first <= last => return Ok(found_last.then_some(start)),
            _ if start == low => return Ok(None),
            _ => back = back.saturating_mul(2),
        }
    }
}
