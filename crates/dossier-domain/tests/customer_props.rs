//! Property tests of the customer decision model: random command sequences
//! run through `decide`/`evolve` against a simple expectation model.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use dossier_domain::{
    decide, evolve, replay, Command, Contact, Customer, CustomerKind, DomainError, Email, Event,
    Field, FieldValue, PersonName, Phone, Text,
};
use proptest::prelude::*;
use uuid::Uuid;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
}

/// Raw inputs that are valid for the field (for any kind it applies to).
fn pool(field: Field, kind: CustomerKind) -> &'static [&'static str] {
    match field {
        Field::Name => match kind {
            CustomerKind::Person => &["张三", "Li Si", "Zhang San"],
            CustomerKind::Company => &["ACME Ltd", "华为技术有限公司", "Example Co"],
        },
        Field::Gender => &["male", "female", "other"],
        Field::Birthday => &["1990-01-15", "1985-12-31", "2026-11-23"],
        Field::MaritalStatus => &["single", "married", "divorced", "widowed"],
        Field::Occupation => &["engineer", "teacher", "数据分析师"],
        Field::Phone => &["13812345678", "19912345678", "010-12345678"],
        Field::Email => &["a@b.co", "zhang.san@example.com", "li@mail.example.com.cn"],
        Field::Address => &["1 Main St", "北京市朝阳区建国路 1 号"],
        Field::NationalId => &["11010519491231002X", "11010519491231002x"],
        Field::BankCard => &[
            "4111111111111111",
            "5555 5555 5555 4444",
            "6011-1111-1111-1117",
        ],
        Field::CreditCode => &["91350100M000100Y43", "10000000000000000Y"],
        Field::Industry => &["retail", "finance"],
        Field::Region => &["north", "east", "华南"],
        Field::CompanySize => &["micro", "small", "medium", "large"],
        Field::RegisteredCapital => &["5000000 CNY", "0 USD", "1234.5 eur", " 100 CNY "],
        Field::BusinessFocus => &["wholesale of tea", "跨境电商"],
        Field::IndustryStanding
        | Field::DistributionCapability
        | Field::FinancialStrength
        | Field::Reputation => &["strong", "average", "weak"],
        Field::CooperationIntent => &["high", "medium", "low", "none"],
        Field::Preferences => &["green tea", "喜欢安静的会议室"],
        Field::Interests => &["golf", "calligraphy", "摄影"],
        Field::Assets => &["two flats in Shanghai", "a car"],
    }
}

fn value(field: Field, kind: CustomerKind, i: usize) -> FieldValue {
    let p = pool(field, kind);
    field
        .parse_value(kind, p[i % p.len()], today())
        .unwrap_or_else(|e| panic!("pool value for {field} invalid: {}", e.reason))
}

const OWNERS: [&str; 3] = ["alice", "bob", "王五"];

fn contact_id(i: u8) -> Uuid {
    Uuid::from_u128(0x1000 + u128::from(i))
}

fn contact(i: usize) -> Contact {
    let names = ["赵六", "Carol", "Dave"];
    Contact::new(
        PersonName::parse(names[i % names.len()]).unwrap(),
        i.is_multiple_of(2).then(|| Text::parse("buyer").unwrap()),
        i.is_multiple_of(3)
            .then(|| Phone::parse("13812345678").unwrap()),
        (i % 2 == 1).then(|| Email::parse("c@example.com").unwrap()),
    )
}

/// A command shape; values are materialised against the current state's kind.
#[derive(Clone, Debug)]
enum Op {
    Register {
        company: bool,
        with_name: bool,
        fields: Vec<(usize, usize)>,
        owner: Option<usize>,
    },
    Change(Vec<(usize, Option<usize>)>),
    AddContact(u8, usize),
    RemoveContact(u8),
    AssignOwner(usize),
    Archive,
}

