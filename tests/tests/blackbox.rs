//! Black-box tests: the real `dossier` program (built as `dossier-under-test`)
//! runs as a child process against a database of its own per test, and is
//! driven only through its command line, environment and HTTP API.

mod common;

mod blackbox {
    mod crash;
    mod export;
    mod import;
    mod no_database;
    mod rebuild;
    mod smoke;
    mod tamper;
}
