//! How the embedded store carries a hospital's volume: books `FSP_BENCH_BOOKINGS` appointments
//! (default 1,000,000) through the store operations a booking makes (claim its identifier, which
//! also looks for an earlier booking; record the booked appointment, releasing the claim), 64 at a time as concurrent
//! requests would, and reports the rate of each tenth of the run, the file's size, the
//! process's peak memory, and how long reopening the full store takes.
//!
//! `cargo bench --bench store`; `FSP_BENCH_DIR=/some/dir` keeps the database there
//! (`appointments.db`) for a load run of the proxy over it (`benches/load/run.sh`). README
//! records the figures.

use std::time::Instant;

use chrono::Utc;
use fhir_salesforce_proxy::mapping::EXAMPLE_APPOINTMENT;
use fhir_salesforce_proxy::store::{AppointmentRecord, ClaimOutcome, Store};
use futures_util::StreamExt;

const IN_FLIGHT: usize = 64;

/// One booking's store operations, as `booking::create::book` makes them.
async fn book(store: &Store, n: usize, resource: &serde_json::Value) {
    let tenant = store.tenant(None);
    let identifier = format!("http://hospital.example.org/fhir/appointment-id|B-{n}");
    let keys = [identifier.clone()];
    let ClaimOutcome::Claimed(claim) = tenant.claim(&keys).await.unwrap() else {
        panic!("B-{n} was claimed before");
    };
    let id = format!("08p{n:0>15}");
    let mut resource = resource.clone();
    resource["id"] = id.clone().into();
    resource["identifier"][0]["value"] = format!("B-{n}").into();
    let record = AppointmentRecord::from_json(id, vec![identifier], &resource, Utc::now());
    tenant.record(&record, Some(claim)).await.unwrap();
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let total: usize = std::env::var("FSP_BENCH_BOOKINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let kept = std::env::var_os("FSP_BENCH_DIR").map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().unwrap();
    let dir = kept.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("appointments.db");
    let _ = std::fs::remove_file(&path);
    let store = Store::sqlite(&path).unwrap();

    // The example appointment as the proxy answers it after booking.
    let mut resource: serde_json::Value = serde_json::from_str(EXAMPLE_APPOINTMENT).unwrap();
    resource["meta"] = serde_json::json!({"lastUpdated": "2026-12-02T10:00:00.000Z"});
    resource["identifier"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"use": "secondary", "system": "urn:salesforce:ServiceAppointment", "value": "08p"}));
    println!(
        "booking {total} appointments into {} ({} bytes of FHIR JSON each), {IN_FLIGHT} at a time",
        path.display(),
        resource.to_string().len()
    );

    let tenth = (total / 10).max(1);
    let mut rates = Vec::new();
    let started = Instant::now();
    for slice in 0..total.div_ceil(tenth) {
        let from = slice * tenth;
        let to = ((slice + 1) * tenth).min(total);
        let t = Instant::now();
        futures_util::stream::iter(from..to)
            .for_each_concurrent(IN_FLIGHT, |n| {
                let (store, resource) = (&store, &resource);
                async move { book(store, n, resource).await }
            })
            .await;
        let rate = (to - from) as f64 / t.elapsed().as_secs_f64();
        println!(
            "  {:>3}%..{:>3}%: {rate:>8.0} bookings/s ({} stored)",
            slice * 10,
            (slice + 1) * 10,
            to
        );
        rates.push(rate);
    }
    let elapsed = started.elapsed();
    let (first, last) = (rates[0], rates[rates.len() - 1]);
    println!(
        "total {:.1} s, {:.0} bookings/s; last tenth at {:.1} % of the first tenth's rate",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        100.0 * last / first
    );
    println!("peak RSS of this process: {:.1} MB", peak_rss_mb());
    drop(store);
    let size: u64 = ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|m| m.len())
        .sum();
    println!("database: {:.1} MB on disk", size as f64 / 1e6);

    // A restart over the full store: open it and answer one lookup.
    let t = Instant::now();
    let store = Store::sqlite(&path).unwrap();
    let found = store
        .tenant(None)
        .find_by_identifiers(&[format!(
            "http://hospital.example.org/fhir/appointment-id|B-{}",
            total / 2
        )])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    println!(
        "reopen over {total} appointments and one lookup: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    if kept.is_none() {
        drop(store);
        drop(temp);
    }
}
