//! Deterministic crash points, for the tests that prove exactly-once output.
//!
//! `P7_CRASH_POINT=<point>[@<n>]` makes the program die at once (no cleanup,
//! the supervisor too, like a SIGKILL) when the n-th batch commit of the process (default 1) reaches
//! `<point>`: `after-temp-file` (the batch's temp file written, not
//! renamed), `after-uploads` (the same, held until three batches are
//! handed over and then once every later one has its temp file written too), `after-rename` or
//! `during-checkpoint` (which leaves a half-written checkpoint temp file
//! behind) for Parquet batches, counted in the order they are committed; `mid-append` (half of the batch's files appended to, the last one
//! cut mid-line) or `before-checkpoint` (all appended) for the JSON Lines
//! archive; `mid-day` (a day's JSON Lines summary written, its Parquet not)
//! or `before-checkpoint` (both written) for the daily aggregator, counted in
//! days. Unset, every check is a cheap no-op.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const ENV: &str = "P7_CRASH_POINT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    AfterTempFile,
    AfterUploads,
    AfterRename,
    DuringCheckpoint,
    MidAppend,
    BeforeCheckpoint,
    MidDay,
}

impl CrashPoint {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "after-temp-file" => Some(Self::AfterTempFile),
            "after-uploads" => Some(Self::AfterUploads),
            "after-rename" => Some(Self::AfterRename),
            "during-checkpoint" => Some(Self::DuringCheckpoint),
            "mid-append" => Some(Self::MidAppend),
            "before-checkpoint" => Some(Self::BeforeCheckpoint),
            "mid-day" => Some(Self::MidDay),
            _ => None,
        }
    }
}

/// `P7_PAUSE_POINT=<point>[@<n>]` makes the program stop itself (SIGSTOP,
/// as a long pause or a frozen host would) at that point of the n-th batch
/// commit instead; `SIGCONT` lets it go on. For the fencing tests.
pub const PAUSE_ENV: &str = "P7_PAUSE_POINT";

static PLAN: OnceLock<Option<(CrashPoint, u64)>> = OnceLock::new();
static PAUSE: OnceLock<Option<(CrashPoint, u64)>> = OnceLock::new();
static COMMITS: AtomicU64 = AtomicU64::new(0);

fn plan() -> Option<(CrashPoint, u64)> {
    *PLAN.get_or_init(|| parse_plan(ENV))
}

fn pause() -> Option<(CrashPoint, u64)> {
    *PAUSE.get_or_init(|| parse_plan(PAUSE_ENV))
}

fn parse_plan(env: &str) -> Option<(CrashPoint, u64)> {
    {
        let text = std::env::var(env).ok()?;
        let (name, nth) = text.split_once('@').unwrap_or((&text, "1"));
        match (CrashPoint::parse(name), nth.parse::<u64>()) {
            (Some(point), Ok(nth)) if nth >= 1 => Some((point, nth)),
            _ => {
                tracing::warn!(value = %text, "ignoring an unrecognised {env}");
                None
            }
        }
    }
}

/// Marks the start of a batch commit.
pub fn begin_commit() {
    if plan().is_some() || pause().is_some() {
        COMMITS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Whether the process is to crash at `point` of the current commit.
pub fn armed(point: CrashPoint) -> bool {
    plan().is_some_and(|(planned, nth)| planned == point && COMMITS.load(Ordering::SeqCst) == nth)
}

/// Batches to have written before the planned `after-uploads` commit goes
/// ahead, so that crash always finds several temp files and none renamed,
/// however fast the store writes.
const UPLOADS_BEFORE_CRASH: usize = 3;

/// Whether the next batch commit is to wait for more batches to be handed
/// over first: only before a planned `after-uploads` crash, with fewer than
/// [`UPLOADS_BEFORE_CRASH`] batches under way.
pub fn holds_commit(under_way: usize) -> bool {
    plan().is_some_and(|(planned, nth)| {
        planned == CrashPoint::AfterUploads
            && COMMITS.load(Ordering::SeqCst) + 1 == nth
            && under_way < UPLOADS_BEFORE_CRASH
    })
}

/// Aborts at `point` if planned.
pub fn point(point: CrashPoint) {
    if armed(point) {
        abort(point);
    }
    let paused = pause()
        .is_some_and(|(planned, nth)| planned == point && COMMITS.load(Ordering::SeqCst) == nth);
    if paused {
        eprintln!("consumer: stopping itself on purpose at {point:?} ({PAUSE_ENV})");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP);
    }
}

pub fn abort(point: CrashPoint) -> ! {
    eprintln!("consumer: crashing on purpose at {point:?} ({ENV})");
    program::kill_program()
}
