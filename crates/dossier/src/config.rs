//! Typed configuration, parsed once at start-up from flags and environment.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dossier_seal::MasterKey;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sqlx::postgres::PgConnectOptions;

use crate::cli::GlobalArgs;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/dossier";
/// The environment variable holding the master key (never a flag).
pub const MASTER_KEY_ENV: &str = "DOSSIER_MASTER_KEY";
const MASTER_KEY_FILE: &str = "master.key";

/// A PostgreSQL URL, checked when parsed. `Display` and `Debug` hide the password.
#[derive(Clone)]
pub struct DatabaseUrl {
    raw: String,
    opts: PgConnectOptions,
}

impl DatabaseUrl {
    pub fn parse(s: &str) -> Result<DatabaseUrl, String> {
        let raw = s.trim().to_owned();
        if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
            return Err("must be a postgres:// or postgresql:// URL".into());
        }
        let opts: PgConnectOptions = raw
            .parse()
            .map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
        Ok(DatabaseUrl { raw, opts })
    }

    /// The URL as given, password included: pass it to the store, never print it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn options(&self) -> PgConnectOptions {
        self.opts.clone()
    }

    /// The database this URL connects to, if it names one.
    pub fn database(&self) -> Option<&str> {
        self.opts.get_database()
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, db: &str) -> DatabaseUrl {
        let (base, query) = match self.raw.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (self.raw.as_str(), None),
        };
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let authority_end = base[scheme_end..]
            .find('/')
            .map_or(base.len(), |i| scheme_end + i);
        let mut raw = format!(
            "{}/{}",
            &base[..authority_end],
            utf8_percent_encode(db, UNRESERVED)
        );
        if let Some(q) = query {
            raw.push('?');
            raw.push_str(q);
        }
        DatabaseUrl {
            opts: self.opts.clone().database(db),
            raw,
        }
    }

    /// The `sslmode` query parameter, if the URL sets one.
    pub fn sslmode(&self) -> Option<&str> {
        let (_, query) = self.raw.split_once('?')?;
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case("sslmode") || k.eq_ignore_ascii_case("ssl-mode"))
            .map(|(_, v)| v)
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let scheme_end = self.raw.find("://").map_or(0, |i| i + 3);
        let rest = &self.raw[scheme_end..];
        let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!(
                    "{}{user}:***@{host}{}",
                    &self.raw[..scheme_end],
                    &rest[authority_len..]
                ),
                None => self.raw.clone(),
            },
            None => self.raw.clone(),
        }
    }
}

/// What a database name keeps unencoded in the URL path: RFC 3986's
/// unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// Where the master key came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
    Generated(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env => write!(f, "${MASTER_KEY_ENV}"),
            KeySource::File(p) => write!(f, "{}", p.display()),
            KeySource::Generated(p) => write!(f, "{} (newly generated)", p.display()),
        }
    }
}

/// Everything the commands need to know, parsed once.
#[derive(Debug)]
pub struct Config {
    pub database_url: DatabaseUrl,
    /// Login of the application role, if it differs from the owner's URL with
    /// the user replaced.
    pub app_database_url: Option<DatabaseUrl>,
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    /// Rules file; None = the built-in rules.
    pub rules: Option<PathBuf>,
    /// Whether a private PostgreSQL server may be started when the configured
    /// one is unreachable.
    pub private_postgres: bool,
    /// From the environment; `MasterKey` never prints its bytes.
    master_key_env: Option<MasterKey>,
}

