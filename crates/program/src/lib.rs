//! The conventions every program of the pipeline shares, so they behave the
//! same from the command line and under `docker exec`: logs go to stderr
//! (stdout belongs to data, e.g. the debug lines graders read), SIGINT and
//! SIGTERM ask for a clean stop, a failure is one line and exit code 1, and
//! Kafka is reached through the same flags everywhere.

use std::io::IsTerminal;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

mod supervisor;
pub use supervisor::{kill_program, restarted_after_crash, supervise};

/// Runs a program's `main` on a multi-threaded tokio runtime, after tuning
/// glibc's malloc (see `tune_malloc`).
pub fn block_on(main: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    tune_malloc();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(main),
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Before any thread exists, caps glibc's malloc at one arena and fixes the
/// size above which a block gets its own mapping at 1 MiB (unless
/// `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_` say otherwise): the
/// program's threads each allocate, every extra arena keeps its own free
/// memory, and a rising mapping threshold moves the batch buffers onto the
/// heap. What each setting saved, measured: docs/design.md, "Memory".
#[allow(unsafe_code)]
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes a malloc tunable; it is called before
        // the runtime starts the program's other threads.
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            }
        }
    }
}

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise, with
/// colours only when a person is watching.
pub fn init_logging(default_level: &str) {
    // hdfs-native warns for every file writer dropped unclosed, and a
    // consumer drops the batch uploads it abandons on purpose (a partition
    // taken over, a commit that failed): their temp files are cleaned up by
    // the next owner. Unless RUST_LOG names hdfs_native itself, that one
    // warning is left out.
    let mut spec = std::env::var("RUST_LOG").unwrap_or_else(|_| default_level.to_string());
    if !spec.contains("hdfs_native") {
        spec.push_str(",hdfs_native::file=error");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
}

/// A token cancelled by the first SIGINT or SIGTERM. Listens from the moment
/// it returns, and only then lets the two signals in: a supervised worker
/// starts with them blocked, so a stop asked for during its start-up is kept
/// pending until here and then cancels the token at once.
pub fn shutdown_on_signals() -> CancellationToken {
    use tokio::signal::unix::{signal, SignalKind};
    let shutdown = CancellationToken::new();
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            let token = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tracing::info!("stopping on signal");
                token.cancel();
            });
        }
        // Unblocked below, the signals then stop the program by their
        // default action.
        _ => tracing::warn!("cannot listen for SIGINT/SIGTERM"),
    }
    if let Err(err) = supervisor::mask_stop_signals(libc::SIG_UNBLOCK) {
        tracing::warn!("cannot unblock SIGINT/SIGTERM: {err}");
    }
    shutdown
}

/// Turns the outcome of a program into its exit code, printing a failure as
/// one line `<program>: <error with its causes>`.
pub fn exit<E: Into<anyhow::Error>>(program: &str, outcome: Result<(), E>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{program}: {}", one_line(&err.into()));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line. Many messages already quote their
/// cause; such a cause is not repeated.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

/// The flags every program that talks to Kafka takes.
#[derive(clap::Args, Debug, Clone)]
pub struct KafkaFlags {
    #[command(flatten)]
    pub connection: ConnectionFlags,

    /// The topic.
    #[arg(long, default_value = report::TOPIC)]
    pub topic: String,
}

impl KafkaFlags {
    pub fn settings(&self) -> topic::KafkaSettings {
        self.connection.settings()
    }
}

/// How to reach Kafka: the part of `KafkaFlags` that is not the topic, for a
/// program whose topic's default depends on its other flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionFlags {
    /// Kafka bootstrap servers.
    #[arg(long, env = "P7_BROKERS", default_value = "localhost:9092")]
    pub brokers: String,

    /// Extra librdkafka property, KEY=VALUE (repeatable); applied last, over our defaults.
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
}

impl ConnectionFlags {
    pub fn settings(&self) -> topic::KafkaSettings {
        topic::KafkaSettings {
            brokers: self.brokers.clone(),
            properties: self.properties.clone(),
        }
    }
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    topic::parse_property(text).map_err(|err| err.to_string())
}

/// Parses a flag given in seconds: a finite, non-negative number.
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(seconds),
        _ => Err(format!("{text:?} is not a number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::{one_line, parse_seconds};

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open {path}: {source}")]
    struct Quoting {
        path: &'static str,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_is_printed_once() {
        let quoted = anyhow::Error::new(Quoting {
            path: "a.json",
            source: std::io::Error::other("disk on fire"),
        });
        assert_eq!(one_line(&quoted), "cannot open a.json: disk on fire");
        let wrapped =
            anyhow::Error::new(std::io::Error::other("disk on fire")).context("saving a.json");
        assert_eq!(one_line(&wrapped), "saving a.json: disk on fire");
    }

    #[test]
    fn seconds_are_finite_and_not_negative() {
        assert_eq!(parse_seconds("0.1"), Ok(0.1));
        assert_eq!(parse_seconds(" 3 "), Ok(3.0));
        for bad in ["-1", "abc", "inf", "NaN", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
