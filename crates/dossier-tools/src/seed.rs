//! `dossier seed`: a large, realistic, deterministic data set, written fast.
//!
//! Customers are generated from `(--seed, customer number)` alone, so the
//! content is the same for the same seed (dates are relative to the day of
//! the run; stream ids are fresh). Each customer's history is decided by the
//! domain (`decide`/`evolve`, so every event is one the service could have
//! written), sealed under the customer's data key from the [`Keyring`], and
//! appended with one request per customer straight to [`Store::append`]:
//! many concurrent requests of several events each, which the store's group
//! commit turns into large batches. It bypasses the HTTP layer and the
//! service's duplicate check (seeded phone numbers may repeat).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{Days, NaiveDate, Utc};
use dossier_chain::{Actor, Timestamp};
use dossier_domain::{
    decide, evolve, Channel, Command, CreditRating, Customer, CustomerKind, Event, Fact, Field,
    FieldValue, LegalStatus, Money, Outcome, Text,
};
use dossier_store::{AppendRequest, ExpectedVersion, Keyring, NewEvent, Role, Store};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::ids::{credit_code, national_id};
use crate::progress::Progress;
use crate::rng::Rng;

/// The principal recorded as the actor of seeded events.
pub const SEED_PRINCIPAL: &str = "dossier-seed";
/// Events per append request at most (a customer with more gets several).
const EVENTS_PER_REQUEST: usize = 100;
/// History spans this many days back from today.
const HISTORY_DAYS: u64 = 3 * 365;

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub customers: u64,
    pub events_per_customer: u32,
    pub seed: u64,
    pub writers: usize,
}

/// Seeds into an open store (`dossier seed`, and `bench read` on its scratch
/// database), sealing under the data keys `keyring` holds or creates.
pub async fn run(store: &Store, keyring: &Keyring, opts: Options) -> Result<()> {
    let p = store
        .service_principal(SEED_PRINCIPAL, Role::Admin)
        .await
        .context("creating the seed principal")?;
    let actor = Actor {
        id: p.id,
        name: p.name,
        role: p.role.as_str().to_owned(),
    };
    let head_before = store.head().await?.seq;
    let total = opts.customers * u64::from(opts.events_per_customer);
    println!(
        "seeding {} customers x {} events = {total} events (seed {}, {} writers)",
        opts.customers, opts.events_per_customer, opts.seed, opts.writers
    );

    let today = Utc::now().date_naive();
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (done, stop) = (done.clone(), stop.clone());
        tokio::spawn(async move {
            let mut bar = Progress::stderr("seeding");
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                bar.update(done.load(Ordering::Relaxed) as i64, total as i64);
            }
            bar.finish();
        })
    };
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..opts.writers.max(1) {
        let (store, keyring, actor) = (store.clone(), keyring.clone(), actor.clone());
        let (next, done) = (next.clone(), done.clone());
        set.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= opts.customers {
                    return Ok::<_, anyhow::Error>(());
                }
                let g = generate(opts.seed, n, opts.events_per_customer, today);
                let written = append_customer(&store, &keyring, &actor, opts.seed, &g).await?;
                done.fetch_add(written, Ordering::Relaxed);
            }
        });
    }
    let mut failure = None;
    while let Some(joined) = set.join_next().await {
        if let Err(e) = joined.context("a seeding task panicked").and_then(|r| r) {
            failure.get_or_insert(e);
            set.abort_all();
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    if let Some(e) = failure {
        return Err(e.context(format!(
            "seeding stopped after {} events",
            done.load(Ordering::Relaxed)
        )));
    }
    let written = done.load(Ordering::Relaxed);
    let head = store.head().await?.seq;
    println!(
        "seeded {} customers, {written} events in {elapsed:.1}s = {:.0} events/s \
         ({:.0} customers/s); log head {head_before} -> {head}",
        opts.customers,
        written as f64 / elapsed.max(1e-9),
        opts.customers as f64 / elapsed.max(1e-9),
    );
    Ok(())
}

/// Seals and appends one generated customer; returns the events written.
async fn append_customer(
    store: &Store,
    keyring: &Keyring,
    actor: &Actor,
    seed: u64,
    g: &Generated,
) -> Result<u64> {
    let id = Uuid::now_v7();
    let key = keyring
        .key_for_write(store, id)
        .await?
        .context("a new customer's data key is missing")?;
    let correlation_id = Uuid::now_v7();
    let reason = format!("seed data (--seed {seed})");
    let now = Utc::now();
    let events: Vec<NewEvent> = g
        .events
        .iter()
        .map(|(event, on)| {
            let enc = dossier_events::encode(event, g.kind, id, &key);
            // The business date at 10:00 in China, never after now.
            let at = on
                .and_hms_opt(2, 0, 0)
                .map(|t| t.and_utc().min(now))
                .unwrap_or(now);
            NewEvent {
                event_id: Uuid::now_v7(),
                event_type: enc.event_type.to_owned(),
                schema_version: enc.schema_version,
                effective_at: Some(Timestamp::new(at)),
                actor: actor.clone(),
                reason: Some(reason.clone()),
                correlation_id,
                causation_id: None,
                payload: enc.payload,
            }
        })
        .collect();
    let mut version = 0;
    for chunk in events.chunks(EVENTS_PER_REQUEST) {
        let a = store
            .append(AppendRequest {
                stream_id: id,
                expected: if version == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(version)
                },
                events: chunk.to_vec(),
                idempotency: None,
            })
            .await?;
        version = a.version;
    }
    Ok(events.len() as u64)
}