impl Config {
    /// The text of the rules to put in force: the --rules file, checked, or
    /// the built-in defaults.
    pub fn rules_text(&self) -> Result<String> {
        let Some(path) = &self.rules else {
            return Ok(dossier_insights::Rules::default_text().to_owned());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the rules file {}", path.display()))?;
        dossier_insights::Rules::parse(&text)
            .map_err(|e| anyhow::anyhow!("the rules file {} is invalid: {e}", path.display()))?;
        Ok(text)
    }

    /// `master_key_env` is the value of DOSSIER_MASTER_KEY, if set.
    pub fn new(args: GlobalArgs, master_key_env: Option<String>) -> Result<Config> {
        let master_key_env = match master_key_env {
            Some(s) if !s.trim().is_empty() => Some(MasterKey::from_base64(&s).map_err(|e| {
                anyhow::anyhow!(
                    "{MASTER_KEY_ENV} is not usable: {e}; create a key with `dossier keygen`"
                )
            })?),
            _ => None,
        };
        Ok(Config {
            database_url: args.database_url,
            app_database_url: args.app_database_url,
            listen: args.listen,
            state_dir: args.state_dir,
            rules: args.rules,
            private_postgres: !args.no_private_postgres,
            master_key_env,
        })
    }

    /// Where a private PostgreSQL server may keep its data (under the state
    /// directory), or `None` if starting one is disabled.
    pub fn private_postgres_dir(&self) -> Option<&Path> {
        self.private_postgres.then_some(self.state_dir.as_path())
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.state_dir.join(MASTER_KEY_FILE)
    }

    /// The configured master key: the environment, else `<state-dir>/master.key`.
    pub fn master_key(&self) -> Result<(MasterKey, KeySource)> {
        if let Some(k) = &self.master_key_env {
            return Ok((k.clone(), KeySource::Env));
        }
        let path = self.master_key_path();
        match read_key_file(&path)? {
            Some(k) => Ok((k, KeySource::File(path))),
            None => bail!(
                "no master key configured: set {MASTER_KEY_ENV} to the output of `dossier keygen` \
                 (for example `export {MASTER_KEY_ENV}=$(dossier keygen)`) and keep it safe; \
                 without it no customer data can be read. (Alternatively put it in {}, \
                 or try `dossier serve --demo`, which creates one there.)",
                path.display()
            ),
        }
    }

    /// Like [`Config::master_key`], but creates `<state-dir>/master.key` (mode
    /// 0600) when no key is configured. For demo mode only.
    pub fn master_key_or_generate(&self) -> Result<(MasterKey, KeySource)> {
        if let Some(k) = &self.master_key_env {
            return Ok((k.clone(), KeySource::Env));
        }
        let path = self.master_key_path();
        if let Some(k) = read_key_file(&path)? {
            return Ok((k, KeySource::File(path)));
        }
        let key = MasterKey::generate();
        write_private_file(&path, format!("{}\n", key.to_base64()).as_bytes())?;
        Ok((key, KeySource::Generated(path)))
    }
}

fn read_key_file(path: &Path) -> Result<Option<MasterKey>> {
    match std::fs::read_to_string(path) {
        Ok(s) => MasterKey::from_base64(&s).map(Some).map_err(|e| {
            anyhow::anyhow!("{} does not hold a usable master key: {e}", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes a new file readable only by its owner (mode 0600); fails if it exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Replaces a file (mode 0600) by writing a temporary one and renaming it.
pub fn replace_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    write_private_file(&tmp, contents)?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn defaults_and_flags() {
        // Flags win over the environment, so these hold whatever the test env has.
        let cli = parse(&[
            "dossier",
            "--database-url",
            "postgres://u:secret@db.example:6543/files?sslmode=require",
            "--listen",
            "0.0.0.0:9000",
            "--state-dir",
            "/tmp/x",
            "serve",
            "--demo",
        ]);
        assert!(matches!(cli.command, Command::Serve { demo: true }));
        let cfg = Config::new(cli.global, None).unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(cfg.state_dir, PathBuf::from("/tmp/x"));
        assert_eq!(cfg.database_url.database(), Some("files"));
        assert_eq!(cfg.database_url.sslmode(), Some("require"));
        assert_eq!(
            cfg.database_url.to_string(),
            "postgres://u:***@db.example:6543/files?sslmode=require"
        );
        assert!(!format!("{cfg:?}").contains("secret"));
        // Global flags are accepted after the subcommand too.
        let cli = parse(&["dossier", "verify", "--listen", "127.0.0.1:1"]);
        assert_eq!(cli.global.listen, "127.0.0.1:1".parse().unwrap());
    }

    #[test]
    fn private_postgres_switch() {
        let cli = parse(&["dossier", "--state-dir", "/tmp/s", "migrate"]);
        let private = cli.global.no_private_postgres;
        let cfg = Config::new(cli.global, None).unwrap();
        // Without the flag it depends on DOSSIER_NO_PRIVATE_POSTGRES in the test env.
        assert_eq!(cfg.private_postgres_dir().is_none(), private);
        let cli = parse(&["dossier", "migrate", "--no-private-postgres"]);
        let cfg = Config::new(cli.global, None).unwrap();
        assert_eq!(cfg.private_postgres_dir(), None);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(Cli::try_parse_from(["dossier", "--listen", "nope", "verify"]).is_err());
        assert!(
            Cli::try_parse_from(["dossier", "--database-url", "mysql://x/y", "verify"]).is_err()
        );
        assert!(Cli::try_parse_from([
            "dossier", "token", "create", "--name", "a", "--role", "boss"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["dossier", "bench", "append", "--events", "0"]).is_err());
        let cli = parse(&["dossier", "--database-url", DEFAULT_DATABASE_URL, "keygen"]);
        let err = Config::new(cli.global, Some("not base64!".into())).unwrap_err();
        assert!(err.to_string().contains(MASTER_KEY_ENV));
    }

    #[test]
    fn master_key_sources() {
        let dir = std::env::temp_dir().join(format!("dossier-cfg-{}", uuid::Uuid::new_v4()));
        let args = |dir: &Path| {
            parse(&[
                "dossier",
                "--database-url",
                DEFAULT_DATABASE_URL,
                "--state-dir",
                dir.to_str().unwrap(),
                "keygen",
            ])
            .global
        };
        let cfg = Config::new(args(&dir), None).unwrap();
        let err = cfg.master_key().unwrap_err().to_string();
        assert!(err.contains("dossier keygen"), "{err}");
        let (k1, src) = cfg.master_key_or_generate().unwrap();
        assert!(matches!(src, KeySource::Generated(_)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(cfg.master_key_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (k2, src) = cfg.master_key_or_generate().unwrap();
        assert!(matches!(src, KeySource::File(_)));
        assert_eq!(k1.id(), k2.id());
        assert_eq!(cfg.master_key().unwrap().0.id(), k1.id());
        // The environment wins over the file.
        let other = MasterKey::generate();
        let cfg = Config::new(args(&dir), Some(other.to_base64())).unwrap();
        let (k3, src) = cfg.master_key().unwrap();
        assert_eq!(src, KeySource::Env);
        assert_eq!(k3.id(), other.id());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn url_rewriting() {
        let u = DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/dossier").unwrap();
        assert_eq!(
            u.with_database("dossier_bench").as_str(),
            "postgres://postgres@127.0.0.1:5432/dossier_bench"
        );
        assert_eq!(
            u.with_database("dossier_bench").database(),
            Some("dossier_bench")
        );
        assert_eq!(u.sslmode(), None);
        let u =
            DatabaseUrl::parse("postgresql://a:b@h/db?sslmode=disable&application_name=x").unwrap();
        assert_eq!(
            u.with_database("postgres").as_str(),
            "postgresql://a:b@h/postgres?sslmode=disable&application_name=x"
        );
        assert_eq!(
            u.redacted(),
            "postgresql://a:***@h/db?sslmode=disable&application_name=x"
        );
        let u = DatabaseUrl::parse("postgres://h:5432").unwrap();
        assert_eq!(
            u.with_database("my db").as_str(),
            "postgres://h:5432/my%20db"
        );
        assert_eq!(u.with_database("my db").database(), Some("my db"));
        assert_eq!(
            u.with_database("客户-1_a.b~c").as_str(),
            "postgres://h:5432/%E5%AE%A2%E6%88%B7-1_a.b~c"
        );
        assert_eq!(
            u.with_database("客户-1_a.b~c").database(),
            Some("客户-1_a.b~c")
        );
    }
}
