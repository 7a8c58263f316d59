//! How long records take from being produced to being committed, for the
//! summary a run prints: millisecond buckets up to a minute.

const BUCKETS: usize = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latencies {
    counts: Vec<u64>,
    over: u64,
    total: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            over: 0,
            total: 0,
        }
    }
}

impl Latencies {
    pub fn record(&mut self, millis: i64) {
        let millis = millis.max(0) as usize;
        match self.counts.get_mut(millis) {
            Some(count) => *count += 1,
            None => self.over += 1,
        }
        self.total += 1;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The latency (ms) at or below which a fraction `q` of the records fall;
    /// `None` when nothing was recorded or it lies beyond a minute.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (millis, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(millis as u64);
            }
        }
        None
    }

    pub fn merge(&mut self, other: &Latencies) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.over += other.over;
        self.total += other.total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut latencies = Latencies::default();
        for millis in 1..=100 {
            latencies.record(millis);
        }
        assert_eq!(latencies.quantile(0.5), Some(50));
        assert_eq!(latencies.quantile(0.99), Some(99));
        assert_eq!(latencies.quantile(1.0), Some(100));
        latencies.record(120_000);
        assert_eq!(latencies.count(), 101);
        assert_eq!(
            latencies.quantile(1.0),
            None,
            "beyond a minute is not a number we can give"
        );
        assert_eq!(Latencies::default().quantile(0.5), None);
    }
}
