use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use weather_generator::{course_mysql_url, Database, GeneratorOptions, Limit};

/// Inserts the course's deterministic weather readings into MySQL
/// (`CS544.temperatures`), one row every 0.1 s by default.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// MySQL URL. Default: the course container, mysql://root:abc@${PROJECT}-mysql-1:3306/CS544.
    #[arg(long, env = "P7_MYSQL_URL")]
    mysql_url: Option<String>,

    /// Seconds to pause after each row (course pacing). Graders set AUTOGRADER_DELAY_OVERRIDE_VAL.
    #[arg(long, env = "AUTOGRADER_DELAY_OVERRIDE_VAL", default_value_t = 0.1, value_parser = parse_seconds)]
    delay: f64,

    /// Stop after this many rows (default: run forever).
    #[arg(long, conflicts_with = "days")]
    rows: Option<u64>,

    /// Stop after this many days of ten rows (default: run forever).
    #[arg(long)]
    days: Option<u64>,

    /// Load fast: multi-row inserts with no pause, still in generation order.
    #[arg(long)]
    bulk: bool,

    /// Rows per insert statement in --bulk mode.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=65535))]
    bulk_rows: u64,

    /// Continue the sequence after the last row already in the table instead of starting at 2000-01-01.
    #[arg(long)]
    resume: bool,

    /// How long to wait for MySQL to become reachable, in seconds.
    #[arg(long, default_value_t = 120.0, value_parser = parse_seconds)]
    wait: f64,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(seconds),
        _ => Err(format!("{text:?} is not a number of seconds")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("weather-generator: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = match cli.mysql_url {
        Some(url) => url,
        None => course_mysql_url(std::env::var("PROJECT").ok().as_deref())
            .map_err(anyhow::Error::msg)?,
    };
    let limit = match (cli.rows, cli.days) {
        (Some(rows), _) => Limit::Rows(rows),
        (None, Some(days)) => Limit::Days(days),
        (None, None) => Limit::Forever,
    };
    let options = GeneratorOptions {
        delay: Duration::from_secs_f64(cli.delay),
        limit,
        bulk: cli.bulk,
        bulk_rows: cli.bulk_rows as usize,
        resume: cli.resume,
    };

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let database = Database::connect(&url, Duration::from_secs_f64(cli.wait)).await?;
    weather_generator::run(&database, &options, &shutdown).await?;
    Ok(())
}

/// SIGINT or SIGTERM: stop after the row being inserted.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping on signal");
    shutdown.cancel();
}