fn op() -> impl Strategy<Value = Op> {
    let field_ix = 0..Field::ALL.len();
    prop_oneof![
        1 => (
            any::<bool>(),
            prop::bool::weighted(0.9),
            prop::collection::vec((field_ix.clone(), 0..4usize), 0..6),
            prop::option::of(0..3usize)
        )
            .prop_map(|(company, with_name, fields, owner)| Op::Register {
                company,
                with_name,
                fields,
                owner
            }),
        5 => prop::collection::vec((field_ix, prop::option::weighted(0.75, 0..4usize)), 0..6)
            .prop_map(Op::Change),
        2 => (0..4u8, 0..3usize).prop_map(|(i, c)| Op::AddContact(i, c)),
        1 => (0..4u8).prop_map(Op::RemoveContact),
        2 => (0..3usize).prop_map(Op::AssignOwner),
        1 => Just(Op::Archive),
    ]
}

fn to_command(op: &Op, state: &Customer) -> Command {
    let kind = state.kind.unwrap_or(CustomerKind::Person);
    match op {
        Op::Register {
            company,
            with_name,
            fields,
            owner,
        } => {
            let kind = if *company {
                CustomerKind::Company
            } else {
                CustomerKind::Person
            };
            let mut details = BTreeMap::new();
            if *with_name {
                details.insert(Field::Name, value(Field::Name, kind, 0));
            }
            for &(f, v) in fields {
                let f = Field::ALL[f];
                if f == Field::Name && !with_name {
                    continue;
                }
                details.insert(f, value(f, kind, v));
            }
            Command::Register {
                kind,
                details,
                owner: owner.map(|o| Text::parse(OWNERS[o]).unwrap()),
                tags: BTreeSet::new(),
            }
        }
        Op::Change(changes) => Command::ChangeDetails {
            changes: changes
                .iter()
                .map(|&(f, v)| {
                    let f = Field::ALL[f];
                    (f, v.map(|v| value(f, kind, v)))
                })
                .collect(),
        },
        Op::AddContact(id, c) => Command::AddContact {
            contact_id: contact_id(*id),
            contact: contact(*c),
        },
        Op::RemoveContact(id) => Command::RemoveContact {
            contact_id: contact_id(*id),
        },
        Op::AssignOwner(o) => Command::AssignOwner {
            owner: Text::parse(OWNERS[*o]).unwrap(),
        },
        Op::Archive => Command::Archive,
    }
}

/// The outcome the model predicts for an error case, if any.
fn expected_error(state: &Customer, cmd: &Command) -> Option<DomainError> {
    if let Command::Register { kind, details, .. } = cmd {
        if state.is_registered() {
            return Some(DomainError::AlreadyRegistered);
        }
        if !details.contains_key(&Field::Name) {
            return Some(DomainError::InvalidField {
                field: "name".into(),
                reason: "is required".into(),
            });
        }
        return details
            .keys()
            .find(|f| !f.applies_to(*kind))
            .map(|f| DomainError::InvalidField {
                field: f.as_str().into(),
                reason: format!("does not apply to a {} customer", kind.as_str()),
            });
    }
    let Some(kind) = state.kind else {
        return Some(DomainError::NotRegistered);
    };
    if state.archived {
        return Some(DomainError::Archived);
    }
    match cmd {
        Command::ChangeDetails { changes } => {
            if let Some(f) = changes.keys().find(|f| !f.applies_to(kind)) {
                return Some(DomainError::InvalidField {
                    field: f.as_str().into(),
                    reason: format!("does not apply to a {} customer", kind.as_str()),
                });
            }
            if matches!(changes.get(&Field::Name), Some(None)) {
                return Some(DomainError::InvalidField {
                    field: "name".into(),
                    reason: "cannot be cleared".into(),
                });
            }
            None
        }
        Command::AddContact { contact_id, .. } if state.contacts.contains_key(contact_id) => {
            Some(DomainError::ContactExists(*contact_id))
        }
        Command::RemoveContact { contact_id } if !state.contacts.contains_key(contact_id) => {
            Some(DomainError::ContactNotFound(*contact_id))
        }
        _ => None,
    }
}

/// A ChangeDetails that sets every applicable field to what it holds now.
fn identity_change(state: &Customer) -> Command {
    let kind = state.kind.unwrap();
    let changes = Field::ALL
        .into_iter()
        .filter(|f| f.applies_to(kind) && *f != Field::Name)
        .map(|f| (f, state.details.get(&f).cloned()))
        .chain(std::iter::once((
            Field::Name,
            state.details.get(&Field::Name).cloned(),
        )))
        .collect();
    Command::ChangeDetails { changes }
}