pub const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "欧阳",
];
pub const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "华", "玉兰", "萍", "红", "鹏", "辉", "建国", "文",
    "斌", "宇", "浩然", "凯", "俊杰", "一帆", "欣怡", "琳", "晨", "雪", "思远", "佳琪", "子涵",
];
pub const FIRST: &[&str] = &[
    "Anna", "Lukas", "María", "João", "Emma", "Noah", "Sofia", "Liam", "Olivia", "Mateo", "Chloé",
    "Hans", "Ingrid", "Pierre", "Giulia", "Marco", "Yuki", "Ahmed", "Fatima", "David",
];
pub const LAST: &[&str] = &[
    "Schmidt",
    "Müller",
    "González",
    "Silva",
    "Rossi",
    "Dubois",
    "Novak",
    "Johansson",
    "Smith",
    "Kim",
    "Tanaka",
    "Hansen",
    "Costa",
    "Weber",
    "Fischer",
    "Moreau",
    "García",
    "O'Brien",
];

/// Macro region, its cities with administrative codes.
pub const REGIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "华东",
        &[
            ("上海", "310115"),
            ("杭州", "330106"),
            ("南京", "320102"),
            ("苏州", "320505"),
            ("宁波", "330203"),
        ],
    ),
    (
        "华南",
        &[
            ("深圳", "440300"),
            ("广州", "440106"),
            ("厦门", "350203"),
            ("东莞", "441900"),
        ],
    ),
    (
        "华北",
        &[("北京", "110105"), ("天津", "120101"), ("石家庄", "130102")],
    ),
    (
        "华中",
        &[("武汉", "420102"), ("长沙", "430102"), ("郑州", "410102")],
    ),
    (
        "西南",
        &[("成都", "510104"), ("重庆", "500103"), ("昆明", "530102")],
    ),
    ("西北", &[("西安", "610113"), ("兰州", "620102")]),
    (
        "东北",
        &[("沈阳", "210102"), ("大连", "210202"), ("哈尔滨", "230102")],
    ),
];
/// Brand (字号) and its pinyin for e-mail domains.
const BRANDS: &[(&str, &str)] = &[
    ("华信", "huaxin"),
    ("云帆", "yunfan"),
    ("恒达", "hengda"),
    ("金桥", "jinqiao"),
    ("新元", "xinyuan"),
    ("博远", "boyuan"),
    ("瑞丰", "ruifeng"),
    ("天成", "tiancheng"),
    ("嘉禾", "jiahe"),
    ("汇通", "huitong"),
    ("鼎盛", "dingsheng"),
    ("星海", "xinghai"),
    ("宏图", "hongtu"),
    ("安泰", "antai"),
    ("蓝海", "lanhai"),
    ("远航", "yuanhang"),
];
/// Industry and the word a company of it has in its name.
const INDUSTRIES: &[(&str, &str)] = &[
    ("软件和信息技术服务业", "科技"),
    ("批发业", "贸易"),
    ("零售业", "商贸"),
    ("通用设备制造业", "机械制造"),
    ("建筑业", "建设工程"),
    ("道路运输业", "物流"),
    ("餐饮业", "餐饮管理"),
    ("医药制造业", "医药"),
    ("农业", "农业发展"),
    ("商务服务业", "咨询"),
];
const LATIN_COMPANY: &[&str] = &[
    "Trading (Shanghai) Co., Ltd.",
    "GmbH",
    "Logistics S.A.",
    "& Partner Consulting Ltd.",
    "Industrial Supplies B.V.",
];
pub const OWNERS: &[&str] = &[
    "liu.yang",
    "chen.jing",
    "zhou.min",
    "wang.lei",
    "zhao.li",
    "sun.hao",
    "li.na",
];
const TAGS: &[&str] = &["vip", "经销商", "展会线索", "转介绍", "重点跟进", "special"];
const PRODUCTS: &[&str] = &[
    "年度维保",
    "工业传感器",
    "ERP 实施服务",
    "办公家具",
    "冷链运输",
    "云服务器 (年付)",
    "培训课程",
    "spare parts",
    "consulting days",
];
const OCCUPATIONS: &[&str] = &[
    "软件工程师",
    "财务经理",
    "教师",
    "医生",
    "个体经营",
    "Architect",
];
const COMPLAINTS: &[(&str, &str)] = &[
    ("delivery", "货物延迟两周送达"),
    ("quality", "部分产品有划痕，要求换货"),
    ("billing", "发票金额与合同不符"),
    ("service", "售后电话长时间无人接听"),
];

