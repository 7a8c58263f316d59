use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use batch_store::{read_committed, CheckpointDir, Store};
use clap::Parser;
use consumer::{BatchLimits, ConsumerOptions, Output};

/// Consumes partitions of the topic into Parquet batch files
/// `/data/partition-N-batch-M.parquet` with a checkpoint `partition-N.json`
/// per partition, exactly once across crashes.
///
/// Course form: `consumer 0` (one partition) or `consumer 0 1 2 3`.
/// Group form: `consumer --subscribe --group G --checkpoint-dir hdfs://…` on
/// any number of hosts.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Partitions to consume (each keeps its own batches and checkpoint).
    #[arg(required_unless_present = "subscribe", value_parser = clap::value_parser!(i32).range(0..))]
    partitions: Vec<i32>,

    /// Group mode: join the consumer group --group and consume the
    /// partitions it hands this process (cooperative rebalancing), resuming
    /// each from its checkpoint. Needs --checkpoint-dir (or --stats-dir) on
    /// HDFS, where every member can read and fence each partition's state.
    #[arg(long, conflicts_with_all = ["partitions", "reset", "committed", "status"])]
    subscribe: bool,

    #[command(flatten)]
    kafka: program::KafkaFlags,

    /// Where batch files go: hdfs://host:port[/base], file:///dir or a directory.
    /// Default: hdfs://boss:9000 in the course container (PROJECT set), else ./p7-output.
    #[arg(long, env = "P7_STORE")]
    store: Option<String>,

    /// Seconds one HDFS call may go unanswered before it fails and is retried
    /// (a NameNode that hangs or a link that drops packets would otherwise hold
    /// the consumer in that call forever).
    #[arg(long, default_value_t = 30.0, value_parser = program::parse_seconds)]
    hdfs_timeout: f64,

    /// Directory of the partition-N.json checkpoints: a local directory, or
    /// hdfs://host:port/path on the store's NameNode, where any host can take
    /// a partition over (a consumer that took one over fences the previous one).
    /// Default: / in the course container (PROJECT set), else ./p7-output/checkpoints.
    #[arg(long, env = "P7_CHECKPOINT_DIR")]
    checkpoint_dir: Option<String>,

    #[command(flatten)]
    run: consumer::RunFlags,

    /// Most records in one batch file.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    batch_records: u64,

    /// Seconds to keep collecting after a batch's first record (0: one file per poll, as in the course).
    #[arg(long, default_value_t = 0.0, value_parser = program::parse_seconds)]
    batch_wait: f64,

    /// Forget the checkpoints of these partitions and start over at offset 0, batch 0.
    #[arg(long)]
    reset: bool,

    /// Consumer group told about our progress (for lag tools; never read
    /// back). With --subscribe, the group whose members share the partitions.
    #[arg(long, default_value = "consumer")]
    group: String,

    /// Do not consume: print the committed records of the partitions
    /// (batches 0..=batch_id of each checkpoint) as JSON Lines.
    #[arg(long, conflicts_with_all = ["stats", "status"])]
    committed: bool,

    /// Do not consume: print each partition's committed state as one line
    /// `partition=N offset=O batches=B` (with --stats: `partition=N offset=O
    /// records=R StationA=…`). Reads the checkpoints only; locks nothing.
    #[arg(long)]
    status: bool,

    /// Stats mode (the f24 course variant): instead of Parquet, keep per-station
    /// count/sum/avg/start/end with the offset in partition-N.json under --stats-dir.
    #[arg(long)]
    stats: bool,

    /// Stats mode: directory of the partition-N.json files (local, or hdfs://host:port/path).
    /// Default: /src in the course container (PROJECT set), else ./p7-output/stats.
    #[arg(long, env = "P7_STATS_DIR", requires = "stats")]
    stats_dir: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A crash inside librdkafka restarts the worker; see program::supervise.
    // The one-shot queries read no topic.
    if !(cli.committed || cli.status) {
        if let Some(exit) = program::supervise("consumer") {
            return exit;
        }
    }
    program::block_on(async {
        program::init_logging("info");
        program::exit("consumer", run(cli).await)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let store_location = cli
        .store
        .unwrap_or_else(batch_store::default_store_location);
    let call_timeout = Duration::from_secs_f64(cli.hdfs_timeout.max(0.1));
    let store = Store::open(&store_location)?.with_call_timeout(call_timeout);
    let checkpoints = match &cli.checkpoint_dir {
        Some(location) => CheckpointDir::open(location)?.with_call_timeout(call_timeout),
        None => CheckpointDir::new(batch_store::default_checkpoint_dir()),
    };

    if cli.committed {
        return print_committed(&store, &checkpoints, &cli.partitions).await;
    }
    let stats_dir = match (cli.stats, &cli.stats_dir) {
        (false, _) => None,
        (true, Some(location)) => {
            Some(CheckpointDir::open(location)?.with_call_timeout(call_timeout))
        }
        (true, None) => Some(CheckpointDir::new(PathBuf::from(
            if batch_store::in_course_container() {
                "/src"
            } else {
                "p7-output/stats"
            },
        ))),
    };
    if cli.status {
        return print_status(stats_dir.as_ref(), &checkpoints, &cli.partitions).await;
    }
    if cli.subscribe {
        let local = match &stats_dir {
            Some(dir) => dir.is_local().then(|| ("--stats-dir", dir.dir())),
            None => checkpoints
                .is_local()
                .then(|| ("--checkpoint-dir", checkpoints.dir())),
        };
        if let Some((flag, dir)) = local {
            anyhow::bail!(
                "--subscribe needs {flag} on HDFS (hdfs://HOST:PORT/PATH), not {}: the group moves \
                 partitions between consumers, so each partition's state must be where every \
                 consumer can read it",
                dir.display()
            );
        }
    }
    let output = match stats_dir {
        Some(dir) => Output::Stats { dir },
        None => {
            if !checkpoints.is_local() && !store.same_file_system(checkpoints.store()) {
                anyhow::bail!(
                    "--checkpoint-dir {} is on HDFS, so the store must be on the same NameNode \
                     (batch files are moved from the checkpoint directory into it), not {}",
                    checkpoints.dir().display(),
                    store.location()
                );
            }
            Output::Parquet { store, checkpoints }
        }
    };

    let shutdown = program::shutdown_on_signals();
    let settings = cli.kafka.settings();
    let options = ConsumerOptions {
        topic: cli.kafka.topic,
        group: cli.group,
        partitions: cli.partitions,
        subscribe: cli.subscribe,
        clients: cli.run.clients as usize,
        output,
        batch: BatchLimits {
            max_records: cli.batch_records as usize,
            max_wait: Duration::from_secs_f64(cli.batch_wait),
        },
        reset: cli.reset,
        start: consumer::StartAt::Earliest,
        topic_wait: cli.run.topic_wait(),
        exit_when_idle: cli.run.exit_when_idle(),
    };
    let started = std::time::Instant::now();
    let summaries = consumer::run(&settings, &options, &shutdown).await?;
    consumer::print_run_summary(started, &summaries);
    Ok(())
}

/// `--status`: the stats files' state if `stats` is given, else the checkpoints'.
async fn print_status(
    stats: Option<&CheckpointDir>,
    checkpoints: &CheckpointDir,
    partitions: &[i32],
) -> anyhow::Result<()> {
    for &partition in partitions {
        let line = match stats {
            Some(dir) => consumer::status::stats(dir, partition).await?,
            None => consumer::status::parquet(checkpoints, partition).await?,
        };
        println!("{line}");
    }
    Ok(())
}

async fn print_committed(
    store: &Store,
    checkpoints: &CheckpointDir,
    partitions: &[i32],
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for &partition in partitions {
        let records = read_committed(store, checkpoints, partition).await?;
        eprintln!("partition {partition}: {} committed records", records.len());
        for record in records {
            let line = serde_json::json!({
                "partition": partition,
                "station_id": record.station_id,
                "date": record.date,
                "degrees": record.degrees,
            });
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    Ok(())
}
