//! Against the real MariaDB of the local stack. Each test works in a database
//! of its own, so tests run in parallel without seeing each other's rows.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weather_generator::{Database, GeneratorOptions, Limit, Reading, WeatherGenerator};

async fn connect(url: &str) -> Database {
    Database::connect(url, Duration::from_secs(10))
        .await
        .expect("connect")
}

fn bulk(rows: u64, resume: bool) -> GeneratorOptions {
    GeneratorOptions {
        delay: Duration::ZERO,
        limit: Limit::Rows(rows),
        bulk: true,
        bulk_rows: 1000,
        resume,
    }
}

#[tokio::test]
async fn a_row_inserted_through_sqlx_is_read_back() {
    let database = connect(&local_stack::fresh_database("generator").await).await;
    database.create_table().await.unwrap();
    let reading = Reading {
        station_id: "StationB",
        date: "2001-05-15".parse().unwrap(),
        degrees: -12.25,
    };
    database
        .insert(std::slice::from_ref(&reading))
        .await
        .unwrap();

    let rows = database.rows_after(0, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].id,
            rows[0].station_id.as_str(),
            rows[0].date,
            rows[0].degrees
        ),
        (1, "StationB", reading.date, -12.25)
    );
    assert!(database.rows_after(1, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn generated_rows_read_back_from_mariadb_match_the_course_bit_for_bit() {
    let database = connect(&local_stack::fresh_database("generator").await).await;
    let inserted = weather_generator::run(&database, &bulk(5010, false), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(inserted, 5010);

    let rows = database.rows_after(0, 6000).await.unwrap();
    assert_eq!(rows.len(), 5010);
    let first_day = [
        ("StationA", 23.851454295532143),
        ("StationB", 19.525202433007102),
        ("StationC", 22.977951196092594),
        ("StationD", 47.92533602679551),
        ("StationE", 52.0219652093013),
        ("StationF", 22.266228429236403),
        ("StationG", 30.72235799978964),
        ("StationH", 26.98481298988876),
        ("StationI", 5.0),
        ("StationJ", 0.0),
    ];
    for (row, (station, degrees)) in rows.iter().zip(first_day) {
        assert_eq!(row.station_id, station);
        assert_eq!(row.date.to_string(), "2000-01-01");
        assert_eq!(row.degrees.to_bits(), f64::to_bits(degrees), "{station}");
    }
    assert_eq!(
        (rows[10].date.to_string().as_str(), rows[10].degrees),
        ("2000-01-02", 16.645396980313848)
    );
    assert_eq!(rows[11].degrees, 40.401481236102825);
    let row_5000: Vec<(&str, String, f64)> = rows[5000..5003]
        .iter()
        .map(|r| (r.station_id.as_str(), r.date.to_string(), r.degrees))
        .collect();
    assert_eq!(
        row_5000,
        [
            ("StationA", "2001-05-15".to_string(), 43.37182674513778),
            ("StationB", "2001-05-15".to_string(), 28.675076783142284),
            ("StationC", "2001-05-15".to_string(), 52.00707956950971),
        ]
    );
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        (1..=5010).collect::<Vec<i64>>(),
        "ids follow generation order"
    );
}

#[tokio::test]
async fn resume_continues_the_sequence_instead_of_restarting() {
    let database = connect(&local_stack::fresh_database("generator").await).await;
    weather_generator::run(&database, &bulk(25, false), &CancellationToken::new())
        .await
        .unwrap();
    weather_generator::run(&database, &bulk(17, true), &CancellationToken::new())
        .await
        .unwrap();

    let stored: Vec<(String, String, u64)> = database
        .rows_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.station_id, r.date.to_string(), r.degrees.to_bits()))
        .collect();
    let expected: Vec<(String, String, u64)> = WeatherGenerator::new()
        .take(42)
        .map(|r| {
            (
                r.station_id.to_string(),
                r.date.to_string(),
                r.degrees.to_bits(),
            )
        })
        .collect();
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn course_pacing_commits_every_row_as_it_goes() {
    let url = local_stack::fresh_database("generator").await;
    let database = connect(&url).await;
    let options = GeneratorOptions {
        delay: Duration::from_millis(300),
        limit: Limit::Rows(6),
        bulk: false,
        bulk_rows: 1,
        resume: false,
    };
    let writer = {
        let database = database.clone();
        tokio::spawn(async move {
            weather_generator::run(&database, &options, &CancellationToken::new()).await
        })
    };
    // A separate connection sees rows before the run ends: each one is committed on its own.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let reader = connect(&url).await;
    let seen_early = reader.rows_after(0, 100).await.unwrap().len();
    assert!(
        (1..6).contains(&seen_early),
        "saw {seen_early} rows part-way through a paced run"
    );
    assert_eq!(writer.await.unwrap().unwrap(), 6);
    assert_eq!(reader.rows_after(0, 100).await.unwrap().len(), 6);
}

#[tokio::test]
async fn a_wrong_password_fails_at_once_with_a_clear_error() {
    let url = local_stack::mysql_url().replacen(":abc@", ":wrong@", 1);
    let started = std::time::Instant::now();
    let err = Database::connect(&url, Duration::from_secs(30))
        .await
        .err()
        .expect("login must fail");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a refused login must not be retried"
    );
    let message = err.to_string();
    assert!(message.contains("refused the login"), "{message}");
    assert!(
        !message.contains("wrong"),
        "the password leaked into the message: {message}"
    );
}
