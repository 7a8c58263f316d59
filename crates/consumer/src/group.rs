//! Group mode (`consumer --subscribe`): the partitions are handed out by
//! Kafka's group protocol instead of being named on the command line, so any
//! number of consumers on any hosts share the topic, and a partition whose
//! consumer dies or stalls moves to another one.
//!
//! A consumer is one member client with cooperative rebalancing: a rebalance
//! moves only the partitions that change owner. Its rebalances go through
//! [`Members`]:
//! - **given a partition**, before anything of it is fetched, the member opens
//!   the partition's sink, which claims the partition in the checkpoint
//!   directory on HDFS and fences every earlier owner (`owner.rs`), and reads
//!   the checkpoint; the fetch then starts at the checkpoint's offset, exactly
//!   as `consumer N` does;
//! - **about to lose one**, the member stops its task, which commits the batch
//!   it holds, and waits for it ([`REVOKE_WAIT`] at most) before the group may
//!   give the partition to another member.
//!
//! Kafka's protocol alone cannot stop a member that was paused past its
//! session (SIGSTOP, a long stall, a cut link) from finishing a commit after
//! its partitions went elsewhere: it learns that it lost them only once it
//! runs again. The fencing on HDFS does: the new owner's claim renamed the
//! old owner's directory away, so the old owner's next rename fails on the
//! NameNode and its task ends without committing. The lost partition is
//! then left to its new owner; the run goes on with the others.
//!
//! Each partition's records reach its task through a queue split off the
//! member client for every partition of the topic before it subscribes, as
//! in `partition::consume_all`.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::TopicPartitionList;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use topic::{ClientLog, KafkaSettings, Rebalancing};

use crate::partition::{self, PartitionConsumer, PartitionQueue, Plan};
use crate::sink::Sink;
use crate::{ConsumerOptions, Error, PartitionSummary, Result};

/// The longest a member waits, when a partition is taken from it, for the
/// partition's task to commit what it holds and stop. Past it the partition
/// goes anyway; the new owner's claim fences whatever the task still tries.
const REVOKE_WAIT: Duration = Duration::from_secs(60);

/// Consumes the partitions the group `options.group` gives this member until
/// `stop` fires or a partition fails for another reason than losing it.
pub(crate) async fn consume_group(
    settings: &KafkaSettings,
    options: &Arc<ConsumerOptions>,
    stop: &CancellationToken,
) -> Result<Vec<PartitionSummary>> {
    let lookups: Arc<BaseConsumer<ClientLog>> = Arc::new(
        settings
            .assigned_consumer_config("metadata")
            .create_with_context(settings.client_log())?,
    );
    let Some(count) =
        partition::wait_for_topic(&*lookups, &options.topic, options.topic_wait, stop).await?
    else {
        return Ok(Vec::new());
    };
    let (events, mut assigned) = mpsc::unbounded_channel();
    let members = Arc::new(Members {
        options: Arc::clone(options),
        settings: settings.clone(),
        lookups,
        count,
        runtime: tokio::runtime::Handle::current(),
        stop: stop.clone(),
        slots: Mutex::new(HashMap::new()),
        events,
    });
    let context = settings
        .client_log()
        .rebalancing(Arc::clone(&members) as Arc<dyn Rebalancing>);
    let consumer: Arc<PartitionConsumer> = Arc::new(
        settings
            .group_member_config(&options.group, count)
            .create_with_context(context)?,
    );
    let mut queues = HashMap::new();
    for partition in 0..count as i32 {
        queues.insert(
            partition,
            partition::split_queue(&consumer, &options.topic, partition)?,
        );
    }
    consumer.subscribe(&[&options.topic])?;
    tracing::info!(group = %options.group, topic = %options.topic, "joined the group; waiting for partitions");

    let mut tasks: JoinSet<(i32, Result<PartitionSummary>)> = JoinSet::new();
    let mut summaries: HashMap<i32, PartitionSummary> = HashMap::new();
    let mut first_error = None;
    // Under --exit-when-idle: when to stop, while no partition task runs.
    let idle_deadline = || {
        options
            .exit_when_idle
            .map(|idle| tokio::time::Instant::now() + idle)
    };
    let mut stop_idle = idle_deadline();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = async { tokio::time::sleep_until(stop_idle.unwrap()).await }, if stop_idle.is_some() => {
                tracing::info!("no partition has had new records; stopping as asked (--exit-when-idle)");
                break;
            }
            Some(partition) = assigned.recv() => {
                let (plan, cancel, done) = match members.take_ready(partition, &consumer, &queues) {
                    Ok(Some(ready)) => ready,
                    Ok(None) => continue,
                    Err(err) => {
                        first_error.get_or_insert(err);
                        break;
                    }
                };
                let options = Arc::clone(options);
                stop_idle = None;
                tasks.spawn(async move {
                    let _done = done;
                    let result = partition::consume_partition(&options, plan, &cancel).await;
                    (partition, result)
                });
            }
            received = consumer.recv() => match received {
                Ok(message) => {
                    first_error.get_or_insert(Error::Task {
                        partition: message.partition(),
                        cause: format!(
                            "offset {} arrived outside its partition's queue; stopped without committing it",
                            message.offset()
                        )
                        .into(),
                    });
                    break;
                }
                Err(err) => tracing::warn!(error = %err, "consumer error; librdkafka retries by itself"),
            },
            Some(joined) = tasks.join_next() => {
                if let Err(err) = ended(joined, &mut summaries) {
                    first_error.get_or_insert(err);
                    break;
                }
                if tasks.is_empty() {
                    stop_idle = idle_deadline();
                }
            }
        }
    }
    // Every task stops with what it holds committed; then the member leaves
    // the group, so the others are given its partitions at once.
    stop.cancel();
    while let Some(joined) = tasks.join_next().await {
        if let Err(err) = ended(joined, &mut summaries) {
            first_error.get_or_insert(err);
        }
    }
    // Their slots go first: nothing is left to wait for when the group
    // takes the partitions back as the member leaves.
    members
        .slots
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    let leave = Arc::clone(&consumer);
    tokio::task::spawn_blocking(move || leave.unsubscribe())
        .await
        .map_err(Error::Join)?;
    drop(queues);
    drop(consumer);
    match first_error {
        Some(err) => Err(err),
        None => {
            let mut summaries: Vec<_> = summaries.into_values().collect();
            summaries.sort_by_key(|s| s.partition);
            Ok(summaries)
        }
    }
}

