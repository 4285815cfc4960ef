use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use uuid::Uuid;

use crate::values::{
    BankCard, Birthday, CompanyName, CreditCode, Email, NationalId, PersonName, Phone, Text,
    ValueError,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CustomerKind {
    Person,
    Company,
}

impl CustomerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CustomerKind::Person => "person",
            CustomerKind::Company => "company",
        }
    }

    pub fn parse(s: &str) -> Option<CustomerKind> {
        match s {
            "person" => Some(CustomerKind::Person),
            "company" => Some(CustomerKind::Company),
            _ => None,
        }
    }
}

/// The scalar facts of a customer file that this model tracks field by field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Name,
    Gender,
    Birthday,
    MaritalStatus,
    Occupation,
    Phone,
    Email,
    Address,
    NationalId,
    BankCard,
    CreditCode,
    Industry,
    Region,
}

impl Field {
    pub const ALL: [Field; 13] = [
        Field::Name,
        Field::Gender,
        Field::Birthday,
        Field::MaritalStatus,
        Field::Occupation,
        Field::Phone,
        Field::Email,
        Field::Address,
        Field::NationalId,
        Field::BankCard,
        Field::CreditCode,
        Field::Industry,
        Field::Region,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Gender => "gender",
            Field::Birthday => "birthday",
            Field::MaritalStatus => "marital_status",
            Field::Occupation => "occupation",
            Field::Phone => "phone",
            Field::Email => "email",
            Field::Address => "address",
            Field::NationalId => "national_id",
            Field::BankCard => "bank_card",
            Field::CreditCode => "credit_code",
            Field::Industry => "industry",
            Field::Region => "region",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Fields that identify a natural person. They are sealed (encrypted per
    /// customer) wherever they are stored. A company's name is a business fact.
    pub fn is_personal(self, kind: CustomerKind) -> bool {
        match self {
            Field::Name => kind == CustomerKind::Person,
            Field::Gender
            | Field::Birthday
            | Field::MaritalStatus
            | Field::Occupation
            | Field::Phone
            | Field::Email
            | Field::Address
            | Field::NationalId
            | Field::BankCard => true,
            Field::CreditCode | Field::Industry | Field::Region => false,
        }
    }

    /// Whether the field exists for this kind of customer.
    pub fn applies_to(self, kind: CustomerKind) -> bool {
        match self {
            Field::Gender
            | Field::Birthday
            | Field::MaritalStatus
            | Field::Occupation
            | Field::NationalId => kind == CustomerKind::Person,
            Field::CreditCode => kind == CustomerKind::Company,
            _ => true,
        }
    }

    /// Validates and normalises raw input for this field. `today` bounds dates.
    pub fn parse_value(
        self,
        kind: CustomerKind,
        raw: &str,
        today: NaiveDate,
    ) -> Result<FieldValue, ValueError> {
        let s = match self {
            Field::Name => match kind {
                CustomerKind::Person => PersonName::parse(raw)?.as_str().to_owned(),
                CustomerKind::Company => CompanyName::parse(raw)?.as_str().to_owned(),
            },
            Field::Gender => match raw.trim() {
                g @ ("male" | "female" | "other") => g.to_owned(),
                _ => {
                    return Err(ValueError {
                        reason: "gender must be one of male, female, other".into(),
                    })
                }
            },
            Field::MaritalStatus => match raw.trim() {
                m @ ("single" | "married" | "divorced" | "widowed") => m.to_owned(),
                _ => {
                    return Err(ValueError {
                        reason: "marital_status must be one of single, married, divorced, widowed"
                            .into(),
                    })
                }
            },
            Field::Birthday => Birthday::parse(raw, today)?.as_str().to_owned(),
            Field::Phone => Phone::parse(raw)?.as_str().to_owned(),
            Field::Email => Email::parse(raw)?.as_str().to_owned(),
            Field::NationalId => NationalId::parse(raw)?.as_str().to_owned(),
            Field::BankCard => BankCard::parse(raw)?.as_str().to_owned(),
            Field::CreditCode => CreditCode::parse(raw)?.as_str().to_owned(),
            Field::Address => Text::parse_max(raw, 300)?.as_str().to_owned(),
            Field::Occupation | Field::Industry | Field::Region => {
                Text::parse_max(raw, 100)?.as_str().to_owned()
            }
        };
        Ok(FieldValue(s))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated, normalised field value. Built by [`Field::parse_value`], or by
/// [`FieldValue::from_log`] when replaying events that were validated when written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldValue(String);

impl FieldValue {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rehydrates a value from the log. Values are validated once, at entry;
    /// replay must not re-judge history by today's rules.
    pub fn from_log(s: String) -> FieldValue {
        FieldValue(s)
    }
}

/// A named contact person of a customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub name: FieldValue,
    pub role: Option<FieldValue>,
    pub phone: Option<FieldValue>,
    pub email: Option<FieldValue>,
}

impl Contact {
    pub fn new(
        name: PersonName,
        role: Option<Text>,
        phone: Option<Phone>,
        email: Option<Email>,
    ) -> Contact {
        Contact {
            name: FieldValue(name.as_str().to_owned()),
            role: role.map(|r| FieldValue(r.as_str().to_owned())),
            phone: phone.map(|p| FieldValue(p.as_str().to_owned())),
            email: email.map(|e| FieldValue(e.as_str().to_owned())),
        }
    }
}

/// A field-level change: what the field held before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldChange {
    pub field: Field,
    pub before: Option<FieldValue>,
    pub after: Option<FieldValue>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Register {
        kind: CustomerKind,
        details: BTreeMap<Field, FieldValue>,
        owner: Option<Text>,
    },
    /// `None` clears a field.
    ChangeDetails {
        changes: BTreeMap<Field, Option<FieldValue>>,
    },
    AddContact {
        contact_id: Uuid,
        contact: Contact,
    },
    RemoveContact {
        contact_id: Uuid,
    },
    AssignOwner {
        owner: Text,
    },
    Archive,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Registered {
        kind: CustomerKind,
        details: BTreeMap<Field, FieldValue>,
        owner: Option<String>,
    },
    DetailsChanged {
        changes: Vec<FieldChange>,
    },
    ContactAdded {
        contact_id: Uuid,
        contact: Contact,
    },
    ContactRemoved {
        contact_id: Uuid,
        contact: Contact,
    },
    OwnerAssigned {
        before: Option<String>,
        after: String,
    },
    Archived,
}

impl Event {
    /// The stable name stored as `event_type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::Registered { .. } => "CustomerRegistered",
            Event::DetailsChanged { .. } => "CustomerDetailsChanged",
            Event::ContactAdded { .. } => "ContactAdded",
            Event::ContactRemoved { .. } => "ContactRemoved",
            Event::OwnerAssigned { .. } => "OwnerAssigned",
            Event::Archived => "CustomerArchived",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the customer does not exist")]
    NotRegistered,
    #[error("the customer is already registered")]
    AlreadyRegistered,
    #[error("the customer is archived; its file can no longer change")]
    Archived,
    #[error("{field}: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("contact {0} does not exist")]
    ContactNotFound(Uuid),
    #[error("contact {0} already exists")]
    ContactExists(Uuid),
}

fn invalid(field: Field, reason: &str) -> DomainError {
    DomainError::InvalidField {
        field: field.as_str().to_owned(),
        reason: reason.to_owned(),
    }
}

/// The state a decision needs: the current customer file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Customer {
    pub kind: Option<CustomerKind>,
    pub details: BTreeMap<Field, FieldValue>,
    pub contacts: BTreeMap<Uuid, Contact>,
    pub owner: Option<String>,
    pub archived: bool,
}

impl Customer {
    pub fn is_registered(&self) -> bool {
        self.kind.is_some()
    }
}

fn check_fields<'a>(
    kind: CustomerKind,
    fields: impl Iterator<Item = &'a Field>,
) -> Result<(), DomainError> {
    for f in fields {
        if !f.applies_to(kind) {
            return Err(invalid(
                *f,
                &format!("does not apply to a {} customer", kind.as_str()),
            ));
        }
    }
    Ok(())
}

