//! How far the committed output trails the topic, where the broker can be reached.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use topic::{ClientLog, KafkaSettings};

/// How long one partition's end may take to arrive before the broker counts as unreachable.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct LagProbe {
    topic: String,
    client: Arc<BaseConsumer<ClientLog>>,
}

impl LagProbe {
    pub fn new(settings: &KafkaSettings, topic: &str) -> Result<Self, String> {
        let client = settings
            .assigned_consumer_config("dashboard")
            .create_with_context(settings.client_log())
            .map_err(|err| {
                format!(
                    "cannot create a Kafka client for {}: {err}",
                    settings.brokers
                )
            })?;
        Ok(Self {
            topic: topic.to_string(),
            client: Arc::new(client),
        })
    }

    /// Records in each partition after `next_offset`, the committed position.
    /// tansu reports a high watermark that can trail the real end by up to one
    /// record batch, so there the figure can be low by that much.
    pub async fn lag(&self, positions: Vec<(i32, i64)>) -> Result<BTreeMap<i32, i64>, String> {
        let probe = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut lags = BTreeMap::new();
            for (partition, next_offset) in positions {
                let (_, high) = probe
                    .client
                    .fetch_watermarks(&probe.topic, partition, WATERMARK_TIMEOUT)
                    .map_err(|err| {
                        format!("broker unreachable or partition {partition} unknown: {err}")
                    })?;
                lags.insert(partition, (high - next_offset).max(0));
            }
            Ok(lags)
        })
        .await
        .map_err(|err| err.to_string())?
    }
}
