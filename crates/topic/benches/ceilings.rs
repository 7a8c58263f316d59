//! The two ceilings `scripts/bench` compares the pipeline's stages with,
//! measured on the same broker and topic in the same run:
//!
//! * `drain TOPIC [CLIENTS]`: a bare rdkafka read of every partition of TOPIC
//!   from the beginning to its end, with the consumers' own client settings
//!   (`assigned_consumer_config`) spread over CLIENTS clients (default 2, the
//!   consumer's default for four partitions): no decoding, no sink. The
//!   fastest any consumer of ours could commit that topic.
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

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use topic::{KafkaSettings, TopicSpec};

fn main() {
    // cargo bench passes --bench to a harness-less bench.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let brokers = std::env::var("P7_BROKERS").unwrap_or_else(|_| {
        eprintln!("ceilings: P7_BROKERS is not set (source the stack's env file)");
        std::process::exit(2)
    });
    let settings = KafkaSettings::new(brokers);
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["drain", topic] => drain(&settings, topic, 2),
        ["drain", topic, clients] => match clients.parse() {
            Ok(clients) if clients > 0 => drain(&settings, topic, clients),
            _ => Err(format!("CLIENTS must be a positive number, not {clients:?}")),
        },
        ["produce", topic, target] => produce(&settings, topic, target),
        _ => Err("usage: ceilings drain TOPIC [CLIENTS] | produce TOPIC TARGET".into()),
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

fn end_offsets(settings: &KafkaSettings, topic: &str) -> Result<Vec<i64>, String> {
    topic::end_offsets(settings, topic, Duration::from_secs(10)).map_err(|err| err.to_string())
}

fn drain(settings: &KafkaSettings, topic: &str, clients: usize) -> Measured {
    let ends = end_offsets(settings, topic)?;
    let total: i64 = ends.iter().sum();
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|client| {
            let mine: Vec<(i32, i64)> = ends
                .iter()
                .enumerate()
                .filter(|(p, _)| p % clients == client)
                .map(|(p, end)| (p as i32, *end))
                .collect();
            let (settings, topic) = (settings.clone(), topic.to_string());
            std::thread::spawn(move || drain_partitions(&settings, &topic, &mine))
        })
        .collect();
    let mut read = 0;
    for worker in workers {
        read += worker.join().map_err(|_| "a drain thread panicked".to_string())??;
    }
    let elapsed = started.elapsed();
    if read != total as u64 {
        return Err(format!("read {read} of the topic's {total} records"));
    }
    Ok(("drain", read, elapsed))
}

fn drain_partitions(
    settings: &KafkaSettings,
    topic: &str,
    partitions: &[(i32, i64)],
) -> Result<u64, String> {
    let consumer: BaseConsumer = settings
        .assigned_consumer_config("ceiling-drain")
        .create()
        .map_err(|err| err.to_string())?;
    let mut assignment = TopicPartitionList::new();
    for (partition, _) in partitions {
        assignment
            .add_partition_offset(topic, *partition, Offset::Beginning)
            .map_err(|err| err.to_string())?;
    }
    consumer.assign(&assignment).map_err(|err| err.to_string())?;
    let mut left: Vec<(i32, i64)> = partitions.iter().copied().filter(|(_, end)| *end > 0).collect();
    let (mut read, mut bytes) = (0u64, 0usize);
    let deadline = Instant::now() + Duration::from_secs(600);
    while !left.is_empty() {
        if Instant::now() > deadline {
            return Err(format!("partitions {left:?} not drained in 600 s"));
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(err)) => return Err(format!("reading {topic}: {err}")),
            Some(Ok(message)) => {
                read += 1;
                // Touch the payload as a sink would, without decoding it.
                bytes += message.payload().map_or(0, <[u8]>::len);
                let (partition, offset) = (message.partition(), message.offset());
                left.retain(|(p, end)| !(*p == partition && offset + 1 >= *end));
            }
        }
    }
    std::hint::black_box(bytes);
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
        topic::scan(settings, topic, partition, 0, Duration::from_secs(3), |message| {
            messages.push(Copied {
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                headers: message.headers().map(rdkafka::message::BorrowedHeaders::detach),
            });
            true
        })
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
