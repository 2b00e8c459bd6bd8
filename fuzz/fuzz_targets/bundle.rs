//! Arbitrary bytes as a batch/transaction Bundle, in JSON and in XML: the frame, then each entry's resource parsed and mapped.
//! Promises checked: see `fhir_salesforce_proxy::robustness`.
#![no_main]

use std::sync::LazyLock;

use fhir_salesforce_proxy::fhir::format::Format;
use fhir_salesforce_proxy::mapping::Mapping;
use fhir_salesforce_proxy::robustness::{Reader, assert_harmless, example_mapping};
use libfuzzer_sys::fuzz_target;

static MAPPING: LazyLock<Mapping> = LazyLock::new(example_mapping);

fuzz_target!(|body: &[u8]| {
    for format in [Format::Json, Format::Xml] {
        assert_harmless(Reader::Bundle, body, format, &MAPPING);
    }
});
