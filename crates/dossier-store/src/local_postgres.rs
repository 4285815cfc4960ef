//! Finding a database: the configured URL, or else a private PostgreSQL
//! started from server binaries installed on this machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where installed server binaries are looked for, besides `PATH`.
const SEARCH_GLOBS: &[&str] = &[
    "/usr/lib/postgresql",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/bin",
    "/usr/local/bin",
];

/// What to tell a person whose machine has no PostgreSQL at all.
pub const INSTALL_HINT: &str = "Install PostgreSQL 15 or newer and start it, for example:\n\
  Debian/Ubuntu:  apt-get install -y postgresql && pg_ctlcluster 15 main start\n\
  macOS:          brew install postgresql@16 && brew services start postgresql@16\n\
then run again, or point DATABASE_URL at any reachable PostgreSQL, e.g.\n\
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/dossier";

/// A directory that holds `initdb` and `pg_ctl`, preferring the newest version.
pub fn find_server_binaries() -> Option<PathBuf> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .collect();
        versions.sort_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
        candidates.extend(versions.into_iter().rev());
    }
    candidates.extend(SEARCH_GLOBS.iter().skip(1).map(PathBuf::from));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates.into_iter().find(|d| has_tools(d))
}

/// A PostgreSQL server this process started in a private data directory.
#[derive(Debug)]
pub struct LocalPostgres {
    pub url: String,
    pub data_dir: PathBuf,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a server tool; as root (which PostgreSQL refuses) it runs as the
/// `postgres` system user instead.
fn run_tool(bin: &Path, args: &[&str], as_postgres: bool) -> Result<(), String> {
    let out = if as_postgres {
        Command::new("runuser")
            .arg("-u")
            .arg("postgres")
            .arg("--")
            .arg(bin)
            .args(args)
            .output()
    } else {
        Command::new(bin).args(args).output()
    }
    .map_err(|e| format!("could not run {}: {e}", bin.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}{}",
            bin.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Starts (initialising if needed) a private server in `data_dir`, listening
/// on 127.0.0.1:`port` with trust authentication for local use.
pub fn start(bin_dir: &Path, data_dir: &Path, port: u16) -> Result<LocalPostgres, String> {
    let as_postgres = is_root();
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    if as_postgres {
        let _ = Command::new("chown")
            .arg("-R")
            .arg("postgres")
            .arg(data_dir)
            .status();
    }
    let dir = data_dir.to_string_lossy().to_string();
    if !data_dir.join("PG_VERSION").exists() {
        run_tool(
            &bin_dir.join("initdb"),
            &[
                "-D",
                &dir,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ],
            as_postgres,
        )?;
    }
    let opts = format!("-p {port} -c listen_addresses=127.0.0.1 -k {dir}");
    let log = format!("{dir}/server.log");
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    if run_tool(
        &bin_dir.join("pg_ctl"),
        &["-D", &dir, "status"],
        as_postgres,
    )
    .is_err()
    {
        run_tool(
            &bin_dir.join("pg_ctl"),
            &[
                "-D", &dir, "-o", &opts, "-l", &log, "-w", "-t", "60", "start",
            ],
            as_postgres,
        )?;
    }
    std::thread::sleep(Duration::from_millis(100));
    Ok(LocalPostgres {
        url,
        data_dir: data_dir.to_path_buf(),
    })
}
