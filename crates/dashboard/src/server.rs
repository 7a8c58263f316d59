//! Serving the page: one task refreshes the committed view every interval and
//! publishes a snapshot; requests render from the latest snapshot, so a slow
//! or unreachable store never holds up the page.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use crate::{page, CommittedView, DashboardOptions, Error, LagProbe, Result, Snapshot};

#[derive(Clone)]
struct Shared {
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
    options: Arc<DashboardOptions>,
}

impl Shared {
    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The stations chosen on the page: `?pick=1&station=A&station=B`; all
/// stations when the page has not been asked for a choice.
fn selection(query: &[(String, String)]) -> Option<Vec<String>> {
    let picked = query.iter().any(|(key, _)| key == "pick");
    let stations: Vec<String> = query
        .iter()
        .filter(|(key, _)| key == "station")
        .map(|(_, value)| value.clone())
        .collect();
    (picked || !stations.is_empty()).then_some(stations)
}

/// Serves the dashboard on `options.listen` until `shutdown` fires. The
/// first refresh happens before the address is served, so the first page
/// already has the figures; `on_listening` is told the bound address.
pub async fn serve(
    options: DashboardOptions,
    shutdown: CancellationToken,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|cause| Error::Listen {
            addr: options.listen,
            cause,
        })?;
    let lag = match &options.kafka {
        None => None,
        Some((settings, topic)) => match LagProbe::new(settings, topic) {
            Ok(probe) => Some(probe),
            Err(problem) => {
                tracing::warn!(%problem, "lag will not be shown");
                None
            }
        },
    };
    let mut view = CommittedView::new(
        options.store.clone(),
        options.checkpoints.clone(),
        options.partitions.clone(),
    )
    .with_read_timeout(options.read_timeout);
    let mut said = Vec::new();
    let first = refresh(&mut view, lag.as_ref(), &mut said).await;
    let shared = Shared {
        snapshot: Arc::new(RwLock::new(Arc::new(first))),
        options: Arc::new(options),
    };

    let refresher = {
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(shared.options.refresh);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                let snapshot = refresh(&mut view, lag.as_ref(), &mut said).await;
                *shared.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
            }
        })
    };

    let app = Router::new()
        .route("/", get(index))
        .route("/content", get(content))
        .route("/chart.svg", get(chart))
        .route("/api/summary", get(summary))
        .with_state(shared);
    let addr = listener.local_addr().map_err(Error::Serve)?;
    tracing::info!(%addr, "dashboard listening on http://{addr}/");
    on_listening(addr);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    shutdown.cancel();
    let _ = refresher.await;
    served.map_err(Error::Serve)
}

/// Reads what is new. A problem is logged when it appears, not again at each
/// refresh while it lasts (`said` holds the last refresh's problems); the
/// page shows it meanwhile.
async fn refresh(
    view: &mut CommittedView,
    lag: Option<&LagProbe>,
    said: &mut Vec<String>,
) -> Snapshot {
    let started = Instant::now();
    let report = view.refresh().await;
    let took = started.elapsed();
    for problem in report.problems.iter().filter(|p| !said.contains(p)) {
        tracing::warn!(%problem, "refresh");
    }
    said.clone_from(&report.problems);
    if report.batches_read > 0 {
        tracing::info!(
            batches = report.batches_read,
            records = report.records_read,
            took_ms = took.as_millis() as u64,
            "read new batches"
        );
    }
    Snapshot::take(view, report, took, lag).await
}

async fn index(
    State(shared): State<Shared>,
    Query(query): Query<Vec<(String, String)>>,
) -> Html<String> {
    let selected = selection(&query);
    Html(page::page(
        &shared.snapshot(),
        selected.as_deref(),
        shared.options.refresh,
    ))
}

async fn content(
    State(shared): State<Shared>,
    Query(query): Query<Vec<(String, String)>>,
) -> Html<String> {
    let selected = selection(&query);
    Html(page::content(&shared.snapshot(), selected.as_deref()))
}

async fn chart(
    State(shared): State<Shared>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let selected = selection(&query);
    match shared.snapshot().chart_svg(selected.as_deref()) {
        Ok(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

async fn summary(State(shared): State<Shared>) -> Json<crate::Summary> {
    Json(shared.snapshot().summary())
}

#[cfg(test)]
mod tests {
    use super::selection;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_choice_shows_every_station_and_an_empty_choice_none() {
        assert_eq!(selection(&query(&[])), None);
        assert_eq!(selection(&query(&[("pick", "1")])), Some(vec![]));
        assert_eq!(
            selection(&query(&[("pick", "1"), ("station", "StationA")])),
            Some(vec!["StationA".to_string()])
        );
    }
}
