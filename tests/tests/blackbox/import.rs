//! `dossier import` (CSV onboarding through the service, idempotent re-runs,
//! the error report), `dossier seed` and `dossier evaluate`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{describe, Env, Server};

/// A file as a spreadsheet exports it: BOM, CRLF, quoted cells with commas
/// and a line break, Chinese and Latin names; rows 2, 3, 10 and 12 are good.
fn customers_csv() -> String {
    let rows = [
        "kind,external_id,name,phone,email,credit_code,region,industry,address,owner,tags,notes",
        // 2: good
        "person,c-001,张伟,13812345678,zhang.wei@example.cn,,华东,,,li.lei,vip;华东,",
        // 3: good, quoted name with a comma
        "company,c-002,\"Schmidt & Partner Trading (Shanghai) Co., Ltd.\",021-5046 7788,,91350100M000100Y43,华东,批发业,,li.lei,经销商,",
        // 4: bad phone
        "person,c-003,李娜,12345,,,华东,,,li.lei,,",
        // 5: bad credit code check character
        "company,c-004,杭州云帆电子商务有限公司,,,91350100M000100Y44,华东,零售业,,li.lei,,",
        // 6: a value in a column the import does not know
        "person,c-005,王芳,15012345678,,,华南,,,li.lei,,call back next week",
        // 7: no external_id
        "person,,赵磊,13757112345,,,华北,,,li.lei,,",
        // 8: same phone as row 2 (written differently)
        "person,c-007,孙丽,+86 138 1234 5678,,,华东,,,li.lei,,",
        // 9: same phone as a customer created over the API
        "person,c-008,周敏,13700001111,,,华东,,,li.lei,,",
        // 10: good, an address with a comma
        "person,c-009,María González Pérez,+34 612 345 678,,,华东,,\"Calle de Alcalá 45, 28014 Madrid\",li.lei,,",
        // 11 (lines 11-12): a line break inside a cell is read, but an address is one line
        "person,c-010,Lukas Weber,,,,华东,,\"Hauptstraße 1\r\n10115 Berlin\",li.lei,,",
        // 12 (line 13): good
        "person,c-011,陈晓明,18620001234,,,华南,,,li.lei,展会线索,",
        // 13 (line 14): bad e-mail
        "person,c-012,吴强,,not-an-email,,华北,,,li.lei,,",
    ];
    format!("\u{feff}{}\r\n", rows.join("\r\n"))
}

