//! Helpers shared by the dashboard's tests: committed data made by the real
//! pipeline or written batch by batch, the dashboard binary as a child
//! process, plain HTTP requests, and Debian's Chromium.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use batch_store::{BatchBuilder, BatchFile, Checkpoint, CheckpointDir, Store};

/// Where the dashboard under test reads: a store and a checkpoint directory.
pub struct Committed {
    pub store_location: String,
    pub checkpoint_dir: PathBuf,
    pub temp: tempfile::TempDir,
}

impl Committed {
    /// An empty local store and checkpoint directory.
    pub fn local() -> Self {
        let temp = tempfile::tempdir().unwrap();
        Self {
            store_location: temp.path().join("store").display().to_string(),
            checkpoint_dir: temp.path().join("checkpoints"),
            temp,
        }
    }

    pub fn store(&self) -> Store {
        Store::open(&self.store_location).unwrap()
    }

    pub fn checkpoints(&self) -> CheckpointDir {
        CheckpointDir::new(&self.checkpoint_dir)
    }

    /// Writes batch `batch` of `partition` with `rows` (station, date, degrees).
    pub async fn write_batch(&self, partition: i32, batch: u64, rows: &[(&str, &str, f64)]) {
        let mut builder = BatchBuilder::default();
        for (station, date, degrees) in rows {
            builder.push(station, date, *degrees);
        }
        let bytes = builder.finish().unwrap();
        self.store()
            .put_atomic(&BatchFile::new(partition, batch).path(), bytes)
            .await
            .unwrap();
    }

    pub async fn commit(&self, partition: i32, batch_id: u64, offset: i64) {
        std::fs::create_dir_all(&self.checkpoint_dir).unwrap();
        self.checkpoints()
            .save(partition, &Checkpoint { batch_id, offset })
            .await
            .unwrap();
    }
}

/// The dashboard binary serving `committed` on a free port.
pub struct Dashboard {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Dashboard {
    /// Starts the dashboard on a port the kernel picks (`--listen
    /// 127.0.0.1:0`) and learns the address from its "serving" line, so no
    /// other socket can take the port between choosing and binding it.
    pub fn start(committed: &Committed, extra: &[&str]) -> Dashboard {
        let log = tempfile::Builder::new()
            .prefix("dashboard-")
            .suffix(".log")
            .tempfile_in(committed.temp.path())
            .expect("a dashboard log")
            .into_temp_path()
            .keep()
            .expect("keep the dashboard log");
        let child = Command::new(env!("CARGO_BIN_EXE_dashboard"))
            .args(["--store", &committed.store_location])
            .arg("--checkpoint-dir")
            .arg(&committed.checkpoint_dir)
            .args(["--listen", "127.0.0.1:0", "--refresh", "0.3"])
            .args(extra)
            .env_remove("PROJECT")
            .stdout(Stdio::null())
            .stderr(local_stack::append_log(&log))
            .spawn()
            .expect("start the dashboard");
        let mut dashboard = Dashboard {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let served = dashboard.log().lines().find_map(|line| {
                line.strip_prefix("dashboard: serving http://")
                    .and_then(|rest| rest.trim_end_matches('/').parse::<SocketAddr>().ok())
            });
            if let Some(addr) = served {
                dashboard.addr = addr;
                return dashboard;
            }
            if let Ok(Some(status)) = dashboard.child.try_wait() {
                panic!("the dashboard exited ({status}):\n{}", dashboard.log());
            }
            assert!(
                Instant::now() < deadline,
                "the dashboard did not listen:\n{}",
                dashboard.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
    }

    pub fn summary(&self) -> serde_json::Value {
        let (status, body) = self.get("/api/summary");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("the summary is JSON")
    }

    /// Waits until the summary satisfies `done` (the dashboard refreshes on its own).
    pub fn wait_for(
        &self,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let summary = self.summary();
            if done(&summary) {
                return summary;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: last summary {summary}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET: status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the dashboard");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read the response");
    let response = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// Debian's Chromium, headless, as this machine allows it (no sandbox as
/// root, no background connections to the closed network).
fn chromium(profile: &Path) -> Command {
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,1500",
            // Lets the page's own refresh run a few times before the DOM is taken.
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// What a real browser made of a page.
pub struct Rendered {
    /// The DOM after the page's scripts ran.
    pub dom: String,
    /// Every message the page wrote to the console (errors included).
    pub console: Vec<String>,
}

/// Loads `url` in headless Chromium, saves a screenshot to `screenshot`, and
/// returns the DOM and the console messages of the page.
pub fn browse(url: &str, screenshot: &Path) -> Rendered {
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &str| {
        let output = chromium(profile.path())
            .arg(extra)
            .arg(url)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| {
                panic!("cannot run chromium (scripts/install-deps installs it): {err}")
            });
        assert!(
            output.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    let shot = run(&format!("--screenshot={}", screenshot.display()));
    let dump = run("--dump-dom");
    let console = [shot.stderr, dump.stderr]
        .iter()
        .flat_map(|stderr| {
            String::from_utf8_lossy(stderr)
                .lines()
                .filter(|line| line.contains(":CONSOLE"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    Rendered {
        dom: String::from_utf8(dump.stdout).expect("UTF-8 DOM"),
        console,
    }
}

/// Stations and their record counts as the page's station table shows them.
pub fn station_rows(html: &str) -> BTreeMap<String, u64> {
    let mut rows = BTreeMap::new();
    for row in html.split("<tr data-station=\"").skip(1) {
        let (name, rest) = row.split_once('"').unwrap();
        let records = rest
            .split_once("<td class=\"records\">")
            .and_then(|(_, r)| r.split_once('<'))
            .map(|(n, _)| n.parse().expect("a record count"))
            .expect("a records cell");
        rows.insert(name.to_string(), records);
    }
    rows
}

/// The series lines of a chart: (stroke colour) of every 2-pixel polyline
/// (axes and ticks are 1 pixel wide).
pub fn series_lines(svg: &roxmltree::Document<'_>) -> Vec<String> {
    svg.descendants()
        .filter(|node| node.has_tag_name("polyline") && node.attribute("stroke-width") == Some("2"))
        .map(|node| node.attribute("stroke").unwrap_or_default().to_string())
        .collect()
}
