use std::process::ExitCode;

use clap::Parser;
use debug::DebugOptions;

/// Prints every new record of the topic as a Python dict line, e.g.
/// {'station_id': 'StationC', 'date': '2008-12-17', 'degrees': 35.2621, 'partition': 2}
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    kafka: program::KafkaFlags,

    /// Consumer group.
    #[arg(long, default_value = debug::GROUP)]
    group: String,

    /// When the group has no committed offsets, start at the beginning of each
    /// partition instead of at its end.
    #[arg(long)]
    from_beginning: bool,

    /// Do not consume: print "PARTITION END" for each partition of the topic
    /// (END is the offset its next record will get) and exit.
    #[arg(long)]
    end_offsets: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A crash inside librdkafka restarts the worker; see program::supervise.
    // `--end-offsets` fetches nothing.
    if !cli.end_offsets {
        if let Some(exit) = program::supervise("debug") {
            return exit;
        }
    }
    program::block_on(async {
        program::init_logging("warn");
        let settings = cli.kafka.settings();
        if cli.end_offsets {
            let ends = topic::end_offsets(
                &settings,
                &cli.kafka.topic,
                std::time::Duration::from_secs(10),
            );
            return program::exit(
                "debug",
                ends.map(|ends| {
                    for (partition, end) in ends.iter().enumerate() {
                        println!("{partition} {end}");
                    }
                })
                .map_err(anyhow::Error::from),
            );
        }
        let options = DebugOptions {
            topic: cli.kafka.topic,
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
    })
}