/// One generated customer: its kind and its events with their business dates.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    pub kind: CustomerKind,
    pub events: Vec<(Event, NaiveDate)>,
}

fn value(f: Field, kind: CustomerKind, raw: &str, today: NaiveDate) -> FieldValue {
    f.parse_value(kind, raw, today)
        .unwrap_or_else(|e| panic!("seed value {f}={raw:?} is invalid: {}", e.reason))
}

fn text(s: &str) -> Text {
    Text::parse_max(s, 2000).unwrap_or_else(|e| panic!("seed text {s:?}: {}", e.reason))
}

fn money(rng: &mut Rng, lo: u64, hi: u64) -> Money {
    // Round amounts, as people write them.
    let step = if hi > 100_000 { 1_000 } else { 10 };
    let amount = (lo + rng.below(hi - lo)) / step * step + step;
    Money::parse(&amount.to_string(), "CNY").expect("a valid amount")
}

fn phone(rng: &mut Rng) -> String {
    let prefix = rng.pick(&[
        "138", "139", "136", "150", "158", "186", "189", "177", "199",
    ]);
    format!("{prefix}{}", rng.digits(8))
}

/// A registration as raw text, the way a person or a file would give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub kind: CustomerKind,
    pub details: Vec<(Field, String)>,
    pub owner: &'static str,
    pub tags: Vec<&'static str>,
}

/// Lower-case ASCII letters of a name, for e-mail addresses.
fn mailbox(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_lowercase()
}

