//! Mapping: the mapping-file model and its checks, FHIR Appointment → Book Appointment request,
//! and Salesforce's answer → FHIR Appointment.
//!
//! Plain synchronous functions over plain data: no HTTP, no async, testable with fixtures alone.

pub mod book;
pub mod booked;
pub mod file;
pub mod find;
pub mod lookup;
pub mod read;
pub mod reference;
pub mod search;
pub mod slots;

pub use book::{book_request, book_request_with};
pub use booked::booked_appointment;
pub use file::{Mapping, MappingFileError};

/// The example mapping shipped in `mappings/example.toml`, embedded for the demo.
pub const EXAMPLE_MAPPING: &str = include_str!("../../mappings/example.toml");

/// The example appointment shipped in `examples/appointment.json`, embedded for the demo.
pub const EXAMPLE_APPOINTMENT: &str = include_str!("../../examples/appointment.json");

#[cfg(test)]
mod tests {
    use super::*;
    use fhirbolt::model::r4::resources::Appointment;
    use serde_json::Value;

    /// The Book Appointment Action page's sample request, with an 18-character workTypeId where
    /// the docs' sample has a 19-character typo (`08qxxG000000Axq6xxC`).
    fn documented_sample() -> Value {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/salesforce/book-appointment-documented-sample.json"
        ))
        .unwrap()
    }

    #[test]
    fn example_mapping_turns_example_appointment_into_the_documented_sample() {
        let mapping = Mapping::from_toml(EXAMPLE_MAPPING, "mappings/example.toml").unwrap();
        let appointment: Appointment = fhirbolt::json::from_str(EXAMPLE_APPOINTMENT, None).unwrap();
        let request = book_request(&appointment, &mapping).unwrap();
        assert_eq!(serde_json::to_value(&request).unwrap(), documented_sample());
        // Same order of keys as the documentation, so the printed request reads like it.
        let text = serde_json::to_string(&request).unwrap();
        let keys: Vec<usize> = [
            "workTypeId",
            "channelId",
            "description",
            "startDate",
            "endDate",
            "comment",
            "participants",
        ]
        .iter()
        .map(|k| text.find(&format!("\"{k}\"")).unwrap())
        .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
    }
}
