//! MySQL → producer → topic, against the real MariaDB and broker.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use weather_generator::WeatherGenerator;

#[tokio::test(flavor = "multi_thread")]
async fn every_row_arrives_once_in_its_java_partition_keyed_by_station_in_id_order() {
    const ROWS: u64 = 2000;
    let (url, _db) = database_with_rows(ROWS).await;
    let topic = local_stack::unique_name("pipeline");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("producer.log");
    let mut child = producer_command(&topic, &url, &log).spawn().unwrap();
    let found = wait_for_messages(&topic, 4, ROWS as usize, Duration::from_secs(60)).await;
    terminate(&mut child, &log);

    let tally = local_stack::Tally::of(1..=ROWS as i64, found.iter().map(|m| m.row_id))
        .report("mysql-to-topic");
    assert!(tally.exact(), "{tally:?}");
    assert_eq!(found.len(), ROWS as usize, "message count");
    let expected: Vec<_> = WeatherGenerator::new().take(ROWS as usize).collect();
    let mut by_id = BTreeMap::new();
    for message in &found {
        assert!(
            by_id.insert(message.row_id, message).is_none(),
            "row {} sent twice",
            message.row_id
        );
        assert_eq!(message.key, message.report.station_id);
        assert_eq!(
            message.partition,
            spec_partition(&message.key),
            "{} in the wrong partition",
            message.key
        );
        let reading = &expected[(message.row_id - 1) as usize];
        assert_eq!(message.report.station_id, reading.station_id);
        assert_eq!(message.report.date, reading.date.to_string());
        assert_eq!(message.report.degrees.to_bits(), reading.degrees.to_bits());
    }
    assert_eq!(
        by_id.keys().copied().collect::<Vec<_>>(),
        (1..=ROWS as i64).collect::<Vec<_>>()
    );
    for partition in 0..4 {
        let ids: Vec<i64> = found
            .iter()
            .filter(|m| m.partition == partition)
            .map(|m| m.row_id)
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} is not in id order"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_inserted_while_the_producer_runs_are_picked_up() {
    let (url, database) = database_with_rows(30).await;
    let topic = local_stack::unique_name("live");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("producer.log");
    let mut child = producer_command(&topic, &url, &log).spawn().unwrap();
    wait_for_messages(&topic, 4, 30, Duration::from_secs(60)).await;

    let options = weather_generator::GeneratorOptions {
        delay: Duration::from_millis(20),
        limit: weather_generator::Limit::Rows(40),
        bulk: false,
        bulk_rows: 1,
        resume: true,
    };
    weather_generator::run(
        &database,
        &options,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    let found = wait_for_messages(&topic, 4, 70, Duration::from_secs(60)).await;
    terminate(&mut child, &log);
    let mut ids: Vec<i64> = found.iter().map(|m| m.row_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=70).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generator_source_sends_the_course_sequence_without_mysql() {
    let topic = local_stack::unique_name("f24");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_producer"))
        .args([
            "--source",
            "generator",
            "--rows",
            "100",
            "--delay",
            "0",
            "--topic",
            &topic,
            "--settle",
            "1",
        ])
        .env("P7_BROKERS", local_stack::brokers())
        .env_remove("PROJECT")
        .env_remove("P7_MYSQL_URL")
        .status()
        .unwrap();
    assert!(status.success());
    let found = topic_messages(&topic, 4);
    assert_eq!(found.len(), 100);
    let expected: Vec<_> = WeatherGenerator::new().take(100).collect();
    for message in &found {
        let reading = &expected[(message.row_id - 1) as usize];
        assert_eq!(
            (message.report.station_id.as_str(), message.report.degrees),
            (reading.station_id, reading.degrees)
        );
        assert_eq!(message.partition, spec_partition(reading.station_id));
    }
}