/// Every non-Register command kind, for the "archived rejects everything" check.
fn all_mutations(state: &Customer) -> Vec<Command> {
    let kind = state.kind.unwrap_or(CustomerKind::Person);
    let mut v = vec![
        Command::ChangeDetails {
            changes: BTreeMap::new(),
        },
        Command::ChangeDetails {
            changes: [(Field::Region, Some(value(Field::Region, kind, 0)))].into(),
        },
        Command::ChangeDetails {
            changes: [(Field::Region, None)].into(),
        },
        Command::AddContact {
            contact_id: contact_id(99),
            contact: contact(0),
        },
        Command::RemoveContact {
            contact_id: contact_id(98),
        },
        Command::AssignOwner {
            owner: Text::parse("someone new").unwrap(),
        },
        Command::Archive,
    ];
    if let Some(owner) = &state.owner {
        v.push(Command::AssignOwner {
            owner: Text::parse(owner).unwrap(),
        });
    }
    if let Some(id) = state.contacts.keys().next() {
        v.push(Command::RemoveContact { contact_id: *id });
    }
    v.push(identity_change(state));
    v
}

fn assert_details_hold(
    state: &Customer,
    changes: &BTreeMap<Field, Option<FieldValue>>,
) -> Result<(), TestCaseError> {
    for (f, v) in changes {
        prop_assert_eq!(state.details.get(f), v.as_ref(), "field {}", f);
    }
    Ok(())
}

fn run_sequence(ops: &[Op], start_registered: Option<bool>) -> Result<(), TestCaseError> {
    let mut state = Customer::default();
    let mut log: Vec<Event> = Vec::new();
    if let Some(company) = start_registered {
        let cmd = to_command(
            &Op::Register {
                company,
                with_name: true,
                fields: vec![],
                owner: None,
            },
            &state,
        );
        let evs = decide(&state, cmd).unwrap();
        for e in &evs {
            state = evolve(state, e);
        }
        log.extend(evs);
    }
    for op in ops {
        let cmd = to_command(op, &state);
        let expected = expected_error(&state, &cmd);
        let result = decide(&state, cmd.clone());
        match (&expected, &result) {
            (Some(want), Err(got)) => prop_assert_eq!(want, got, "command {:?}", cmd),
            (Some(want), Ok(evs)) => {
                return Err(TestCaseError::fail(format!(
                    "expected {want:?} for {cmd:?}, got events {evs:?}"
                )))
            }
            (None, Err(got)) => {
                return Err(TestCaseError::fail(format!(
                    "unexpected {got:?} for {cmd:?} on {state:?}"
                )))
            }
            (None, Ok(_)) => {}
        }
        let Ok(events) = result else { continue };
        let before = state.clone();
        for e in &events {
            state = evolve(state, e);
        }
        log.extend(events.iter().cloned());

        match &cmd {
            Command::Register { kind, details, .. } => {
                prop_assert_eq!(events.len(), 1);
                prop_assert_eq!(state.kind, Some(*kind));
                prop_assert_eq!(&state.details, details);
                // Register twice.
                prop_assert_eq!(
                    decide(&state, cmd.clone()),
                    Err(DomainError::AlreadyRegistered)
                );
            }
            Command::ChangeDetails { changes } => {
                assert_details_hold(&state, changes)?;
                // Untouched fields stay as they were.
                for f in Field::ALL {
                    if !changes.contains_key(&f) {
                        prop_assert_eq!(state.details.get(&f), before.details.get(&f));
                    }
                }
                // Events only when something actually changed.
                let differs = changes
                    .iter()
                    .any(|(f, v)| before.details.get(f) != v.as_ref());
                prop_assert_eq!(!events.is_empty(), differs);
                if let [Event::DetailsChanged { changes: fc }] = events.as_slice() {
                    for c in fc {
                        prop_assert_ne!(&c.before, &c.after);
                        prop_assert_eq!(&c.before, &before.details.get(&c.field).cloned());
                    }
                }
                // Repeating it is a no-op.
                prop_assert_eq!(decide(&state, cmd.clone()), Ok(vec![]));
            }
            Command::AssignOwner { owner } => {
                prop_assert_eq!(state.owner.as_deref(), Some(owner.as_str()));
                prop_assert_eq!(
                    events.is_empty(),
                    before.owner.as_deref() == Some(owner.as_str())
                );
                prop_assert_eq!(decide(&state, cmd.clone()), Ok(vec![]));
            }
            Command::AddContact {
                contact_id,
                contact,
            } => {
                prop_assert_eq!(state.contacts.get(contact_id), Some(contact));
            }
            Command::RemoveContact { contact_id } => {
                prop_assert!(!state.contacts.contains_key(contact_id));
                prop_assert_eq!(
                    &events,
                    &vec![Event::ContactRemoved {
                        contact_id: *contact_id,
                        contact: before.contacts[contact_id].clone(),
                    }]
                );
            }
            Command::Archive => {
                prop_assert!(state.archived);
                for c in all_mutations(&state) {
                    prop_assert_eq!(decide(&state, c), Err(DomainError::Archived));
                }
            }
            Command::AddAddress { .. }
            | Command::RemoveAddress { .. }
            | Command::Tag { .. }
            | Command::SetImportance { .. }
            | Command::Record(_)
            | Command::MergeInto { .. }
            | Command::AbsorbDuplicate { .. } => {
                unreachable!("op() does not generate {cmd:?}; tests/facts_props.rs covers it")
            }
        }

        if state.is_registered() && !state.archived {
            prop_assert_eq!(decide(&state, identity_change(&state)), Ok(vec![]));
        }
        // Replaying the log so far gives the incrementally evolved state.
        prop_assert_eq!(&replay(&log), &state);
    }
    prop_assert_eq!(&replay(&log), &state);
    Ok(())
}

