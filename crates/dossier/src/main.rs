// The service and its rebuilds allocate and free many small JSON values on
// several threads; mimalloc does that markedly faster than the system
// allocator (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    dossier_cli::main_entry()
}
