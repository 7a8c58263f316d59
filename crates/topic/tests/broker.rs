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

/// 100 records in one record batch of a one-partition topic (enqueued within
/// one linger window), so that offsets 1..=99 lie inside a batch.
async fn one_batch_of_100(settings: &KafkaSettings, prefix: &str) -> String {
    let topic = unique_topic(prefix);
    let spec = TopicSpec {
        name: topic.clone(),
        partitions: 1,
        replication: 1,
        settle: Duration::from_secs(1),
    };
    reset_topic(settings, &spec).await.expect("create topic");
    let mut config = settings.producer_config();
    config.set("linger.ms", "2000");
    let producer: FutureProducer = config.create().expect("producer");
    let payloads: Vec<String> = (0..100).map(|i| format!("record {i}")).collect();
    let deliveries: Vec<_> = payloads
        .iter()
        .map(|payload| {
            producer
                .send_result(FutureRecord::to(&topic).key("StationA").payload(payload))
                .map_err(|(err, _)| err)
                .expect("enqueued")
        })
        .collect();
    let mut offsets = Vec::new();
    for delivery in deliveries {
        let delivery = delivery
            .await
            .expect("not cancelled")
            .map_err(|(err, _)| err);
        offsets.push(delivery.expect("delivered").offset);
    }
    assert_eq!(offsets, (0..100).collect::<Vec<i64>>());
    topic
}

fn on_tansu() -> bool {
    local_stack::setting("P7_BROKER") == "tansu"
}

/// tansu answers a fetch inside a record batch with the next batch, so a
/// resume probes backwards until its record is delivered. On Apache Kafka the
/// same code finds it on the first probe: the broker sends the whole batch
/// and the client drops the records before the offset.
#[tokio::test]
async fn a_resume_inside_a_record_batch_finds_its_record_on_the_first_probe() {
    let settings = KafkaSettings::new(local_stack::brokers());
    let topic = one_batch_of_100(&settings, "inside-batch").await;
    for next in [1, 37, 50, 99, 100] {
        let start = topic::resume_fetch_offset(&settings, &topic, 0, next, 0)
            .expect("probe")
            .unwrap_or_else(|| panic!("offset {} not found", next - 1));
        let mut first = None;
        topic::scan(
            &settings,
            &topic,
            0,
            start,
            Duration::from_secs(3),
            |message| {
                first.get_or_insert(message.offset());
                false
            },
        )
        .expect("scan");
        assert!(
            first.is_some_and(|first| first < next),
            "resume at {next}: a fetch from {start} began at {first:?}"
        );
        if !on_tansu() {
            assert_eq!(start, next - 1, "Kafka needs no probing back");
            assert_eq!(
                first,
                Some(next - 1),
                "Kafka delivers from the offset asked for"
            );
        }
    }
}

/// tansu reports a high watermark of the last batch's base offset + 1, so
/// `scan` reads a partition to its real end instead of trusting the mark. On
/// Apache Kafka the mark is exact and the scan ends at the same place.
#[tokio::test]
async fn a_scan_reads_to_the_real_end_and_kafka_reports_it_as_the_high_watermark() {
    let settings = KafkaSettings::new(local_stack::brokers());
    let topic = one_batch_of_100(&settings, "watermark").await;
    let mut offsets = Vec::new();
    topic::scan(&settings, &topic, 0, 0, Duration::from_secs(3), |message| {
        offsets.push(message.offset());
        true
    })
    .expect("scan");
    assert_eq!(offsets, (0..100).collect::<Vec<i64>>());
    if !on_tansu() {
        let ends =
            topic::end_offsets(&settings, &topic, Duration::from_secs(10)).expect("end offsets");
        assert_eq!(
            ends,
            vec![100],
            "Kafka's high watermark is the end of the partition"
        );
    }
}

/// A consumer started right after the producer created the topic asks for
/// watermarks before the partitions have leaders; the broker answers
/// NotLeaderForPartition for a moment, which `topic::watermarks` waits out
/// (the pipeline's stats consumer died of it before).
#[tokio::test]
async fn watermarks_of_a_topic_created_a_moment_ago_are_answered() {
    let settings = KafkaSettings::new(local_stack::brokers());
    let consumer: BaseConsumer = settings
        .assigned_consumer_config("fresh-topic-test")
        .create()
        .expect("consumer");
    for round in 0..5 {
        let topic = unique_topic("fresh");
        let spec = TopicSpec {
            name: topic.clone(),
            partitions: 4,
            replication: 1,
            settle: Duration::ZERO,
        };
        reset_topic(&settings, &spec).await.expect("create topic");
        for partition in 0..4 {
            let marks = topic::watermarks(&consumer, &topic, partition, topic::LEADER_PATIENCE);
            assert_eq!(
                marks.ok(),
                Some((0, 0)),
                "round {round}, partition {partition}"
            );
        }
    }
}
