//! For the tests of what a program says while its broker cannot be reached:
//! its own line, and at most one rate-limited warning from the Kafka client,
//! never a wall of librdkafka's errors.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A broker address where nothing listens: a loopback port that was free a
/// moment ago, so connecting is refused at once.
pub fn broker() -> String {
    format!("127.0.0.1:{}", crate::free_port())
}

/// Runs `command` until it exits or, if it still runs after `run_for`,
/// until it has stopped on SIGTERM; what it printed.
pub fn run(mut command: Command, run_for: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the program");
    // Read the pipes while it runs, so a chatty program never blocks on them.
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            text
        })
    };
    let (stdout, stderr) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let status = match crate::wait_for_exit(&mut child, run_for) {
        Some(status) => status,
        None => {
            crate::signal(child.id(), "TERM");
            crate::wait_for_exit(&mut child, Duration::from_secs(30)).unwrap_or_else(|| {
                let _ = child.kill();
                panic!("still running 30 s after SIGTERM")
            })
        }
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Checks all of `stderr`, not only its last line: each line is one of the
/// program's own (containing one of `own`), or the Kafka client's warning
/// that `broker` cannot be reached, at most once (it is said at most every
/// 30 s); no line is an error logged by a Kafka client.
pub fn assert_quiet(context: &str, broker: &str, stderr: &str, own: &[&str]) {
    let warning = format!("cannot reach the broker at {broker}, still trying");
    let mut warnings = 0;
    for line in stderr.lines() {
        if line.contains(&warning) {
            warnings += 1;
        } else {
            assert!(
                own.iter().any(|text| line.contains(text)),
                "{context}: a line that is not the program's own:\n{line}\nin:\n{stderr}"
            );
        }
        assert!(
            !line.contains(" ERROR "),
            "{context}: an error line:\n{line}\nin:\n{stderr}"
        );
    }
    assert!(
        warnings <= 1,
        "{context}: {warnings} warnings about the broker:\n{stderr}"
    );
}
