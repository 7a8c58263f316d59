//! The dashboard over what the real pipeline committed: generator → MySQL →
//! producer → Kafka → consumer → Parquet on HDFS. Its figures must equal
//! those computed straight from the generator's rows, whatever else lies in
//! the store, and the page must render in a real browser.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use batch_store::{CheckpointDir, Store};
use common::*;
use consumer::{BatchLimits, ConsumerOptions, Output, StartAt};
use tokio_util::sync::CancellationToken;
use topic::{KafkaSettings, TopicSpec};
use weather_generator::{Database, GeneratorOptions, Limit, WeatherGenerator};

const ROWS: u64 = 4000;

/// Runs the whole pipeline for the first `ROWS` rows of the course sequence,
/// committing to a fresh directory of the stack's HDFS; returns the topic.
async fn run_pipeline(committed: &Committed) -> String {
    let shutdown = CancellationToken::new();
    let url = local_stack::fresh_database("dashboard").await;
    let database = Database::connect(&url, Duration::from_secs(30))
        .await
        .unwrap();
    let generated = weather_generator::run(
        &database,
        &GeneratorOptions {
            delay: Duration::ZERO,
            limit: Limit::Rows(ROWS),
            bulk: true,
            bulk_rows: 1000,
            resume: false,
        },
        &shutdown,
    )
    .await
    .unwrap();
    assert_eq!(generated, ROWS);

    let settings = KafkaSettings::new(local_stack::brokers());
    let topic = local_stack::unique_name("dashboard");
    let produced = producer::run(
        &settings,
        &producer::ProducerOptions::recreating(TopicSpec::course(&topic)),
        producer::Source::Mysql {
            database,
            chunk: 1000,
            poll_interval: Duration::from_millis(50),
            exit_when_idle: Some(Duration::from_secs(1)),
        },
        &shutdown,
    )
    .await
    .unwrap();
    assert_eq!(produced.delivered, ROWS);

    let summaries = consumer::run(
        &settings,
        &ConsumerOptions {
            subscribe: false,
            topic: topic.clone(),
            group: "dashboard-test".into(),
            partitions: vec![0, 1, 2, 3],
            clients: 2,
            output: Output::Parquet {
                store: Store::open(&committed.store_location).unwrap(),
                checkpoints: CheckpointDir::new(&committed.checkpoint_dir),
            },
            // Several batches per partition, so the reader has batches to walk.
            batch: BatchLimits {
                max_records: 300,
                max_wait: Duration::from_millis(200),
            },
            reset: false,
            start: StartAt::Earliest,
            topic_wait: Duration::from_secs(30),
            exit_when_idle: Some(Duration::from_secs(2)),
        },
        &shutdown,
    )
    .await
    .unwrap();
    assert_eq!(summaries.iter().map(|s| s.records).sum::<u64>(), ROWS);
    topic
}

/// (sum, count) of readings per month "YYYY-MM".
type Months = BTreeMap<String, (f64, u64)>;

