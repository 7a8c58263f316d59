use std::process::ExitCode;

use clap::Parser;
use debug::DebugOptions;
use topic::KafkaSettings;

/// Prints every new record of the topic as a Python dict line, e.g.
/// {'station_id': 'StationC', 'date': '2008-12-17', 'degrees': 35.2621, 'partition': 2}
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Kafka bootstrap servers.
    #[arg(long, env = "P7_BROKERS", default_value = "localhost:9092")]
    brokers: String,

    /// Extra librdkafka property, KEY=VALUE (repeatable).
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE", value_parser = parse_property)]
    properties: Vec<(String, String)>,

    /// Topic to read.
    #[arg(long, default_value = report::TOPIC)]
    topic: String,

    /// Consumer group.
    #[arg(long, default_value = debug::GROUP)]
    group: String,

    /// When the group has no committed offsets, start at the beginning of each
    /// partition instead of at its end.
    #[arg(long)]
    from_beginning: bool,
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    topic::parse_property(text).map_err(|err| err.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    program::init_logging("warn");
    let cli = Cli::parse();
    let settings = KafkaSettings {
        brokers: cli.brokers,
        properties: cli.properties,
    };
    let options = DebugOptions {
        topic: cli.topic,
        group: cli.group,
        from_beginning: cli.from_beginning,
    };
    let shutdown = program::shutdown_on_signals();
    let mut stdout = std::io::stdout().lock();
    program::exit(
        "debug",
        debug::run(&settings, &options, &mut stdout, &shutdown)
            .await
            .map(drop),
    )
}
