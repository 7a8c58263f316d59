use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use batch_store::{CheckpointDir, Store};
use clap::Parser;
use dashboard::DashboardOptions;

/// Serves a web page of the committed weather data — monthly mean temperature
/// per station, the latest reading per station, and the pipeline's health —
/// refreshed as the consumer commits batches. Reads only committed batches
/// (0..=batch_id of each partition-N.json).
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Where the batch files are: hdfs://host:port[/base], file:///dir or a directory.
    /// Default: hdfs://boss:9000 in the course container (PROJECT set), else ./p7-output.
    #[arg(long, env = "P7_STORE")]
    store: Option<String>,

    /// Directory of the partition-N.json checkpoints (local, or hdfs://host:port/path).
    /// Default: / in the course container (PROJECT set), else ./p7-output/checkpoints.
    #[arg(long, env = "P7_CHECKPOINT_DIR")]
    checkpoint_dir: Option<String>,

    /// Partitions to show (default: every partition with a checkpoint).
    #[arg(long = "partition", value_parser = clap::value_parser!(i32).range(0..))]
    partitions: Vec<i32>,

    /// Address to serve the page on.
    #[arg(long, env = "P7_DASHBOARD_LISTEN", default_value = "127.0.0.1:8544")]
    listen: SocketAddr,

    /// Seconds between looks for new batches (the page reloads its figures as often).
    #[arg(long, default_value_t = 5.0, value_parser = program::parse_seconds)]
    refresh: f64,

    #[command(flatten)]
    kafka: program::KafkaFlags,

    /// Do not ask the broker for the partitions' ends (no lag column).
    #[arg(long)]
    no_lag: bool,

    /// Seconds one batch file may take to read before the store counts as unreachable.
    #[arg(long, default_value_t = 10.0, value_parser = program::parse_seconds)]
    read_timeout: f64,

    /// Do not serve: read everything committed once, write the monthly chart
    /// to this SVG file and exit.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,

    /// With --svg: draw only these stations (repeatable; default all).
    #[arg(long = "station", requires = "svg")]
    stations: Vec<String>,
}

fn main() -> ExitCode {
    program::block_on(async {
        // The HDFS client logs every failed reconnect; the page says it plainly instead.
        program::init_logging("info,hdfs_native=error");
        let cli = Cli::parse();
        program::exit("dashboard", run(cli).await)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let store = Store::open(
        &cli.store
            .unwrap_or_else(batch_store::default_store_location),
    )?;
    let checkpoints = match &cli.checkpoint_dir {
        Some(location) => CheckpointDir::open(location)?,
        None => CheckpointDir::new(batch_store::default_checkpoint_dir()),
    };
    let partitions = (!cli.partitions.is_empty()).then_some(cli.partitions);
    let read_timeout = Duration::from_secs_f64(cli.read_timeout.max(0.1));

    if let Some(path) = cli.svg {
        let summary = dashboard::write_svg(
            store,
            checkpoints,
            partitions,
            &cli.stations,
            &path,
            read_timeout,
        )
        .await?;
        eprintln!(
            "wrote {} ({} stations, {} records)",
            path.display(),
            if cli.stations.is_empty() {
                summary.stations.len()
            } else {
                cli.stations.len()
            },
            summary.records
        );
        return Ok(());
    }

    if cli.refresh < 0.1 {
        anyhow::bail!("--refresh must be at least 0.1 seconds");
    }
    let options = DashboardOptions {
        store,
        checkpoints,
        partitions,
        listen: cli.listen,
        refresh: Duration::from_secs_f64(cli.refresh),
        kafka: (!cli.no_lag).then(|| (cli.kafka.settings(), cli.kafka.topic.clone())),
        read_timeout,
    };
    let shutdown = program::shutdown_on_signals();
    dashboard::serve(options, shutdown, |addr| {
        eprintln!("dashboard: serving http://{addr}/");
    })
    .await?;
    Ok(())
}