/// Decides which events a command causes. An empty vector means the command
/// changes nothing (and nothing is written).
pub fn decide(state: &Customer, command: Command) -> Result<Vec<Event>, DomainError> {
    if let Command::Register {
        kind,
        details,
        owner,
    } = command
    {
        if state.is_registered() {
            return Err(DomainError::AlreadyRegistered);
        }
        if !details.contains_key(&Field::Name) {
            return Err(invalid(Field::Name, "is required"));
        }
        check_fields(kind, details.keys())?;
        return Ok(vec![Event::Registered {
            kind,
            details,
            owner: owner.map(|o| o.as_str().to_owned()),
        }]);
    }
    let kind = state.kind.ok_or(DomainError::NotRegistered)?;
    if state.archived {
        return Err(DomainError::Archived);
    }
    match command {
        Command::Register { .. } => unreachable!("handled above"),
        Command::ChangeDetails { changes } => {
            check_fields(kind, changes.keys())?;
            if matches!(changes.get(&Field::Name), Some(None)) {
                return Err(invalid(Field::Name, "cannot be cleared"));
            }
            let changes: Vec<FieldChange> = changes
                .into_iter()
                .filter_map(|(field, after)| {
                    let before = state.details.get(&field).cloned();
                    (before != after).then_some(FieldChange {
                        field,
                        before,
                        after,
                    })
                })
                .collect();
            Ok(if changes.is_empty() {
                vec![]
            } else {
                vec![Event::DetailsChanged { changes }]
            })
        }
        Command::AddContact {
            contact_id,
            contact,
        } => {
            if state.contacts.contains_key(&contact_id) {
                return Err(DomainError::ContactExists(contact_id));
            }
            Ok(vec![Event::ContactAdded {
                contact_id,
                contact,
            }])
        }
        Command::RemoveContact { contact_id } => {
            let contact = state
                .contacts
                .get(&contact_id)
                .cloned()
                .ok_or(DomainError::ContactNotFound(contact_id))?;
            Ok(vec![Event::ContactRemoved {
                contact_id,
                contact,
            }])
        }
        Command::AssignOwner { owner } => {
            let after = owner.as_str().to_owned();
            if state.owner.as_deref() == Some(after.as_str()) {
                return Ok(vec![]);
            }
            Ok(vec![Event::OwnerAssigned {
                before: state.owner.clone(),
                after,
            }])
        }
        Command::Archive => Ok(vec![Event::Archived]),
    }
}

/// Applies one event to the state. Total: every event of the log applies.
pub fn evolve(mut state: Customer, event: &Event) -> Customer {
    match event {
        Event::Registered {
            kind,
            details,
            owner,
        } => {
            state.kind = Some(*kind);
            state.details = details.clone();
            state.owner = owner.clone();
        }
        Event::DetailsChanged { changes } => {
            for c in changes {
                match &c.after {
                    Some(v) => {
                        state.details.insert(c.field, v.clone());
                    }
                    None => {
                        state.details.remove(&c.field);
                    }
                }
            }
        }
        Event::ContactAdded {
            contact_id,
            contact,
        } => {
            state.contacts.insert(*contact_id, contact.clone());
        }
        Event::ContactRemoved { contact_id, .. } => {
            state.contacts.remove(contact_id);
        }
        Event::OwnerAssigned { after, .. } => state.owner = Some(after.clone()),
        Event::Archived => state.archived = true,
    }
    state
}

/// Folds a sequence of events into a state.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Customer {
    events.into_iter().fold(Customer::default(), evolve)
}
