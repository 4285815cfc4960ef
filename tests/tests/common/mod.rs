//! Running the real `dossier` program (as `dossier-under-test`) against a
//! fresh database: one [`Env`] per test (own database, state directory and
//! master key), servers as child processes that are killed when dropped.

#![allow(dead_code)] // each test file uses a different part of this module

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dossier_testkit::TestDb;
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_dossier-under-test");
/// How long a server may take to answer /healthz after it was started.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);
/// How long one CLI command may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// The workspace root (for ops/verify_chain.py).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One test's world: a database, a state directory and a master key.
pub struct Env {
    pub db: TestDb,
    pub state_dir: PathBuf,
    master_key: String,
}

impl Env {
    pub async fn new() -> Result<Env> {
        let db = TestDb::new().await?;
        let state_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("dossier-blackbox")
            .join(&db.name);
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        Ok(Env {
            db,
            state_dir,
            master_key: dossier_seal::MasterKey::generate().to_base64(),
        })
    }

    /// `dossier-under-test ARGS` with this test's configuration in the
    /// environment (and nothing inherited that could point it elsewhere).
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args)
            .env("DATABASE_URL", self.db.url())
            .env("DOSSIER_MASTER_KEY", &self.master_key)
            .env("DOSSIER_STATE_DIR", &self.state_dir)
            // The database is reachable; never fall back to a private server.
            .env("DOSSIER_NO_PRIVATE_POSTGRES", "1")
            .env("RUST_LOG", "info")
            .env_remove("DOSSIER_LISTEN")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs a CLI command to completion (bounded in time).
    pub async fn run(&self, args: &[&str]) -> Result<Output> {
        run_bounded(self.command(args), args).await
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub async fn run_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args).await?;
        if !out.status.success() {
            bail!(
                "`dossier {}` failed with {}:\nstdout: {}\nstderr: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// A bearer token for a new principal with this role.
    pub async fn token(&self, name: &str, role: &str) -> Result<String> {
        let out = self
            .run_ok(&["token", "create", "--name", name, "--role", role])
            .await?;
        let token = out.trim().to_owned();
        if token.is_empty() || token.contains(char::is_whitespace) {
            bail!("`token create` printed no single token: {out:?}");
        }
        Ok(token)
    }

    /// Starts `dossier serve` on a free port and waits until /healthz answers.
    pub async fn serve(&self, token: &str) -> Result<Server> {
        let mut last_err = None;
        // A port found free may be taken by another test before the server
        // binds it; then the server exits and another port is tried.
        for attempt in 0..5 {
            let port = free_port()?;
            let log = self
                .state_dir
                .join(format!("serve-{}-{port}-{attempt}", std::process::id()));
            let mut cmd = std::process::Command::new(BIN);
            cmd.arg("serve")
                .env("DATABASE_URL", self.db.url())
                .env("DOSSIER_MASTER_KEY", &self.master_key)
                .env("DOSSIER_STATE_DIR", &self.state_dir)
                .env("DOSSIER_NO_PRIVATE_POSTGRES", "1")
                .env("DOSSIER_LISTEN", format!("127.0.0.1:{port}"))
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(log.with_extension("stdout"))?)
                .stderr(std::fs::File::create(log.with_extension("stderr"))?);
            let child = cmd.spawn().context("starting dossier serve")?;
            let mut server = Server {
                child: Some(child),
                base: format!("http://127.0.0.1:{port}"),
                client: client(token)?,
                log,
            };
            match server.wait_healthy().await {
                Ok(()) => return Ok(server),
                Err(e) => {
                    let stderr = server.stderr();
                    let exited = server.try_status()?.is_some();
                    if exited && stderr.contains("cannot listen") {
                        last_err = Some(e);
                        continue;
                    }
                    return Err(e.context(format!("server stderr:\n{stderr}")));
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no free port found")))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Keep the logs of a failed test for inspection.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}

async fn run_bounded(mut cmd: tokio::process::Command, args: &[&str]) -> Result<Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .with_context(|| format!("starting `dossier {}`", args.join(" ")))?;
    tokio::time::timeout(COMMAND_LIMIT, child.wait_with_output())
        .await
        .with_context(|| format!("`dossier {}` did not finish in time", args.join(" ")))?
        .context("waiting for the command")
}

/// A command of this binary without any test database (e.g. for failures).
pub async fn run_raw(args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("DOSSIER_MASTER_KEY")
        .env_remove("DOSSIER_LISTEN")
        .env_remove("DOSSIER_STATE_DIR")
        .env_remove("DOSSIER_NO_PRIVATE_POSTGRES")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(cmd, args).await
}

/// A port nobody listens on right now (the listener is closed again).
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn client(token: &str) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// A running `dossier serve`; killed (SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub client: reqwest::Client,
    log: PathBuf,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the server has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.with_extension("stderr")).unwrap_or_default()
    }

    fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        match &mut self.child {
            Some(c) => Ok(c.try_wait()?),
            None => bail!("the server was already stopped"),
        }
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + STARTUP_LIMIT;
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        loop {
            if let Some(status) = self.try_status()? {
                bail!("dossier serve exited during start-up with {status}");
            }
            if let Ok(r) = probe.get(self.url("/healthz")).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("dossier serve did not answer /healthz within {STARTUP_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded) for the process to exit and reaps it.
    async fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_status()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "dossier serve did not exit within {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the process to exit; returns its status.
    pub async fn terminate(mut self) -> Result<ExitStatus> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", self.pid());
        }
        self.wait_exit(SHUTDOWN_LIMIT).await
    }

    /// SIGKILL: the process dies at once, with no chance to clean up. Takes
    /// `&self` so it can happen while clients still use the server; reap it
    /// with [`Server::wait_killed`].
    pub fn sigkill(&self) -> Result<()> {
        let status = std::process::Command::new("kill")
            .args(["-KILL", &self.pid().to_string()])
            .status()
            .context("running kill -KILL")?;
        if !status.success() {
            bail!("kill -KILL {} failed: {status}", self.pid());
        }
        Ok(())
    }

    /// Waits for a killed server to exit; returns its status.
    pub async fn wait_killed(mut self) -> Result<ExitStatus> {
        self.wait_exit(SHUTDOWN_LIMIT).await
    }

    /// POST /v1/customers for a person (duplicate check overridden); the
    /// response as received.
    pub async fn create_person(
        &self,
        name: &str,
        reason: &str,
    ) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(self.url("/v1/customers"))
            .json(&json!({
                "kind": "person",
                "details": {"name": name, "phone": "13812345678", "region": "华东"},
                "reason": reason,
                // Load generators repeat the phone number on purpose.
                "force": true,
            }))
            .send()
            .await
    }

    /// Creates a person and returns (id, seq) from the 201 response.
    pub async fn create_ok(&self, name: &str, reason: &str) -> Result<(String, i64)> {
        let r = self.create_person(name, reason).await?;
        let status = r.status();
        let body: Value = r.json().await?;
        if status != reqwest::StatusCode::CREATED {
            bail!("create answered {status}: {body}");
        }
        id_seq(&body)
    }

    /// GET /v1/ledger/head as JSON.
    pub async fn head(&self) -> Result<Value> {
        let r = self.client.get(self.url("/v1/ledger/head")).send().await?;
        let status = r.status();
        let body: Value = r.json().await?;
        if !status.is_success() {
            bail!("ledger head answered {status}: {body}");
        }
        Ok(body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A valid person name made from a number (names may not contain digits).
pub fn person_name(n: usize) -> String {
    const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
    let digits: String = n
        .to_string()
        .bytes()
        .map(|b| DIGITS[usize::from(b - b'0')])
        .collect();
    format!("客户{digits}")
}

/// The `id` and `seq` of a create/change response body.
pub fn id_seq(body: &Value) -> Result<(String, i64)> {
    let id = body["id"]
        .as_str()
        .with_context(|| format!("no id in {body}"))?
        .to_owned();
    let seq = body["seq"]
        .as_i64()
        .with_context(|| format!("no seq in {body}"))?;
    Ok((id, seq))
}

/// The exit code of a finished process, with its output for messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
