//! What one booking costs the proxy itself, without any network: parsing an Appointment (JSON and
//! XML), the R4 rules and the mapping to a Book Appointment request, and reading a 20-entry batch
//! Bundle. Run with `cargo bench --bench translate`; README records the figures of the last run.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fhir_salesforce_proxy::booking::resolve::translate;
use fhir_salesforce_proxy::fhir::bundle::read_bundle;
use fhir_salesforce_proxy::fhir::format::Format;
use fhir_salesforce_proxy::fhir::parse::parse_appointment;
use fhir_salesforce_proxy::mapping::{EXAMPLE_APPOINTMENT, EXAMPLE_MAPPING, Mapping, book_request};
use fhirbolt::model::r4::resources::Appointment;

fn inputs() -> (Mapping, Vec<u8>, Vec<u8>) {
    let mapping = Mapping::from_toml(EXAMPLE_MAPPING, "mappings/example.toml").unwrap();
    let json = EXAMPLE_APPOINTMENT.as_bytes().to_vec();
    let typed: Appointment = fhirbolt::json::from_str(EXAMPLE_APPOINTMENT, None).unwrap();
    let xml = fhirbolt::xml::to_vec(&typed, None).unwrap();
    (mapping, json, xml)
}

fn batch(entries: usize) -> Vec<u8> {
    let appointment: serde_json::Value = serde_json::from_str(EXAMPLE_APPOINTMENT).unwrap();
    let entry = serde_json::json!({
        "resource": appointment,
        "request": {"method": "POST", "url": "Appointment"}
    });
    serde_json::to_vec(&serde_json::json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": vec![entry; entries]
    }))
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let (mapping, json, xml) = inputs();
    let mut group = c.benchmark_group("appointment");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse json", |b| {
        b.iter(|| parse_appointment(black_box(&json), Format::Json).unwrap())
    });
    group.bench_function("parse xml", |b| {
        b.iter(|| parse_appointment(black_box(&xml), Format::Xml).unwrap())
    });
    let appointment = parse_appointment(&json, Format::Json).unwrap();
    group.bench_function("map only", |b| {
        b.iter(|| book_request(black_box(&appointment), &mapping).unwrap())
    });
    group.bench_function("translate json (parse + rules + map)", |b| {
        b.iter(|| translate(black_box(&json), Format::Json, &mapping).unwrap())
    });
    group.bench_function("translate xml (parse + rules + map)", |b| {
        b.iter(|| translate(black_box(&xml), Format::Xml, &mapping).unwrap())
    });
    group.finish();

    let body = batch(20);
    let mut group = c.benchmark_group("bundle");
    group.throughput(Throughput::Elements(20));
    group.bench_function("read 20-entry batch frame + parse each", |b| {
        b.iter(|| {
            let bundle = read_bundle(black_box(&body), Format::Json).unwrap();
            for entry in bundle.entries {
                entry.resource.unwrap().appointment().unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(translate_benches, benches);
criterion_main!(translate_benches);