async fn list_owned(server: &Server, owner: &str, want: usize) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = server
            .client
            .get(server.url(&format!("/v1/customers?owner={owner}&sort=name")))
            .send()
            .await?;
        let body: Value = r.json().await?;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= want || Instant::now() > deadline {
            return Ok(items);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn error_rows(stdout: &str) -> Vec<(usize, String)> {
    // "   ROW  EXTERNAL_ID  COLUMN  error" lines of the printed report.
    stdout
        .lines()
        .filter(|l| l.starts_with(' '))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let row = words.next()?.parse().ok()?;
            Some((row, l.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_reports_bad_rows_and_reruns_write_nothing() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let token = env.token("li.lei", "sales").await?;
    let server = env.serve(&token).await?;

    let r = server
        .client
        .post(server.url("/v1/customers"))
        .json(
            &json!({"kind": "person", "details": {"name": "周敏", "phone": "13700001111"},
                      "reason": "walk-in"}),
        )
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::CREATED);

    let file = env.state_dir.join("customers.csv");
    std::fs::write(&file, customers_csv())?;
    let path = file.to_str().expect("utf-8 path");
    let out = env.run(&["import", path]).await?;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stdout = String::from_utf8(out.stdout.clone())?;
    assert!(
        stdout.contains("12 rows: 4 imported, 0 already imported, 8 failed"),
        "{stdout}"
    );
    let errors = error_rows(&stdout);
    let rows: Vec<usize> = errors.iter().map(|(r, _)| *r).collect();
    assert_eq!(rows, [4, 5, 6, 7, 8, 9, 11, 13], "{stdout}");
    for (row, column) in [
        (4, "phone"),
        (5, "credit_code"),
        (6, "notes"),
        (7, "external_id"),
        (8, "phone"),
        (9, "phone"),
        (11, "address"),
        (13, "email"),
    ] {
        let line = &errors.iter().find(|(r, _)| *r == row).expect("row").1;
        assert!(
            line.contains(column),
            "row {row} should name {column}: {line}"
        );
    }
    assert!(stdout.contains("as row 2 of this file"), "{stdout}");
    assert!(
        stdout.contains("duplicate of existing customer"),
        "{stdout}"
    );

    // The report file: the same rows, as CSV.
    let report = std::fs::read_to_string(env.state_dir.join("customers.errors.csv"))?;
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "row,line,external_id,column,error");
    assert_eq!(lines.len(), 9, "{report}");
    assert!(lines[1].starts_with("4,4,c-003,phone,"), "{report}");
    assert!(lines[2].starts_with("5,5,c-004,credit_code,"), "{report}");
    assert!(lines[4].starts_with("7,7,,external_id,"), "{report}");
    // Rows count records, lines count the file's lines (row 11 has two).
    assert!(lines[8].starts_with("13,14,c-012,email,"), "{report}");

    // The good rows are customers, validated and normalised like API writes.
    let items = list_owned(&server, "li.lei", 4).await?;
    let names: Vec<&str> = items.iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names.len(), 4, "{items:?}");
    for name in [
        "陈晓明",
        "张伟",
        "Schmidt & Partner Trading (Shanghai) Co., Ltd.",
        "María González Pérez",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let zhang = items.iter().find(|i| i["name"] == "张伟").expect("张伟");
    let id = zhang["id"].as_str().expect("id");
    let current: Value = server
        .client
        .get(server.url(&format!("/v1/customers/{id}")))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(current["details"]["phone"], "+8613812345678", "{current}");
    let history: Value = server
        .client
        .get(server.url(&format!("/v1/customers/{id}/history")))
        .send()
        .await?
        .json()
        .await?;
    let entry = &history["entries"][0];
    assert_eq!(entry["actor"]["name"], "dossier-import", "{history}");
    assert_eq!(
        entry["reason"], "import of customers.csv, row 2",
        "{history}"
    );

    // Re-run: nothing new in the log; the bad rows fail again.
    let head = server.head().await?;
    let out = env.run(&["import", path]).await?;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stdout = String::from_utf8(out.stdout)?;
    assert!(
        stdout.contains("12 rows: 0 imported, 4 already imported, 8 failed"),
        "{stdout}"
    );
    assert_eq!(server.head().await?["seq"], head["seq"]);

    // The same external_id with other content is refused, not applied.
    let changed = env.state_dir.join("changed.csv");
    std::fs::write(
        &changed,
        "kind,external_id,name,phone\nperson,c-001,张伟伟,13812345678\n",
    )?;
    let out = env
        .run(&["import", changed.to_str().expect("utf-8")])
        .await?;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stdout = String::from_utf8(out.stdout)?;
    assert!(
        stdout.contains("imported before with different content"),
        "{stdout}"
    );
    assert_eq!(server.head().await?["seq"], head["seq"]);

    // Only the good rows, and the report is gone: exit 0.
    let good: String = customers_csv()
        .split("\r\n")
        .enumerate()
        .filter(|(i, _)| [0, 1, 2].contains(i))
        .map(|(_, l)| format!("{l}\r\n"))
        .collect();
    std::fs::write(&file, good)?;
    let out = env.run(&["import", path]).await?;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!env.state_dir.join("customers.errors.csv").exists());

    // A header without external_id: nothing is imported at all.
    let bad = env.state_dir.join("bad-header.csv");
    std::fs::write(&bad, "kind,name\nperson,吴强\n")?;
    let out = env.run(&["import", bad.to_str().expect("utf-8")]).await?;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("external_id"),
        "{}",
        describe(&out)
    );
    assert_eq!(server.head().await?["seq"], head["seq"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_writes_a_verifiable_log_and_evaluate_records_a_run() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let out = env
        .run_ok(&[
            "seed",
            "--customers",
            "60",
            "--events-per-customer",
            "7",
            "--seed",
            "3",
        ])
        .await?;
    assert!(out.contains("seeded 60 customers, 420 events"), "{out}");
    assert!(out.contains("log head 0 -> 420"), "{out}");

    let out = env.run_ok(&["verify", "--strict"]).await?;
    assert!(out.starts_with("OK head_seq=420 "), "{out}");
    assert!(out.contains(" streams=60 "), "{out}");

    let out = env.run_ok(&["evaluate"]).await?;
    assert!(out.contains("at seq 421"), "{out}");
    let out = env.run_ok(&["evaluate"]).await?;
    assert!(out.contains("already evaluated"), "{out}");
    let out = env.run(&["evaluate", "--date", "2999-01-01"]).await?;
    assert!(!out.status.success(), "{}", describe(&out));

    // The read models accept the seeded events (a rebuild reads every one).
    let out = env
        .run_ok(&["projections", "rebuild", "customer_current"])
        .await?;
    assert!(
        out.contains("rebuilt customer_current: 421 events"),
        "{out}"
    );
    Ok(())
}
