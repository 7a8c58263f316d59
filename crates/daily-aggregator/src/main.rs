use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use daily_aggregator::Options;

/// Summarizes the collector's committed archive per day and station:
/// `<output-dir>/<YYYY-MM-DD>.jsonl` (a line per station) and
/// `<output-dir>/<YYYY-MM-DD>.parquet` (a row per station), with the
/// readings, the first and last timestamp, and count, min, max and mean of
/// every numeric field. Reads only lines the collector has committed, and
/// summarizes only days that changed since its last run; safe to run while
/// the collector runs, and again after any crash.
///
/// Every flag can also be set through the environment variable named with it.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The collector's archive (its --output-dir).
    #[arg(
        long,
        env = "DATA_COLLECTOR_OUTPUT_DIR",
        default_value = "p7-output/jsonl"
    )]
    archive_dir: PathBuf,

    /// Where the daily summaries go (not inside the archive, whose day
    /// directories the data loaders read).
    #[arg(
        long,
        env = "DAILY_AGGREGATOR_OUTPUT_DIR",
        default_value = "p7-output/daily"
    )]
    output_dir: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    program::block_on(async {
        program::init_logging("warn");
        program::exit("daily-aggregator", run(cli).await)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if inside(&cli.output_dir, &cli.archive_dir) {
        anyhow::bail!(
            "--output-dir {} is inside the archive {}: the summaries would be read as readings; \
             choose a directory outside it",
            cli.output_dir.display(),
            cli.archive_dir.display()
        );
    }
    let shutdown = program::shutdown_on_signals();
    let options = Options {
        archive: cli.archive_dir,
        output: cli.output_dir,
    };
    let summary = daily_aggregator::run(&options, &|| shutdown.is_cancelled()).await?;
    if summary.nothing_committed {
        eprintln!(
            "daily-aggregator: nothing committed in {} yet (no checkpoint); nothing to do",
            options.archive.display()
        );
        return Ok(());
    }
    let days = match summary.summarized.as_slice() {
        [] => "no day changed".to_string(),
        [day] => format!("1 day summarized ({day})"),
        [first, .., last] => format!(
            "{} days summarized ({first} to {last})",
            summary.summarized.len()
        ),
    };
    eprintln!(
        "daily-aggregator: {days}, {} unchanged; summaries in {}",
        summary.unchanged,
        options.output.display()
    );
    if summary.stopped {
        eprintln!(
            "daily-aggregator: stopped before every changed day was done; run it again to finish"
        );
    }
    Ok(())
}

/// Whether `dir` is `root` or inside it, with symbolic links and `..`
/// resolved as far as the paths exist.
fn inside(dir: &Path, root: &Path) -> bool {
    resolve(dir).starts_with(resolve(root))
}

/// `path` made absolute, its longest existing ancestor resolved.
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(resolved) = std::fs::canonicalize(existing) {
            return rest
                .iter()
                .rev()
                .fold(resolved, |path, part| path.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}
