//! Demo mode: one principal per role with tokens kept in the state directory,
//! and a handful of realistic customers with some history.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use dossier_service::{ChangeInput, ContactInput, RegisterInput, Service, ServiceError, WriteMeta};
use dossier_store::{Principal, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::replace_private_file;
use crate::ids::{credit_code, national_id, with_luhn};

/// The demo principals, one per role.
pub const PRINCIPALS: [(&str, Role); 5] = [
    ("demo-sales", Role::Sales),
    ("demo-manager", Role::Manager),
    ("demo-compliance", Role::Compliance),
    ("demo-auditor", Role::Auditor),
    ("demo-admin", Role::Admin),
];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DemoToken {
    pub name: String,
    pub role: String,
    pub token: String,
}

/// `<state-dir>/demo-tokens.json`: tokens are stored hashed in the database, so
/// their plaintext is kept here to show the same ones on every demo run.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    /// Keyed by the demo principal's base name (e.g. "demo-sales").
    tokens: BTreeMap<String, DemoToken>,
}

/// A demo principal ready to use.
#[derive(Clone, Debug)]
pub struct DemoPrincipal {
    pub principal: Principal,
    pub token: String,
}

/// Makes sure every demo principal exists and its token is known. Reuses the
/// tokens in `path` while they still authenticate; creates the others.
pub async fn ensure_tokens(service: &Service, path: &Path) -> Result<Vec<DemoPrincipal>> {
    let mut file: TokenFile = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a demo token file", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => TokenFile::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut changed = false;
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
        changed = true;
        out.push(DemoPrincipal { principal, token });
    }
    if changed {
        let json = serde_json::to_vec_pretty(&file)?;
        replace_private_file(path, &json)?;
        tracing::info!(path = %path.display(), "saved demo tokens");
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

/// A later change of a seeded customer.
#[derive(Clone, Debug)]
pub enum SeedChange {
    Details(&'static str, Vec<(&'static str, Option<String>)>),
    Owner(&'static str, &'static str),
    Contact(&'static str, ContactInput),
    Archive(&'static str),
}

#[derive(Clone, Debug)]
pub struct SeedCustomer {
    pub kind: &'static str,
    pub details: Vec<(&'static str, String)>,
    pub owner: &'static str,
    pub changes: Vec<SeedChange>,
}

fn contact(name: &str, role: &str, phone: &str, email: &str) -> ContactInput {
    ContactInput {
        name: name.to_owned(),
        role: Some(role.to_owned()),
        phone: Some(phone.to_owned()),
        email: Some(email.to_owned()),
    }
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// The demo customers: Chinese and Latin names, persons and companies.
pub fn customers() -> Vec<SeedCustomer> {
    use SeedChange::*;
    vec![
        SeedCustomer {
            kind: "person",
            details: vec![
                ("name", s("张伟")),
                ("gender", s("male")),
                ("birthday", s("1985-03-12")),
                ("national_id", national_id("110105", "19850312", 123)),
                ("phone", s("+8613812345678")),
                ("email", s("zhang.wei@example.cn")),
                ("address", s("北京市朝阳区建国路88号现代城A座1201")),
                ("occupation", s("软件工程师")),
                ("marital_status", s("single")),
            ],
            owner: "liu.yang",
            changes: vec![
                Details(
                    "客户搬家，更新住址 (customer moved)",
                    vec![
                        ("address", Some(s("北京市海淀区中关村大街27号1号楼803"))),
                        ("marital_status", Some(s("married"))),
                    ],
                ),
                Details(
                    "Customer asked to use the work e-mail",
                    vec![("email", Some(s("zhangwei@corp.example.com")))],
                ),
                Owner("Portfolio rebalancing after team change", "chen.jing"),
            ],
        },
        SeedCustomer {
            kind: "person",
            details: vec![
                ("name", s("李娜")),
                ("gender", s("female")),
                ("birthday", s("1990-07-21")),
                ("national_id", national_id("310104", "19900721", 246)),
                ("phone", s("13912345678")),
                ("email", s("li.na@example.com.cn")),
                ("address", s("上海市徐汇区漕溪北路398号")),
                ("occupation", s("财务经理")),
                ("bank_card", with_luhn("622202123456789012")),
            ],
            owner: "liu.yang",
            changes: vec![
                Details(
                    "New mobile number given at branch visit",
                    vec![("phone", Some(s("+86 136 8765 4321")))],
                ),
                Details(
                    "Customer withdrew consent to keep the card number",
                    vec![("bank_card", None)],
                ),
            ],
        },
        SeedCustomer {
            kind: "person",
            details: vec![
                ("name", s("王芳")),
                ("gender", s("female")),
                ("birthday", s("1978-11-05")),
                ("national_id", national_id("440305", "19781105", 68)),
                ("phone", s("15012345678")),
                ("address", s("深圳市南山区科技南十二路2号")),
                ("occupation", s("教师")),
            ],
            owner: "zhou.min",
            changes: vec![
                Details(
                    "Added e-mail for statements",
                    vec![("email", Some(s("wang.fang@example.net")))],
                ),
                Archive("客户已销户 (customer closed all accounts)"),
            ],
        },
        SeedCustomer {
            kind: "person",
            details: vec![
                ("name", s("María González Pérez")),
                ("gender", s("female")),
                ("birthday", s("1982-04-17")),
                ("phone", s("+34 612 345 678")),
                ("email", s("maria.gonzalez@example.es")),
                ("address", s("Calle de Alcalá 45, 28014 Madrid, España")),
                ("occupation", s("Arquitecta")),
            ],
            owner: "zhou.min",
            changes: vec![
                Details(
                    "Relocated to Shanghai office",
                    vec![
                        ("address", Some(s("上海市静安区南京西路1266号恒隆广场"))),
                        ("phone", Some(s("+8618612345678"))),
                    ],
                ),
                Owner("Handover to the Shanghai team", "liu.yang"),
            ],
        },
        SeedCustomer {
            kind: "company",
            details: vec![
                ("name", s("深圳市华信科技有限公司")),
                ("credit_code", credit_code("91", "440300", "MA5FXT2K")),
                ("industry", s("软件和信息技术服务业")),
                ("region", s("广东省深圳市")),
                ("phone", s("0755-8666 8888")),
                ("email", s("contact@huaxin-tech.example.cn")),
                ("address", s("深圳市南山区深南大道9988号华信大厦18楼")),
            ],
            owner: "chen.jing",
            changes: vec![
                Contact(
                    "Finance contact for invoicing",
                    contact(
                        "陈静",
                        "财务总监",
                        "13812340000",
                        "chen.jing@huaxin-tech.example.cn",
                    ),
                ),
                Contact(
                    "Procurement contact from kick-off meeting",
                    contact(
                        "刘洋",
                        "采购经理",
                        "+86 139 0755 1234",
                        "liu.yang@huaxin-tech.example.cn",
                    ),
                ),
                Details(
                    "Business scope extended (营业执照变更)",
                    vec![("industry", Some(s("互联网和相关服务")))],
                ),
                Owner("Key account: moved to the enterprise desk", "zhou.min"),
            ],
        },
        SeedCustomer {
            kind: "company",
            details: vec![
                ("name", s("杭州云帆电子商务有限公司")),
                ("credit_code", credit_code("91", "330106", "MA27WQ3B")),
                ("industry", s("零售业")),
                ("region", s("浙江省杭州市")),
                ("phone", s("0571-8765 4321")),
                ("email", s("service@yunfan-shop.example.com")),
                ("address", s("杭州市西湖区文三路478号华星时代广场B座")),
            ],
            owner: "zhou.min",
            changes: vec![
                Contact(
                    "Legal representative",
                    contact(
                        "赵磊",
                        "总经理",
                        "13757112345",
                        "zhao.lei@yunfan-shop.example.com",
                    ),
                ),
                Details(
                    "Registered office moved",
                    vec![("address", Some(s("杭州市滨江区网商路699号")))],
                ),
            ],
        },
        SeedCustomer {
            kind: "company",
            details: vec![
                ("name", s("Schmidt & Partner Trading (Shanghai) Co., Ltd.")),
                ("credit_code", credit_code("91", "310115", "MA1H7Y4C")),
                ("industry", s("Wholesale of machinery")),
                ("region", s("上海市浦东新区")),
                ("phone", s("021-5046 7788")),
                ("email", s("office@schmidt-partner.example.de")),
                ("address", s("上海市浦东新区张杨路500号时代广场21楼")),
            ],
            owner: "chen.jing",
            changes: vec![
                Contact(
                    "Managing director",
                    contact(
                        "Anna Schmidt",
                        "Geschäftsführerin",
                        "+49 30 1234567",
                        "anna.schmidt@schmidt-partner.example.de",
                    ),
                ),
                Contact(
                    "Local operations",
                    contact(
                        "孙丽",
                        "运营经理",
                        "18616161234",
                        "sun.li@schmidt-partner.example.de",
                    ),
                ),
            ],
        },
        SeedCustomer {
            kind: "company",
            details: vec![
                ("name", s("Andes Export S.A.")),
                ("industry", s("Agricultural exports")),
                ("region", s("Santiago, Chile")),
                ("phone", s("+56 2 2345 6789")),
                ("email", s("ventas@andes-export.example.cl")),
                ("address", s("Avenida Apoquindo 3000, Las Condes, Santiago")),
            ],
            owner: "liu.yang",
            changes: vec![
                Contact(
                    "Export manager for the China desk",
                    contact(
                        "Lucas Oliveira",
                        "Export manager",
                        "+56 9 8765 4321",
                        "lucas.oliveira@andes-export.example.cl",
                    ),
                ),
                Details(
                    "Regional office opened",
                    vec![("region", Some(s("Santiago, Chile / 上海")))],
                ),
                Owner("Reassigned after territory review", "chen.jing"),
            ],
        },
    ]
}

/// Registers the demo customers and applies their changes. Returns their ids.
pub async fn seed(service: &Service, principals: &[DemoPrincipal]) -> Result<Vec<Uuid>> {
    let sales = principal(principals, Role::Sales)?;
    let manager = principal(principals, Role::Manager)?;
    let mut ids = Vec::new();
    for c in customers() {
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
            owner: Some(c.owner.to_owned()),
            tags: Vec::new(),
            // The demo's people are distinct even where they share a company line.
            force: true,
        };
        let meta = WriteMeta {
            reason: Some("Onboarding (demo data)".into()),
            ..WriteMeta::default()
        };
        let out = service
            .register(sales, input, meta)
            .await
            .with_context(|| format!("registering demo customer {name}"))?;
        let id = out.customer_id;
        let mut version = out.version;
        for change in c.changes {
            let (caller, reason, input) = match change {
                SeedChange::Details(reason, fields) => (
                    sales,
                    reason,
                    ChangeInput {
                        details: fields.into_iter().map(|(f, v)| (f.to_owned(), v)).collect(),
                        ..ChangeInput::default()
                    },
                ),
                SeedChange::Owner(reason, owner) => (
                    manager,
                    reason,
                    ChangeInput {
                        owner: Some(owner.to_owned()),
                        ..ChangeInput::default()
                    },
                ),
                SeedChange::Contact(reason, contact) => (
                    sales,
                    reason,
                    ChangeInput {
                        add_contacts: vec![contact],
                        ..ChangeInput::default()
                    },
                ),
                SeedChange::Archive(reason) => (
                    manager,
                    reason,
                    ChangeInput {
                        archive: true,
                        ..ChangeInput::default()
                    },
                ),
            };
            let meta = WriteMeta {
                reason: Some(reason.to_owned()),
                ..WriteMeta::default()
            };
            let out = service
                .change(caller, id, version, input, meta)
                .await
                .with_context(|| format!("changing demo customer {name}"))?;
            version = out.version;
        }
        ids.push(id);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use dossier_domain::{CustomerKind, Email, Field, PersonName, Phone, Text};

    use super::*;

    #[test]
    fn seed_data_is_valid() {
        let today = chrono::Utc::now().date_naive();
        let all = customers();
        assert!(all.len() >= 8);
        assert!(all.iter().any(|c| c
            .changes
            .iter()
            .any(|ch| matches!(ch, SeedChange::Archive(_)))));
        for c in all {
            let kind = CustomerKind::parse(c.kind).unwrap();
            let mut fields = Vec::new();
            for (f, v) in &c.details {
                let field = Field::parse(f).unwrap();
                field
                    .parse_value(kind, v, today)
                    .unwrap_or_else(|e| panic!("{f}={v}: {}", e.reason));
                fields.push(field);
            }
            assert!(fields.contains(&Field::Name));
            Text::parse_max(c.owner, 100).unwrap();
            for ch in &c.changes {
                match ch {
                    SeedChange::Details(reason, changes) => {
                        assert!(!reason.is_empty());
                        for (f, v) in changes {
                            let field = Field::parse(f).unwrap();
                            assert!(field.applies_to(kind), "{f} on {}", c.kind);
                            if let Some(v) = v {
                                field
                                    .parse_value(kind, v, today)
                                    .unwrap_or_else(|e| panic!("{f}={v}: {}", e.reason));
                            }
                        }
                    }
                    SeedChange::Contact(_, ct) => {
                        PersonName::parse(&ct.name).unwrap();
                        Phone::parse(ct.phone.as_deref().unwrap()).unwrap();
                        Email::parse(ct.email.as_deref().unwrap()).unwrap();
                        Text::parse(ct.role.as_deref().unwrap()).unwrap();
                    }
                    SeedChange::Owner(_, o) => {
                        Text::parse_max(o, 100).unwrap();
                    }
                    SeedChange::Archive(_) => {}
                }
            }
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
        let json = serde_json::to_string(&f).unwrap();
        let back: TokenFile = serde_json::from_str(&json).unwrap();
        assert_eq!(back.tokens["demo-sales"].token, "dsr_x");
    }
}
