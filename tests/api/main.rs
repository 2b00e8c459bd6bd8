//! Integration tests: the proxy started on port 0 and driven over HTTP like a client would, against
//! the built-in sandbox or wiremock on 127.0.0.1.

mod auth;
mod bad_input;
mod booking;
mod bundles;
mod changes;
mod cli;
mod faults;
mod fhir_client;
mod find;
mod helpers;
mod large_bodies;
mod limits;
mod logs;
mod lookups;
mod metadata;
mod observability;
mod process;
mod reads;
mod reload;
mod replicas;
mod robustness;
mod routing;
mod salesforce_auth;
mod searches;
mod shutdown;
mod slots;
mod store;
mod tenants;
mod throttling;
mod tls;
mod validate;
