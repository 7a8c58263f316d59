//! The broker stops answering (frozen: it keeps its connections open and
//! replies to nothing, as when packets are dropped) under a running consumer:
//! the consumer does not hang in a call, its Kafka client reports the silence
//! within its socket timeout, and once the broker answers again the consumer
//! carries on without a restart, exactly once.
//!
//! This freezes the shared stack's broker, so it lives alone in its own test
//! binary (cargo runs test binaries one at a time).

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_stops_answering_is_ridden_out_exactly_once() {
    let _stack = local_stack::exclusive_stack();
    let topic = unique("broker-hang");
    create_topic(&topic, 1).await;
    send(&topic, 1, &readings(0, 50)).await;
    let output = Output::new(true);
    let mut command = consumer_command(&topic, &output, &[0]);
    command.args(["--batch-records", "5", "-X", "socket.timeout.ms=5000"]);
    let mut child = Running(vec![command.spawn().expect("start consumer")]);
    output.wait_for_offset(0, 50, Duration::from_secs(60)).await;

    let node = std::env::var("P7_BROKER_NODE").unwrap_or_else(|_| "kafka-1".into());
    stack(&["pause-service", &node]);
    let resume = scopeguard(|| stack(&["resume-service", &node]));
    let paused = Instant::now();
    wait_until(
        "the silence reported",
        Duration::from_secs(20),
        || {
            let log = output.log();
            log.contains("Timed out") && log.contains("All broker connections are down")
        },
        || output.log(),
    );
    eprintln!(
        "measured: silence reported {:.1} s after the broker froze",
        paused.elapsed().as_secs_f64()
    );
    assert!(
        child.0[0].try_wait().unwrap().is_none(),
        "the consumer died"
    );
    drop(resume);
    let resumed = Instant::now();

    send(&topic, 1, &readings(50, 50)).await;
    output
        .wait_for_offset(0, 100, Duration::from_secs(120))
        .await;
    eprintln!(
        "measured: caught up {:.1} s after the broker resumed",
        resumed.elapsed().as_secs_f64()
    );
    terminate(&mut child.0[0], &output);
    assert_eq!(output.committed(0).await, topic_records(&topic, 0));
}
