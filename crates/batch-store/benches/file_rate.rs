//! The store's file-rate ceiling, which `scripts/bench` holds the course form
//! (`consumer N`, 500 records a file) against: FILES batch files of RECORDS
//! course records each, written the way the consumer commits one (temp file
//! written and closed, then renamed over the final name), CONCURRENCY at a
//! time, with nothing else: no Kafka, no checkpoint. At 500 records a file,
//! the fastest any consumer could commit records to that store is this rate
//! times 500, whatever its language.
//!
//! `cargo bench -p batch-store --bench file_rate -- STORE FILES CONCURRENCY [RECORDS]`
//! prints `ceiling files: N files of R records in S s: F files/s, X records/s`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use batch_store::{BatchBuilder, BatchFile, Store};

fn main() {
    // cargo bench passes --bench to a harness-less bench.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("file_rate: cannot start the async runtime: {err}");
            std::process::exit(1);
        }
    };
    // The HDFS client is made inside the runtime, so that it runs on it
    // (made outside, it would start a runtime of its own).
    let outcome = runtime.block_on(async {
        let (store, files, concurrency, records) =
            match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                [store, files, concurrency] => parse(store, files, concurrency, "500"),
                [store, files, concurrency, records] => parse(store, files, concurrency, records),
                _ => Err("usage: file_rate STORE FILES CONCURRENCY [RECORDS]".to_string()),
            }?;
        measure(store, files, concurrency, records).await
    });
    if let Err(err) = outcome {
        eprintln!("file_rate: {err}");
        std::process::exit(1);
    }
}

fn parse(
    store: &str,
    files: &str,
    concurrency: &str,
    records: &str,
) -> Result<(Store, u64, u64, usize), String> {
    let store = Store::open(store).map_err(|err| err.to_string())?;
    match (files.parse(), concurrency.parse(), records.parse()) {
        (Ok(files), Ok(concurrency), Ok(records)) if files > 0 && concurrency > 0 => {
            Ok((store, files, concurrency, records))
        }
        _ => Err(format!(
            "FILES, CONCURRENCY and RECORDS must be positive numbers, not {files:?} {concurrency:?} {records:?}"
        )),
    }
}

async fn measure(store: Store, files: u64, concurrency: u64, records: usize) -> Result<(), String> {
    let mut batch = BatchBuilder::default();
    for i in 0..records {
        let station = format!("Station{}", char::from(b'A' + (i % 10) as u8));
        batch.push(&station, "2000-01-01", 20.0 + i as f64 / 7.0);
    }
    let payload = batch.finish().map_err(|err| err.to_string())?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (store, next, payload) = (store.clone(), next.clone(), payload.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= files {
                        return Ok(());
                    }
                    // One partition number per writer file keeps names apart
                    // from any consumer's: the bench writes under its own base.
                    let file = BatchFile::new(0, n);
                    let tmp = file.unique_tmp_path();
                    store.write_new(&tmp, payload.clone()).await?;
                    store.rename_over(&tmp, &file.path()).await?;
                }
            })
        })
        .collect();
    for writer in writers {
        writer
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err: batch_store::Error| err.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = files as f64 / seconds;
    println!(
        "ceiling files: {files} files of {records} records in {seconds:.2} s: {rate:.0} files/s, {:.0} records/s",
        rate * records as f64
    );
    Ok(())
}
