//! Arbitrary bytes as an Appointment in JSON: guarded parse, R4 rules, example mapping, the booked answer written back.
//! Promises checked: see `fhir_salesforce_proxy::robustness`.
#![no_main]

use std::sync::LazyLock;

use fhir_salesforce_proxy::fhir::format::Format;
use fhir_salesforce_proxy::mapping::Mapping;
use fhir_salesforce_proxy::robustness::{Reader, assert_harmless, example_mapping};
use libfuzzer_sys::fuzz_target;

static MAPPING: LazyLock<Mapping> = LazyLock::new(example_mapping);

fuzz_target!(|body: &[u8]| {
    assert_harmless(Reader::Appointment, body, Format::Json, &MAPPING);
});
