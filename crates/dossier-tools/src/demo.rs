//! Demo mode: one principal per role with tokens kept in the state directory,
//! and a realistic book of about fifty customers with several years of
//! history: a handful of hand-written stories (an A-tier key account, a
//! slipping distributor, a litigation, a birthday this week, lost contact, an
//! importance override, ...) and generated filler from the `seed` generator.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{Datelike, Days, NaiveDate, Utc};
use dossier_domain::{Command, Customer, Fact, Money};
use dossier_service::{
    ChangeInput, ComplaintInput, ConsentInput, ContactInput, CreditInput, FactInput, FeedbackInput,
    InteractionInput, InvoiceInput, LegalInput, MoneyInput, OrderInput, PaymentInput,
    RegisterInput, ResolutionInput, ReviewInput, Service, ServiceError, WriteMeta,
};
use dossier_store::{Principal, Role};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::ids::{credit_code, national_id, with_luhn};
use crate::rng::Rng;
use crate::seed::{self, Books};

/// The demo principals, one per role.
pub const PRINCIPALS: [(&str, Role); 5] = [
    ("demo-sales", Role::Sales),
    ("demo-manager", Role::Manager),
    ("demo-compliance", Role::Compliance),
    ("demo-auditor", Role::Auditor),
    ("demo-admin", Role::Admin),
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoToken {
    pub name: String,
    pub role: String,
    pub token: String,
}

/// The demo tokens kept between runs (the CLI keeps them in
/// `<state-dir>/demo-tokens.json`): tokens are stored hashed in the database,
/// so their plaintext is kept to show the same ones on every demo run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFile {
    /// Keyed by the demo principal's base name (e.g. "demo-sales").
    tokens: BTreeMap<String, DemoToken>,
}

impl TokenFile {
    /// Reads the file's JSON.
    pub fn parse(bytes: &[u8]) -> serde_json::Result<TokenFile> {
        serde_json::from_slice(bytes)
    }

    /// The file's JSON, to be written back.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec_pretty(self)
    }
}

/// A demo principal ready to use.
#[derive(Clone, Debug)]
pub struct DemoPrincipal {
    pub principal: Principal,
    pub token: String,
}

/// Makes sure every demo principal exists and its token is known. Reuses the
/// tokens in `file` while they still authenticate; creates the others and
/// records them in `file` (which then differs from what was read: save it).
pub async fn ensure_tokens(service: &Service, file: &mut TokenFile) -> Result<Vec<DemoPrincipal>> {
    let mut out = Vec::new();
    for (base, role) in PRINCIPALS {
        if let Some(saved) = file.tokens.get(base) {
            if let Some(p) = service.authenticate(&saved.token).await? {
                if p.role == role {
                    out.push(DemoPrincipal {
                        principal: p,
                        token: saved.token.clone(),
                    });
                    continue;
                }
            }
        }
        let (principal, token) = create_unique(service, base, role).await?;
        file.tokens.insert(
            base.to_owned(),
            DemoToken {
                name: principal.name.clone(),
                role: role.as_str().to_owned(),
                token: token.clone(),
            },
        );
        out.push(DemoPrincipal { principal, token });
    }
    Ok(out)
}

/// Creates a principal named `base`, or `base-2`, `base-3`, … when the name is
/// taken by a principal whose token is not in the token file (it cannot be
/// recovered: only its digest is stored).
async fn create_unique(service: &Service, base: &str, role: Role) -> Result<(Principal, String)> {
    let mut name = base.to_owned();
    for n in 2..=20 {
        match service.create_token(&name, role).await {
            Ok(created) => return Ok(created),
            Err(ServiceError::Invalid { field, .. }) if field == "name" => {
                tracing::warn!(
                    name,
                    "a principal with this name exists but its token is not in the demo token file; \
                     creating another one"
                );
                name = format!("{base}-{n}");
            }
            Err(e) => return Err(e).with_context(|| format!("creating principal {name}")),
        }
    }
    anyhow::bail!("could not find a free principal name for {base}")
}

fn principal(ps: &[DemoPrincipal], role: Role) -> Result<&Principal> {
    ps.iter()
        .map(|p| &p.principal)
        .find(|p| p.role == role)
        .with_context(|| format!("no demo principal with role {role}"))
}

