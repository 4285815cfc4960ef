//! Value tier, importance (rules and manual override) and lifecycle.
mod common;

use chrono::{Days, NaiveDate};
use common::{d, rules, Log};
use dossier_domain::{CreditRating, Importance, LegalStatus};
use dossier_insights::{Lifecycle, Rules, Source, ValueTier};

fn ds(on: NaiveDate) -> String {
    on.to_string()
}

fn minus(on: &str, n: u64) -> String {
    ds(d(on) - Days::new(n))
}

fn plus(on: &str, n: u64) -> String {
    ds(d(on) + Days::new(n))
}

fn tier_with(amount: &str) -> ValueTier {
    let mut log = Log::company("2024-01-01");
    log.order("2024-06-01", amount, "CNY");
    log.assess(&Rules::defaults(), "2024-06-01").tier.value_tier
}

#[test]
fn value_tier_thresholds_are_inclusive() {
    assert_eq!(tier_with("1000000"), ValueTier::A);
    assert_eq!(tier_with("999999.9999"), ValueTier::B);
    assert_eq!(tier_with("100000"), ValueTier::B);
    assert_eq!(tier_with("99999.9999"), ValueTier::C);
    let prospect = Log::company("2024-01-01");
    assert_eq!(
        prospect
            .assess(&Rules::defaults(), "2024-06-01")
            .tier
            .value_tier,
        ValueTier::C
    );
}

#[test]
fn value_tier_sums_the_trailing_window_only() {
    let on = "2024-12-31";
    let mut log = Log::company("2023-01-01");
    // 365-day window: on-364 ..= on.
    log.order(&minus(on, 365), "900000", "CNY"); // just outside
    log.order(&minus(on, 364), "600000", "CNY"); // first day inside
    log.order(on, "400000", "CNY"); // last day inside
    let r = Rules::defaults();
    let a = log.assess(&r, on);
    assert_eq!(a.tier.value_tier, ValueTier::A);
    assert_eq!(a.tier.inputs["trailing_amount"], "1000000 CNY");
    assert_eq!(a.tier.inputs["trailing_orders"], "2");
    assert_eq!(a.tier.inputs["window_days"], "365");
    assert_eq!(a.tier.inputs["first_order_on"], minus(on, 365));
    assert_eq!(a.tier.inputs["last_order_on"], on);
    assert_eq!(a.tier.inputs["rules_version"], "dossier-default-1");
    // One day later the first inside order drops out.
    let b = log.assess(&r, &plus(on, 1));
    assert_eq!(b.tier.value_tier, ValueTier::B);
    assert_eq!(b.tier.inputs["trailing_amount"], "400000 CNY");
}

#[test]
fn orders_dated_after_the_evaluation_date_do_not_count_yet() {
    let mut log = Log::company("2024-01-01");
    log.order("2024-03-01", "2000000", "CNY");
    let r = Rules::defaults();
    assert_eq!(log.assess(&r, "2024-02-29").tier.value_tier, ValueTier::C);
    assert_eq!(log.assess(&r, "2024-03-01").tier.value_tier, ValueTier::A);
}

#[test]
fn window_length_is_configurable() {
    let mut log = Log::company("2024-01-01");
    log.order("2024-01-10", "2000000", "CNY");
    let short = rules("[tier]\nwindow_days = 30");
    assert_eq!(
        log.assess(&short, "2024-02-08").tier.value_tier,
        ValueTier::A
    );
    assert_eq!(
        log.assess(&short, "2024-02-09").tier.value_tier,
        ValueTier::C
    );
}

#[test]
fn other_currencies_count_at_their_rate_and_are_ignored_without_one() {
    let mut log = Log::company("2024-01-01");
    log.order("2024-02-01", "100000", "USD");
    log.order("2024-02-02", "50000", "CNY");
    log.order("2024-02-03", "500", "EUR");
    log.order("2024-02-04", "0.5", "EUR");
    let with_usd = rules("[rates]\nUSD = \"7.1\"");
    let a = log.assess(&with_usd, "2024-03-01");
    assert_eq!(a.tier.inputs["trailing_amount"], "760000 CNY");
    assert_eq!(a.tier.inputs["ignored_amounts"], "500.5 EUR");
    assert_eq!(a.tier.inputs["trailing_orders"], "4");
    assert_eq!(a.tier.value_tier, ValueTier::B);
    assert_eq!(a.tier.importance, Importance::Important); // >= 500000

    let base_only = Rules::defaults();
    let b = log.assess(&base_only, "2024-03-01");
    assert_eq!(b.tier.inputs["trailing_amount"], "50000 CNY");
    assert_eq!(b.tier.inputs["ignored_amounts"], "500.5 EUR, 100000 USD");
    assert_eq!(b.tier.value_tier, ValueTier::C);
    assert_eq!(b.tier.importance, Importance::General);

    let nothing_ignored = Log::company("2024-01-01").assess(&base_only, "2024-03-01");
    assert!(!nothing_ignored.tier.inputs.contains_key("ignored_amounts"));
}

