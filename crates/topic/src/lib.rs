//! Kafka client settings shared by every program, and the course's topic set-up.
//!
//! Every producer and consumer is configured here, so that the guarantees the
//! pipeline depends on (acks from all replicas, idempotent retries, the Java
//! client's partitioner, no automatic offset commits) are stated once.

mod client_log;
mod scan;

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

pub use client_log::{is_unreachable, ClientLog, Rebalancing, WARN_EVERY};
pub use scan::{resume_fetch_offset, scan};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid Kafka property {0:?}: expected KEY=VALUE")]
    InvalidProperty(String),
    #[error("cannot create a Kafka client for {brokers}: {source}")]
    Client { brokers: String, source: KafkaError },
    #[error("cannot delete topic {topic}: {source}")]
    DeleteTopic { topic: String, source: KafkaError },
    #[error("cannot create topic {topic}: {source}")]
    CreateTopic { topic: String, source: KafkaError },
    #[error("topic {topic}: {reason}")]
    TopicSpec { topic: String, reason: String },
    #[error("cannot read the metadata of topic {topic}: {source}")]
    Metadata { topic: String, source: KafkaError },
    #[error("topic {topic} does not exist")]
    NoSuchTopic { topic: String },
    #[error("reading partition {partition} of {topic}: {source}")]
    Scan {
        topic: String,
        partition: i32,
        source: KafkaError,
    },
}

/// Messages one process keeps read ahead, shared by the partitions it reads
/// (librdkafka's `queued.min.messages` is per partition, 100,000 by default:
/// one partition keeps it). Four partitions of 100,000 each peaked at
/// 163–170 MiB in one process; 25,000 each at 80–89 MiB (docs/design.md,
/// "Memory").
pub const READ_AHEAD_MESSAGES: usize = 100_000;

/// How long the broker keeps a group member that has stopped heartbeating
/// (kafka-python's default, the course client's; librdkafka's is 45 s).
pub const GROUP_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the broker, plus any librdkafka properties the user passes
/// through (`-X key=value`), applied last so they can override our defaults.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub properties: Vec<(String, String)>,
}

