//! What a sink committed, counted against what it should have: how many
//! records were expected, how many came out more often than they went in
//! (duplicates) and how many did not come out at all (losses). The
//! exactly-once tests assert on it, and `scripts/compat` collects the counts
//! of each run into its table through `P7_COMPAT_REPORT`.

use std::collections::BTreeMap;
use std::io::Write;

/// Expected, duplicated and lost records of one check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub records: u64,
    pub duplicates: u64,
    pub losses: u64,
}

impl Tally {
    /// Compares two multisets of record keys.
    pub fn of<K: Ord>(
        expected: impl IntoIterator<Item = K>,
        committed: impl IntoIterator<Item = K>,
    ) -> Tally {
        Tally::of_counts(
            expected.into_iter().map(|key| (key, 1)),
            committed.into_iter().map(|key| (key, 1)),
        )
    }

    /// Compares per-key counts (e.g. readings per station in a running
    /// statistic): a count above the expected one is that many duplicates,
    /// one below it that many losses.
    pub fn of_counts<K: Ord>(
        expected: impl IntoIterator<Item = (K, u64)>,
        committed: impl IntoIterator<Item = (K, u64)>,
    ) -> Tally {
        let mut counts: BTreeMap<K, (u64, u64)> = BTreeMap::new();
        for (key, n) in expected {
            counts.entry(key).or_default().0 += n;
        }
        for (key, n) in committed {
            counts.entry(key).or_default().1 += n;
        }
        let mut tally = Tally::default();
        for (want, got) in counts.into_values() {
            tally.records += want;
            tally.duplicates += got.saturating_sub(want);
            tally.losses += want.saturating_sub(got);
        }
        tally
    }

    /// Appends `CHECK RECORDS DUPLICATES LOSSES` to the file named by
    /// `P7_COMPAT_REPORT`, if set, and returns the tally for asserting on.
    pub fn report(self, check: &str) -> Tally {
        if let Ok(path) = std::env::var("P7_COMPAT_REPORT") {
            let line = format!(
                "{check} {} {} {}\n",
                self.records, self.duplicates, self.losses
            );
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut file| file.write_all(line.as_bytes()));
            if let Err(err) = written {
                panic!("cannot append to P7_COMPAT_REPORT {path}: {err}");
            }
        }
        self
    }

    /// True when nothing was duplicated or lost.
    pub fn exact(&self) -> bool {
        self.duplicates == 0 && self.losses == 0
    }
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.records += other.records;
        self.duplicates += other.duplicates;
        self.losses += other.losses;
    }
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn duplicates_and_losses_are_counted_per_key() {
        let tally = Tally::of([1, 2, 3, 3], [1, 1, 1, 3, 4]);
        // 1 twice too often, 4 never expected; 2 and one 3 missing.
        assert_eq!(
            tally,
            Tally {
                records: 4,
                duplicates: 3,
                losses: 2
            }
        );
        assert!(!tally.exact());
        assert!(Tally::of(["a", "b"], ["b", "a"]).exact());
    }

    #[test]
    fn counts_compare_like_repeated_keys() {
        let tally = Tally::of_counts([("x", 5), ("y", 2)], [("x", 6), ("z", 1)]);
        assert_eq!(
            tally,
            Tally {
                records: 7,
                duplicates: 2,
                losses: 2
            }
        );
    }

    #[test]
    fn a_report_line_is_appended_when_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report");
        // Only this test sets the variable in this process's test binary.
        std::env::set_var("P7_COMPAT_REPORT", &path);
        Tally::of([1, 2], [2]).report("first");
        Tally::of([1], [1, 1]).report("second");
        std::env::remove_var("P7_COMPAT_REPORT");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "first 2 0 1\nsecond 1 1 0\n"
        );
    }
}
