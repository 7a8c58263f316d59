//! The grader against the real local stack: a full score for the real
//! programs, failures that name the broken program, and one clear reason when
//! a check cannot run at all.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A grader run against the stack recreates the topic `temperatures`: the
/// tests that run one take turns.
static ONE_GRADER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_grader_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_GRADER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_grader"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn grader(bin_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grader"));
    command
        .arg("--bin-dir")
        .arg(bin_dir)
        .env("P7_BROKERS", local_stack::brokers())
        .env("P7_MYSQL_URL", local_stack::mysql_url())
        .env("P7_HDFS_URL", local_stack::hdfs_url())
        .env_remove("PROJECT");
    command
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("a JSON report")).unwrap()
}

fn statuses(report: &serde_json::Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_string())
        .collect()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A directory with the real programs, except `replaced` by a shell script.
fn bin_dir_with(replaced: &str, script: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for program in ["weather-generator", "producer", "debug", "consumer"] {
        let target = dir.path().join(program);
        if program == replaced {
            write_script(&target, script);
        } else {
            let real = bin_dir().join(program);
            assert!(
                real.is_file(),
                "{} is missing: build the workspace's binaries first (cargo test --workspace does)",
                real.display()
            );
            std::os::unix::fs::symlink(real, target).unwrap();
        }
    }
    dir
}

/// The grader run with `args` and a JSON report, which must succeed: what
/// it printed, and the report.
fn successful_grade(args: &[&str]) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = grader(&bin_dir())
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    (printed, report(&json))
}

#[test]
fn the_real_pipeline_gets_a_full_score_and_a_broken_consumer_does_not() {
    let _turn = one_grader_at_a_time();
    // Both use the stack's `temperatures` topic, so they run one after the other.
    let (printed, full) = successful_grade(&[]);
    assert_eq!(
        (full["score"].as_u64(), full["max_score"].as_u64()),
        (Some(6), Some(6)),
        "{printed}"
    );
    assert_eq!(statuses(&full), vec!["pass"; 6]);
    assert!(printed.contains("score: 6/6"), "{printed}");
    assert_eq!(printed.lines().filter(|l| l.starts_with("PASS")).count(), 6);

    // A consumer that writes nothing: the checks that need it fail and say why.
    let broken = bin_dir_with(
        "consumer",
        "#!/bin/sh\necho 'consumer: pretending to be broken' >&2\nexit 1\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("broken.json");
    let output = grader(broken.path())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let printed = text(&output);
    assert!(!output.status.success(), "{printed}");
    let partial = report(&json);
    assert_eq!(
        statuses(&partial),
        ["pass", "pass", "pass", "fail", "not_run", "fail"],
        "{printed}"
    );
    assert!(
        partial["checks"][3]["detail"]
            .as_str()
            .unwrap()
            .contains("pretending to be broken"),
        "{printed}"
    );
    assert!(printed.contains("score: 3/6"), "{printed}");
}

#[test]
fn consumers_with_their_checkpoints_on_hdfs_get_a_full_score() {
    let _turn = one_grader_at_a_time();
    let (printed, full) = successful_grade(&["--checkpoints-on-hdfs"]);
    assert_eq!(statuses(&full), vec!["pass"; 6], "{printed}");
    let commit = full["checks"][3]["detail"].as_str().unwrap();
    assert!(
        commit.contains(&format!(
            "checkpoints in {}/grader_",
            local_stack::hdfs_url()
        )),
        "{commit}"
    );

    // Not without HDFS.
    let dir = tempfile::tempdir().unwrap();
    let output = grader(&bin_dir())
        .arg("--checkpoints-on-hdfs")
        .env("P7_HDFS_URL", dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        text(&output).contains("needs --hdfs-url"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_stack_that_is_not_running_is_named_and_nothing_else_runs() {
    // Several runs: librdkafka's errors for the missing broker came as a
    // burst of lines in some runs only. At the default log level, stderr
    // has nothing from the Kafka clients.
    for _ in 0..4 {
        let broker = local_stack::unreachable::broker();
        let output = grader(&bin_dir())
            .env("P7_BROKERS", &broker)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        local_stack::unreachable::assert_quiet("grader", &broker, &stderr, &[]);
        let printed = text(&output);
        let first = printed.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("NOT RUN 1.") && first.contains(&format!("{broker} does not answer")),
            "{printed}"
        );
    }
    let output = grader(&bin_dir())
        .env("P7_BROKERS", "127.0.0.1:1")
        .output()
        .unwrap();
    let printed = text(&output);
    assert!(!output.status.success());
    let first = printed.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("NOT RUN 1.") && first.contains("127.0.0.1:1 does not answer"),
        "{printed}"
    );
    assert_eq!(
        printed
            .lines()
            .filter(|l| l.contains("needs check 1"))
            .count(),
        5,
        "{printed}"
    );
    assert!(printed.contains("score: 0/6"), "{printed}");
}

#[test]
fn a_missing_binary_is_named() {
    let empty = tempfile::tempdir().unwrap();
    let output = grader(empty.path()).output().unwrap();
    let printed = text(&output);
    assert!(!output.status.success());
    let first = printed.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("NOT RUN 1.")
            && first.contains(&format!(
                "{}",
                empty.path().join("weather-generator").display()
            ))
            && first.contains("does not exist"),
        "{printed}"
    );
}

/// Runs `grader --compose --project <project>` with only `path` on PATH;
/// returns its single line of stderr (it must fail).
fn compose_error(project: &str, path: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_grader"))
        .args(["--compose", "--project", project])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn compose_without_docker_or_without_the_container_says_so() {
    // No docker on PATH at all.
    let empty = tempfile::tempdir().unwrap();
    let stderr = compose_error("p7", empty.path());
    assert!(stderr.contains("docker CLI is not installed"), "{stderr}");

    // A docker that knows no such container (as the real one answers).
    write_script(
        &empty.path().join("docker"),
        "#!/bin/sh\necho \"Error: No such object: $5\" >&2\nexit 1\n",
    );
    let stderr = compose_error("nosuch", empty.path());
    assert!(
        stderr.contains("no container nosuch-kafka") && stderr.contains("PROJECT=nosuch"),
        "{stderr}"
    );
}

/// Ctrl+C in a terminal reaches the grader alone (its programs have process
/// groups of their own): it stops them, reports what it checked so far and
/// the rest as not run, exits 130, and leaves nothing running.
#[test]
fn ctrl_c_stops_the_grader_and_every_program_it_started() {
    let _turn = one_grader_at_a_time();
    let mut command = grader(&bin_dir());
    command.env_remove("RUST_LOG");
    let mut terminal = local_stack::terminal::Terminal::run(command);
    assert!(
        terminal.wait_for(
            "1. topic temperatures",
            1,
            std::time::Duration::from_secs(120)
        ),
        "{}",
        terminal.screen()
    );
    terminal.interrupt();
    let status = terminal.wait(std::time::Duration::from_secs(60));
    let screen = terminal.screen();
    assert_eq!(status.and_then(|s| s.code()), Some(130), "{screen}");
    assert!(screen.contains("the grader was stopped"), "{screen}");
    assert!(screen.contains("6. "), "every check is listed:\n{screen}");
    assert!(screen.contains("score: "), "{screen}");
    assert_eq!(terminal.left_running(), vec![], "left running:\n{screen}");
}
