//! Time to render the dashboard from 1M committed records: cold (every batch
//! read) and on refresh after one more batch committed. Local store always;
//! HDFS too when P7_HDFS_URL names one (scripts/bench sets it).
//!
//! cargo bench -p dashboard --bench render

use std::time::{Duration, Instant};

use batch_store::{BatchBuilder, BatchFile, Checkpoint, CheckpointDir, Store};
use dashboard::{CommittedView, Snapshot};
use weather_generator::WeatherGenerator;

const RECORDS: usize = 1_000_000;
const PARTITIONS: i32 = 4;
const BATCH: usize = 10_000;

/// Commits the course sequence as batches of `BATCH`, round robin over partitions.
async fn fill(
    store: &Store,
    checkpoints: &CheckpointDir,
    readings: &mut WeatherGenerator,
    batches: &mut [u64],
    records: usize,
) {
    let mut offsets = vec![0i64; batches.len()];
    for (partition, next) in batches.iter().enumerate() {
        offsets[partition] = (*next as usize * BATCH) as i64;
    }
    for chunk in 0..records / BATCH {
        let partition = chunk % batches.len();
        let mut builder = BatchBuilder::default();
        for reading in readings.by_ref().take(BATCH) {
            builder.push(
                reading.station_id,
                &reading.date.to_string(),
                reading.degrees,
            );
        }
        let file = BatchFile::new(partition as i32, batches[partition]);
        store
            .put_atomic(&file.path(), builder.finish().unwrap())
            .await
            .unwrap();
        offsets[partition] += BATCH as i64;
        checkpoints
            .save(
                partition as i32,
                &Checkpoint {
                    batch_id: batches[partition],
                    offset: offsets[partition],
                },
            )
            .await
            .unwrap();
        batches[partition] += 1;
    }
}

/// Refreshes, then renders the page and the chart as a request would.
async fn render(view: &mut CommittedView) -> (Duration, Duration, u64, usize) {
    let started = Instant::now();
    let report = view.refresh().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let read = started.elapsed();
    let snapshot = Snapshot::take(view, report.clone(), read, None).await;
    let page = dashboard::page::page(&snapshot, None, Duration::from_secs(5));
    (read, started.elapsed(), report.records_read, page.len())
}

async fn bench(label: &str, store: Store) {
    let temp = tempfile::tempdir().unwrap();
    let checkpoints = CheckpointDir::new(temp.path().join("checkpoints"));
    std::fs::create_dir_all(checkpoints.dir()).unwrap();
    let mut readings = WeatherGenerator::new();
    let mut batches = vec![0u64; PARTITIONS as usize];
    fill(&store, &checkpoints, &mut readings, &mut batches, RECORDS).await;

    let mut view = CommittedView::new(store.clone(), checkpoints.clone(), None);
    let (read, total, records, bytes) = render(&mut view).await;
    println!(
        "{label}: cold: {records} records read in {:.0} ms, page rendered at {:.0} ms ({} KiB)",
        read.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        bytes / 1024
    );
    fill(&store, &checkpoints, &mut readings, &mut batches, BATCH).await;
    let (read, total, records, _) = render(&mut view).await;
    println!(
        "{label}: refresh after one new batch: {records} records read in {:.1} ms, page rendered at {:.1} ms",
        read.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3
    );
    let (_, total, records, _) = render(&mut view).await;
    println!(
        "{label}: refresh with nothing new: {records} records read, page rendered at {:.1} ms",
        total.as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let local = tempfile::tempdir().unwrap();
    bench("local", Store::local(local.path())).await;
    if let Ok(url) = std::env::var("P7_HDFS_URL") {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let store = Store::open(&format!("{url}/dashboard-bench-{nanos}")).unwrap();
        bench("hdfs", store).await;
    }
}