/// One step of a demo customer's history. Facts that later steps refer to
/// carry a label (the service chooses the ids).
#[derive(Clone, Debug)]
pub enum Step {
    Order {
        label: Option<String>,
        product: String,
        amount: (String, String),
        on: NaiveDate,
    },
    Invoice {
        label: Option<String>,
        order: Option<String>,
        amount: (String, String),
        issued: NaiveDate,
        due: NaiveDate,
    },
    Payment {
        invoice: Option<String>,
        amount: (String, String),
        on: NaiveDate,
    },
    Credit {
        rating: Option<String>,
        limit: Option<(String, String)>,
    },
    Legal {
        status: String,
        since: NaiveDate,
    },
    Interaction {
        channel: String,
        outcome: String,
        on: NaiveDate,
        summary: Option<String>,
    },
    Complaint {
        label: Option<String>,
        category: String,
        summary: String,
        on: NaiveDate,
    },
    Resolve {
        complaint: String,
        resolution: String,
        on: NaiveDate,
    },
    Feedback {
        satisfaction: i64,
        comment: Option<String>,
        on: NaiveDate,
    },
    Review {
        on: NaiveDate,
        summary: Option<String>,
    },
    Consent {
        purpose: String,
        granted: bool,
        on: NaiveDate,
    },
    /// A PATCH, by the owner's colleague in sales or (for owner changes,
    /// importance overrides and archiving) by the manager.
    Change {
        reason: String,
        by_manager: bool,
        input: Box<ChangeInput>,
    },
}

