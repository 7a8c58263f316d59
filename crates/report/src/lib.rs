//! The `Report` record as it travels on the `temperatures` topic, and the two
//! rules every program must agree on: which partition a station's records land
//! in, and how a record is printed for people and graders.

mod debug_line;
mod partition;

pub use debug_line::{debug_line, python_float_repr, python_str_repr};
pub use partition::{murmur2, partition_for_key, COURSE_PARTITIONS};

/// Generated from `proto/report.proto` at build time.
mod proto {
    include!(concat!(env!("OUT_DIR"), "/report.rs"));
}

pub use proto::Report;

/// Name of the topic the producer writes and the consumers read.
pub const TOPIC: &str = "temperatures";

/// Partition count of the course topic.
pub const PARTITIONS: i32 = 4;

/// The ten stations of the course generator, in generation order.
pub const STATIONS: [&str; 10] = [
    "StationA", "StationB", "StationC", "StationD", "StationE", "StationF", "StationG", "StationH",
    "StationI", "StationJ",
];

impl Report {
    /// Encodes the record as protobuf bytes, the Kafka message value.
    pub fn to_bytes(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(self)
    }

    /// Decodes a Kafka message value.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        <Self as prost::Message>::decode(bytes)
    }

    /// Decodes a Kafka message value into `self`, reusing its strings'
    /// buffers: a consumer decodes millions of records one after another.
    pub fn decode_from(&mut self, bytes: &[u8]) -> Result<(), prost::DecodeError> {
        prost::Message::clear(self);
        prost::Message::merge(self, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_through_bytes() {
        let report = Report {
            date: "2000-01-01".into(),
            degrees: 23.851454295532143,
            station_id: "StationA".into(),
        };
        assert_eq!(Report::from_bytes(&report.to_bytes()).unwrap(), report);
    }

    #[test]
    fn field_numbers_match_the_course_schema() {
        // date = 1 (tag 0x0a), degrees = 2 (0x11, 64-bit), station_id = 3 (0x1a).
        let bytes = Report {
            date: "d".into(),
            degrees: 1.0,
            station_id: "s".into(),
        }
        .to_bytes();
        assert_eq!(bytes[0], 0x0a);
        assert_eq!(bytes[3], 0x11);
        assert_eq!(bytes[12], 0x1a);
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        assert!(Report::from_bytes(&[0xff, 0xff, 0xff]).is_err());
    }
}
