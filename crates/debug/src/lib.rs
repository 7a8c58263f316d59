//! The debug consumer: joins group `debug`, lets the broker assign
//! partitions, and prints one Python-dict line per record. Graders read the
//! first line of stdout, so stdout carries those lines and nothing else, each
//! flushed as it is written; logs go to stderr.

use std::io::Write;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::ClientContext;
use report::{debug_line, Report};
use tokio_util::sync::CancellationToken;
use topic::{ClientLog, KafkaSettings};

pub const GROUP: &str = "debug";

/// How long after its start debug says nothing of a broker it cannot reach
/// or a topic that does not exist yet: started with the stack (`docker compose
/// up -d`, then `debug` at once), it waits for both, and a grader that merges
/// its stderr into stdout must find a record on the first line.
pub const QUIET_START: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct DebugOptions {
    pub topic: String,
    pub group: String,
    /// Start a group with no committed offsets at the beginning of each
    /// partition instead of at its end (the course's debug does not seek back).
    pub from_beginning: bool,
}

/// Prints records to `out` until `shutdown` fires or `out` is closed.
/// Undecodable records are reported on stderr and skipped.
pub async fn run(
    settings: &KafkaSettings,
    options: &DebugOptions,
    out: &mut impl Write,
    shutdown: &CancellationToken,
) -> anyhow::Result<u64> {
    let consumer: StreamConsumer<ClientLog> = settings
        .group_consumer_config(&options.group, options.from_beginning)
        .create_with_context(settings.client_log().quiet_until(QUIET_START))?;
    if program::restarted_after_crash() {
        // The crashed worker is still a member of the group until its session
        // times out. Joining after that forms the group afresh; joining
        // before, tansu 0.6 keeps the dead member as the group's leader and
        // assigns this one nothing, for good.
        let wait = topic::GROUP_SESSION_TIMEOUT + Duration::from_secs(1);
        tracing::warn!(
            ?wait,
            "started again after a crash; waiting out the crashed worker's group session"
        );
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return Ok(0),
        }
    }
    consumer.subscribe(&[&options.topic])?;
    let mut printed = 0u64;
    loop {
        let message = tokio::select! {
            message = consumer.recv() => message,
            () = shutdown.cancelled() => break,
        };
        let message = match message {
            Ok(message) => message,
            Err(err) => {
                // Logged as the client's own errors are: a broker that is
                // not there (debug started before it) at most every 30 s.
                // No pause before the next receive: librdkafka queues one
                // error per failed connection, dozens while a broker starts,
                // and taking them at a pause each kept debug silent for
                // minutes after the broker was up.
                consumer.context().error(err, "while consuming; retrying");
                continue;
            }
        };
        let report = match Report::from_bytes(message.payload().unwrap_or_default()) {
            Ok(report) => report,
            Err(err) => {
                tracing::warn!(partition = message.partition(), offset = message.offset(), error = %err, "skipping a record that is not a Report");
                continue;
            }
        };
        let line = debug_line(&report, message.partition());
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            // The reader went away (a grader closing the pipe): nothing left to do.
            break;
        }
        printed += 1;
    }
    Ok(printed)
}