/// The registration of customer `n`.
pub fn registration(rng: &mut Rng, n: u64) -> Registration {
    let (region, cities) = rng.pick(REGIONS);
    let (city, code) = rng.pick(cities);
    let company = rng.chance(0.55);
    let kind = if company {
        CustomerKind::Company
    } else {
        CustomerKind::Person
    };
    let mut d: Vec<(Field, String)> = vec![(Field::Region, region.to_owned())];
    if company {
        let (industry, word) = rng.pick(INDUSTRIES);
        if rng.chance(0.85) {
            let (brand, pinyin) = rng.pick(BRANDS);
            let org8 = format!("MA{}", rng.digits(6));
            let street = rng.pick(&["人民", "建设", "解放", "中山", "科技"]);
            d.extend([
                (Field::Name, format!("{city}{brand}{word}有限公司")),
                (Field::CreditCode, credit_code("91", code, &org8)),
                (Field::Email, format!("contact{n}@{pinyin}.example.cn")),
                (
                    Field::Address,
                    format!("{city}市{street}路{}号", 1 + rng.below(999)),
                ),
            ]);
        } else {
            let last = rng.pick(LAST);
            d.extend([
                (Field::Name, format!("{last} {}", rng.pick(LATIN_COMPANY))),
                (
                    Field::Email,
                    format!("office{n}@{}.example.com", mailbox(last)),
                ),
            ]);
        }
        d.extend([
            (Field::Industry, industry.to_owned()),
            (
                Field::CompanySize,
                (rng.pick(&["micro", "small", "medium", "large"])).to_owned(),
            ),
            (Field::Phone, phone(rng)),
        ]);
    } else {
        let year = 1955 + rng.below(48);
        let birthday = format!("{year}-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28));
        let female = rng.chance(0.5);
        d.extend([
            (Field::Birthday, birthday.clone()),
            (
                Field::Gender,
                (if female { "female" } else { "male" }).to_owned(),
            ),
            (Field::Phone, phone(rng)),
            (Field::Occupation, (rng.pick(OCCUPATIONS)).to_owned()),
        ]);
        if rng.chance(0.8) {
            d.push((
                Field::Name,
                format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN)),
            ));
            if rng.chance(0.7) {
                let seq = rng.below(500) as u16 * 2 + u16::from(!female);
                d.push((
                    Field::NationalId,
                    national_id(code, &birthday.replace('-', ""), seq),
                ));
            }
        } else {
            let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
            d.push((Field::Name, format!("{first} {last}")));
            d.push((
                Field::Email,
                format!("{}.{}{n}@example.com", mailbox(first), mailbox(last)),
            ));
        }
    }
    let tags = if rng.chance(0.15) {
        vec![rng.pick(TAGS)]
    } else {
        Vec::new()
    };
    Registration {
        kind,
        details: d,
        owner: rng.pick(OWNERS),
        tags,
    }
}

fn register(rng: &mut Rng, n: u64, today: NaiveDate) -> Command {
    let r = registration(rng, n);
    let kind = r.kind;
    Command::Register {
        kind,
        details: r
            .details
            .into_iter()
            .map(|(f, v)| (f, value(f, kind, &v, today)))
            .collect(),
        owner: Some(text(r.owner)),
        tags: r.tags.into_iter().map(text).collect(),
    }
}

/// What the next history step may build on.
#[derive(Default)]
pub struct Books {
    uninvoiced: Vec<(Uuid, Money)>,
    open_invoices: Vec<(Uuid, Money)>,
    open_complaints: Vec<Uuid>,
}

