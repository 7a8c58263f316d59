//! Batch files open in the tools course users read Parquet with: pyarrow,
//! pandas and DuckDB see exactly three columns named like the `Report`
//! fields, with the types and values we wrote.

use batch_store::batch_file::{encode, Record};

const READ_WITH_EVERY_TOOL: &str = r#"
import json, sys
import duckdb, pandas, pyarrow.parquet as pq
path = sys.argv[1]
table = pq.read_table(path)
frame = pandas.read_parquet(path)
rows = duckdb.sql(f"SELECT station_id, date, degrees FROM read_parquet('{path}')").fetchall()
print(json.dumps({
    "arrow_schema": [[f.name, str(f.type)] for f in table.schema],
    "pandas_columns": list(frame.columns),
    "pandas_rows": frame.values.tolist(),
    "duckdb_rows": [list(r) for r in rows],
}))
"#;

#[test]
fn pyarrow_pandas_and_duckdb_read_our_batch_files() {
    let records = vec![
        Record {
            station_id: "StationA".into(),
            date: "2000-01-01".into(),
            degrees: 23.851454295532143,
        },
        Record {
            station_id: "StationI".into(),
            date: "2000-01-01".into(),
            degrees: 5.0,
        },
        Record {
            station_id: "StationJ".into(),
            date: "2000-01-02".into(),
            degrees: -1.25e-7,
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partition-0-batch-0.parquet");
    std::fs::write(&path, encode(&records).unwrap()).unwrap();

    let python = local_stack::python_readers();
    let output = std::process::Command::new(&python)
        .args(["-c", READ_WITH_EVERY_TOOL])
        .arg(&path)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run {} ({err}): run scripts/install-deps",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let expected_rows: Vec<serde_json::Value> = records
        .iter()
        .map(|r| serde_json::json!([r.station_id, r.date, r.degrees]))
        .collect();
    assert_eq!(
        seen["arrow_schema"],
        serde_json::json!([
            ["station_id", "string"],
            ["date", "string"],
            ["degrees", "double"]
        ])
    );
    assert_eq!(
        seen["pandas_columns"],
        serde_json::json!(["station_id", "date", "degrees"])
    );
    assert_eq!(seen["pandas_rows"], serde_json::json!(expected_rows));
    assert_eq!(seen["duckdb_rows"], serde_json::json!(expected_rows));
}