impl KafkaSettings {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            properties: Vec::new(),
        }
    }

    fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// A producer that never loses or duplicates an acknowledged record and
    /// places keys exactly where the Java client and kafka-python would.
    pub fn producer_config(&self) -> ClientConfig {
        self.client_config(&[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            // A record waits for its acknowledgement as long as that takes
            // (librdkafka's defaults: retries without limit, but only for
            // 5 minutes). With a partition leaderless or fewer in-sync
            // replicas than `min.insync.replicas`, the producer holds the
            // records, says so in its log, and delivers them, in order and
            // once, when the brokers are back. Errors that retrying cannot
            // fix still fail the delivery.
            ("message.timeout.ms", "0"),
            // librdkafka's default is CRC32; the course map is Java's murmur2.
            ("partitioner", "murmur2_random"),
            ("linger.ms", "5"),
        ])
    }

    /// A consumer whose position comes from the caller (an assignment with
    /// explicit offsets); the consumer group is only told afterwards, for lag tools.
    pub fn assigned_consumer_config(&self, group: &str) -> ClientConfig {
        self.assigned_consumer_config_for(group, 1)
    }

    /// The same, for a process that reads `partitions` partitions at once:
    /// they share [`READ_AHEAD_MESSAGES`] of read-ahead.
    pub fn assigned_consumer_config_for(&self, group: &str, partitions: usize) -> ClientConfig {
        let read_ahead = (READ_AHEAD_MESSAGES / partitions.max(1)).to_string();
        self.client_config(&assigned_defaults(group, &read_ahead))
    }

    /// A member of `group` that lets the group assign it partitions and
    /// starts each one where its caller says (see [`Rebalancing`]): the
    /// assigned-consumer settings, cooperative rebalancing (a rebalance
    /// moves only the partitions that change owner; the others keep being
    /// consumed), and a member that stopped answering is out after
    /// [`GROUP_SESSION_TIMEOUT`].
    pub fn group_member_config(&self, group: &str, partitions: usize) -> ClientConfig {
        let read_ahead = (READ_AHEAD_MESSAGES / partitions.max(1)).to_string();
        let session_timeout = GROUP_SESSION_TIMEOUT.as_millis().to_string();
        let mut settings = assigned_defaults(group, &read_ahead);
        // Later settings win over the assigned consumer's.
        settings.extend([
            ("partition.assignment.strategy", "cooperative-sticky"),
            // Offsets are stored by the caller once they are durable, and
            // sent from there (a send refused during a rebalance is retried).
            ("enable.auto.commit", "true"),
            ("auto.commit.interval.ms", "1000"),
            ("session.timeout.ms", session_timeout.as_str()),
            ("heartbeat.interval.ms", "3000"),
            ("topic.metadata.refresh.interval.ms", "5000"),
        ]);
        self.client_config(&settings)
    }

    /// A consumer that subscribes and lets the broker assign partitions (its
    /// session times out after [`GROUP_SESSION_TIMEOUT`]).
    pub fn group_consumer_config(&self, group: &str, from_beginning: bool) -> ClientConfig {
        let reset = if from_beginning { "earliest" } else { "latest" };
        self.client_config(&[
            ("group.id", group),
            ("enable.auto.commit", "true"),
            ("auto.offset.reset", reset),
            ("enable.partition.eof", "false"),
            // A subscribed topic that does not exist yet (debug started before
            // the producer, or while the producer recreates the topic) is
            // looked for again at this interval: librdkafka's 5 minutes would
            // leave the reader silent that long once it appears.
            ("topic.metadata.refresh.interval.ms", "5000"),
            // kafka-python's defaults, the course client's: a member that died
            // without leaving (a crashed worker, see program::supervise) holds
            // up the group's next assignment for 10 s instead of librdkafka's 45.
            (
                "session.timeout.ms",
                &GROUP_SESSION_TIMEOUT.as_millis().to_string(),
            ),
            ("heartbeat.interval.ms", "3000"),
        ])
    }

    /// The client context every Kafka client is made with: how librdkafka's
    /// logs and errors reach our log (see [`ClientLog`]).
    pub fn client_log(&self) -> ClientLog {
        ClientLog::new(&self.brokers)
    }

    pub fn admin(&self) -> Result<AdminClient<ClientLog>> {
        self.client_config(&[])
            .create_with_context(self.client_log())
            .map_err(|source| Error::Client {
                brokers: self.brokers.clone(),
                source,
            })
    }
}

/// Parses one `KEY=VALUE` librdkafka property given on the command line.
pub fn parse_property(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(Error::InvalidProperty(text.to_string())),
    }
}

/// The topic layout to (re)create.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// Pause after a real deletion: brokers finish deleting asynchronously.
    pub settle: Duration,
}

impl TopicSpec {
    /// `name` in the course's shape, with the producer's defaults: 4
    /// partitions, one replica, 3 s to settle after a deletion.
    pub fn course(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            partitions: report::PARTITIONS,
            replication: 1,
            settle: Duration::from_secs(3),
        }
    }
}

/// Deletes `spec.name` if it exists (a missing topic is fine), waits
/// `spec.settle` after a real deletion, then creates it. Returns whether a
/// topic was deleted.
pub async fn reset_topic(settings: &KafkaSettings, spec: &TopicSpec) -> Result<bool> {
    if spec.partitions < 1 {
        return Err(Error::TopicSpec {
            topic: spec.name.clone(),
            reason: "partitions must be at least 1".into(),
        });
    }
    if spec.replication < 1 {
        return Err(Error::TopicSpec {
            topic: spec.name.clone(),
            reason: "replication must be at least 1".into(),
        });
    }
    let admin = settings.admin()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));

    let deleted = delete_topic(&admin, &options, &spec.name).await?;
    if deleted {
        tracing::info!(topic = %spec.name, "deleted existing topic");
        tokio::time::sleep(spec.settle).await;
    }
    create_topic(&admin, &options, spec).await?;
    tracing::info!(topic = %spec.name, partitions = spec.partitions, replication = spec.replication, "created topic");
    Ok(deleted)
}

/// An assignment of partitions `0..partitions` of `topic`, each from its first record.
pub fn from_beginning(
    topic: &str,
    partitions: i32,
) -> rdkafka::error::KafkaResult<rdkafka::TopicPartitionList> {
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)?;
    }
    Ok(assignment)
}