/// A partition's task ended: what it did is added to `summaries`. A task
/// that was fenced lost its partition to another consumer, which is how
/// group mode goes on, not an error.
fn ended(
    joined: std::result::Result<(i32, Result<PartitionSummary>), tokio::task::JoinError>,
    summaries: &mut HashMap<i32, PartitionSummary>,
) -> Result<()> {
    match joined.map_err(Error::Join)? {
        (_, Ok(summary)) => merge(summaries, summary),
        (partition, Err(Error::Store(err @ batch_store::Error::Fenced { .. }))) => {
            tracing::warn!(
                partition,
                "another consumer took the partition over; left it: {err}"
            );
        }
        (_, Err(err)) => return Err(err),
    }
    Ok(())
}

/// Adds what one run of a partition did to what earlier runs of it did (a
/// partition can be lost and given back during one process).
fn merge(summaries: &mut HashMap<i32, PartitionSummary>, summary: PartitionSummary) {
    let total = summaries
        .entry(summary.partition)
        .or_insert_with(|| PartitionSummary {
            partition: summary.partition,
            ..Default::default()
        });
    total.batches += summary.batches;
    total.records += summary.records;
    total.skipped += summary.skipped;
    total.state = summary.state;
    total.latencies.merge(&summary.latencies);
    total.last_commit = total.last_commit.max(summary.last_commit);
}

/// The member's side of its rebalances, and the partitions it holds.
struct Members {
    options: Arc<ConsumerOptions>,
    settings: KafkaSettings,
    /// A client outside the group, for watermarks.
    lookups: Arc<BaseConsumer<ClientLog>>,
    count: usize,
    runtime: tokio::runtime::Handle,
    stop: CancellationToken,
    slots: Mutex<HashMap<i32, Slot>>,
    /// Partitions whose slot is ready for a task.
    events: mpsc::UnboundedSender<i32>,
}

/// A partition this member was given.
struct Slot {
    /// Stops the partition's task.
    cancel: CancellationToken,
    done: Arc<Done>,
    /// What the task starts from, until the task takes it.
    ready: Option<Result<(Sink, i64)>>,
}

