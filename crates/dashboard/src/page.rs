//! The HTML page. Everything is rendered on the server, so the page shows its
//! figures without scripts; a few lines of script only reload the figures
//! every refresh interval and apply a changed station selection.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use crate::{chart, Snapshot, Summary};

/// The whole page.
pub fn page(snapshot: &Snapshot, selected: Option<&[String]>, refresh: Duration) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let refresh_ms = refresh.as_millis().max(250);
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Weather dashboard</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Weather dashboard</h1>
<main id="content">{content}</main>
<script>
const refreshMs = {refresh_ms};
async function reloadFigures() {{
  const status = document.getElementById("connection");
  try {{
    const response = await fetch("content" + window.location.search, {{ cache: "no-store" }});
    if (!response.ok) throw new Error("HTTP " + response.status);
    document.getElementById("content").innerHTML = await response.text();
    status.textContent = "";
  }} catch (err) {{
    status.textContent = "The dashboard server cannot be reached (" + err.message + "); showing the last figures.";
  }}
}}
setInterval(reloadFigures, refreshMs);
document.addEventListener("change", (event) => {{
  if (event.target.name === "station") event.target.form.requestSubmit();
}});
</script>
<p id="connection" class="problem" role="status"></p>
</body>
</html>
"#,
        content = content(snapshot, selected),
    );
    html
}

/// The part of the page that is reloaded on refresh.
pub fn content(snapshot: &Snapshot, selected: Option<&[String]>) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let summary = snapshot.summary();
    let now = SystemTime::now();
    source_and_problems(&mut html, snapshot, &summary, now);
    pipeline(&mut html, snapshot, &summary, now);
    stations(&mut html, &summary, selected);
    chart(&mut html, snapshot, selected);
    html
}

/// Where the data comes from, when it was read, and what could not be.
fn source_and_problems(html: &mut String, snapshot: &Snapshot, summary: &Summary, now: SystemTime) {
    let _ = write!(
        *html,
        r#"<p class="source">Committed data in <code>{}</code>, checkpoints in <code>{}</code>. Read {} ago (took {}; {} new batches).</p>"#,
        escape(&summary.store),
        escape(&summary.checkpoints),
        ago(now, Some(snapshot.refreshed_at)),
        duration(snapshot.refresh_took),
        snapshot.last_refresh.batches_read,
    );
    for problem in &summary.problems {
        let _ = write!(html, r#"<p class="problem">{}</p>"#, escape(problem));
    }
    if summary.records == 0 {
        html.push_str(
            r#"<p class="empty">No committed data yet: nothing to show until the consumer commits its first batch.</p>"#,
        );
    }
}

/// Pipeline health: totals, and per partition its batches, offset, records,
/// last commit and lag.
fn pipeline(html: &mut String, snapshot: &Snapshot, summary: &Summary, now: SystemTime) {
    let _ = write!(
        *html,
        r#"<section><h2>Pipeline</h2><p id="totals"><strong>{}</strong> records committed; last commit {}.</p>"#,
        summary.records,
        match summary.seconds_since_last_commit {
            Some(_) => format!("{} ago", ago(now, snapshot.view.last_commit())),
            None => "never".to_string(),
        }
    );
    if let Some(problem) = &summary.lag_problem {
        let _ = write!(
            *html,
            r#"<p class="problem">Lag unknown: {}</p>"#,
            escape(problem)
        );
    }
    html.push_str(
        r#"<table id="partitions"><thead><tr><th>Partition</th><th>Batches</th><th>Next offset</th><th>Records</th><th>Last commit</th><th>Lag</th></tr></thead><tbody>"#,
    );
    for (partition, state) in snapshot.view.partitions() {
        let row = summary
            .partitions
            .iter()
            .find(|p| p.partition == *partition);
        let lag = row.and_then(|r| r.lag);
        let _ = write!(
            *html,
            r#"<tr data-partition="{partition}"><td>{partition}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            state.checkpoint.map_or(0, |c| c.batch_id + 1),
            state
                .checkpoint
                .map_or("–".to_string(), |c| c.offset.to_string()),
            state.records,
            match state.committed_at {
                Some(at) => format!("{} ago", ago(now, Some(at))),
                None => "never".into(),
            },
            lag.map_or("–".to_string(), |lag| lag.to_string()),
        );
    }
    html.push_str("</tbody></table></section>");
}

/// The stations, with the selection of lines.
fn stations(html: &mut String, summary: &Summary, selected: Option<&[String]>) {
    html.push_str(
        r#"<section><h2>Stations</h2><form method="get" action=""><input type="hidden" name="pick" value="1"><table id="stations"><thead><tr><th>Show</th><th>Station</th><th>Records</th><th>Latest date</th><th>Latest reading</th></tr></thead><tbody>"#,
    );
    for (colour, station) in summary.stations.iter().enumerate() {
        let shown = selected.is_none_or(|s| s.contains(&station.station));
        let _ = write!(
            *html,
            r#"<tr data-station="{name}"><td><input type="checkbox" name="station" value="{name}" aria-label="show {name}"{checked}> <span class="swatch" style="background:{colour}"></span></td><td>{name}</td><td class="records">{records}</td><td>{date}</td><td>{degrees}</td></tr>"#,
            name = escape(&station.station),
            checked = if shown { " checked" } else { "" },
            colour = chart::css_colour(colour),
            records = station.records,
            date = station
                .latest_date
                .as_deref()
                .map(escape)
                .unwrap_or_default(),
            degrees = station
                .latest_degrees
                .map(|degrees| format!("{degrees:.2}"))
                .unwrap_or_default(),
        );
    }
    html.push_str(
        r#"</tbody></table><noscript><button>Show selected</button></noscript></form></section>"#,
    );
}

/// The chart, inline so the page needs nothing else to show it.
fn chart(html: &mut String, snapshot: &Snapshot, selected: Option<&[String]>) {
    html.push_str(r#"<section><h2>Monthly mean temperature</h2><figure id="chart">"#);
    match snapshot.chart_svg(selected) {
        Ok(svg) => html.push_str(strip_xml_declaration(&svg)),
        Err(err) => {
            let _ = write!(
                *html,
                r#"<p class="problem">{}</p>"#,
                escape(&err.to_string())
            );
        }
    }
    html.push_str("</figure></section>");
}

fn strip_xml_declaration(svg: &str) -> &str {
    match svg.strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map_or(svg, |(_, body)| body.trim_start()),
        None => svg,
    }
}

fn ago(now: SystemTime, at: Option<SystemTime>) -> String {
    match at.map(|at| now.duration_since(at).unwrap_or_default()) {
        Some(elapsed) => duration(elapsed),
        None => "–".into(),
    }
}

fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", d.as_millis())
    } else if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.5rem; }
table { border-collapse: collapse; } th, td { padding: 0.2rem 0.7rem; text-align: right; border-bottom: 1px solid #ddd; }
th:first-child, td:first-child, #stations td:nth-child(2) { text-align: left; }
.problem { color: #a40000; font-weight: 600; } .empty { font-size: 1.1rem; }
.source { color: #555; } .swatch { display: inline-block; width: 0.9rem; height: 0.9rem; vertical-align: middle; }
figure { margin: 0; }
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_data_cannot_become_markup() {
        assert_eq!(
            escape(r#"<script>"a" & 'b'"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(12)), "12 ms");
        assert_eq!(duration(Duration::from_secs(42)), "42 s");
        assert_eq!(duration(Duration::from_secs(600)), "10 min");
    }
}