fn importance_of(log: &Log, rules: &Rules) -> (Importance, Source, String) {
    let t = log.assess(rules, "2024-06-01").tier;
    (
        t.importance,
        t.importance_source,
        t.inputs["importance_rule"].clone(),
    )
}

#[test]
fn tier_a_is_important() {
    let mut log = Log::company("2024-01-01");
    log.order("2024-05-01", "1000000", "CNY");
    let (i, s, why) = importance_of(&log, &Rules::defaults());
    assert_eq!((i, s), (Importance::Important, Source::Rule));
    assert_eq!(why, "value tier A");
    // Without tier A among the important tiers, the amount rule still applies.
    let no_tiers = rules("[importance]\nimportant_tiers = []");
    assert_eq!(
        importance_of(&log, &no_tiers).2,
        "trailing amount 1000000 CNY is at least 500000"
    );
}

#[test]
fn trailing_amount_at_or_above_the_minimum_is_important() {
    let r = Rules::defaults();
    let mut at = Log::company("2024-01-01");
    at.order("2024-05-01", "500000", "CNY");
    assert_eq!(importance_of(&at, &r).0, Importance::Important);
    let mut below = Log::company("2024-01-01");
    below.order("2024-05-01", "499999.9999", "CNY");
    assert_eq!(importance_of(&below, &r).0, Importance::General);
    let off = rules("[importance]\nimportant_min_amount = \"off\"");
    assert_eq!(importance_of(&at, &off).0, Importance::General);
}

#[test]
fn poor_credit_rating_is_special() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    log.credit("2024-02-01", None, Some(CreditRating::B));
    assert_eq!(importance_of(&log, &r).0, Importance::General);
    log.credit("2024-03-01", Some(CreditRating::B), Some(CreditRating::Ccc));
    assert_eq!(
        importance_of(&log, &r),
        (
            Importance::Special,
            Source::Rule,
            "credit rating CCC is at or below CCC".into()
        )
    );
    log.credit("2024-04-01", Some(CreditRating::Ccc), Some(CreditRating::D));
    assert_eq!(importance_of(&log, &r).0, Importance::Special);
    let off = rules("[importance]\nspecial_rating_at_or_below = \"off\"");
    assert_eq!(importance_of(&log, &off).0, Importance::General);
}

#[test]
fn abnormal_legal_status_is_special() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    log.legal("2024-02-01", LegalStatus::Normal, LegalStatus::Litigation);
    assert_eq!(importance_of(&log, &r).2, "legal status litigation");
    log.legal("2024-03-01", LegalStatus::Litigation, LegalStatus::Normal);
    assert_eq!(importance_of(&log, &r).0, Importance::General);
    let only_bankruptcy = rules("[importance]\nspecial_legal_statuses = [\"bankruptcy\"]");
    log.legal("2024-04-01", LegalStatus::Normal, LegalStatus::Litigation);
    assert_eq!(importance_of(&log, &only_bankruptcy).0, Importance::General);
}

#[test]
fn a_configured_tag_is_special() {
    let r = Rules::defaults();
    let mut log = Log::person("2024-01-01");
    log.tags("2024-02-01", &["vip"], &[]);
    assert_eq!(importance_of(&log, &r).0, Importance::General);
    log.tags("2024-02-02", &["特殊"], &[]);
    assert_eq!(importance_of(&log, &r).2, "tag 特殊");
    log.tags("2024-02-03", &[], &["特殊"]);
    assert_eq!(importance_of(&log, &r).0, Importance::General);
    let vip = rules("[importance]\nspecial_tags = [\"vip\"]");
    assert_eq!(importance_of(&log, &vip).0, Importance::Special);
}

