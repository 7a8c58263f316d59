//! The course grader's own calls (kafka-python 2.0.2 and the newest 2.x)
//! against a topic our producer made: `list_topics()` has it,
//! `describe_topics` shows 4 partitions, and a group-less consumer from the
//! earliest offset gets messages keyed StationA to StationJ within 10 s.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use topic::TopicSpec;

#[tokio::test(flavor = "multi_thread")]
async fn the_course_graders_kafka_python_calls_see_what_our_producer_made() {
    let topic = local_stack::unique_name("python-grader");
    let options = producer::ProducerOptions::recreating(TopicSpec::course(&topic));
    let source = producer::Source::Generator {
        delay: Duration::ZERO,
        rows: Some(100),
    };
    producer::run(
        &settings(),
        &options,
        source,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("produce");

    let module = local_stack::python_report_module();
    for (version, pythonpath) in local_stack::kafka_python_versions(module.path()) {
        let output = Command::new(local_stack::python_clients())
            .arg(local_stack::python_fixture("grader_calls.py"))
            .args([&local_stack::brokers(), &topic])
            .env("PYTHONPATH", pythonpath)
            .output()
            .expect("run the grader's calls");
        assert!(
            output.status.success(),
            "kafka-python {version}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let seen: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|err| panic!("kafka-python {version}: {err}"));
        let stations: Vec<String> = report::STATIONS.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            seen,
            serde_json::json!({"has_topic": true, "partitions": 4, "keys": stations}),
            "kafka-python {version}"
        );
    }
}
