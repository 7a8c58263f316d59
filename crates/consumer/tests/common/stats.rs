//! The stats consumer as a child process, and the stats its files must end with.

use std::collections::BTreeMap;
use std::path::Path;

use batch_store::Record;
use consumer::stats::{PartitionStats, StationStats};

use super::{bare_consumer_command, Output};

pub fn stats_command(topic: &str, output: &Output, partitions: &[i32]) -> std::process::Command {
    let mut command = bare_consumer_command(topic, output, partitions);
    command
        .arg("--stats")
        .arg("--stats-dir")
        .arg(&output.checkpoint_dir);
    command
}

pub fn load(dir: &Path, partition: i32) -> Option<PartitionStats> {
    let bytes = std::fs::read(dir.join(format!("partition-{partition}.json"))).ok()?;
    Some(PartitionStats::from_json(&bytes).expect("a complete stats file"))
}

/// The stats the sink must end with, computed from records in order.
pub fn expected(records: &[Record]) -> BTreeMap<String, (u64, f64, String, String)> {
    let mut stats: BTreeMap<String, (u64, f64, String, String)> = BTreeMap::new();
    for record in records {
        let entry = stats.entry(record.station_id.clone()).or_insert((
            0,
            0.0,
            record.date.clone(),
            String::new(),
        ));
        entry.0 += 1;
        entry.1 += record.degrees;
        entry.3 = record.date.clone();
    }
    stats
}

pub fn summary(stats: &StationStats) -> (u64, f64, String, String) {
    (
        stats.count,
        stats.sum,
        stats.start.clone(),
        stats.end.clone(),
    )
}
