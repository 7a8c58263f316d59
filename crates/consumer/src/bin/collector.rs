use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use consumer::jsonl::{Archive, Format};
use consumer::{BatchLimits, ConsumerOptions, Output, StartAt};

/// Collects the topic into a JSON Lines archive, one file per day and station:
/// `<output-dir>/<YYYY-MM-DD>/<station>_<YYYY-MM-DD>.jsonl`, with the offsets of
/// every partition in `<output-dir>/checkpoints/offset_checkpoint.json`.
/// Every record lands exactly once, across crashes and restarts; a message
/// that is not a reading goes whole to `<output-dir>/dead-letters.jsonl`.
///
/// Every flag can also be set through the environment variable named with it.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Partitions to collect. Default: all partitions of the topic.
    #[arg(value_parser = clap::value_parser!(i32).range(0..))]
    partitions: Vec<i32>,

    #[command(flatten)]
    kafka: program::ConnectionFlags,

    /// What the messages are: `json`, one JSON reading per message
    /// (`station_id`, `station_name`, an RFC 3339 `timestamp`, `temperature`,
    /// any other fields), each kept as it came in the file of its station's
    /// name and its timestamp's UTC day; or `report`, the course's protobuf
    /// Report, as a line of its fields in the file of its station id and date.
    #[arg(long, env = "DATA_COLLECTOR_FORMAT", value_enum, default_value_t = InputFormat::Json)]
    format: InputFormat,

    /// The topic. Default: `weather-raw` for `--format json`, `temperatures`
    /// for `--format report`.
    #[arg(long)]
    topic: Option<String>,

    /// Directory of the archive.
    #[arg(
        long,
        env = "DATA_COLLECTOR_OUTPUT_DIR",
        default_value = "p7-output/jsonl"
    )]
    output_dir: PathBuf,

    /// A partition's batch is written once it has this many messages...
    #[arg(long, env = "DATA_COLLECTOR_BATCH_SIZE", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    batch_size: u64,

    /// ...or this many seconds after its first message, whichever comes first.
    #[arg(long, env = "DATA_COLLECTOR_BATCH_TIMEOUT", default_value_t = 300.0,
          value_parser = program::parse_seconds)]
    batch_timeout: f64,

    #[command(flatten)]
    run: consumer::RunFlags,

    /// Where a partition that has no offset in the checkpoint starts.
    #[arg(long, env = "DATA_COLLECTOR_OFFSET_RESET", value_enum, default_value_t = OffsetReset::Earliest)]
    offset_reset: OffsetReset,

    /// Consumer group told about our progress (for lag tools; never read back).
    #[arg(long, default_value = "kafka-data-collector")]
    group: String,

    /// Do not collect: print each partition's committed offset as one line
    /// `partition=N offset=O` (the given partitions, or every one the
    /// checkpoint names). Reads the checkpoint only; locks nothing.
    #[arg(long)]
    status: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InputFormat {
    /// JSON readings, as the data collector's producer sends them.
    Json,
    /// The course's protobuf Report.
    Report,
}

impl From<InputFormat> for Format {
    fn from(format: InputFormat) -> Self {
        match format {
            InputFormat::Json => Format::Json,
            InputFormat::Report => Format::Report,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OffsetReset {
    /// From the partition's first record.
    Earliest,
    /// Only records produced after the collector started.
    Latest,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A crash inside librdkafka restarts the worker; see program::supervise.
    // `--status` reads no topic.
    if !cli.status {
        if let Some(exit) = program::supervise("collector") {
            return exit;
        }
    }
    program::block_on(async {
        program::init_logging("info");
        program::exit("collector", run(cli).await)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let format = Format::from(cli.format);
    let topic = cli
        .topic
        .clone()
        .unwrap_or_else(|| format.default_topic().to_string());
    if cli.status {
        let lines = consumer::status::archive(&cli.output_dir, &topic, &cli.partitions).await?;
        for line in lines {
            println!("{line}");
        }
        return Ok(());
    }
    let started = std::time::Instant::now();
    let shutdown = program::shutdown_on_signals();
    let archive = Arc::new(Archive::open(&cli.output_dir).await?);
    let settings = cli.kafka.settings();
    let wait = cli.run.topic_wait();
    let partitions = if cli.partitions.is_empty() {
        match consumer::topic_partitions(&settings, &topic, wait, &shutdown).await? {
            Some(partitions) => partitions,
            None => return Ok(()),
        }
    } else {
        cli.partitions
    };
    tracing::info!(dir = %archive.dir().display(), %topic, ?format, ?partitions, "collecting");
    let options = ConsumerOptions {
        subscribe: false,
        topic,
        group: cli.group,
        partitions,
        clients: cli.run.clients as usize,
        output: Output::JsonLines { archive, format },
        batch: BatchLimits {
            max_records: cli.batch_size as usize,
            max_wait: Duration::from_secs_f64(cli.batch_timeout),
        },
        reset: false,
        start: match cli.offset_reset {
            OffsetReset::Earliest => StartAt::Earliest,
            OffsetReset::Latest => StartAt::Latest,
        },
        topic_wait: wait,
        exit_when_idle: cli.run.exit_when_idle(),
    };
    let summaries = consumer::run(&settings, &options, &shutdown).await?;
    consumer::print_run_summary(started, &summaries);
    Ok(())
}
