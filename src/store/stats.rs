//! Counts of write transactions and how long they took, kept by the store
//! (the one place every write passes through, server code's included) and
//! read by the metrics endpoint. One count and one observation per
//! transaction: small next to a transaction's own cost.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Outcome {
    outcome: &'static str,
}

/// Write transactions by outcome (`committed`, `rolled_back`) and their durations.
#[derive(Debug)]
pub(crate) struct WriteStats {
    pub(crate) outcomes: Family<Outcome, Counter>,
    pub(crate) seconds: Histogram,
}

impl Default for WriteStats {
    fn default() -> Self {
        // 0.25 ms to ~8 s, doubling.
        WriteStats { outcomes: Family::default(), seconds: Histogram::new(exponential_buckets(0.00025, 2.0, 16)) }
    }
}

impl WriteStats {
    pub(crate) fn record(&self, committed: bool, took: Duration) {
        let outcome = if committed { "committed" } else { "rolled_back" };
        self.outcomes.get_or_create(&Outcome { outcome }).inc();
        self.seconds.observe(took.as_secs_f64());
    }
}