/// The next fact (or change) of a customer's history on `on`.
pub fn step(rng: &mut Rng, c: &Customer, books: &mut Books, on: NaiveDate) -> Command {
    let company = c.kind == Some(CustomerKind::Company);
    let roll = rng.below(1000);
    match roll {
        0..=299 => {
            let amount = if company {
                money(rng, 5_000, 400_000)
            } else {
                money(rng, 300, 30_000)
            };
            let order_id = rng.uuid();
            books.uninvoiced.push((order_id, amount.clone()));
            Command::Record(Fact::Order {
                order_id,
                product: text(rng.pick(PRODUCTS)),
                amount,
                ordered_on: on,
            })
        }
        300..=479 if !books.uninvoiced.is_empty() => {
            let (order_id, amount) = books.uninvoiced.remove(0);
            let invoice_id = rng.uuid();
            books.open_invoices.push((invoice_id, amount.clone()));
            Command::Record(Fact::Invoice {
                invoice_id,
                order_id: Some(order_id),
                amount,
                issued_on: on,
                due_on: on + Days::new(rng.pick(&[30, 45, 60])),
            })
        }
        480..=619 if !books.open_invoices.is_empty() => {
            let (invoice_id, amount) = books.open_invoices.remove(0);
            Command::Record(Fact::Payment {
                payment_id: rng.uuid(),
                invoice_id: Some(invoice_id),
                amount,
                received_on: on,
            })
        }
        620..=659 if !books.open_complaints.is_empty() => {
            let complaint_id = books.open_complaints.remove(0);
            Command::Record(Fact::ComplaintResolved {
                complaint_id,
                resolution: text("已与客户沟通并补发/退款，客户确认 (resolved with the customer)"),
                resolved_on: on,
            })
        }
        // One open complaint at a time: the follow_ups projector cannot yet
        // store two complaint follow-ups of one customer (same primary key).
        660..=689 if books.open_complaints.is_empty() => {
            let complaint_id = rng.uuid();
            books.open_complaints.push(complaint_id);
            let (category, summary) = rng.pick(COMPLAINTS);
            Command::Record(Fact::ComplaintOpened {
                complaint_id,
                category: text(category),
                summary: text(summary),
                opened_on: on,
            })
        }
        690..=729 => {
            let rating = rng.pick(&[
                CreditRating::Aa,
                CreditRating::A,
                CreditRating::Bbb,
                CreditRating::Bb,
                CreditRating::B,
                CreditRating::Ccc,
            ]);
            Command::Record(Fact::Credit {
                rating: Some(rating),
                limit: Some(money(rng, 50_000, 2_000_000)),
            })
        }
        730..=734 if company => Command::Record(Fact::Legal {
            status: rng.pick(&[
                LegalStatus::Litigation,
                LegalStatus::Litigation,
                LegalStatus::Restructuring,
                LegalStatus::Normal,
            ]),
            since: on,
        }),
        735..=769 => Command::Record(Fact::Feedback {
            feedback_id: rng.uuid(),
            satisfaction: 1 + rng.below(5) as u8,
            comment: rng.chance(0.5).then(|| text("服务响应快，价格略高")),
            received_on: on,
        }),
        770..=789 => Command::Record(Fact::Review {
            reviewed_on: on,
            summary: Some(text("定期档案复核 (periodic review)")),
        }),
        790..=799 => Command::AssignOwner {
            owner: text(rng.pick(OWNERS)),
        },
        800..=809 => Command::Tag {
            add: [text(rng.pick(TAGS))].into_iter().collect(),
            remove: Default::default(),
        },
        810..=819 => Command::Record(Fact::Consent {
            purpose: text(rng.pick(&["marketing", "data_processing", "生日关怀"])),
            granted: rng.chance(0.8),
            on,
        }),
        _ => {
            let channel = rng.pick(&[
                Channel::Call,
                Channel::Call,
                Channel::Visit,
                Channel::Email,
                Channel::Chat,
            ]);
            let outcome = rng.pick(&[
                Outcome::Positive,
                Outcome::Positive,
                Outcome::Neutral,
                Outcome::Negative,
                Outcome::NoAnswer,
            ]);
            Command::Record(Fact::Interaction {
                interaction_id: rng.uuid(),
                channel,
                outcome,
                occurred_on: on,
                summary: rng.chance(0.6).then(|| {
                    text(rng.pick(&[
                        "回访，客户对交付满意",
                        "讨论明年采购计划",
                        "催收逾期款项",
                        "follow-up on the quotation",
                    ]))
                }),
            })
        }
    }
}