/// Per station: records and monthly totals, from the generator alone.
fn expected() -> BTreeMap<String, (u64, Months)> {
    let mut stations: BTreeMap<String, (u64, Months)> = BTreeMap::new();
    for reading in WeatherGenerator::new().take(ROWS as usize) {
        let station = stations.entry(reading.station_id.to_string()).or_default();
        station.0 += 1;
        let month = reading.date.to_string()[..7].to_string();
        let total = station.1.entry(month).or_default();
        total.0 += reading.degrees;
        total.1 += 1;
    }
    stations
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_exactly_what_the_pipeline_committed() {
    let mut committed = Committed::local();
    committed.store_location = format!(
        "{}/{}",
        local_stack::hdfs_url(),
        local_stack::unique_name("dashboard")
    );
    let topic = run_pipeline(&committed).await;

    // A crash leftover: a batch file above partition 0's checkpoint. It holds
    // a station that does not exist and more StationA readings; none may count.
    let checkpoint = committed.checkpoints().load(0).await.unwrap().unwrap();
    committed
        .write_batch(
            0,
            checkpoint.batch_id + 1,
            &[
                ("StationZ", "2000-01-01", 99.0),
                ("StationA", "2000-01-02", 99.0),
            ],
        )
        .await;

    let brokers = local_stack::brokers();
    let dashboard = Dashboard::start(&committed, &["--brokers", &brokers, "--topic", &topic]);
    let summary = dashboard.summary();
    let expected = expected();
    assert_eq!(summary["records"], ROWS, "{summary}");
    assert_eq!(summary["problems"], serde_json::json!([]));
    let stations = summary["stations"].as_array().unwrap();
    let shown: BTreeMap<String, u64> = stations
        .iter()
        .map(|s| {
            (
                s["station"].as_str().unwrap().to_string(),
                s["records"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<String, u64> = expected.iter().map(|(s, (n, _))| (s.clone(), *n)).collect();
    assert_eq!(shown, want, "records per station");
    for station in stations {
        let name = station["station"].as_str().unwrap();
        let months = &expected[name].1;
        let shown = station["monthly_mean"].as_object().unwrap();
        assert_eq!(shown.len(), months.len(), "{name}: months");
        for (month, (sum, count)) in months {
            let mean = shown[month].as_f64().unwrap();
            let want = sum / *count as f64;
            assert!(
                (mean - want).abs() < 1e-9,
                "{name} {month}: {mean} != {want}"
            );
        }
    }
    let partitions = summary["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 4);
    for partition in partitions {
        let offset = partition["offset"].as_i64().unwrap();
        assert_eq!(partition["records"].as_i64(), Some(offset), "{partition}");
        assert_eq!(partition["lag"].as_i64(), Some(0), "{partition}");
    }

    // The page, as a browser shows it.
    let screenshot = committed.temp.path().join("dashboard.png");
    let rendered = browse(&dashboard.url("/"), &screenshot);
    assert_eq!(rendered.console, Vec::<String>::new(), "console messages");
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "an empty screenshot?"
    );
    assert_eq!(station_rows(&rendered.dom), want, "the station table");
    let svg_start = rendered.dom.find("<svg").expect("an inline chart");
    let svg_end = rendered.dom.rfind("</svg>").expect("the chart's end") + "</svg>".len();
    let chart =
        roxmltree::Document::parse(&rendered.dom[svg_start..svg_end]).expect("the chart is SVG");
    let lines = series_lines(&chart);
    assert_eq!(lines.len(), want.len(), "one line per station: {lines:?}");
    for (colour, _) in want.keys().enumerate() {
        let css = dashboard::chart::css_colour(colour);
        assert!(lines.contains(&css), "no line in {css}: {lines:?}");
    }

    // One station chosen on the page: its line only.
    let (status, page) = dashboard.get("/?pick=1&station=StationC");
    assert_eq!(status, 200);
    let start = page.find("<svg").unwrap();
    let end = page.rfind("</svg>").unwrap() + 6;
    let chart = roxmltree::Document::parse(&page[start..end]).unwrap();
    assert_eq!(series_lines(&chart), vec![dashboard::chart::css_colour(2)]);

    // The same chart as a file, for scripts.
    let svg_path = committed.temp.path().join("monthly.svg");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .args(["--store", &committed.store_location])
        .arg("--checkpoint-dir")
        .arg(&committed.checkpoint_dir)
        .arg("--svg")
        .arg(&svg_path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&svg_path).unwrap();
    let svg = roxmltree::Document::parse(&text).expect("--svg writes SVG");
    assert_eq!(svg.root_element().tag_name().name(), "svg");
    assert_eq!(series_lines(&svg).len(), want.len());
    let labels: Vec<&str> = svg
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(str::trim))
        .collect();
    for station in want.keys() {
        assert!(
            labels.contains(&station.as_str()),
            "{station} missing from the legend: {labels:?}"
        );
    }
    assert!(!labels.contains(&"StationZ"));

    // The producer started again: the topic is deleted and recreated, this
    // time with more records than were committed. The dashboard keeps
    // serving what was committed and measures the lag against the new topic.
    let mut dashboard = dashboard;
    const AGAIN: u64 = ROWS + 400;
    let settings = KafkaSettings::new(local_stack::brokers());
    let restarted = producer::run(
        &settings,
        &producer::ProducerOptions::recreating(TopicSpec::course(&topic)),
        producer::Source::Generator {
            delay: Duration::ZERO,
            rows: Some(AGAIN),
        },
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(restarted.delivered, AGAIN);
    let probe: rdkafka::consumer::BaseConsumer = settings
        .assigned_consumer_config("dashboard-test")
        .create()
        .unwrap();
    let ends: Vec<i64> = (0..4)
        .map(|p| {
            rdkafka::consumer::Consumer::fetch_watermarks(
                &probe,
                &topic,
                p,
                Duration::from_secs(10),
            )
            .unwrap()
            .1
        })
        .collect();
    let lags = |s: &serde_json::Value| -> Vec<Option<i64>> {
        s["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| Some(ends[p["partition"].as_u64()? as usize] - p["offset"].as_i64()?))
            .collect()
    };
    let shown_lags = |s: &serde_json::Value| -> Vec<Option<i64>> {
        s["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["lag"].as_i64())
            .collect()
    };
    let summary = dashboard.wait_for("the lag against the recreated topic", |s| {
        shown_lags(s) == lags(s)
    });
    assert_eq!(
        shown_lags(&summary).iter().flatten().sum::<i64>(),
        400,
        "{summary}"
    );
    assert_eq!(summary["records"], ROWS, "{summary}");
    assert_eq!(summary["problems"], serde_json::json!([]));
    assert!(dashboard.is_running(), "{}", dashboard.log());
}