impl Members {
    /// The task of a partition given to this member: its plan, stop token and
    /// done signal; `None` if the partition was taken away again before it ran.
    #[allow(clippy::type_complexity)]
    fn take_ready(
        &self,
        partition: i32,
        consumer: &Arc<PartitionConsumer>,
        queues: &HashMap<i32, Arc<PartitionQueue>>,
    ) -> Result<Option<(Plan, CancellationToken, DoneOnDrop)>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = slots.get_mut(&partition) else {
            return Ok(None);
        };
        let Some(ready) = slot.ready.take() else {
            return Ok(None);
        };
        let done = DoneOnDrop(Arc::clone(&slot.done));
        let (sink, skip_below) = match ready {
            Ok(ready) => ready,
            Err(Error::Store(err @ batch_store::Error::Fenced { .. })) => {
                tracing::warn!(partition, "could not claim the partition: {err}");
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        let queue = queues.get(&partition).cloned().ok_or_else(|| Error::Task {
            partition,
            cause: "the group gave a partition the topic did not have at the start".into(),
        })?;
        Ok(Some((
            Plan {
                partition,
                sink,
                consumer: Arc::clone(consumer),
                queue,
                skip_below,
            },
            slot.cancel.clone(),
            done,
        )))
    }

    /// Opens the partition's sink (claiming it on HDFS, which fences its
    /// earlier owners) and finds where its fetch starts.
    async fn open(&self, partition: i32) -> Result<(Sink, partition::Start)> {
        let sink = Sink::open(&self.options, partition).await?;
        let (lookups, settings, options, count) = (
            Arc::clone(&self.lookups),
            self.settings.clone(),
            Arc::clone(&self.options),
            self.count,
        );
        let (resume, state_path) = (sink.resume_offset(), sink.state_path());
        let start = tokio::task::spawn_blocking(move || {
            partition::start_of(
                &*lookups, &settings, &options, partition, count, resume, state_path,
            )
        })
        .await
        .map_err(Error::Join)??;
        Ok((sink, start))
    }
}

impl Rebalancing for Members {
    fn assigning(&self, assignment: &mut TopicPartitionList) {
        let given: Vec<i32> = assignment
            .elements()
            .iter()
            .filter(|e| e.topic() == self.options.topic)
            .map(|e| e.partition())
            .collect();
        if given.is_empty() {
            return;
        }
        tracing::info!(partitions = ?given, "given by the group");
        // On a thread of its own: this runs inside the runtime (in the
        // client's poll), where a blocking wait on async work cannot start.
        let opened = tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        self.runtime.block_on(futures::future::join_all(
                            given.iter().map(|&partition| self.open(partition)),
                        ))
                    })
                    .join()
            })
        });
        let opened = match opened {
            Ok(opened) => opened,
            Err(_) => given
                .iter()
                .map(|&partition| {
                    Err(Error::Task {
                        partition,
                        cause: "opening the partition panicked".into(),
                    })
                })
                .collect(),
        };
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        for (&partition, opened) in given.iter().zip(opened) {
            let ready = match opened {
                Ok((sink, start)) => {
                    let set = assignment.set_partition_offset(
                        &self.options.topic,
                        partition,
                        start.fetch,
                    );
                    if let Err(err) = set {
                        tracing::warn!(partition, error = %err, "could not set the start offset");
                    }
                    tracing::info!(partition, start = ?start.fetch, "consuming");
                    Ok((sink, start.skip_below))
                }
                Err(err) => Err(err),
            };
            slots.insert(
                partition,
                Slot {
                    cancel: self.stop.child_token(),
                    done: Arc::new(Done::default()),
                    ready: Some(ready),
                },
            );
            let _ = self.events.send(partition);
        }
    }

    fn revoking(&self, revoked: &TopicPartitionList) {
        let taken: Vec<(i32, Slot)> = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            revoked
                .elements()
                .iter()
                .filter_map(|e| slots.remove(&e.partition()).map(|s| (e.partition(), s)))
                .collect()
        };
        if taken.is_empty() {
            return;
        }
        let partitions: Vec<i32> = taken.iter().map(|(p, _)| *p).collect();
        tracing::info!(
            ?partitions,
            "taken away by the group; committing what they hold"
        );
        for (_, slot) in &taken {
            slot.cancel.cancel();
        }
        let deadline = Instant::now() + REVOKE_WAIT;
        tokio::task::block_in_place(|| {
            for (partition, slot) in &taken {
                // A task that never started (its slot still holds its start) has nothing to finish.
                if slot.ready.is_none() && !slot.done.wait_until(deadline) {
                    tracing::warn!(
                        partition,
                        "its task did not stop within {REVOKE_WAIT:?}; the partition goes anyway \
                         (the next owner's claim fences it)"
                    );
                }
            }
        });
    }
}

/// Whether a partition's task has ended.
#[derive(Default)]
struct Done {
    ended: Mutex<bool>,
    changed: Condvar,
}

impl Done {
    /// Waits until the task ended or `deadline` passed; whether it ended.
    fn wait_until(&self, deadline: Instant) -> bool {
        let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        while !*ended {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            ended = self
                .changed
                .wait_timeout(ended, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// Says the task ended when dropped (however the task ends).
struct DoneOnDrop(Arc<Done>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        *self.0.ended.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.0.changed.notify_all();
    }
}
