//! Summarising an event log (`stitch run --events 2> run.jsonl`): calls, failures by kind,
//! retries, cache hit rate, throttle wait and latency percentiles, per stitch.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::events::{EventKind, EventLine};

/// The figures of one stitch.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StitchSummary {
    /// Calls that ended (`done` lines).
    pub calls: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Failures by error kind (`http`, `timeout`, ...).
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Retries scheduled.
    pub retries: u64,
    /// Cache lookups that answered (`hit`, `fleet_filled`, `coalesced`).
    pub cache_hits: u64,
    /// Cache lookups that did not.
    pub cache_misses: u64,
    /// Hits over lookups, when there were lookups.
    pub cache_hit_rate: Option<f64>,
    /// Total throttle wait, in milliseconds.
    pub throttle_wait_ms: u64,
    /// Latency percentiles of ended calls, in milliseconds.
    pub latency_ms: Percentiles,
}

/// Nearest-rank latency percentiles, in milliseconds (0 with no calls).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `samples` (any order).
    ///
    /// ```
    /// let p = stitchapi_cli::trace::Percentiles::of(&mut (1..=100).map(f64::from).collect::<Vec<_>>());
    /// assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
    /// ```
    pub fn of(samples: &mut [f64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples[index.clamp(1, samples.len()) - 1]
        };
        Percentiles {
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: samples[samples.len() - 1],
        }
    }
}

/// A log's summary, per stitch, plus lines that were not events.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Per stitch, by name.
    pub stitches: BTreeMap<String, StitchSummary>,
    /// Lines skipped because they were not event JSON.
    pub skipped_lines: u64,
}

impl Summary {
    /// Summarises the lines of a log; lines that are not events are counted and skipped.
    pub fn of_log(text: &str) -> Summary {
        let mut skipped = 0;
        let lines: Vec<EventLine> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .filter_map(|line| match serde_json::from_str(line) {
                Ok(event) => Some(event),
                Err(_) => {
                    skipped += 1;
                    None
                }
            })
            .collect();
        let mut summary = Summary::of(&lines);
        summary.skipped_lines = skipped;
        summary
    }

    /// Summarises events.
    pub fn of(lines: &[EventLine]) -> Summary {
        let mut stitches: BTreeMap<String, StitchSummary> = BTreeMap::new();
        let mut latencies: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for line in lines {
            let entry = stitches.entry(line.stitch.clone()).or_default();
            match &line.kind {
                EventKind::Retry { .. } => entry.retries += 1,
                EventKind::Throttle { waited_ms, .. } => {
                    entry.throttle_wait_ms += waited_ms.unwrap_or_default()
                }
                EventKind::Cache { outcome, .. } => match outcome.as_str() {
                    "hit" | "fleet_filled" | "coalesced" => entry.cache_hits += 1,
                    "miss" => entry.cache_misses += 1,
                    _ => {}
                },
                EventKind::Error { error_kind, .. } => {
                    *entry
                        .failures_by_kind
                        .entry(error_kind.clone())
                        .or_default() += 1
                }
                EventKind::Done { ok, elapsed_ms, .. } => {
                    entry.calls += 1;
                    if !ok {
                        entry.failures += 1;
                    }
                    latencies
                        .entry(line.stitch.clone())
                        .or_default()
                        .push(*elapsed_ms);
                }
                _ => {}
            }
        }
        for (name, entry) in &mut stitches {
            let lookups = entry.cache_hits + entry.cache_misses;
            entry.cache_hit_rate = (lookups > 0).then(|| entry.cache_hits as f64 / lookups as f64);
            if let Some(samples) = latencies.get_mut(name) {
                entry.latency_ms = Percentiles::of(samples);
            }
        }
        Summary {
            stitches,
            skipped_lines: 0,
        }
    }
}

impl fmt::Display for Summary {
    /// A table, one row per stitch.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<20} {:>6} {:>6} {:>7} {:>6} {:>10} {:>9} {:>9} {:>9}  failures by kind",
            "stitch", "calls", "failed", "retries", "cache", "throttle", "p50", "p95", "p99"
        )?;
        for (name, s) in &self.stitches {
            let cache = match s.cache_hit_rate {
                Some(rate) => format!("{:.0}%", rate * 100.0),
                None => "-".to_owned(),
            };
            let mut kinds = String::new();
            for (kind, count) in &s.failures_by_kind {
                let _ = write!(
                    kinds,
                    "{}{kind}={count}",
                    if kinds.is_empty() { "" } else { " " }
                );
            }
            writeln!(
                f,
                "{:<20} {:>6} {:>6} {:>7} {:>6} {:>8}ms {:>7.1}ms {:>7.1}ms {:>7.1}ms  {}",
                name,
                s.calls,
                s.failures,
                s.retries,
                cache,
                s.throttle_wait_ms,
                s.latency_ms.p50,
                s.latency_ms.p95,
                s.latency_ms.p99,
                if kinds.is_empty() { "-" } else { &kinds }
            )?;
        }
        if self.skipped_lines > 0 {
            writeln!(
                f,
                "({} lines were not events and were skipped)",
                self.skipped_lines
            )?;
        }
        Ok(())
    }
}
