use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use producer::{ProducerOptions, Source};
use topic::TopicSpec;
use weather_generator::{course_mysql_url, Database};

/// Streams weather rows into the `temperatures` topic as protobuf `Report`s
/// keyed by station. Recreates the topic at start, as the course producer
/// does, unless --resume is given.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    kafka: program::KafkaFlags,

    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = report::PARTITIONS, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,

    /// Replication factor of the topic when it is created.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    replication: i32,

    /// Seconds to wait after deleting an existing topic before creating it again.
    #[arg(long, default_value_t = 3.0, value_parser = program::parse_seconds)]
    settle: f64,

    /// Keep the topic and continue after the highest row id already in each
    /// partition: a restart after a crash neither duplicates nor skips a row.
    #[arg(long)]
    resume: bool,

    /// Where rows come from: the MySQL table, or the generator itself (f24 course variant, no MySQL).
    #[arg(long, value_enum, default_value_t = SourceKind::Mysql)]
    source: SourceKind,

    /// MySQL URL. Default: the course container, mysql://root:abc@${PROJECT}-mysql-1:3306/CS544.
    #[arg(long, env = "P7_MYSQL_URL")]
    mysql_url: Option<String>,

    /// Rows read from MySQL per query.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    chunk: u32,

    /// Seconds between MySQL polls when no new rows arrived.
    #[arg(long, default_value_t = 0.05, value_parser = program::parse_seconds)]
    poll_interval: f64,

    /// --source generator: seconds between rows (AUTOGRADER_DELAY_OVERRIDE_VAL overrides the course's 0.1).
    #[arg(long, env = "AUTOGRADER_DELAY_OVERRIDE_VAL", default_value_t = 0.1, value_parser = program::parse_seconds)]
    delay: f64,

    /// --source generator: stop after the row with this id (default: run forever).
    #[arg(long)]
    rows: Option<u64>,

    /// Exit (after flushing) once no new MySQL row has appeared for this many seconds.
    #[arg(long, value_parser = program::parse_seconds)]
    exit_when_idle: Option<f64>,

    /// Seconds to wait for the broker and MySQL to become reachable at start.
    #[arg(long, default_value_t = 120.0, value_parser = program::parse_seconds)]
    wait: f64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SourceKind {
    Mysql,
    Generator,
}

fn main() -> ExitCode {
    program::block_on(async {
        program::init_logging("info");
        let cli = Cli::parse();
        program::exit("producer", run(cli).await)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let shutdown = program::shutdown_on_signals();
    let wait = Duration::from_secs_f64(cli.wait);

    let source = match cli.source {
        SourceKind::Mysql => {
            let url = match cli.mysql_url {
                Some(url) => url,
                None => course_mysql_url(std::env::var("PROJECT").ok().as_deref())
                    .map_err(anyhow::Error::msg)?,
            };
            Source::Mysql {
                database: Database::connect(&url, wait).await?,
                chunk: cli.chunk,
                poll_interval: Duration::from_secs_f64(cli.poll_interval),
                exit_when_idle: cli.exit_when_idle.map(Duration::from_secs_f64),
            }
        }
        SourceKind::Generator => Source::Generator {
            delay: Duration::from_secs_f64(cli.delay),
            rows: cli.rows,
        },
    };
    let settings = cli.kafka.settings();
    let options = ProducerOptions {
        topic: TopicSpec {
            name: cli.kafka.topic,
            partitions: cli.partitions,
            replication: cli.replication,
            settle: Duration::from_secs_f64(cli.settle),
        },
        resume: cli.resume,
        broker_wait: wait,
    };
    producer::run(&settings, &options, source, &shutdown).await?;
    Ok(())
}