#[derive(Clone, Debug)]
pub struct DemoCustomer {
    pub kind: &'static str,
    pub details: Vec<(&'static str, String)>,
    pub owner: String,
    pub tags: Vec<String>,
    pub steps: Vec<Step>,
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn cny(amount: u64) -> (String, String) {
    (amount.to_string(), s("CNY"))
}

fn money_of(m: &Money) -> (String, String) {
    (m.amount_str(), m.currency().to_owned())
}

fn contact(name: &str, role: &str, phone: &str, email: &str) -> ContactInput {
    ContactInput {
        name: name.to_owned(),
        role: Some(role.to_owned()),
        phone: Some(phone.to_owned()),
        email: Some(email.to_owned()),
    }
}

fn change(reason: &str, by_manager: bool, input: ChangeInput) -> Step {
    Step::Change {
        reason: reason.to_owned(),
        by_manager,
        input: Box::new(input),
    }
}

fn order(label: &str, product: &str, amount: u64, on: NaiveDate) -> Step {
    Step::Order {
        label: Some(label.to_owned()),
        product: product.to_owned(),
        amount: cny(amount),
        on,
    }
}

fn invoice(label: &str, order: &str, amount: u64, issued: NaiveDate, days: u64) -> Step {
    Step::Invoice {
        label: Some(label.to_owned()),
        order: Some(order.to_owned()),
        amount: cny(amount),
        issued,
        due: issued + Days::new(days),
    }
}

fn payment(invoice: &str, amount: u64, on: NaiveDate) -> Step {
    Step::Payment {
        invoice: Some(invoice.to_owned()),
        amount: cny(amount),
        on,
    }
}

fn interaction(channel: &str, outcome: &str, on: NaiveDate, summary: &str) -> Step {
    Step::Interaction {
        channel: channel.to_owned(),
        outcome: outcome.to_owned(),
        on,
        summary: (!summary.is_empty()).then(|| summary.to_owned()),
    }
}

fn complaint(label: &str, category: &str, summary: &str, on: NaiveDate) -> Step {
    Step::Complaint {
        label: Some(label.to_owned()),
        category: category.to_owned(),
        summary: summary.to_owned(),
        on,
    }
}

fn credit(rating: &str, limit: u64) -> Step {
    Step::Credit {
        rating: Some(rating.to_owned()),
        limit: Some(cny(limit)),
    }
}

/// A birthday `ahead` days from `today`, in `year` (the 28th for a 29 February).
fn birthday_in(today: NaiveDate, ahead: u64, year: i32) -> NaiveDate {
    let next = today + Days::new(ahead);
    NaiveDate::from_ymd_opt(year, next.month(), next.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, next.month(), 28))
        .expect("a valid date")
}

/// The hand-written customers: each shows one thing the views can tell.
/// `sales` is the demo sales principal's name: GET /v1/follow-ups with its
/// token lists its own customers.
pub fn stories(today: NaiveDate, sales: &str) -> Vec<DemoCustomer> {
    let d = |days: u64| today - Days::new(days);
    let zhang_birthday = birthday_in(today, 3, 1985);
    let zhang_ymd = zhang_birthday.format("%Y%m%d").to_string();
    vec![
        // An A-tier key account (trailing 12 months over 1,000,000 CNY), one invoice just overdue.
        DemoCustomer {
            kind: "company",
            details: vec![
                ("name", s("深圳市华信科技有限公司")),
                ("credit_code", credit_code("91", "440300", "MA5FXT2K")),
                ("industry", s("软件和信息技术服务业")),
                ("region", s("华南")),
                ("company_size", s("large")),
                ("financial_strength", s("strong")),
                ("cooperation_intent", s("high")),
                ("phone", s("0755-8666 8888")),
                ("email", s("contact@huaxin-tech.example.cn")),
                ("address", s("深圳市南山区深南大道9988号华信大厦18楼")),
            ],
            owner: sales.to_owned(),
            tags: vec![s("vip"), s("重点跟进")],
            steps: vec![
                change(
                    "Finance contact for invoicing",
                    false,
                    ChangeInput {
                        add_contacts: vec![contact(
                            "陈静",
                            "财务总监",
                            "13812340000",
                            "chen.jing@huaxin-tech.example.cn",
                        )],
                        ..ChangeInput::default()
                    },
                ),
                order("o1", "ERP 实施服务", 680_000, d(700)),
                invoice("i1", "o1", 680_000, d(700), 30),
                payment("i1", 680_000, d(665)),
                order("o2", "年度维保", 120_000, d(400)),
                order("o3", "云服务器 (年付)", 450_000, d(200)),
                invoice("i3", "o3", 450_000, d(200), 30),
                payment("i3", 450_000, d(172)),
                order("o4", "工业传感器", 620_000, d(45)),
                invoice("i4", "o4", 620_000, d(45), 30),
                credit("AA", 3_000_000),
                Step::Review {
                    on: d(50),
                    summary: Some(s("年度档案复核：联系人、资质齐全")),
                },
                Step::Feedback {
                    satisfaction: 5,
                    comment: Some(s("实施团队专业，响应及时")),
                    on: d(30),
                },
                interaction("visit", "positive", d(6), "季度业务回顾，讨论二期扩容"),
            ],
        },
        // Slipping: purchases falling, a partly paid invoice long overdue, credit
        // downgraded to CCC, three complaints in 90 days, and no answer lately.
        DemoCustomer {
            kind: "company",
            details: vec![
                ("name", s("杭州云帆电子商务有限公司")),
                ("credit_code", credit_code("91", "330106", "MA27WQ3B")),
                ("industry", s("零售业")),
                ("region", s("华东")),
                ("company_size", s("medium")),
                ("phone", s("0571-8765 4321")),
                ("email", s("service@yunfan-shop.example.com")),
                ("address", s("杭州市西湖区文三路478号华星时代广场B座")),
            ],
            owner: sales.to_owned(),
            tags: vec![s("经销商")],
            steps: vec![
                credit("A", 1_000_000),
                order("o1", "办公家具", 300_000, d(250)),
                invoice("i1", "o1", 300_000, d(250), 30),
                payment("i1", 150_000, d(200)),
                order("o2", "办公家具", 260_000, d(150)),
                order("o3", "冷链运输", 180_000, d(120)),
                order("o4", "办公家具", 20_000, d(30)),
                complaint("c1", "quality", "部分桌椅有划痕，要求换货", d(60)),
                Step::Resolve {
                    complaint: s("c1"),
                    resolution: s("已换货，客户确认"),
                    on: d(50),
                },
                complaint("c2", "delivery", "货物延迟两周送达", d(40)),
                Step::Resolve {
                    complaint: s("c2"),
                    resolution: s("物流赔付运费，客户接受"),
                    on: d(30),
                },
                complaint("c3", "billing", "发票金额与合同不符", d(12)),
                credit("CCC", 200_000),
                interaction("call", "no_answer", d(20), "催收逾期款项，无人接听"),
                interaction("call", "no_answer", d(10), ""),
                interaction("call", "no_answer", d(5), ""),
            ],
        },
        // Special (litigation), B tier.
        DemoCustomer {
            kind: "company",
            details: vec![
                ("name", s("Schmidt & Partner Trading (Shanghai) Co., Ltd.")),
                ("credit_code", credit_code("91", "310115", "MA1H7Y4C")),
                ("industry", s("批发业")),
                ("region", s("华东")),
                ("phone", s("021-5046 7788")),
                ("email", s("office@schmidt-partner.example.de")),
                ("address", s("上海市浦东新区张杨路500号时代广场21楼")),
            ],
            owner: s("chen.jing"),
            tags: vec![],
            steps: vec![
                change(
                    "Managing director",
                    false,
                    ChangeInput {
                        add_contacts: vec![contact(
                            "Anna Schmidt",
                            "Geschäftsführerin",
                            "+49 30 1234567",
                            "anna.schmidt@schmidt-partner.example.de",
                        )],
                        ..ChangeInput::default()
                    },
                ),
                order("o1", "spare parts", 150_000, d(100)),
                invoice("i1", "o1", 150_000, d(100), 60),
                payment("i1", 150_000, d(45)),
                Step::Legal {
                    status: s("litigation"),
                    since: d(25),
                },
                interaction(
                    "visit",
                    "neutral",
                    d(20),
                    "Discussed the contract dispute with legal",
                ),
            ],
        },
        // Birthday in three days: a care follow-up.
        DemoCustomer {
            kind: "person",
            details: vec![
                ("name", s("张伟")),
                ("gender", s("male")),
                ("birthday", zhang_birthday.to_string()),
                ("national_id", national_id("110105", &zhang_ymd, 123)),
                ("phone", s("+8613812345678")),
                ("email", s("zhang.wei@example.cn")),
                ("region", s("华北")),
                ("address", s("北京市朝阳区建国路88号现代城A座1201")),
                ("occupation", s("软件工程师")),
            ],
            owner: sales.to_owned(),
            tags: vec![],
            steps: vec![
                Step::Consent {
                    purpose: s("marketing"),
                    granted: true,
                    on: d(300),
                },
                order("o1", "培训课程", 8_800, d(300)),
                change(
                    "客户搬家，更新住址 (customer moved)",
                    false,
                    ChangeInput {
                        details: [
                            (s("address"), Some(s("北京市海淀区中关村大街27号1号楼803"))),
                            (s("marital_status"), Some(s("married"))),
                        ]
                        .into_iter()
                        .collect(),
                        ..ChangeInput::default()
                    },
                ),
                order("o2", "培训课程", 12_000, d(90)),
                interaction("call", "positive", d(8), "确认续报高级课程"),
            ],
        },
        // Lost contact: the last successful contact is months ago, then no answer.
        DemoCustomer {
            kind: "person",
            details: vec![
                ("name", s("李娜")),
                ("gender", s("female")),
                ("birthday", s("1990-07-21")),
                ("national_id", national_id("310104", "19900721", 246)),
                ("phone", s("13912345678")),
                ("email", s("li.na@example.com.cn")),
                ("region", s("华东")),
                ("address", s("上海市徐汇区漕溪北路398号")),
                ("occupation", s("财务经理")),
            ],
            owner: sales.to_owned(),
            tags: vec![],
            steps: vec![
                order("o1", "年度维保", 25_000, d(200)),
                change(
                    "Card for direct debit, given at branch visit",
                    false,
                    ChangeInput {
                        details: [(s("bank_card"), Some(with_luhn("622202123456789012")))]
                            .into_iter()
                            .collect(),
                        ..ChangeInput::default()
                    },
                ),
                interaction("visit", "positive", d(130), "上门回访"),
                interaction("call", "no_answer", d(40), ""),
                interaction("call", "no_answer", d(25), ""),
                interaction("call", "no_answer", d(9), ""),
            ],
        },
        // Closed: archived files leave the default list (?archived=true shows them).
        DemoCustomer {
            kind: "person",
            details: vec![
                ("name", s("王芳")),
                ("gender", s("female")),
                ("birthday", s("1978-11-05")),
                ("national_id", national_id("440305", "19781105", 68)),
                ("phone", s("15012345678")),
                ("region", s("华南")),
                ("occupation", s("教师")),
            ],
            owner: s("zhou.min"),
            tags: vec![],
            steps: vec![
                order("o1", "培训课程", 5_000, d(800)),
                change(
                    "客户已销户 (customer closed all accounts)",
                    true,
                    ChangeInput {
                        archive: true,
                        ..ChangeInput::default()
                    },
                ),
            ],
        },
        // A manual importance override (重要) by the manager.
        DemoCustomer {
            kind: "person",
            details: vec![
                ("name", s("María González Pérez")),
                ("gender", s("female")),
                ("birthday", s("1982-04-17")),
                ("phone", s("+34 612 345 678")),
                ("email", s("maria.gonzalez@example.es")),
                ("region", s("华东")),
                ("address", s("Calle de Alcalá 45, 28014 Madrid, España")),
                ("occupation", s("Arquitecta")),
            ],
            owner: s("zhou.min"),
            tags: vec![],
            steps: vec![
                order("o1", "consulting days", 36_000, d(150)),
                change(
                    "Referred two of our key accounts; treat as important",
                    true,
                    ChangeInput {
                        importance: Some(Some(s("important"))),
                        ..ChangeInput::default()
                    },
                ),
                Step::Feedback {
                    satisfaction: 5,
                    comment: Some(s("Very happy with the design review")),
                    on: d(15),
                },
                interaction("email", "positive", d(14), "Thanked for the referral"),
            ],
        },
        // Dormant, and its USD amounts have no rate in the default rules.
        DemoCustomer {
            kind: "company",
            details: vec![
                ("name", s("Andes Export S.A.")),
                ("industry", s("农业")),
                ("region", s("海外")),
                ("phone", s("+56 2 2345 6789")),
                ("email", s("ventas@andes-export.example.cl")),
                ("address", s("Avenida Apoquindo 3000, Las Condes, Santiago")),
            ],
            owner: s("chen.jing"),
            tags: vec![],
            steps: vec![
                Step::Order {
                    label: None,
                    product: s("cold-chain logistics"),
                    amount: (s("85000"), s("USD")),
                    on: d(250),
                },
                interaction("email", "neutral", d(200), "Quotation for next season sent"),
            ],
        },
        // Lost (no order for over a year) and in restructuring.
        DemoCustomer {
            kind: "company",
            details: vec![
                ("name", s("成都天成农业发展有限公司")),
                ("credit_code", credit_code("91", "510104", "MA6C8K1D")),
                ("industry", s("农业")),
                ("region", s("西南")),
                ("phone", s("028-8555 1234")),
            ],
            owner: s("wang.lei"),
            tags: vec![],
            steps: vec![
                order("o1", "冷链运输", 200_000, d(900)),
                order("o2", "冷链运输", 90_000, d(500)),
                Step::Legal {
                    status: s("restructuring"),
                    since: d(60),
                },
            ],
        },
        // New (first order weeks ago), with a complaint open for ten days.
        DemoCustomer {
            kind: "company",
            details: vec![
                ("name", s("北京博远咨询有限公司")),
                ("credit_code", credit_code("91", "110105", "MA01B2C3")),
                ("industry", s("商务服务业")),
                ("region", s("华北")),
                ("phone", s("010-6555 8899")),
                ("email", s("info@boyuan.example.cn")),
            ],
            owner: sales.to_owned(),
            tags: vec![s("转介绍")],
            steps: vec![
                order("o1", "ERP 实施服务", 160_000, d(25)),
                invoice("i1", "o1", 160_000, d(25), 60),
                complaint("c1", "service", "售后电话长时间无人接听", d(10)),
            ],
        },
        // A prospect from a trade fair: no orders yet.
        DemoCustomer {
            kind: "person",
            details: vec![
                ("name", s("陈晓明")),
                ("gender", s("male")),
                ("phone", s("18620001234")),
                ("region", s("华南")),
            ],
            owner: sales.to_owned(),
            tags: vec![s("展会线索")],
            steps: vec![interaction(
                "call",
                "positive",
                d(3),
                "展会后首次电话，约下周拜访",
            )],
        },
    ]
}

/// Seed of the generated part of the demo book.
const DEMO_SEED: u64 = 2026;
/// Generated customers besides the stories.
const GENERATED: u64 = 38;

/// Realistic filler customers (names, regions, three years of history) from
/// the `seed` generator, owned by the demo salesperson and a few colleagues.
pub fn generated(today: NaiveDate, sales: &str) -> Vec<DemoCustomer> {
    let owners = [sales, "liu.yang", "chen.jing", "zhou.min", "wang.lei"];
    (0..GENERATED)
        .map(|n| {
            let mut rng = Rng::new(DEMO_SEED, n);
            let r = seed::registration(&mut rng, n);
            let since = today - Days::new(rng.below(3 * 365));
            let span = (today - since).num_days().max(0) as u64;
            let mut dates: Vec<NaiveDate> = (0..4 + rng.below(9))
                .map(|_| since + Days::new(rng.below(span + 1)))
                .collect();
            dates.sort_unstable();
            let state = Customer {
                kind: Some(r.kind),
                ..Customer::default()
            };
            let mut books = Books::default();
            let steps = dates
                .into_iter()
                .filter_map(|on| step_of(seed::step(&mut rng, &state, &mut books, on)))
                .collect();
            DemoCustomer {
                kind: r.kind.as_str(),
                details: r
                    .details
                    .iter()
                    .map(|(f, v)| (f.as_str(), v.clone()))
                    .collect(),
                owner: owners[(n % owners.len() as u64) as usize].to_owned(),
                tags: r.tags.iter().map(|t| (*t).to_owned()).collect(),
                steps,
            }
        })
        .collect()
}

/// A generated domain command as a demo step (labels are the generator's ids).
fn step_of(c: Command) -> Option<Step> {
    let label = |id: Uuid| Some(id.to_string());
    Some(match c {
        Command::Record(fact) => match fact {
            Fact::Order {
                order_id,
                product,
                amount,
                ordered_on,
            } => Step::Order {
                label: label(order_id),
                product: product.as_str().to_owned(),
                amount: money_of(&amount),
                on: ordered_on,
            },
            Fact::Invoice {
                invoice_id,
                order_id,
                amount,
                issued_on,
                due_on,
            } => Step::Invoice {
                label: label(invoice_id),
                order: order_id.map(|o| o.to_string()),
                amount: money_of(&amount),
                issued: issued_on,
                due: due_on,
            },
            Fact::Payment {
                invoice_id,
                amount,
                received_on,
                ..
            } => Step::Payment {
                invoice: invoice_id.map(|i| i.to_string()),
                amount: money_of(&amount),
                on: received_on,
            },
            Fact::Credit { rating, limit } => Step::Credit {
                rating: rating.map(|r| r.as_str().to_owned()),
                limit: limit.as_ref().map(money_of),
            },
            Fact::Legal { status, since } => Step::Legal {
                status: status.as_str().to_owned(),
                since,
            },
            Fact::Interaction {
                channel,
                outcome,
                occurred_on,
                summary,
                ..
            } => Step::Interaction {
                channel: channel.as_str().to_owned(),
                outcome: outcome.as_str().to_owned(),
                on: occurred_on,
                summary: summary.map(|t| t.as_str().to_owned()),
            },
            Fact::ComplaintOpened {
                complaint_id,
                category,
                summary,
                opened_on,
            } => Step::Complaint {
                label: label(complaint_id),
                category: category.as_str().to_owned(),
                summary: summary.as_str().to_owned(),
                on: opened_on,
            },
            Fact::ComplaintResolved {
                complaint_id,
                resolution,
                resolved_on,
            } => Step::Resolve {
                complaint: complaint_id.to_string(),
                resolution: resolution.as_str().to_owned(),
                on: resolved_on,
            },
            Fact::Feedback {
                satisfaction,
                comment,
                received_on,
                ..
            } => Step::Feedback {
                satisfaction: i64::from(satisfaction),
                comment: comment.map(|t| t.as_str().to_owned()),
                on: received_on,
            },
            Fact::Review {
                reviewed_on,
                summary,
            } => Step::Review {
                on: reviewed_on,
                summary: summary.map(|t| t.as_str().to_owned()),
            },
            Fact::Consent {
                purpose,
                granted,
                on,
            } => Step::Consent {
                purpose: purpose.as_str().to_owned(),
                granted,
                on,
            },
        },
        Command::AssignOwner { owner } => change(
            "Territory review: new owner",
            true,
            ChangeInput {
                owner: Some(owner.as_str().to_owned()),
                ..ChangeInput::default()
            },
        ),
        Command::Tag { add, remove } => change(
            "Tagged after account review",
            false,
            ChangeInput {
                add_tags: add.iter().map(|t| t.as_str().to_owned()).collect(),
                remove_tags: remove.iter().map(|t| t.as_str().to_owned()).collect(),
                ..ChangeInput::default()
            },
        ),
        _ => return None,
    })
}

fn money_input((amount, currency): &(String, String)) -> MoneyInput {
    MoneyInput {
        amount: amount.clone(),
        currency: currency.clone(),
    }
}

fn date(d: &NaiveDate) -> Option<String> {
    Some(d.to_string())
}

/// The fact input of a step, with labels resolved to the ids the service gave.
fn fact_input(step: &Step, ids: &HashMap<String, Uuid>) -> Result<FactInput> {
    let id = |label: &Option<String>| -> Result<Option<Uuid>> {
        label
            .as_ref()
            .map(|l| {
                ids.get(l)
                    .copied()
                    .with_context(|| format!("demo step refers to unknown {l}"))
            })
            .transpose()
    };
    Ok(match step {
        Step::Order {
            product,
            amount,
            on,
            ..
        } => FactInput::Order(OrderInput {
            product: product.clone(),
            amount: money_input(amount),
            ordered_on: date(on),
        }),
        Step::Invoice {
            order,
            amount,
            issued,
            due,
            ..
        } => FactInput::Invoice(InvoiceInput {
            order_id: id(order)?,
            amount: money_input(amount),
            issued_on: date(issued),
            due_on: due.to_string(),
        }),
        Step::Payment {
            invoice,
            amount,
            on,
        } => FactInput::Payment(PaymentInput {
            invoice_id: id(invoice)?,
            amount: money_input(amount),
            received_on: date(on),
        }),
        Step::Credit { rating, limit } => FactInput::Credit(CreditInput {
            rating: rating.clone(),
            limit: limit.as_ref().map(money_input),
        }),
        Step::Legal { status, since } => FactInput::Legal(LegalInput {
            status: status.clone(),
            since: date(since),
        }),
        Step::Interaction {
            channel,
            outcome,
            on,
            summary,
        } => FactInput::Interaction(InteractionInput {
            channel: channel.clone(),
            outcome: outcome.clone(),
            occurred_on: date(on),
            summary: summary.clone(),
        }),
        Step::Complaint {
            category,
            summary,
            on,
            ..
        } => FactInput::Complaint(ComplaintInput {
            category: category.clone(),
            summary: summary.clone(),
            opened_on: date(on),
        }),
        Step::Resolve {
            complaint,
            resolution,
            on,
        } => FactInput::ComplaintResolution {
            complaint_id: id(&Some(complaint.clone()))?.context("complaint label")?,
            body: ResolutionInput {
                resolution: resolution.clone(),
                resolved_on: date(on),
            },
        },
        Step::Feedback {
            satisfaction,
            comment,
            on,
        } => FactInput::Feedback(FeedbackInput {
            satisfaction: *satisfaction,
            comment: comment.clone(),
            received_on: date(on),
        }),
        Step::Review { on, summary } => FactInput::Review(ReviewInput {
            reviewed_on: date(on),
            summary: summary.clone(),
        }),
        Step::Consent {
            purpose,
            granted,
            on,
        } => FactInput::Consent(ConsentInput {
            purpose: purpose.clone(),
            granted: *granted,
            on: date(on),
        }),
        Step::Change { .. } => anyhow::bail!("a change is not a fact"),
    })
}

fn label_of(step: &Step) -> Option<&String> {
    match step {
        Step::Order { label, .. } | Step::Invoice { label, .. } | Step::Complaint { label, .. } => {
            label.as_ref()
        }
        _ => None,
    }
}

/// Registers one demo customer and plays its history through the service.
async fn play(
    service: &Service,
    sales: &Principal,
    manager: &Principal,
    c: &DemoCustomer,
) -> Result<Uuid> {
    let name = c
        .details
        .iter()
        .find(|(f, _)| *f == "name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let input = RegisterInput {
        kind: c.kind.to_owned(),
        details: c
            .details
            .iter()
            .map(|(f, v)| ((*f).to_owned(), v.clone()))
            .collect(),
        owner: Some(c.owner.clone()),
        tags: c.tags.clone(),
        // The projections are not running yet, so the duplicate check could
        // not see anything; the demo's customers are distinct by design.
        force: true,
    };
    let meta = |reason: &str| WriteMeta {
        reason: Some(reason.to_owned()),
        ..WriteMeta::default()
    };
    let out = service
        .register(sales, input, meta("Onboarding (demo data)"))
        .await
        .with_context(|| format!("registering demo customer {name}"))?;
    let id = out.customer_id;
    let mut version = out.version;
    let mut ids = HashMap::new();
    for step in &c.steps {
        let done = match step {
            Step::Change {
                reason,
                by_manager,
                input,
            } => {
                let caller = if *by_manager { manager } else { sales };
                service
                    .change(caller, id, version, (**input).clone(), meta(reason))
                    .await
            }
            fact => {
                let input = fact_input(fact, &ids)?;
                service
                    .record_fact(sales, id, input, meta("demo data"))
                    .await
                    .map(|o| {
                        if let (Some(label), Some(new)) = (label_of(fact), o.id) {
                            ids.insert(label.clone(), new);
                        }
                        o.write
                    })
            }
        }
        .with_context(|| format!("demo customer {name}: {step:?}"))?;
        version = done.version;
    }
    Ok(id)
}

/// Demo customers played at once (each customer's history stays in order).
const CONCURRENT: usize = 8;

/// Seeds the demo book through the service (so every write is validated
/// and sealed like an API call), then records today's evaluation run so
/// time-based signals (overdue, lost contact, birthdays) show. Returns the
/// customer ids, the stories first: the A-tier key account, then the
/// slipping one.
pub async fn seed(service: &Service, principals: &[DemoPrincipal]) -> Result<Vec<Uuid>> {
    let sales = principal(principals, Role::Sales)?.clone();
    let manager = principal(principals, Role::Manager)?.clone();
    let today = Utc::now().date_naive();
    let mut all = stories(today, &sales.name);
    all.extend(generated(today, &sales.name));
    let all = Arc::new(all);
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..CONCURRENT {
        let (service, sales, manager) = (service.clone(), sales.clone(), manager.clone());
        let (all, next) = (all.clone(), next.clone());
        set.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = all.get(i) else {
                    return Ok::<_, anyhow::Error>(ids);
                };
                ids.push((i, play(&service, &sales, &manager, c).await?));
            }
        });
    }
    let mut ids = Vec::new();
    while let Some(joined) = set.join_next().await {
        ids.extend(joined.context("a demo seeding task panicked")??);
    }
    ids.sort_unstable();
    if let Some(seq) = service.evaluate_as_service().await? {
        tracing::info!(seq, "recorded today's evaluation run");
    }
    Ok(ids.into_iter().map(|(_, id)| id).collect())
}

