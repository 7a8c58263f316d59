use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

mod checks;
mod compose;
mod setup;

/// Checks the pipeline the way the course's autograder does: starts the
/// generator and the producer, then checks the topic, a reader with no group,
/// `debug`, `consumer 0..3` and their files, crash recovery of a consumer and
/// the stats variant. Prints one line per check and a score; exits 0 only on
/// a full score.
///
/// Local (default): against the stack of `scripts/stack up` (settings from
/// P7_* variables, binaries next to this one), with a fresh database and HDFS
/// directory. In the course container (PROJECT set): the container's own
/// services and paths. --compose: runs itself in the kafka container of a
/// running compose stack through `docker exec`.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Check the compose stack `${PROJECT}` through `docker exec ${PROJECT}-kafka`.
    #[arg(long)]
    compose: bool,

    /// The compose project (container `${PROJECT}-kafka`).
    #[arg(long, env = "PROJECT", default_value = "p7")]
    project: String,

    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,

    /// Local: directory of the binaries. Default: the grader's own directory.
    #[arg(long)]
    bin_dir: Option<PathBuf>,

    /// Local: Kafka bootstrap servers.
    #[arg(long, env = "P7_BROKERS", default_value = "localhost:9092")]
    brokers: String,

    /// Local: MySQL server URL; the grader creates its own database on it.
    #[arg(long, env = "P7_MYSQL_URL")]
    mysql_url: Option<String>,

    /// Local: HDFS (or a directory) under which the grader's batches go.
    #[arg(long, env = "P7_HDFS_URL")]
    hdfs_url: Option<String>,

    /// Local: the consumers keep their checkpoints on HDFS beside the
    /// batches (`<store>/checkpoints`), as consumers that may take each
    /// other's partitions over do, and the checks read them there.
    #[arg(long)]
    checkpoints_on_hdfs: bool,
}

fn main() -> ExitCode {
    program::block_on(async {
        program::init_logging("warn");
        let cli = Cli::parse();
        if cli.compose {
            return compose::run(&cli.project, cli.json.as_deref());
        }
        let setup = match setup::Setup::new(&cli).await {
            Ok(setup) => setup,
            Err(err) => {
                eprintln!("grader: {err:#}");
                return ExitCode::FAILURE;
            }
        };
        // Ctrl+C or SIGTERM: the check under way is abandoned, the programs
        // the grader started are stopped and its database dropped, and what
        // was checked so far is reported.
        let shutdown = program::shutdown_on_signals();
        let mut report = checks::Scorecard::default();
        let stopped = tokio::select! {
            () = checks::run_all(&setup, &mut report) => false,
            () = shutdown.cancelled() => true,
        };
        if stopped {
            report.interrupted();
        }
        setup.finish();
        checks::drop_database(&setup).await;
        report.print();
        if let Some(path) = &cli.json {
            if let Err(err) = report.write_json(path) {
                eprintln!(
                    "grader: cannot write the report to {}: {err}",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
        }
        if stopped {
            eprintln!("grader: stopped before every check ran");
            ExitCode::from(130)
        } else if report.full_score() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}
