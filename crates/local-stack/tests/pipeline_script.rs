//! `scripts/pipeline`, the README's first command, against the running stack:
//! with each sink it shows progress with lag, stops after `--duration`, and
//! its summary, read back from the committed output, accounts for every row;
//! with the Parquet sink it also serves the dashboard and draws the monthly chart.

use std::path::PathBuf;
use std::process::Command;

/// Where cargo put the workspace's binaries (next to this test's directory).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_path_buf();
    for program in [
        "weather-generator",
        "producer",
        "consumer",
        "collector",
        "dashboard",
    ] {
        assert!(
            dir.join(program).is_file(),
            "{} is missing: build the workspace's binaries first (cargo test --workspace does)",
            dir.join(program).display()
        );
    }
    dir
}

/// `pipeline: summary: N rows generated, M committed` → (N, M).
fn summary_counts(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("summary:"))
        .unwrap_or_else(|| panic!("no summary line:\n{stderr}"));
    let (_, counts) = line.split_once("summary:").unwrap();
    let numbers: Vec<u64> = counts
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn the_pipeline_runs_with_each_sink_and_accounts_for_every_row() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pipeline");
    let bins = bin_dir();
    for sink in ["parquet", "stats", "jsonl"] {
        let output = Command::new(&script)
            .args(["--duration", "8", "--store", "local", "--sink", sink])
            .env("P7_BIN_DIR", &bins)
            .env("P7_STACK_DIR", local_stack::stack_dir())
            .env("P7_DASHBOARD_PORT", local_stack::free_port().to_string())
            .output()
            .expect("run scripts/pipeline");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{sink}:\n{stdout}\n{stderr}");

        let (generated, committed) = summary_counts(&stderr);
        // The script's summary counts rows, not records: a duplicate shows
        // as a surplus, a loss as a shortfall.
        let tally = local_stack::Tally::of_counts([("rows", generated)], [("rows", committed)])
            .report(&format!("pipeline-{sink}"));
        assert!(tally.exact(), "{sink}: {tally:?}:\n{stderr}");
        assert!(
            generated > 100,
            "{sink}: only {generated} rows in 8 s:\n{stderr}"
        );
        assert_eq!(committed, generated, "{sink}:\n{stderr}");
        let progress: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("rows in MySQL"))
            .collect();
        assert!(progress.len() >= 2, "{sink}: no progress:\n{stderr}");
        assert!(
            progress.iter().any(|l| l.contains("in topic")
                && l.split("lag ")
                    .skip(1)
                    .any(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))),
            "{sink}: no lag in the progress:\n{stderr}"
        );

        // The topic's end, asked of the broker, is never behind what is committed.
        for line in &progress {
            let figure = |label: &str| -> Option<u64> {
                line.split(label)
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            };
            if let (Some(committed), Some(in_topic)) = (figure("committed"), figure("in topic")) {
                assert!(in_topic >= committed, "{sink}: {line}");
            }
        }

        // Ten stations, and the partitions add up to every row.
        let stations = stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("Station"))
            .count();
        assert_eq!(stations, 10, "{sink}:\n{stdout}");
        let per_partition: u64 = stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix("partition "))
            .filter_map(|rest| rest.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        assert_eq!(per_partition, generated, "{sink}:\n{stdout}");
        if sink == "parquet" {
            assert_eq!(
                stdout.lines().filter(|l| l.contains(" batches")).count(),
                4,
                "batches per partition:\n{stdout}"
            );
            // The dashboard served the run and drew its chart at the end.
            assert!(stderr.contains("dashboard: http://127.0.0.1:"), "{stderr}");
            let chart = stderr
                .lines()
                .find_map(|l| l.split_once("monthly chart: ").map(|(_, path)| path.trim()))
                .unwrap_or_else(|| panic!("no monthly chart:\n{stderr}"));
            let svg = std::fs::read_to_string(chart).expect("the chart file");
            assert!(svg.contains("<svg") && svg.contains("StationJ"), "{svg}");
        }
    }
}
