//! Cross-checks the independent Python verifier (ops/verify_chain.py) against
//! this crate: on the committed vectors and on random (mutated) chains, both
//! must reach the same verdict. They need python3 on PATH and fail without it:
//! a missing interpreter must not pass for agreement.

mod common;

use std::process::{Command, Output};

use common::{
    arb_chain, arb_mutation, kind_name, mutate, read_jsonl, repo_root, vectors_dir, verify,
    Expected, Row,
};
use proptest::test_runner::{Config, TestRunner};

/// Panics, saying why, unless `python3` runs.
fn require_python3() {
    match Command::new("python3").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`python3 --version` exited with {}: the ops/verify_chain.py cross-check needs python3 \
             (stderr: {})",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "cannot run python3 ({e}): the ops/verify_chain.py cross-check needs python3 on PATH"
        ),
    }
}

fn run_verifier(file: &std::path::Path, expect_head: Option<&str>) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("ops/verify_chain.py"));
    if let Some(h) = expect_head {
        cmd.args(["--expect-head", h]);
    }
    cmd.arg(file).output().expect("python3 runs")
}

/// `Ok((seq, hash))` for `OK head_seq=.. head_hash=..`, `Err((seq, kind))` for `FAIL ...`.
fn verdict(out: &Output) -> Result<(i64, String), (i64, String)> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.trim_end();
    let field = |name: &str| -> String {
        line.split(' ')
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| {
                panic!(
                    "no {name} in {line:?} (stderr: {})",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .to_string()
    };
    match out.status.code() {
        Some(0) if line.starts_with("OK ") => {
            Ok((field("head_seq=").parse().unwrap(), field("head_hash=")))
        }
        Some(1) if line.starts_with("FAIL ") => {
            Err((field("seq=").parse().unwrap(), field("kind=")))
        }
        _ => panic!("unexpected verifier output {out:?}"),
    }
}

#[test]
fn python_verifies_the_committed_chain() {
    require_python3();
    let path = vectors_dir().join("chain.jsonl");
    let head = verify(&read_jsonl(&path), None).unwrap();
    let expect = format!("{}:{}", head.head_seq, head.head_hash);
    let got = verdict(&run_verifier(&path, Some(&expect)));
    assert_eq!(got, Ok((head.head_seq, head.head_hash.to_hex())));
}

#[test]
fn python_rejects_each_tampered_file_like_rust() {
    require_python3();
    let text = std::fs::read_to_string(vectors_dir().join("tampered/expected.json")).unwrap();
    let expected: Vec<Expected> = serde_json::from_str(&text).unwrap();
    for exp in expected {
        let path = vectors_dir().join("tampered").join(&exp.file);
        let got = verdict(&run_verifier(&path, exp.expect_head.as_deref()));
        assert_eq!(got, Err((exp.seq, exp.kind.clone())), "{}", exp.file);
    }
}

#[test]
fn python_unit_tests_pass() {
    require_python3();
    let out = Command::new("python3")
        .args(["-m", "unittest", "-q", "ops/test_verify_chain.py"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_and_rust_agree_on_random_chains() {
    require_python3();
    let dir = std::env::temp_dir().join(format!("dossier-chain-crosscheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.jsonl");
    let strategy = proptest::strategy::Strategy::prop_flat_map(arb_chain(), |chain| {
        let n = chain.len();
        (
            proptest::strategy::Just(chain),
            proptest::option::of(arb_mutation(n)),
        )
    });
    // A python process per case: few cases, but each one a full random chain.
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(chain, mutation)| {
        let (rows, published) = match &mutation {
            None => (
                chain.iter().map(Row::of).collect::<Vec<_>>(),
                chain.len() as i64,
            ),
            Some(m) => match mutate(&chain, m) {
                Some((rows, published, _)) => (rows, published),
                None => return Ok(()),
            },
        };
        // A flipped bit can leave a body that is not UTF-8, which no export can carry.
        if rows.iter().any(|r| std::str::from_utf8(&r.body).is_err()) {
            return Ok(());
        }
        std::fs::write(&file, common::to_jsonl(&rows)).unwrap();
        // The head the service would publish: the unmutated chain's last event.
        let head = chain.last().unwrap();
        let expect = format!("{published}:{}", head.hash);
        let rust = verify(&rows, Some(published))
            .map(|h| (h.head_seq, h.head_hash.to_hex()))
            .map_err(|v| (v.seq, kind_name(v.kind)));
        let python = verdict(&run_verifier(&file, Some(&expect)));
        proptest::prop_assert_eq!(&python, &rust, "mutation {:?}", mutation);
        Ok(())
    });
    std::fs::remove_dir_all(&dir).ok();
    result.unwrap();
}