/// How long a partition may have no leader before asking for its
/// watermarks is an error: right after a topic is created, and during a
/// leader election, the broker answers NotLeaderForPartition or
/// LeaderNotAvailable for a moment.
pub const LEADER_PATIENCE: Duration = Duration::from_secs(30);

/// Whether a watermark or metadata request failed only because the
/// partition's leader is not there yet (or the request timed out), so asking
/// again is right.
pub fn is_leader_transient(error: &KafkaError) -> bool {
    let code = match error {
        KafkaError::MetadataFetch(code) | KafkaError::OffsetFetch(code) => *code,
        _ => return false,
    };
    matches!(
        code,
        RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
    )
}

/// A partition's (low, high) watermarks, asked again every 200 ms while the
/// answer is transient (`is_leader_transient`), for up to `patience`; one
/// log line says it is waiting. Blocking.
pub fn watermarks<C, K>(
    consumer: &K,
    topic: &str,
    partition: i32,
    patience: Duration,
) -> std::result::Result<(i64, i64), KafkaError>
where
    C: rdkafka::consumer::ConsumerContext,
    K: rdkafka::consumer::Consumer<C>,
{
    let started = std::time::Instant::now();
    let mut logged = false;
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Err(error) if is_leader_transient(&error) && started.elapsed() < patience => {
                if !logged {
                    tracing::info!(%topic, partition, %error, "the partition has no leader yet; asking again");
                    logged = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            answer => return answer,
        }
    }
}

/// How many partitions `topic` has, as the broker reports them: 0 while it
/// does not exist (or its metadata carries an error, as during creation).
/// Blocking.
pub fn partition_count<X, C>(
    consumer: &C,
    topic: &str,
    timeout: Duration,
) -> rdkafka::error::KafkaResult<usize>
where
    X: rdkafka::consumer::ConsumerContext,
    C: rdkafka::consumer::Consumer<X>,
{
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len()))
}

/// A consumer for metadata and watermark look-ups, nothing assigned.
fn lookup_consumer(
    settings: &KafkaSettings,
    purpose: &str,
) -> Result<rdkafka::consumer::BaseConsumer<ClientLog>> {
    settings
        .assigned_consumer_config(purpose)
        .create_with_context(settings.client_log())
        .map_err(|source| Error::Client {
            brokers: settings.brokers.clone(),
            source,
        })
}

/// The end (high watermark) of each partition of `topic`, in partition order:
/// the offset the next record written to it will get. Blocking.
pub fn end_offsets(settings: &KafkaSettings, topic: &str, timeout: Duration) -> Result<Vec<i64>> {
    let consumer = lookup_consumer(settings, "p7-end-offsets")?;
    let partitions =
        partition_count(&consumer, topic, timeout).map_err(|source| Error::Metadata {
            topic: topic.into(),
            source,
        })?;
    if partitions == 0 {
        return Err(Error::NoSuchTopic {
            topic: topic.into(),
        });
    }
    (0..partitions as i32)
        .map(|partition| {
            watermarks(&consumer, topic, partition, timeout.max(LEADER_PATIENCE))
                .map(|(_, high)| high)
                .map_err(|source| Error::Scan {
                    topic: topic.into(),
                    partition,
                    source,
                })
        })
        .collect()
}

/// The node id of the broker leading `partition` of `topic`, or `None`
/// while it has no leader (during an election). Blocking.
pub fn partition_leader(
    settings: &KafkaSettings,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Option<i32>> {
    use rdkafka::consumer::Consumer;
    let consumer = lookup_consumer(settings, "p7-leader")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|source| Error::Metadata {
            topic: topic.into(),
            source,
        })?;
    let leader = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .and_then(|t| t.partitions().iter().find(|p| p.id() == partition))
        .map(|p| p.leader())
        .filter(|id| *id >= 0);
    Ok(leader)
}

/// Deletes `topic` if it exists; returns whether it did.
pub async fn delete_topic_if_exists(settings: &KafkaSettings, topic: &str) -> Result<bool> {
    let admin = settings.admin()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    delete_topic(&admin, &options, topic).await
}

