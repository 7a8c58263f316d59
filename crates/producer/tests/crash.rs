//! The producer SIGKILLed at random moments and restarted with --resume,
//! while the generator keeps inserting: the topic ends with every row id
//! exactly once.

mod common;

use std::time::Duration;

use common::*;
use tokio_util::sync::CancellationToken;
use weather_generator::{GeneratorOptions, Limit};

#[tokio::test(flavor = "multi_thread")]
async fn sigkilled_and_resumed_producers_neither_duplicate_nor_skip_a_row() {
    const PREFILLED: u64 = 20_000;
    const LIVE: u64 = 300;
    let (url, database) = database_with_rows(PREFILLED).await;
    let topic = local_stack::unique_name("producer-crash");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("producer.log");

    // More rows keep arriving while the producer is being killed.
    let generating = {
        let database = database.clone();
        tokio::spawn(async move {
            let options = GeneratorOptions {
                delay: Duration::from_millis(10),
                limit: Limit::Rows(LIVE),
                bulk: false,
                bulk_rows: 1,
                resume: true,
            };
            weather_generator::run(&database, &options, &CancellationToken::new()).await
        })
    };

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("kill timing seed {seed}");
    let mut child = producer_command(&topic, &url, &log).spawn().unwrap();
    for kill in 0..5u64 {
        let pause = 900 + (seed.wrapping_mul(kill + 7) % 1200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        let mut restart = producer_command(&topic, &url, &log);
        restart.arg("--resume");
        child = restart.spawn().unwrap();
    }
    generating.await.unwrap().unwrap();
    let total = (PREFILLED + LIVE) as usize;
    let found = wait_for_messages(&topic, 4, total, Duration::from_secs(120)).await;
    terminate(&mut child, &log);

    let mut ids: Vec<i64> = found.iter().map(|m| m.row_id).collect();
    ids.sort_unstable();
    let duplicates = ids.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(duplicates, 0, "rows sent twice");
    assert_eq!(
        ids,
        (1..=total as i64).collect::<Vec<i64>>(),
        "rows missing"
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    // At least one restart found rows in the topic: a kill landed mid-production.
    let resumes = log_text
        .matches("resuming after the rows already in the topic")
        .count();
    let from_empty = log_text.matches("last_ids=[0, 0, 0, 0]").count();
    assert!(
        resumes > from_empty,
        "no kill landed while rows were being sent:\n{log_text}"
    );
}
