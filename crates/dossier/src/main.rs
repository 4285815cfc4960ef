fn main() -> std::process::ExitCode {
    dossier_cli::main_entry()
}
