//! Against the real broker of the local stack: our producer settings put every
//! station in the partition the Java client would, and our `Report` bytes come
//! back out unchanged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use report::{partition_for_key, Report, STATIONS};
use topic::{reset_topic, KafkaSettings, TopicSpec};

fn unique_topic(prefix: &str) -> String {
    local_stack::unique_name(prefix)
}

#[tokio::test]
async fn every_station_lands_in_its_java_partition_and_decodes_back_equal() {
    let settings = KafkaSettings::new(local_stack::brokers());
    let topic = unique_topic("foundation");
    let spec = TopicSpec {
        name: topic.clone(),
        partitions: 4,
        replication: 1,
        settle: Duration::from_secs(3),
    };
    let deleted = reset_topic(&settings, &spec).await.expect("create topic");
    assert!(!deleted, "a brand-new topic name cannot have existed");

    let producer: FutureProducer = settings.producer_config().create().expect("producer");
    let mut sent = HashMap::new();
    for (day, station) in STATIONS.iter().enumerate() {
        let report = Report {
            date: format!("2000-01-{:02}", day + 1),
            degrees: day as f64 * 1.5 - 3.0,
            station_id: station.to_string(),
        };
        let bytes = report.to_bytes();
        let record = FutureRecord::to(&topic)
            .key(station.as_bytes())
            .payload(&bytes);
        let delivery = producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("delivered");
        let expected = report::COURSE_PARTITIONS
            .iter()
            .find(|(s, _)| s == station)
            .unwrap()
            .1;
        assert_eq!(
            delivery.partition, expected,
            "{station} went to the wrong partition"
        );
        assert_eq!(
            partition_for_key(station.as_bytes(), 4),
            expected,
            "our partitioner disagrees for {station}"
        );
        sent.insert(station.to_string(), (delivery.partition, report));
    }

    let consumer: BaseConsumer = settings
        .assigned_consumer_config("foundation-test")
        .create()
        .expect("consumer");
    consumer
        .assign(&topic::from_beginning(&topic, 4).unwrap())
        .expect("assign");

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = HashMap::new();
    while received.len() < sent.len() && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("consume");
        let key = String::from_utf8(message.key().expect("key").to_vec()).expect("utf-8 key");
        let report = Report::from_bytes(message.payload().expect("payload")).expect("decodes");
        assert!(
            received
                .insert(key, (message.partition(), report))
                .is_none(),
            "a record came back twice"
        );
    }
    assert_eq!(received, sent);
}

#[tokio::test]
async fn resetting_an_existing_topic_deletes_it_and_leaves_it_empty() {
    let settings = KafkaSettings::new(local_stack::brokers());
    let topic = unique_topic("reset");
    let spec = TopicSpec {
        name: topic.clone(),
        partitions: 2,
        replication: 1,
        settle: Duration::from_secs(3),
    };
    reset_topic(&settings, &spec).await.expect("first creation");

    let producer: FutureProducer = settings.producer_config().create().expect("producer");
    let record = FutureRecord::to(&topic).key("StationA").payload("x");
    producer
        .send(record, Duration::from_secs(30))
        .await
        .expect("delivered");

    assert!(
        reset_topic(&settings, &spec)
            .await
            .expect("second creation"),
        "the existing topic was not deleted"
    );
    let consumer: BaseConsumer = settings
        .assigned_consumer_config("reset-test")
        .create()
        .expect("consumer");
    for partition in 0..2 {
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(
            high - low,
            0,
            "partition {partition} still holds records after the reset"
        );
    }
}
