//! The OpenAPI document is a contract: any change to it shows up in review
//! as a change of this snapshot (`cargo insta review`, or
//! `INSTA_UPDATE=always cargo test -p dossier-api --test openapi`).

#[test]
fn the_openapi_document_is_the_reviewed_one() {
    let doc = serde_json::to_value(dossier_api::openapi()).expect("serialisable");
    insta::assert_json_snapshot!("openapi", doc);
}

#[test]
fn every_integer_has_explicit_bounds_or_is_signed_64_bit() {
    // A u32 rendered as int32 lets a fuzzer send 2^31 and see it accepted.
    let doc = serde_json::to_value(dossier_api::openapi()).unwrap();
    let mut bad = Vec::new();
    walk(&doc, "", &mut bad);
    assert!(bad.is_empty(), "integers without int64 or bounds: {bad:?}");
}

fn walk(v: &serde_json::Value, at: &str, bad: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            let is_int = m.get("type").is_some_and(|t| {
                t == "integer"
                    || t.as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "integer"))
            });
            if is_int && m.get("format") != Some(&"int64".into()) && !m.contains_key("maximum") {
                bad.push(at.to_owned());
            }
            for (k, x) in m {
                walk(x, &format!("{at}/{k}"), bad);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, &format!("{at}/{i}"), bad);
            }
        }
        _ => {}
    }
}
