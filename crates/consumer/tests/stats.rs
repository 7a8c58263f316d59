//! The stats sink (the f24 course variant), checked the way its graders do and
//! against stats computed straight from the generator's rows, including under
//! repeated SIGKILLs and while a reader keeps reading the files.

mod common;

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_store::Record;
use chrono::NaiveDate;
use common::stats::*;
use common::*;
use consumer::stats::PartitionStats;
use local_stack::Tally;

fn check_like_the_graders(all: &[PartitionStats]) {
    let mut stations = 0;
    for partition in all {
        assert_ne!(partition.offset, 0, "a stats file with offset 0");
        for (station, stats) in &partition.stations {
            let start: NaiveDate = stats.start.parse().unwrap();
            let end: NaiveDate = stats.end.parse().unwrap();
            assert_eq!(
                stats.count as i64,
                (end - start).num_days() + 1,
                "{station}: a day missing or counted twice"
            );
            assert_eq!(stats.avg, stats.sum / stats.count as f64, "{station}: avg");
            stations += 1;
        }
    }
    assert_eq!(stations, 10, "every station appears across the files");
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_from_the_pipeline_equal_stats_computed_from_the_generator() {
    const ROWS: u64 = 2000;
    let topic = unique("stats");
    produce(&topic, ROWS, Duration::ZERO).await.await.unwrap();
    let output = Output::new(false);
    let mut command = stats_command(&topic, &output, &[0, 1, 2, 3]);
    command.args(["--exit-when-idle", "3"]);
    let (ok, stderr) = run_to_exit(command, Duration::from_secs(120));
    assert!(ok, "{stderr}");

    let all: Vec<PartitionStats> = (0..4)
        .map(|p| load(&output.checkpoint_dir, p).expect("stats file"))
        .collect();
    check_like_the_graders(&all);
    assert_eq!(all.iter().map(|p| p.offset).sum::<i64>(), ROWS as i64);
    let readings: Vec<Record> = readings(0, ROWS as usize)
        .into_iter()
        .map(|r| Record {
            station_id: r.station_id,
            date: r.date,
            degrees: r.degrees,
        })
        .collect();
    let got: BTreeMap<String, (u64, f64, String, String)> = all
        .iter()
        .flat_map(|p| {
            p.stations
                .iter()
                .map(|(s, stats)| (s.clone(), summary(stats)))
        })
        .collect();
    assert_eq!(got, expected(&readings));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkilled_stats_consumers_end_with_exact_stats_and_readers_never_see_a_partial_file() {
    const ROWS: u64 = 3000;
    let topic = unique("stats-chaos");
    let output = Output::new(false);
    let producing = produce(&topic, ROWS, Duration::from_millis(2)).await;

    // A reader that keeps reading the files while they are rewritten.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (dir, stop, reads) = (output.checkpoint_dir.clone(), stop.clone(), reads.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for partition in 0..4 {
                    if let Ok(bytes) =
                        std::fs::read(dir.join(format!("partition-{partition}.json")))
                    {
                        PartitionStats::from_json(&bytes).unwrap_or_else(|err| {
                            panic!("a reader saw a partial stats file ({err})")
                        });
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };

    let start = |partition: i32| -> Child {
        stats_command(&topic, &output, &[partition])
            .spawn()
            .unwrap()
    };
    let mut consumers = Running((0..4).map(start).collect());
    consumers
        .kill_and_restart(
            24,
            Duration::from_millis(150),
            Duration::from_millis(500),
            |victim| start(victim as i32),
        )
        .await;
    producing.await.unwrap();

    let mut tally = Tally::default();
    let mut results = Vec::new();
    for (partition, child) in consumers.0.iter_mut().enumerate() {
        let partition = partition as i32;
        let records = topic_records(&topic, partition);
        let deadline = Instant::now() + Duration::from_secs(120);
        while load(&output.checkpoint_dir, partition).map(|s| s.offset)
            != Some(records.len() as i64)
        {
            assert!(
                Instant::now() < deadline,
                "partition {partition} did not catch up:\n{}",
                output.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        terminate(child, &output);
        let stats = load(&output.checkpoint_dir, partition).unwrap();
        let got: BTreeMap<String, (u64, f64, String, String)> = stats
            .stations
            .iter()
            .map(|(s, st)| (s.clone(), summary(st)))
            .collect();
        let want = expected(&records);
        // A reading counted twice or not at all shows in the station's count.
        tally += Tally::of_counts(
            want.iter().map(|(station, s)| (station.clone(), s.0)),
            got.iter().map(|(station, s)| (station.clone(), s.0)),
        );
        results.push((partition, got, want));
    }
    let tally = tally.report("stats-sigkill");
    assert_eq!(tally.records, ROWS, "records in the topic");
    assert!(tally.exact(), "{tally:?}");
    for (partition, got, want) in results {
        assert_eq!(got, want, "partition {partition}");
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("the reader never saw a partial file");
    assert!(
        reads.load(Ordering::Relaxed) > 100,
        "the reader hardly read anything"
    );
    let all: Vec<PartitionStats> = (0..4)
        .map(|p| load(&output.checkpoint_dir, p).unwrap())
        .collect();
    check_like_the_graders(&all);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_stats_file_is_an_error_and_is_left_alone() {
    let topic = unique("stats-corrupt");
    create_topic(&topic, 1).await;
    send(&topic, 1, &readings(0, 10)).await;
    let output = Output::new(false);
    std::fs::create_dir_all(&output.checkpoint_dir).unwrap();
    let path = output.checkpoint_dir.join("partition-0.json");
    std::fs::write(&path, "{\"offset\": 4, \"StationB\": {\"count\": 1").unwrap();
    let (ok, stderr) = run_to_exit(
        stats_command(&topic, &output, &[0]),
        Duration::from_secs(60),
    );
    assert!(!ok);
    let line = stderr
        .lines()
        .rfind(|l| l.starts_with("consumer: "))
        .unwrap_or_default();
    assert!(
        line.contains("partition-0.json") && line.contains("corrupt"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"offset\": 4, \"StationB\": {\"count\": 1"
    );
}
