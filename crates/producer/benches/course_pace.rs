//! At course pace (one row every 10 ms), how long a row takes from its
//! INSERT being committed in MySQL to being acknowledged by the broker, as
//! seen by a reader of the topic. The reader polls with a 1 ms fetch wait,
//! so the figure is the insert → acknowledged latency plus at most a few ms.
//!
//! Needs the local stack (`scripts/stack up`); run with
//! `cargo bench -p producer --bench course_pace` (`P7_BENCH_ROWS`, default 1000).

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use producer::{ProducerOptions, Source, ROW_ID_HEADER};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use tokio_util::sync::CancellationToken;
use topic::{KafkaSettings, TopicSpec};
use weather_generator::{Database, WeatherGenerator};

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("P7_BENCH_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let settings = KafkaSettings::new(local_stack::brokers());
    let url = local_stack::fresh_database("bench_pace").await;
    let database = Database::connect(&url, Duration::from_secs(10))
        .await
        .expect("connect");
    database.create_table().await.expect("create table");
    let topic = local_stack::unique_name("bench-pace");

    let shutdown = CancellationToken::new();
    let producing = {
        let (settings, database, shutdown) = (settings.clone(), database.clone(), shutdown.clone());
        let options = ProducerOptions::recreating(TopicSpec::course(&topic));
        tokio::spawn(async move {
            let source = Source::Mysql {
                database,
                chunk: 10_000,
                poll_interval: Duration::from_millis(50),
                exit_when_idle: None,
            };
            producer::run(&settings, &options, source, &shutdown).await
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The reader: the moment each row id becomes readable.
    let (seen_tx, seen_rx) = mpsc::channel::<(i64, Instant)>();
    let reader = {
        let (settings, topic) = (settings.clone(), topic.clone());
        std::thread::spawn(move || {
            let mut config = settings.assigned_consumer_config("bench-pace");
            config.set("fetch.wait.max.ms", "1");
            let consumer: BaseConsumer = config.create().expect("reader");
            consumer
                .assign(&topic::from_beginning(&topic, 4).unwrap())
                .expect("assign");
            let mut remaining = rows;
            while remaining > 0 {
                let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let now = Instant::now();
                let id = message
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|h| h.key == ROW_ID_HEADER)
                            .and_then(|h| h.value)
                    })
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                    .expect("row id");
                seen_tx.send((id, now)).expect("collector");
                remaining -= 1;
            }
        })
    };

    let mut inserted = HashMap::new();
    for (index, reading) in WeatherGenerator::new().take(rows).enumerate() {
        database
            .insert(std::slice::from_ref(&reading))
            .await
            .expect("insert");
        inserted.insert(index as i64 + 1, Instant::now());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    reader.join().expect("reader thread");
    shutdown.cancel();
    producing.await.expect("producer task").expect("producer");

    let mut latencies: Vec<f64> = seen_rx
        .try_iter()
        .map(|(id, seen)| seen.saturating_duration_since(inserted[&id]).as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies[((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!(
        "course pace ({rows} rows, one every 10 ms, producer polling every 50 ms): insert -> acknowledged and readable: p50 {:.1} ms, p99 {:.1} ms",
        at(0.5),
        at(0.99)
    );
}
