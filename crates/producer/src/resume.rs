//! Start-up against the broker: waiting for it, and finding where a previous
//! run stopped by reading the last message of every partition.

use std::time::{Duration, Instant};

use rdkafka::message::BorrowedMessage;

use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use tokio_util::sync::CancellationToken;
use topic::{ClientLog, KafkaSettings, TopicSpec};

use crate::{Cause, Error, Result};

/// Header holding the MySQL row id (ASCII decimal) of every message.
pub const ROW_ID_HEADER: &str = "row-id";

/// Waits until the broker answers a metadata request, logging once while it does not.
pub async fn wait_for_broker(
    settings: &KafkaSettings,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Result<()> {
    let consumer: BaseConsumer<ClientLog> = settings
        .assigned_consumer_config("producer-probe")
        .create_with_context(settings.client_log())
        .map_err(Error::Producer)?;
    let started = Instant::now();
    let mut logged = false;
    loop {
        let probe =
            tokio::task::block_in_place(|| consumer.fetch_metadata(None, Duration::from_secs(3)));
        match probe {
            Ok(_) => {
                if logged {
                    tracing::info!(brokers = %settings.brokers, "broker is reachable");
                }
                return Ok(());
            }
            Err(source) if started.elapsed() >= wait || shutdown.is_cancelled() => {
                return Err(Error::BrokerUnreachable {
                    brokers: settings.brokers.clone(),
                    waited: wait,
                    source,
                });
            }
            Err(err) => {
                if !logged {
                    tracing::warn!(brokers = %settings.brokers, error = %err, "broker is not reachable yet; retrying");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Makes sure the topic exists (creating it if this is the first run) and
/// returns, per partition, the highest row id it holds (0 when empty).
pub async fn prepare_resume(settings: &KafkaSettings, spec: &TopicSpec) -> Result<Vec<i64>> {
    match last_row_ids(settings, &spec.name).await {
        Err(Error::MissingTopic { .. }) => {
            let admin = settings.admin()?;
            let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
            topic::create_topic(&admin, &options, spec).await?;
            tracing::info!(topic = %spec.name, "topic did not exist; created it");
            Ok(vec![0; spec.partitions as usize])
        }
        other => other,
    }
}

/// Per partition of `topic`, the row id in the `row-id` header of its last
/// message (0 for an empty partition).
pub async fn last_row_ids(settings: &KafkaSettings, topic: &str) -> Result<Vec<i64>> {
    let (settings, name) = (settings.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || read_last_row_ids(&settings, &name))
        .await
        .map_err(|join| Error::Resume {
            topic: topic.to_string(),
            cause: join.into(),
        })?
}

fn read_last_row_ids(settings: &KafkaSettings, topic: &str) -> Result<Vec<i64>> {
    let failed = |cause: Cause| Error::Resume {
        topic: topic.to_string(),
        cause,
    };
    let consumer: BaseConsumer<ClientLog> = settings
        .assigned_consumer_config("producer-resume")
        .create_with_context(settings.client_log())
        .map_err(Error::Producer)?;
    let partitions = topic::partition_count(&consumer, topic, Duration::from_secs(10))
        .map_err(|err| failed(err.into()))?;
    if partitions == 0 {
        return Err(Error::MissingTopic {
            topic: topic.to_string(),
        });
    }

    let mut last_ids = vec![0; partitions];
    for (partition, slot) in (0..partitions as i32).zip(last_ids.iter_mut()) {
        let (low, high) = topic::watermarks(&consumer, topic, partition, topic::LEADER_PATIENCE)
            .map_err(|err| failed(format!("partition {partition}: {err}").into()))?;
        if high <= low {
            continue;
        }
        // Read from the reported last record to the real end: some brokers
        // under-report the high watermark (see `topic::scan`).
        let mut missing_header = None;
        topic::scan(
            settings,
            topic,
            partition,
            high - 1,
            Duration::from_secs(2),
            |message| {
                match row_id(message) {
                    Some(id) => *slot = (*slot).max(id),
                    None => missing_header = Some(message.offset()),
                }
                missing_header.is_none()
            },
        )?;
        if let Some(offset) = missing_header {
            return Err(failed(
                format!(
                    "message at partition {partition} offset {offset} has no {ROW_ID_HEADER} header: \
                     the topic was not written by this producer, so it cannot resume; run without --resume"
                )
                .into(),
            ));
        }
    }
    Ok(last_ids)
}

fn row_id(message: &BorrowedMessage<'_>) -> Option<i64> {
    let headers = message.headers()?;
    let value = headers.iter().find(|h| h.key == ROW_ID_HEADER)?.value?;
    std::str::from_utf8(value).ok()?.parse().ok()
}
