//! The broker stops answering (frozen: connections stay open and nothing
//! replies, as when packets are dropped) while rows arrive in MySQL: the
//! producer neither hangs silently nor drops records. It logs the stall, and
//! once the broker answers again the topic holds every row exactly once.
//!
//! This freezes the shared stack's broker, so it holds the stack exclusively
//! (`local_stack::exclusive_stack`).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use tokio_util::sync::CancellationToken;
use weather_generator::{GeneratorOptions, Limit};

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_stops_answering_holds_the_records_until_it_answers() {
    let _stack = local_stack::exclusive_stack();
    let (url, database) = database_with_rows(1000).await;
    let topic = local_stack::unique_name("producer-broker-hang");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("producer.log");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut child = producer_command(&topic, &url, &log).spawn().unwrap();
    let guard = scopeguard_kill(&mut child);
    assert_eq!(
        wait_for_messages(&topic, 4, 1000, Duration::from_secs(60))
            .await
            .len(),
        1000
    );

    local_stack::stack(&["pause-service", "kafka-1"]);
    let resume = local_stack::restore(&["resume-service", "kafka-1"]);
    let frozen = Instant::now();
    let more = GeneratorOptions {
        delay: Duration::ZERO,
        limit: Limit::Rows(1000),
        bulk: true,
        bulk_rows: 500,
        resume: true,
    };
    weather_generator::run(&database, &more, &CancellationToken::new())
        .await
        .expect("add rows");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read_log().contains("no record acknowledged for") {
        assert!(Instant::now() < deadline, "no stall line:\n{}", read_log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "measured: stall logged {:.1} s after the broker froze",
        frozen.elapsed().as_secs_f64()
    );
    drop(resume);
    let resumed = Instant::now();

    let found = wait_for_messages(&topic, 4, 2000, Duration::from_secs(120)).await;
    eprintln!(
        "measured: all rows delivered {:.1} s after the broker resumed",
        resumed.elapsed().as_secs_f64()
    );
    drop(guard);
    let mut by_row: BTreeMap<i64, usize> = BTreeMap::new();
    for message in &found {
        *by_row.entry(message.row_id).or_default() += 1;
    }
    let duplicates: Vec<_> = by_row.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "rows sent twice: {duplicates:?}\n{}",
        read_log()
    );
    let missing: Vec<i64> = (1..=2000).filter(|id| !by_row.contains_key(id)).collect();
    assert!(
        missing.is_empty(),
        "{} rows missing 120 s after the broker resumed: {missing:?}\nproducer log:\n{}",
        missing.len(),
        read_log()
    );
    assert!(
        read_log().contains("the brokers acknowledge records again"),
        "{}",
        read_log()
    );
}

/// Terminates the producer cleanly when dropped (and checks its exit).
fn scopeguard_kill(child: &mut std::process::Child) -> impl Drop + '_ {
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let _ = local_stack::wait_for_exit(self.0, Duration::from_secs(60));
            let _ = self.0.kill();
        }
    }
    Stop(child)
}
