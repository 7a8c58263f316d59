//! `scripts/pipeline`, the README's first command, against the running stack:
//! with each sink it shows progress with lag, stops after `--duration`, and
//! its summary, read back from the committed output, accounts for every row;
//! with the Parquet sink it also serves the dashboard and draws the monthly chart.
//! Stopped from a terminal (Ctrl+C, in a real pseudo-terminal) or by SIGTERM,
//! it stops in the same order as at the end of `--duration` and leaves
//! nothing running.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use local_stack::terminal::Terminal;

/// Each run truncates the stack's `CS544.temperatures` and recreates the
/// topic `temperatures`: one run at a time.
static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pipeline")
}

/// `scripts/pipeline ARGS` with the workspace's binaries, on the shared stack.
fn pipeline(args: &[&str]) -> Command {
    let mut command = Command::new(script());
    command
        .args(args)
        .env("P7_BIN_DIR", bin_dir())
        .env("P7_STACK_DIR", local_stack::stack_dir())
        .env("P7_DASHBOARD_PORT", local_stack::free_port().to_string());
    command
}

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

/// A figure of a progress line: `committed 123` → 123.
fn figure(line: &str, label: &str) -> Option<u64> {
    line.split(label)
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Every progress line shows what can be: committed ≤ in topic ≤ rows in MySQL.
fn assert_progress_is_possible(context: &str, stderr: &str) {
    for line in stderr.lines().filter(|l| l.contains("rows in MySQL")) {
        let committed = figure(line, "committed");
        let in_topic = figure(line, "in topic");
        let rows = figure(line, "rows in MySQL");
        if let (Some(committed), Some(in_topic)) = (committed, in_topic) {
            assert!(committed <= in_topic, "{context}: {line}");
        }
        if let (Some(in_topic), Some(rows)) = (in_topic, rows) {
            assert!(in_topic <= rows, "{context}: {line}");
        }
    }
}

#[test]
fn the_pipeline_runs_with_each_sink_and_accounts_for_every_row() {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    for sink in ["parquet", "stats", "jsonl"] {
        let output = pipeline(&["--duration", "8", "--store", "local", "--sink", sink])
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

        assert_progress_is_possible(sink, &stderr);

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

/// Waits for the run on `terminal` to show two progress lines.
fn wait_for_progress(terminal: &Terminal) {
    assert!(
        terminal.wait_for("rows in MySQL", 2, Duration::from_secs(180)),
        "no progress:\n{}",
        terminal.screen()
    );
}

/// Waits for the run to end; its exit code and screen.
fn wait_for_end(terminal: &mut Terminal) -> (Option<i32>, String) {
    let status = terminal.wait(Duration::from_secs(120));
    let screen = terminal.screen();
    let status = status.unwrap_or_else(|| panic!("still running 120 s after the stop:\n{screen}"));
    (status.code(), screen)
}

/// The orderly stop's proof: its steps in order, a summary that accounts for
/// every row, exit 0, and no program of the run left running.
fn assert_stopped_in_order(context: &str, terminal: &Terminal, code: Option<i32>, screen: &str) {
    assert_eq!(code, Some(0), "{context}: exit status:\n{screen}");
    let step = |text: &str| {
        screen
            .find(text)
            .unwrap_or_else(|| panic!("{context}: no {text:?}:\n{screen}"))
    };
    assert!(
        step("stopping the generator and letting the consumers catch up") < step("summary:"),
        "{context}:\n{screen}"
    );
    let (generated, committed) = summary_counts(screen);
    assert!(generated > 0, "{context}:\n{screen}");
    assert_eq!(committed, generated, "{context}:\n{screen}");
    let stations = screen
        .lines()
        .filter(|l| l.trim_start().starts_with("Station"))
        .count();
    assert_eq!(stations, 10, "{context}:\n{screen}");
    assert_progress_is_possible(context, screen);
    assert_eq!(terminal.left_running(), vec![], "{context}: left running");
}

#[test]
fn ctrl_c_in_a_terminal_stops_the_pipeline_in_order_and_prints_its_summary() {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut terminal = Terminal::run(pipeline(&["--store", "local", "--sink", "parquet"]));
    wait_for_progress(&terminal);
    terminal.interrupt();
    let (code, screen) = wait_for_end(&mut terminal);
    assert_stopped_in_order("Ctrl+C", &terminal, code, &screen);
    // The dashboard was stopped and drew the run's chart.
    let chart = screen
        .lines()
        .find_map(|l| l.split_once("monthly chart: ").map(|(_, path)| path.trim()))
        .unwrap_or_else(|| panic!("no monthly chart:\n{screen}"));
    let svg = std::fs::read_to_string(chart).expect("the chart file");
    assert!(svg.contains("<svg") && svg.contains("StationA"), "{svg}");
}

#[test]
fn sigterm_to_the_script_stops_the_pipeline_in_order() {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut terminal = Terminal::run(pipeline(&["--store", "local", "--sink", "stats"]));
    wait_for_progress(&terminal);
    local_stack::signal(terminal.pid(), "TERM");
    let (code, screen) = wait_for_end(&mut terminal);
    assert_stopped_in_order("SIGTERM", &terminal, code, &screen);
}

#[test]
fn a_second_ctrl_c_cuts_the_catch_up_short_and_still_prints_what_is_committed() {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut terminal = Terminal::run(pipeline(&["--store", "local", "--sink", "parquet"]));
    wait_for_progress(&terminal);
    // The consumer's worker (the child of its supervisor) is frozen, so it
    // falls behind and cannot catch up.
    let processes = terminal.left_running();
    let consumers: Vec<_> = processes.iter().filter(|p| p.name == "consumer").collect();
    let worker = consumers
        .iter()
        .find(|p| {
            consumers
                .iter()
                .any(|supervisor| supervisor.pid == p.parent)
        })
        .unwrap_or_else(|| panic!("no consumer worker among {processes:?}"));
    let signal = |name: &str| local_stack::signal(worker.pid, name);
    signal("STOP");
    std::thread::sleep(Duration::from_secs(2));
    terminal.interrupt();
    assert!(
        terminal.wait_for("letting the consumers catch up", 1, Duration::from_secs(30)),
        "{}",
        terminal.screen()
    );
    std::thread::sleep(Duration::from_secs(1));
    terminal.interrupt();
    let cut_short = terminal.wait_for(
        "stopping now; the summary shows what is committed so far",
        1,
        Duration::from_secs(5),
    );
    // Let the worker go, so the stop that follows can end it.
    signal("CONT");
    assert!(cut_short, "the second Ctrl+C:\n{}", terminal.screen());
    let (code, screen) = wait_for_end(&mut terminal);
    let (generated, committed) = summary_counts(&screen);
    assert!(committed <= generated, "{screen}");
    // Exit 0 exactly when every row was committed after all.
    assert_eq!(
        code == Some(0),
        committed == generated,
        "{code:?}:\n{screen}"
    );
    if committed < generated {
        assert!(screen.contains("not every row was committed"), "{screen}");
    }
    assert_eq!(terminal.left_running(), vec![], "left running");
}

/// A stack that is only partly up is someone's: the pipeline starts what is
/// missing and, at its end, leaves every service running instead of taking
/// the whole stack down (which pulled MariaDB from under the tests after it).
#[test]
fn a_partly_running_stack_is_completed_and_left_running() {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let _stack = local_stack::exclusive_stack();
    let _whole_again = local_stack::restore(&["up"]);
    local_stack::stack(&["stop-service", "datanode-3"]);

    let output = pipeline(&["--duration", "4", "--store", "local", "--sink", "stats"])
        .output()
        .expect("run scripts/pipeline");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let status = std::process::Command::new(local_stack::stack_script())
        .arg("status")
        .output()
        .expect("run scripts/stack status");
    let listing = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "the pipeline left services stopped:\n{listing}"
    );
    assert!(listing.contains("datanode-3 running"), "{listing}");
}