#[cfg(test)]
mod tests {
    use dossier_domain::{CustomerKind, Field, Text};

    use super::*;

    #[test]
    fn demo_book_is_valid_and_varied() {
        let today = Utc::now().date_naive();
        let mut all = stories(today, "demo-sales");
        all.extend(generated(today, "demo-sales"));
        assert!((40..=60).contains(&all.len()), "{}", all.len());
        assert!(all.iter().filter(|c| c.owner == "demo-sales").count() >= 8);
        assert!(all.iter().any(|c| c.kind == "company") && all.iter().any(|c| c.kind == "person"));
        for c in &all {
            let kind = CustomerKind::parse(c.kind).unwrap();
            let mut fields = Vec::new();
            for (f, v) in &c.details {
                let field = Field::parse(f).unwrap();
                assert!(field.applies_to(kind), "{f} on {}", c.kind);
                field
                    .parse_value(kind, v, today)
                    .unwrap_or_else(|e| panic!("{f}={v}: {}", e.reason));
                fields.push(field);
            }
            assert!(fields.contains(&Field::Name));
            Text::parse_max(&c.owner, 100).unwrap();
            let mut labels: Vec<String> = Vec::new();
            for step in &c.steps {
                if let Step::Change { input, .. } = step {
                    for (f, v) in &input.details {
                        let field = Field::parse(f).unwrap();
                        if let Some(v) = v {
                            field.parse_value(kind, v, today).unwrap();
                        }
                    }
                    continue;
                }
                // Every label a step uses was given by an earlier step.
                let fake: HashMap<String, Uuid> =
                    labels.iter().map(|l| (l.clone(), Uuid::nil())).collect();
                fact_input(step, &fake).unwrap_or_else(|e| panic!("{step:?}: {e}"));
                if let Some(l) = label_of(step) {
                    labels.push(l.clone());
                }
            }
        }
        // The birthday story is within the follow-up window (7 days).
        let zhang = &all[3];
        let birthday = &zhang
            .details
            .iter()
            .find(|(f, _)| *f == "birthday")
            .unwrap()
            .1;
        let b = NaiveDate::parse_from_str(birthday, "%Y-%m-%d").unwrap();
        let next = today + Days::new(3);
        if (next.month(), next.day()) != (2, 29) {
            assert_eq!((b.month(), b.day()), (next.month(), next.day()));
        }
    }

    #[test]
    fn token_file_round_trips() {
        let mut f = TokenFile::default();
        f.tokens.insert(
            "demo-sales".into(),
            DemoToken {
                name: "demo-sales".into(),
                role: "sales".into(),
                token: "dsr_x".into(),
            },
        );
        let back = TokenFile::parse(&f.to_json().unwrap()).unwrap();
        assert_eq!(back.tokens["demo-sales"].token, "dsr_x");
        assert_eq!(back, f);
    }
}
