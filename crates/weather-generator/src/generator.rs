//! The course's weather sequence: from 2000-01-01, ten readings a day in the
//! order StationA … StationJ; A–H drawn from gauss(30, 15) of a CPython
//! `random` seeded with 544, I always 5.0, J the day index modulo 10.

use chrono::{Days, NaiveDate};

use crate::python_random::PythonRandom;

pub const SEED: u32 = 544;

pub use report::STATIONS;

/// The first date of the sequence.
pub fn first_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("2000-01-01 is a date")
}

/// One generated row.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub station_id: &'static str,
    pub date: NaiveDate,
    pub degrees: f64,
}

/// An endless iterator over the course sequence.
#[derive(Clone)]
pub struct WeatherGenerator {
    rng: PythonRandom,
    /// Index of the next reading, counting from 0 at 2000-01-01 StationA.
    position: u64,
}

impl Default for WeatherGenerator {
    fn default() -> Self {
        Self::new()
    }
}

impl WeatherGenerator {
    pub fn new() -> Self {
        Self {
            rng: PythonRandom::seed(SEED),
            position: 0,
        }
    }

    /// A generator whose next reading is the one at `position`. The random
    /// stream has no shortcut, so this replays the readings before it.
    pub fn starting_at(position: u64) -> Self {
        let mut generator = Self::new();
        while generator.position < position {
            generator.next();
        }
        generator
    }

    /// Index of the next reading.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The index of the reading for `station` on `date`, if it is one of ours.
    pub fn position_of(station: &str, date: NaiveDate) -> Option<u64> {
        let station_index = STATIONS.iter().position(|s| *s == station)? as u64;
        let day = u64::try_from(date.signed_duration_since(first_date()).num_days()).ok()?;
        Some(day * STATIONS.len() as u64 + station_index)
    }
}

impl Iterator for WeatherGenerator {
    type Item = Reading;

    fn next(&mut self) -> Option<Reading> {
        let day = self.position / STATIONS.len() as u64;
        let station_index = (self.position % STATIONS.len() as u64) as usize;
        let station_id = STATIONS[station_index];
        let degrees = match station_id {
            "StationI" => 5.0,
            "StationJ" => (day % 10) as f64,
            _ => self.rng.gauss(30.0, 15.0),
        };
        let date = first_date().checked_add_days(Days::new(day))?;
        self.position += 1;
        Some(Reading {
            station_id,
            date,
            degrees,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn the_first_day_matches_the_course() {
        let expected: [f64; 10] = [
            23.851454295532143,
            19.525202433007102,
            22.977951196092594,
            47.92533602679551,
            52.0219652093013,
            22.266228429236403,
            30.72235799978964,
            26.98481298988876,
            5.0,
            0.0,
        ];
        let day: Vec<Reading> = WeatherGenerator::new().take(10).collect();
        for (reading, (station, degrees)) in day.iter().zip(STATIONS.iter().zip(expected)) {
            assert_eq!(reading.station_id, *station);
            assert_eq!(reading.date, date("2000-01-01"));
            assert_eq!(reading.degrees.to_bits(), degrees.to_bits(), "{station}");
        }
    }

    #[test]
    fn the_second_day_and_row_5000_match_the_course() {
        let rows: Vec<Reading> = WeatherGenerator::new().take(5003).collect();
        assert_eq!(rows[10].date, date("2000-01-02"));
        assert_eq!(rows[10].degrees, 16.645396980313848);
        assert_eq!(rows[11].degrees, 40.401481236102825);
        assert_eq!(rows[19].degrees, 1.0, "StationJ on day 1");
        assert_eq!(rows[5000].date, date("2001-05-15"));
        assert_eq!(rows[5000].station_id, "StationA");
        assert_eq!(rows[5000].degrees, 43.37182674513778);
        assert_eq!(rows[5001].degrees, 28.675076783142284);
        assert_eq!(rows[5002].degrees, 52.00707956950971);
    }

    #[test]
    fn starting_at_a_position_continues_the_same_sequence() {
        let all: Vec<Reading> = WeatherGenerator::new().take(40).collect();
        for start in [0, 1, 7, 10, 23] {
            let resumed: Vec<Reading> = WeatherGenerator::starting_at(start)
                .take(40 - start as usize)
                .collect();
            assert_eq!(resumed, all[start as usize..]);
        }
    }

    #[test]
    fn position_of_inverts_the_sequence() {
        for (index, reading) in WeatherGenerator::new().take(35).enumerate() {
            assert_eq!(
                WeatherGenerator::position_of(reading.station_id, reading.date),
                Some(index as u64)
            );
        }
        assert_eq!(
            WeatherGenerator::position_of("Madison", date("2000-01-01")),
            None
        );
        assert_eq!(
            WeatherGenerator::position_of("StationA", date("1999-12-31")),
            None
        );
    }
}
