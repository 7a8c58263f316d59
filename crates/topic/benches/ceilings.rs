//! The two ceilings `scripts/bench` compares the pipeline's stages with,
//! measured on the same broker and topic in the same run:
//!
//! * `drain TOPIC [CLIENTS]`: a bare rdkafka read of every partition of TOPIC
//!   from the beginning to its end, the way the consumer reads (its client
//!   settings, `assigned_consumer_config`; a queue and a task per partition;
//!   the partitions spread over CLIENTS clients, default 2, the consumer's
//!   default for four partitions), but with no decoding and no sink: the
//!   fastest a consumer of ours could commit that topic in one process.
//!   `drain TOPIC 1 N` reads partition N only: four of them side by side are
//!   the ceiling of the course form (`consumer N`, one process per partition).
//! * `produce TOPIC TARGET`: the messages of TOPIC (keys, payloads, headers)
//!   read into memory first, then sent to a new TARGET of as many partitions
//!   with the producer's own settings (`producer_config`, a ThreadedProducer
//!   like the producer's) until the last one is acknowledged: no MySQL, no
//!   encoding. The fastest our producer could deliver those rows.
//!
//! Each prints `ceiling drain|produce: N records in S s: R records/s`.
//! Run with `cargo bench -p topic --bench ceilings -- drain TOPIC`; the
//! brokers come from the local stack's settings (`P7_BROKERS`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use topic::{KafkaSettings, TopicSpec};

fn main() {
    // cargo bench passes --bench to a harness-less bench.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let brokers = std::env::var("P7_BROKERS").unwrap_or_else(|_| {
        eprintln!("ceilings: P7_BROKERS is not set (source the stack's env file)");
        std::process::exit(2)
    });
    let settings = KafkaSettings::new(brokers);
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["drain", topic] => drain(&settings, topic, 2, None),
        ["drain", topic, clients] => match clients.parse() {
            Ok(clients) if clients > 0 => drain(&settings, topic, clients, None),
            _ => Err(format!(
                "CLIENTS must be a positive number, not {clients:?}"
            )),
        },
        ["drain", topic, clients, only] => match (clients.parse(), parse_partitions(only)) {
            (Ok(clients), Some(only)) if clients > 0 => {
                drain(&settings, topic, clients, Some(only))
            }
            _ => Err(format!(
                "expected a positive CLIENTS and PARTITIONS like 0,1, not {clients:?} {only:?}"
            )),
        },
        ["produce", topic, target] => produce(&settings, topic, target),
        _ => {
            Err("usage: ceilings drain TOPIC [CLIENTS [PARTITIONS]] | produce TOPIC TARGET".into())
        }
    };
    match outcome {
        Ok((what, records, elapsed)) => println!(
            "ceiling {what}: {records} records in {:.2} s: {:.0} records/s",
            elapsed.as_secs_f64(),
            records as f64 / elapsed.as_secs_f64().max(1e-9)
        ),
        Err(err) => {
            eprintln!("ceilings: {err}");
            std::process::exit(1)
        }
    }
}