async fn delete_topic(
    admin: &AdminClient<ClientLog>,
    options: &AdminOptions,
    topic: &str,
) -> Result<bool> {
    let results = admin
        .delete_topics(&[topic], options)
        .await
        .map_err(|source| Error::DeleteTopic {
            topic: topic.into(),
            source,
        })?;
    // One topic was asked for, so there is one result.
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))) | None => Ok(false),
        Some(Err((_, code))) => Err(Error::DeleteTopic {
            topic: topic.into(),
            source: KafkaError::AdminOp(code),
        }),
    }
}

/// Creates the topic, retrying for a while if the broker still reports the
/// old one as existing (deletion is asynchronous on some brokers).
pub async fn create_topic(
    admin: &AdminClient<ClientLog>,
    options: &AdminOptions,
    spec: &TopicSpec,
) -> Result<()> {
    let new_topic = NewTopic::new(
        &spec.name,
        spec.partitions,
        TopicReplication::Fixed(spec.replication),
    );
    let mut attempts = 0;
    loop {
        attempts += 1;
        let results = admin
            .create_topics([&new_topic], options)
            .await
            .map_err(|source| Error::CreateTopic {
                topic: spec.name.clone(),
                source,
            })?;
        match results.into_iter().next() {
            Some(Ok(_)) | None => return Ok(()),
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) if attempts < 20 => {
                tracing::info!(topic = %spec.name, "topic still exists after deletion; retrying creation");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Some(Err((_, code))) => {
                return Err(Error::CreateTopic {
                    topic: spec.name.clone(),
                    source: KafkaError::AdminOp(code),
                })
            }
        }
    }
}

/// The settings of a consumer whose position comes from its caller (see
/// [`KafkaSettings::assigned_consumer_config`]).
fn assigned_defaults<'a>(group: &'a str, read_ahead: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("group.id", group),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("enable.partition.eof", "false"),
        // A position the broker does not have is an error, never a silent jump.
        ("auto.offset.reset", "error"),
        // librdkafka prefetches up to 64 MiB per partition by default; the
        // batch being built already holds the data, so keep the read-ahead
        // small. Each queued message costs two to four times its bytes on
        // the wire. 4 MiB and 2 MiB were measured against this 3 MiB:
        // more memory, or less speed (docs/design.md, "Memory").
        ("queued.max.messages.kbytes", "3072"),
        // A queued message costs librdkafka a few hundred bytes whatever
        // its size, and ours are about 40 bytes on the wire, so the count
        // is what bounds memory when one process reads many partitions.
        ("queued.min.messages", read_ahead),
        // One fetch request serves every partition of the client, and
        // tansu holds it this long when a partition has nothing new: the
        // default 500 ms halved throughput once the partitions shared a
        // client. Much less (25–50 ms) starved batches at course pace on
        // HDFS (measured); 100 ms does neither.
        ("fetch.wait.max.ms", "100"),
        // When that read-ahead is full, librdkafka waits this long before
        // fetching again (default 1 s: a full second's stall per pause).
        ("fetch.queue.backoff.ms", "10"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_leader_or_a_timeout_is_asked_again() {
        for code in [
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::OperationTimedOut,
        ] {
            assert!(
                is_leader_transient(&KafkaError::MetadataFetch(code)),
                "{code:?}"
            );
        }
        for error in [
            KafkaError::MetadataFetch(RDKafkaErrorCode::TopicAuthorizationFailed),
            KafkaError::MetadataFetch(RDKafkaErrorCode::InvalidPartitions),
            KafkaError::ClientCreation("x".into()),
        ] {
            assert!(!is_leader_transient(&error), "{error:?}");
        }
    }

    #[test]
    fn properties_pass_through_and_override_defaults() {
        let mut settings = KafkaSettings::new("127.0.0.1:1");
        settings
            .properties
            .push(parse_property("linger.ms=50").unwrap());
        let config = settings.producer_config();
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("partitioner"), Some("murmur2_random"));
        assert_eq!(config.get("acks"), Some("all"));
    }

    #[test]
    fn a_property_needs_a_key_and_an_equals_sign() {
        assert!(parse_property("linger.ms").is_err());
        assert!(parse_property("=5").is_err());
        assert_eq!(
            parse_property("a=b=c").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
    }
}
