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

/// The closed vocabularies the document spells out as patterns are exactly
/// the domain's and the insights' enums: a new variant without a new pattern
/// (or the reverse) fails here, not in a client.
#[test]
fn vocabulary_patterns_are_the_enums() {
    use dossier_domain::{Channel, CreditRating, CustomerKind, Importance, LegalStatus, Outcome};
    use dossier_insights::{Lifecycle, RiskLevel, Signal, ValueTier};
    let doc = serde_json::to_value(dossier_api::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let property = |schema: &str, field: &str| {
        schemas[schema]["properties"][field]["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{schema}.{field} has a pattern"))
            .to_owned()
    };
    let list_param = |name: &str| {
        doc["paths"]["/v1/customers"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["schema"]["pattern"].as_str())
            .unwrap_or_else(|| panic!("list parameter {name} has a pattern"))
            .to_owned()
    };
    // `^(a|b|c)$` (or a comma list of it) → {a, b, c}.
    let names = |pattern: &str| -> std::collections::BTreeSet<String> {
        let inner = pattern
            .trim_start_matches('^')
            .split(')')
            .next()
            .unwrap()
            .trim_start_matches('(');
        inner.split('|').map(str::to_owned).collect()
    };
    let set = |xs: Vec<&str>| xs.into_iter().map(str::to_owned).collect();
    let cases: Vec<(String, std::collections::BTreeSet<String>)> = vec![
        (
            property("CreditInput", "rating"),
            set(CreditRating::ALL.iter().map(|v| v.as_str()).collect()),
        ),
        (
            property("LegalInput", "status"),
            set(LegalStatus::ALL.iter().map(|v| v.as_str()).collect()),
        ),
        (
            property("InteractionInput", "channel"),
            set(Channel::ALL.iter().map(|v| v.as_str()).collect()),
        ),
        (
            property("InteractionInput", "outcome"),
            set(Outcome::ALL.iter().map(|v| v.as_str()).collect()),
        ),
        (
            property("RegisterInput", "kind"),
            set(vec![
                CustomerKind::Person.as_str(),
                CustomerKind::Company.as_str(),
            ]),
        ),
        (
            list_param("kind"),
            set(vec![
                CustomerKind::Person.as_str(),
                CustomerKind::Company.as_str(),
            ]),
        ),
        (
            list_param("tier"),
            set(ValueTier::ALL.iter().map(|v| v.as_str()).collect()),
        ),
        (
            list_param("importance"),
            set(Importance::ALL.iter().map(|v| v.as_str()).collect()),
        ),
        (
            list_param("lifecycle"),
            set(Lifecycle::ALL.iter().map(|v| v.as_str()).collect()),
        ),
        (
            list_param("risk"),
            set(RiskLevel::ALL.iter().map(|v| v.as_str()).collect()),
        ),
        (
            list_param("signal"),
            set(Signal::ALL.iter().map(|v| v.as_str()).collect()),
        ),
    ];
    for (pattern, expected) in cases {
        assert_eq!(names(&pattern), expected, "{pattern}");
    }
}