type Measured = Result<(&'static str, u64, Duration), String>;

fn parse_partitions(text: &str) -> Option<Vec<i32>> {
    text.split(',').map(|p| p.parse().ok()).collect()
}

fn end_offsets(settings: &KafkaSettings, topic: &str) -> Result<Vec<i64>, String> {
    topic::end_offsets(settings, topic, Duration::from_secs(10)).map_err(|err| err.to_string())
}

fn drain(
    settings: &KafkaSettings,
    topic: &str,
    clients: usize,
    only: Option<Vec<i32>>,
) -> Measured {
    let all = end_offsets(settings, topic)?;
    let ends: Vec<(i32, i64)> = (0..all.len() as i32)
        .filter(|p| only.as_ref().is_none_or(|only| only.contains(p)))
        .map(|p| (p, all[p as usize]))
        .collect();
    if ends.is_empty() {
        return Err(format!("{topic} has none of the partitions {only:?}"));
    }
    let total: i64 = ends.iter().map(|(_, end)| end).sum();
    // The consumer's own runtime (tokio's default multi-threaded one).
    let runtime = tokio::runtime::Runtime::new().map_err(|err| err.to_string())?;
    let started = Instant::now();
    let read = runtime.block_on(drain_all(settings, topic, &ends, clients))?;
    let elapsed = started.elapsed();
    if read != total as u64 {
        return Err(format!("read {read} of the topic's {total} records"));
    }
    Ok(("drain", read, elapsed))
}

/// Reads the way the consumer does: partition `i` on client `i mod CLIENTS`,
/// each partition from a queue of its own (`split_partition_queue`) in a task
/// of its own, each client's main queue served for librdkafka's events; a
/// partition's task ends at the partition's end.
async fn drain_all(
    settings: &KafkaSettings,
    topic: &str,
    ends: &[(i32, i64)],
    clients: usize,
) -> Result<u64, String> {
    let consumers: Vec<Arc<StreamConsumer>> = (0..clients.min(ends.len()).max(1))
        .map(|_| {
            settings
                .assigned_consumer_config_for("ceiling-drain", ends.len())
                .create()
                .map(Arc::new)
                .map_err(|err| err.to_string())
        })
        .collect::<Result<_, _>>()?;
    let mut assignments: Vec<TopicPartitionList> = consumers
        .iter()
        .map(|_| TopicPartitionList::new())
        .collect();
    let mut tasks = Vec::new();
    for (index, &(partition, end)) in ends.iter().enumerate() {
        let client = index % consumers.len();
        let queue = consumers[client]
            .split_partition_queue(topic, partition)
            .ok_or("librdkafka gave no queue for the partition")?;
        assignments[client]
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(|err| err.to_string())?;
        tasks.push(tokio::spawn(async move {
            let (mut read, mut bytes) = (0u64, 0usize);
            let mut next = 0;
            // No timer per message (it costs as much as the read itself):
            // the whole drain has one deadline instead.
            while next < end {
                let message = queue
                    .recv()
                    .await
                    .map_err(|err| format!("partition {partition}: {err}"))?;
                read += 1;
                // Touch the payload as a sink would, without decoding it.
                bytes += message.payload().map_or(0, <[u8]>::len);
                next = message.offset() + 1;
            }
            std::hint::black_box(bytes);
            Ok::<u64, String>(read)
        }));
    }
    for (consumer, assignment) in consumers.iter().zip(&assignments) {
        consumer.assign(assignment).map_err(|err| err.to_string())?;
    }
    let serving: Vec<_> = consumers
        .iter()
        .map(|consumer| {
            let consumer = Arc::clone(consumer);
            tokio::spawn(async move {
                // Events only: every partition has its own queue.
                loop {
                    let _ = consumer.recv().await;
                }
            })
        })
        .collect();
    let all = async {
        let mut read = 0;
        for task in tasks {
            read += task.await.map_err(|err| err.to_string())??;
        }
        Ok::<u64, String>(read)
    };
    let read = tokio::time::timeout(Duration::from_secs(600), all)
        .await
        .map_err(|_| "the partitions were not drained in 600 s".to_string())??;
    for task in serving {
        task.abort();
    }
    Ok(read)
}

/// Counts acknowledgements and failures, like the producer's own context.
#[derive(Default)]
struct Acks {
    delivered: AtomicU64,
    failed: AtomicU64,
}

#[derive(Clone, Default)]
struct Counting(Arc<Acks>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.0.delivered
        } else {
            &self.0.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct Copied {
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Option<OwnedHeaders>,
}

fn produce(settings: &KafkaSettings, topic: &str, target: &str) -> Measured {
    let partitions = end_offsets(settings, topic)?.len();
    let mut messages = Vec::new();
    for partition in 0..partitions as i32 {
        topic::scan(
            settings,
            topic,
            partition,
            0,
            Duration::from_secs(3),
            |message| {
                messages.push(Copied {
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec),
                    headers: message
                        .headers()
                        .map(rdkafka::message::BorrowedHeaders::detach),
                });
                true
            },
        )
        .map_err(|err| err.to_string())?;
    }
    let spec = TopicSpec {
        name: target.to_string(),
        partitions: partitions as i32,
        replication: std::env::var("P7_CEILING_REPLICATION")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(1),
        settle: Duration::from_secs(1),
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| err.to_string())?
        .block_on(topic::reset_topic(settings, &spec))
        .map_err(|err| err.to_string())?;

    let acks = Counting::default();
    let started = Instant::now();
    let producer: ThreadedProducer<Counting> = settings
        .producer_config()
        .create_with_context(acks.clone())
        .map_err(|err| err.to_string())?;
    for message in &messages {
        let mut record = BaseRecord::to(target);
        if let Some(key) = &message.key {
            record = record.key(key);
        }
        if let Some(payload) = &message.payload {
            record = record.payload(payload);
        }
        if let Some(headers) = &message.headers {
            record = record.headers(headers.clone());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((err, _)) => return Err(format!("producing to {target}: {err}")),
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|err| format!("flushing {target}: {err}"))?;
    let elapsed = started.elapsed();
    let (delivered, failed) = (
        acks.0.delivered.load(Ordering::Relaxed),
        acks.0.failed.load(Ordering::Relaxed),
    );
    if failed > 0 || delivered != messages.len() as u64 {
        return Err(format!(
            "{delivered} of {} messages acknowledged, {failed} failed",
            messages.len()
        ));
    }
    Ok(("produce", delivered, elapsed))
}