/// Customer `n` of seed `seed`: a registration and `events - 1` more
/// events in date order over the last three years.
pub fn generate(seed: u64, n: u64, events: u32, today: NaiveDate) -> Generated {
    let mut rng = Rng::new(seed, n);
    let events = events.max(1) as usize;
    let since = today - Days::new(rng.below(HISTORY_DAYS));
    let span = (today - since).num_days().max(0) as u64;
    let mut dates: Vec<NaiveDate> = (1..events)
        .map(|_| since + Days::new(rng.below(span + 1)))
        .collect();
    dates.sort_unstable();

    let mut state = Customer::default();
    let mut out = Vec::with_capacity(events);
    let mut books = Books::default();
    let registration = register(&mut rng, n, today);
    for e in decide(&state, registration).expect("a generated registration is valid") {
        state = evolve(state, &e);
        out.push((e, since));
    }
    for on in dates {
        // A step may change nothing (the same rating again); draw another.
        loop {
            let command = step(&mut rng, &state, &mut books, on);
            let produced = decide(&state, command).expect("a generated fact is valid");
            if let Some(e) = produced.into_iter().next() {
                state = evolve(state, &e);
                out.push((e, on));
                break;
            }
        }
    }
    Generated {
        kind: state.kind.unwrap_or(CustomerKind::Person),
        events: out,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    }

    #[test]
    fn same_seed_same_data_and_exact_counts() {
        for n in 0..50 {
            let a = generate(7, n, 10, today());
            assert_eq!(a, generate(7, n, 10, today()));
            assert_eq!(a.events.len(), 10);
            assert!(matches!(a.events[0].0, Event::Registered { .. }));
            let dates: Vec<NaiveDate> = a.events.iter().map(|(_, d)| *d).collect();
            assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
            assert!(dates[0] >= today() - Days::new(HISTORY_DAYS));
        }
        assert_ne!(generate(7, 1, 10, today()), generate(8, 1, 10, today()));
        assert_eq!(generate(7, 1, 1, today()).events.len(), 1);
        assert_eq!(generate(7, 1, 0, today()).events.len(), 1);
    }

    #[test]
    fn the_mix_is_realistic() {
        let mut types: BTreeMap<&str, usize> = BTreeMap::new();
        let mut kinds = [0, 0];
        for n in 0..2_000 {
            let g = generate(1, n, 10, today());
            kinds[usize::from(g.kind == CustomerKind::Company)] += 1;
            for (e, _) in &g.events {
                *types.entry(e.event_type()).or_default() += 1;
            }
        }
        assert!(kinds[0] > 600 && kinds[1] > 600, "{kinds:?}");
        for t in [
            "CustomerRegistered",
            "OrderPlaced",
            "InvoiceIssued",
            "PaymentReceived",
            "InteractionLogged",
            "ComplaintOpened",
            "ComplaintResolved",
            "CreditChanged",
            "LegalStatusChanged",
            "FeedbackRecorded",
            "OwnerAssigned",
            "TagsChanged",
        ] {
            assert!(types.get(t).copied().unwrap_or(0) > 0, "no {t}: {types:?}");
        }
        assert!(
            types["OrderPlaced"] > types["ComplaintOpened"] * 3,
            "{types:?}"
        );
    }

    #[test]
    fn generated_events_encode() {
        let key = dossier_seal::DataKey::generate();
        let g = generate(3, 3, 30, today());
        for (e, _) in &g.events {
            let enc = dossier_events::encode(e, g.kind, Uuid::now_v7(), &key);
            assert_eq!(enc.event_type, e.event_type());
        }
    }
}
