//! A DataNode SIGKILLed while the four course-form consumers upload batches
//! to HDFS (the shared stack: three DataNodes, replication 3). A batch in
//! flight either completes through the write pipeline's recovery or is
//! written again; a checkpoint never moves before its file is complete; the
//! committed output equals the topic, record for record.
//!
//! This kills one of the shared stack's DataNodes, so it lives alone in its
//! own test binary (cargo runs test binaries one at a time).

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_datanode_killed_mid_upload_leaves_every_record_committed_once() {
    const ROWS: u64 = 4_000;
    let topic = unique("datanode-killed");
    let producing = produce(&topic, ROWS, Duration::from_millis(2)).await;
    let output = Output::new(true);
    let ends_so_far = || -> i64 {
        topic::end_offsets(&settings(), &topic, Duration::from_secs(2))
            .map_or(0, |ends| ends.iter().sum())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while ends_so_far() == 0 {
        assert!(Instant::now() < deadline, "no record in {topic} after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut consumers = Running(
        (0..4)
            .map(|p| consumer_command(&topic, &output, &[p]).spawn().unwrap())
            .collect(),
    );
    // Uploads are under way once every partition has committed something.
    let deadline = Instant::now() + Duration::from_secs(60);
    for p in 0..4 {
        while output.committed_offset(p).await == 0 {
            assert!(
                Instant::now() < deadline,
                "partition {p} committed nothing in 60 s:\n{}",
                output.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stack(&["stop-service", "datanode-2", "--kill"]);
    let killed_at = Instant::now();
    let restart = scopeguard(|| stack(&["start-service", "datanode-2"]));
    producing.await.unwrap();

    let ends: Vec<i64> = (0..4)
        .map(|p| topic_records(&topic, p).len() as i64)
        .collect();
    assert_eq!(ends.iter().sum::<i64>(), ROWS as i64);
    for (p, end) in ends.iter().enumerate() {
        output
            .wait_for_offset(p as i32, *end, Duration::from_secs(180))
            .await;
    }
    eprintln!(
        "datanode-2 killed; every partition committed to its end {:.1} s later",
        killed_at.elapsed().as_secs_f64()
    );
    drop(restart);
    for child in &mut consumers.0 {
        terminate(child, &output);
    }
    for p in 0..4 {
        assert_eq!(
            output.committed(p).await,
            topic_records(&topic, p),
            "partition {p}"
        );
    }
}
