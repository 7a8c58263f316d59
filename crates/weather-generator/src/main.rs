use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
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
    #[arg(long, env = "AUTOGRADER_DELAY_OVERRIDE_VAL", default_value_t = 0.1, value_parser = program::parse_seconds)]
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
    #[arg(long, default_value_t = 120.0, value_parser = program::parse_seconds)]
    wait: f64,
}

fn main() -> ExitCode {
    program::block_on(async {
        program::init_logging("info");
        let cli = Cli::parse();
        program::exit("weather-generator", run(cli).await)
    })
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

    let shutdown = program::shutdown_on_signals();
    let database = Database::connect(&url, Duration::from_secs_f64(cli.wait)).await?;
    weather_generator::run(&database, &options, &shutdown).await?;
    Ok(())
}
