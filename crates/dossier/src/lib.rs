//! The `dossier` command: parses the command line and configuration once, then
//! hands over to the subcommand's module, which opens what the subcommand
//! needs and, for `bench`, `seed`, `import` and the demo of `serve --demo`,
//! calls into `dossier-tools`.
//!
//! This is a library so that other packages (the black-box tests in `tests/`)
//! can build a binary running exactly this code; `src/main.rs` only calls
//! [`main_entry`].

mod cli;
mod commands;
mod config;
mod database;
mod open;
mod serve;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;
use crate::config::{Config, MASTER_KEY_ENV};

/// The whole `dossier` program: parses `std::env::args`, runs the subcommand
/// and returns its exit code.
pub fn main_entry() -> ExitCode {
    // Usage errors exit 1 (an error), never 2: `verify` means a violation
    // of the chain by 2, and a mistyped option must not read as tampering.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let master_key_env = match std::env::var(MASTER_KEY_ENV) {
        Ok(v) => Some(v),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            eprintln!(
                "error: {MASTER_KEY_ENV} is not valid UTF-8; create a key with `dossier keygen`"
            );
            return ExitCode::FAILURE;
        }
    };
    let result = Config::new(cli.global, master_key_env).and_then(|config| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(commands::run(config, cli.command))
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, leaving out causes whose text the message
/// before already includes (many library errors repeat their source).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