#[test]
fn pools_are_valid() {
    for kind in [CustomerKind::Person, CustomerKind::Company] {
        for f in Field::ALL {
            for i in 0..pool(f, kind).len() {
                let _ = value(f, kind, i);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_from_empty(ops in prop::collection::vec(op(), 0..30)) {
        run_sequence(&ops, None)?;
    }

    #[test]
    fn random_sequences_from_registered(
        company in any::<bool>(),
        ops in prop::collection::vec(op(), 0..30),
    ) {
        run_sequence(&ops, Some(company))?;
    }

    #[test]
    fn commands_before_register_are_not_registered(ops in prop::collection::vec(op(), 1..10)) {
        let state = Customer::default();
        for op in ops.iter().filter(|o| !matches!(o, Op::Register { .. })) {
            prop_assert_eq!(decide(&state, to_command(op, &state)), Err(DomainError::NotRegistered));
        }
    }

    #[test]
    fn fields_not_applying_are_invalid(company in any::<bool>(), v in 0..4usize) {
        let kind = if company { CustomerKind::Company } else { CustomerKind::Person };
        let foreign: Vec<Field> = Field::ALL.into_iter().filter(|f| !f.applies_to(kind)).collect();
        prop_assert!(!foreign.is_empty());
        for f in foreign {
            // A value valid for the field on the other kind.
            let other = if company { CustomerKind::Person } else { CustomerKind::Company };
            let fv = value(f, other, v);
            let mut details = BTreeMap::new();
            details.insert(Field::Name, value(Field::Name, kind, v));
            details.insert(f, fv.clone());
            let reg = decide(&Customer::default(), Command::Register {
                kind,
                details,
                owner: None,
                tags: BTreeSet::new(),
            });
            prop_assert!(
                matches!(&reg, Err(DomainError::InvalidField { field, .. }) if field == f.as_str()),
                "register with {}: {:?}", f, reg
            );
            let mut state = Customer::default();
            for e in decide(&state, Command::Register {
                kind,
                details: [(Field::Name, value(Field::Name, kind, v))].into(),
                owner: None,
                tags: BTreeSet::new(),
            }).unwrap() {
                state = evolve(state, &e);
            }
            for after in [Some(fv.clone()), None] {
                let r = decide(&state, Command::ChangeDetails { changes: [(f, after)].into() });
                prop_assert!(
                    matches!(&r, Err(DomainError::InvalidField { field, .. }) if field == f.as_str()),
                    "change of {}: {:?}", f, r
                );
            }
        }
    }
}
