//! Exactly the `dossier` binary (same entry point), built inside this package
//! so the black-box tests can start it as a child process.

fn main() -> std::process::ExitCode {
    dossier_cli::main_entry()
}