#[test]
fn important_conditions_come_before_special_ones() {
    let mut log = Log::company("2024-01-01");
    log.order("2024-05-01", "1000000", "CNY");
    log.legal("2024-05-02", LegalStatus::Normal, LegalStatus::Litigation);
    assert_eq!(
        importance_of(&log, &Rules::defaults()).0,
        Importance::Important
    );
}

#[test]
fn manual_override_wins_and_clearing_it_returns_to_the_rules() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    log.order("2024-05-01", "1000000", "CNY");
    log.importance("2024-05-02", Some(Importance::General));
    assert_eq!(importance_of(&log, &r).0, Importance::General);
    assert_eq!(importance_of(&log, &r).1, Source::Manual);
    // The rule's view is still reported.
    assert_eq!(importance_of(&log, &r).2, "value tier A");
    log.importance("2024-05-03", Some(Importance::Special));
    assert_eq!(
        (importance_of(&log, &r).0, importance_of(&log, &r).1),
        (Importance::Special, Source::Manual)
    );
    log.importance("2024-05-04", None);
    assert_eq!(
        (importance_of(&log, &r).0, importance_of(&log, &r).1),
        (Importance::Important, Source::Rule)
    );
}

fn lifecycle(log: &Log, on: &str) -> Lifecycle {
    log.assess(&Rules::defaults(), on).tier.lifecycle
}

#[test]
fn no_order_ever_is_a_prospect() {
    let log = Log::person("2020-01-01");
    assert_eq!(lifecycle(&log, "2024-01-01"), Lifecycle::Prospect);
}

#[test]
fn new_until_new_days_after_the_first_order() {
    let mut log = Log::person("2024-01-01");
    log.order("2024-01-01", "10", "CNY");
    log.order("2024-06-01", "10", "CNY"); // keeps it from going dormant
    assert_eq!(lifecycle(&log, "2024-01-01"), Lifecycle::New);
    assert_eq!(lifecycle(&log, &plus("2024-01-01", 179)), Lifecycle::New);
    assert_eq!(
        lifecycle(&log, &plus("2024-01-01", 180)),
        Lifecycle::Existing
    );
}

#[test]
fn dormant_after_dormant_days_without_an_order_and_lost_after_lost_days() {
    let mut log = Log::person("2020-01-01");
    log.order("2020-01-01", "10", "CNY");
    log.order("2023-01-01", "10", "CNY");
    let last = "2023-01-01";
    assert_eq!(lifecycle(&log, &plus(last, 179)), Lifecycle::Existing);
    assert_eq!(lifecycle(&log, &plus(last, 180)), Lifecycle::Dormant);
    assert_eq!(lifecycle(&log, &plus(last, 364)), Lifecycle::Dormant);
    assert_eq!(lifecycle(&log, &plus(last, 365)), Lifecycle::Lost);
    // A new order revives it.
    log.order(&plus(last, 400), "10", "CNY");
    assert_eq!(lifecycle(&log, &plus(last, 400)), Lifecycle::Existing);
    let custom = rules("[lifecycle]\ndormant_days = 10\nlost_days = 20");
    assert_eq!(
        log.assess(&custom, &plus(last, 410)).tier.lifecycle,
        Lifecycle::Dormant
    );
    assert_eq!(
        log.assess(&custom, &plus(last, 420)).tier.lifecycle,
        Lifecycle::Lost
    );
}

#[test]
fn bankruptcy_or_dissolution_is_lost_at_once() {
    let mut log = Log::company("2024-01-01");
    log.order("2024-05-01", "10", "CNY");
    log.legal(
        "2024-05-02",
        LegalStatus::Normal,
        LegalStatus::Restructuring,
    );
    assert_eq!(lifecycle(&log, "2024-05-02"), Lifecycle::New);
    log.legal(
        "2024-05-03",
        LegalStatus::Restructuring,
        LegalStatus::Bankruptcy,
    );
    assert_eq!(lifecycle(&log, "2024-05-03"), Lifecycle::Lost);
    let mut prospect = Log::company("2024-01-01");
    prospect.legal("2024-05-02", LegalStatus::Normal, LegalStatus::Dissolved);
    assert_eq!(lifecycle(&prospect, "2024-05-02"), Lifecycle::Lost);
}
