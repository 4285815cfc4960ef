mod common;

use chrono::{TimeZone, Utc};
use common::d;
use dossier_insights::{business_date, Amount, Rules, RulesError};

fn err(text: &str) -> RulesError {
    Rules::parse(text).unwrap_err()
}

#[test]
fn default_file_parses_and_spells_out_exactly_the_code_defaults() {
    let defaults = Rules::defaults();
    assert_eq!(defaults.version(), "dossier-default-1");
    assert_eq!(Rules::parse(Rules::default_text()).unwrap(), defaults);
    // The file sets every key to its documented default: a minimal file with
    // the same version is the same rules.
    let minimal = Rules::parse("version = \"dossier-default-1\"").unwrap();
    assert_eq!(minimal, defaults);
}

#[test]
fn default_file_names_every_section() {
    for section in [
        "[rates]",
        "[tier]",
        "[importance]",
        "[lifecycle]",
        "[risk]",
        "[risk.overdue_receivables]",
        "[risk.purchase_decline]",
        "[risk.complaints]",
        "[risk.credit_downgrade]",
        "[risk.legal_status]",
        "[risk.lost_contact]",
        "[follow_ups]",
    ] {
        assert!(Rules::default_text().contains(section), "{section}");
    }
}

#[test]
fn a_changed_threshold_differs_from_the_defaults() {
    let r = Rules::parse("version = \"dossier-default-1\"\n[tier]\na_min = \"2000000\"").unwrap();
    assert_ne!(r, Rules::defaults());
}

#[test]
fn version_is_required_and_not_empty() {
    assert_eq!(err(""), RulesError::Missing("version".into()));
    assert!(matches!(err("version = \" \""), RulesError::Invalid { key, .. } if key == "version"));
    assert!(matches!(err("version = 3"), RulesError::Invalid { key, .. } if key == "version"));
}

#[test]
fn unknown_keys_are_rejected_by_their_dotted_name() {
    assert_eq!(
        err("version = \"x\"\nverison = \"y\""),
        RulesError::UnknownKey("verison".into())
    );
    assert_eq!(
        err("version = \"x\"\n[tier]\na_minimum = 5"),
        RulesError::UnknownKey("tier.a_minimum".into())
    );
    assert_eq!(
        err("version = \"x\"\n[risk.lost_contact]\ndayz = 5"),
        RulesError::UnknownKey("risk.lost_contact.dayz".into())
    );
    assert_eq!(
        err("version = \"x\"\n[risk.weather]\nenabled = true"),
        RulesError::UnknownKey("risk.weather".into())
    );
}

#[test]
fn invalid_values_name_their_key() {
    let key_of = |text: &str| match err(&format!("version = \"x\"\n{text}")) {
        RulesError::Invalid { key, .. } => key,
        other => panic!("{other:?}"),
    };
    assert_eq!(key_of("[tier]\na_min = 1.5"), "tier.a_min");
    assert_eq!(key_of("[tier]\na_min = \"-1\""), "tier.a_min");
    assert_eq!(key_of("[tier]\na_min = \"5\"\nb_min = \"6\""), "tier.a_min");
    assert_eq!(key_of("[tier]\nwindow_days = 0"), "tier.window_days");
    assert_eq!(key_of("[tier]\nwindow_days = 401"), "tier.window_days");
    assert_eq!(
        key_of("[risk.purchase_decline]\nwindow_days = 201"),
        "risk.purchase_decline.window_days"
    );
    assert_eq!(
        key_of("[risk.complaints]\nseverity = \"severe\""),
        "risk.complaints.severity"
    );
    assert_eq!(
        key_of("[risk.lost_contact]\nno_answer_streak = 33"),
        "risk.lost_contact.no_answer_streak"
    );
    assert_eq!(
        key_of("[lifecycle]\nlost_days = 100"),
        "lifecycle.lost_days"
    );
    assert_eq!(
        key_of("[importance]\nspecial_rating_at_or_below = \"Z\""),
        "importance.special_rating_at_or_below"
    );
    assert_eq!(
        key_of("[importance]\nimportant_tiers = [\"D\"]"),
        "importance.important_tiers"
    );
    assert_eq!(
        key_of("[importance]\nspecial_legal_statuses = [\"jail\"]"),
        "importance.special_legal_statuses"
    );
    assert_eq!(key_of("utc_offset = \"+8\""), "utc_offset");
    assert_eq!(key_of("utc_offset = \"+15:00\""), "utc_offset");
    assert_eq!(key_of("base_currency = \"RMB1\""), "base_currency");
    assert_eq!(key_of("[rates]\nUSD = 7.1"), "rates.USD");
    assert_eq!(key_of("[rates]\nUSD = \"0\""), "rates.USD");
    assert_eq!(key_of("[rates]\nCNY = \"2\""), "rates.CNY");
    assert_eq!(key_of("[rates]\nDOLLAR = \"2\""), "rates.DOLLAR");
    assert_eq!(key_of("tier = 5"), "tier");
    assert_eq!(
        key_of("[risk.legal_status]\nenabled = \"yes\""),
        "risk.legal_status.enabled"
    );
    // The message says what is wrong.
    let msg = err("version = \"x\"\n[tier]\na_min = 1.5").to_string();
    assert!(msg.starts_with("`tier.a_min`: "), "{msg}");
    assert!(msg.contains("strings"), "{msg}");
}

#[test]
fn syntax_errors_are_reported() {
    assert!(matches!(err("version = "), RulesError::Syntax(_)));
}

#[test]
fn amounts_and_rates_accept_strings_and_whole_numbers() {
    let r = Rules::parse(
        "version = \"x\"\nbase_currency = \"cny\"\n[rates]\nusd = \"7.1\"\nJPY = 1\nCNY = \"1.0\"\n[tier]\na_min = 2000000\nb_min = \"100.5\"",
    )
    .unwrap();
    assert_eq!(r.base_currency(), "CNY");
    let hundred = Amount::parse("100").unwrap();
    assert_eq!(r.to_base("USD", hundred), Amount::parse("710"));
    assert_eq!(r.to_base("JPY", hundred), Some(hundred));
    assert_eq!(r.to_base("CNY", hundred), Some(hundred));
    assert_eq!(r.to_base("EUR", hundred), None);
}

#[test]
fn business_date_applies_the_offset() {
    let at = Utc.with_ymd_and_hms(2024, 3, 1, 16, 0, 0).unwrap();
    // 16:00 UTC is midnight in Beijing: already the next day.
    assert_eq!(business_date(&Rules::defaults(), at), d("2024-03-02"));
    let before = Utc.with_ymd_and_hms(2024, 3, 1, 15, 59, 59).unwrap();
    assert_eq!(business_date(&Rules::defaults(), before), d("2024-03-01"));
    let utc = Rules::parse("version = \"x\"\nutc_offset = \"+00:00\"").unwrap();
    assert_eq!(business_date(&utc, at), d("2024-03-01"));
    let west = Rules::parse("version = \"x\"\nutc_offset = \"-05:30\"").unwrap();
    let early = Utc.with_ymd_and_hms(2024, 3, 1, 5, 0, 0).unwrap();
    assert_eq!(business_date(&west, early), d("2024-02-29"));
}
