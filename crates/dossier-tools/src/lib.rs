//! What the `dossier` command runs besides the service itself: the
//! benchmarks (`bench append`, `bench read`), bulk seeding (`seed`), the demo
//! book of `serve --demo` and CSV onboarding (`import`).
//!
//! The CLI (`crates/dossier`) parses the configuration, finds or starts the
//! database server, creates and migrates databases and opens the store; the
//! functions here take what it opened (a [`dossier_store::Store`], its
//! [`dossier_store::Keyring`], a [`dossier_service::Service`] built from
//! them) and print their reports. Their errors are `anyhow` errors because
//! every caller only prints them.

pub mod bench;
pub mod bench_read;
mod csv_file;
pub mod demo;
mod ids;
pub mod import;
pub mod progress;
mod rng;
pub mod seed;
