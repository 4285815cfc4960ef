//! Black-box tests of the `dossier` binary live in tests/*.rs. They run
//! `dossier-under-test` (src/bin), which calls the same entry point as the
//! real binary, as a separate process against a fresh database per test.
