use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::NaiveDate;
use uuid::Uuid;

use crate::classes::{
    Channel, CompanySize, CreditRating, Importance, Intent, LegalStatus, Outcome, Strength,
};
use crate::values::{
    BankCard, Birthday, CompanyName, CreditCode, Email, Money, NationalId, PersonName, Phone, Text,
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
    CompanySize,
    RegisteredCapital,
    BusinessFocus,
    IndustryStanding,
    DistributionCapability,
    FinancialStrength,
    Reputation,
    CooperationIntent,
    Preferences,
    Interests,
    Assets,
}

impl Field {
    pub const ALL: [Field; 24] = [
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
        Field::CompanySize,
        Field::RegisteredCapital,
        Field::BusinessFocus,
        Field::IndustryStanding,
        Field::DistributionCapability,
        Field::FinancialStrength,
        Field::Reputation,
        Field::CooperationIntent,
        Field::Preferences,
        Field::Interests,
        Field::Assets,
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
            Field::CompanySize => "company_size",
            Field::RegisteredCapital => "registered_capital",
            Field::BusinessFocus => "business_focus",
            Field::IndustryStanding => "industry_standing",
            Field::DistributionCapability => "distribution_capability",
            Field::FinancialStrength => "financial_strength",
            Field::Reputation => "reputation",
            Field::CooperationIntent => "cooperation_intent",
            Field::Preferences => "preferences",
            Field::Interests => "interests",
            Field::Assets => "assets",
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
            | Field::BankCard
            | Field::Assets => true,
            // Tastes and interests describe a person; a company's are business facts.
            Field::Preferences | Field::Interests => kind == CustomerKind::Person,
            Field::CreditCode
            | Field::Industry
            | Field::Region
            | Field::CompanySize
            | Field::RegisteredCapital
            | Field::BusinessFocus
            | Field::IndustryStanding
            | Field::DistributionCapability
            | Field::FinancialStrength
            | Field::Reputation
            | Field::CooperationIntent => false,
        }
    }

    /// Whether the field exists for this kind of customer.
    pub fn applies_to(self, kind: CustomerKind) -> bool {
        match self {
            Field::Gender
            | Field::Birthday
            | Field::MaritalStatus
            | Field::Occupation
            | Field::NationalId
            | Field::Assets => kind == CustomerKind::Person,
            Field::CreditCode
            | Field::CompanySize
            | Field::RegisteredCapital
            | Field::IndustryStanding
            | Field::DistributionCapability => kind == CustomerKind::Company,
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
            Field::BusinessFocus | Field::Preferences | Field::Interests | Field::Assets => {
                Text::parse_max(raw, 500)?.as_str().to_owned()
            }
            Field::CompanySize => one_of::<CompanySize>(self, raw)?,
            Field::IndustryStanding
            | Field::DistributionCapability
            | Field::FinancialStrength
            | Field::Reputation => one_of::<Strength>(self, raw)?,
            Field::CooperationIntent => one_of::<Intent>(self, raw)?,
            Field::RegisteredCapital => {
                let (amount, currency) = raw.trim().split_once(' ').ok_or_else(|| ValueError {
                    reason:
                        "registered_capital is written as amount and currency, like \"5000000 CNY\""
                            .into(),
                })?;
                let m = Money::parse(amount, currency)?;
                if m.is_negative() {
                    return Err(ValueError {
                        reason: "registered_capital must not be negative".into(),
                    });
                }
                m.to_string()
            }
        };
        Ok(FieldValue(s))
    }
}

/// A vocabulary type [`Field::parse_value`] checks a raw value against.
trait Vocabulary: Sized {
    fn parse_name(s: &str) -> Option<Self>;
    fn all_names() -> String;
}

macro_rules! vocab_impl {
    ($($t:ty),*) => {$(
        impl Vocabulary for $t {
            fn parse_name(s: &str) -> Option<Self> { <$t>::parse(s) }
            fn all_names() -> String { <$t>::names() }
        }
    )*};
}
vocab_impl!(CompanySize, Strength, Intent);

fn one_of<V: Vocabulary>(field: Field, raw: &str) -> Result<String, ValueError> {
    let s = raw.trim();
    match V::parse_name(s) {
        Some(_) => Ok(s.to_owned()),
        None => Err(ValueError {
            reason: format!("{field} must be one of {}", V::all_names()),
        }),
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

/// A postal address of a customer, one of several.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// What the address is for: "registered office", "warehouse", "home".
    pub label: Option<String>,
    pub text: FieldValue,
}

/// A receivable as decisions need it: what was invoiced and what is paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receivable {
    pub amount: Money,
    pub paid: Money,
    pub due_on: NaiveDate,
}

impl Receivable {
    pub fn is_settled(&self) -> bool {
        self.amount.minus(&self.paid).minor_units() <= 0
    }
}

/// The commercial facts a command records. Identifiers are chosen by the
/// caller (the service uses UUIDv7) so that a retried command is recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    Order {
        order_id: Uuid,
        product: Text,
        amount: Money,
        ordered_on: NaiveDate,
    },
    Invoice {
        invoice_id: Uuid,
        order_id: Option<Uuid>,
        amount: Money,
        issued_on: NaiveDate,
        due_on: NaiveDate,
    },
    Payment {
        payment_id: Uuid,
        /// `None`: applied to the oldest open receivables in that currency.
        invoice_id: Option<Uuid>,
        amount: Money,
        received_on: NaiveDate,
    },
    Credit {
        rating: Option<CreditRating>,
        limit: Option<Money>,
    },
    Legal {
        status: LegalStatus,
        since: NaiveDate,
    },
    Interaction {
        interaction_id: Uuid,
        channel: Channel,
        outcome: Outcome,
        occurred_on: NaiveDate,
        summary: Option<Text>,
    },
    ComplaintOpened {
        complaint_id: Uuid,
        category: Text,
        summary: Text,
        opened_on: NaiveDate,
    },
    ComplaintResolved {
        complaint_id: Uuid,
        resolution: Text,
        resolved_on: NaiveDate,
    },
    Feedback {
        feedback_id: Uuid,
        /// 1 (very unhappy) to 5 (very happy).
        satisfaction: u8,
        comment: Option<Text>,
        received_on: NaiveDate,
    },
    Review {
        reviewed_on: NaiveDate,
        summary: Option<Text>,
    },
    Consent {
        purpose: Text,
        granted: bool,
        on: NaiveDate,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Register {
        kind: CustomerKind,
        details: BTreeMap<Field, FieldValue>,
        owner: Option<Text>,
        tags: BTreeSet<Text>,
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
    AddAddress {
        address_id: Uuid,
        label: Option<Text>,
        text: FieldValue,
    },
    RemoveAddress {
        address_id: Uuid,
    },
    AssignOwner {
        owner: Text,
    },
    /// Adds and removes tags; adding a present or removing an absent tag is a no-op.
    Tag {
        add: BTreeSet<Text>,
        remove: BTreeSet<Text>,
    },
    /// Manual importance override; `None` returns the customer to the rules.
    SetImportance {
        importance: Option<Importance>,
    },
    Record(Fact),
    /// Marks this customer as a duplicate of `survivor` and closes its file.
    MergeInto {
        survivor: Uuid,
    },
    /// Records on the surviving file that `duplicate` was merged into it.
    AbsorbDuplicate {
        duplicate: Uuid,
    },
    Archive,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Registered {
        kind: CustomerKind,
        details: BTreeMap<Field, FieldValue>,
        owner: Option<String>,
        /// Sorted, distinct.
        tags: Vec<String>,
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
    AddressAdded {
        address_id: Uuid,
        address: Address,
    },
    AddressRemoved {
        address_id: Uuid,
        address: Address,
    },
    OwnerAssigned {
        before: Option<String>,
        after: String,
    },
    TagsChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    ImportanceSet {
        before: Option<Importance>,
        after: Option<Importance>,
    },
    OrderPlaced {
        order_id: Uuid,
        product: String,
        amount: Money,
        ordered_on: NaiveDate,
    },
    InvoiceIssued {
        invoice_id: Uuid,
        order_id: Option<Uuid>,
        amount: Money,
        issued_on: NaiveDate,
        due_on: NaiveDate,
    },
    PaymentReceived {
        payment_id: Uuid,
        invoice_id: Option<Uuid>,
        amount: Money,
        received_on: NaiveDate,
    },
    CreditChanged {
        rating_before: Option<CreditRating>,
        rating_after: Option<CreditRating>,
        limit_before: Option<Money>,
        limit_after: Option<Money>,
    },
    LegalStatusChanged {
        before: LegalStatus,
        after: LegalStatus,
        since: NaiveDate,
    },
    InteractionLogged {
        interaction_id: Uuid,
        channel: Channel,
        outcome: Outcome,
        occurred_on: NaiveDate,
        summary: Option<String>,
    },
    ComplaintOpened {
        complaint_id: Uuid,
        category: String,
        summary: String,
        opened_on: NaiveDate,
    },
    ComplaintResolved {
        complaint_id: Uuid,
        resolution: String,
        resolved_on: NaiveDate,
    },
    FeedbackRecorded {
        feedback_id: Uuid,
        satisfaction: u8,
        comment: Option<String>,
        received_on: NaiveDate,
    },
    ReviewCompleted {
        reviewed_on: NaiveDate,
        summary: Option<String>,
    },
    ConsentRecorded {
        purpose: String,
        granted: bool,
        on: NaiveDate,
    },
    MergedInto {
        survivor: Uuid,
    },
    DuplicateMerged {
        duplicate: Uuid,
    },
    Archived,
}

impl Event {
    /// Every stored event type name, in the order docs/events.md lists them.
    pub const TYPES: [&'static str; 23] = [
        "CustomerRegistered",
        "CustomerDetailsChanged",
        "ContactAdded",
        "ContactRemoved",
        "AddressAdded",
        "AddressRemoved",
        "OwnerAssigned",
        "TagsChanged",
        "ImportanceSet",
        "OrderPlaced",
        "InvoiceIssued",
        "PaymentReceived",
        "CreditChanged",
        "LegalStatusChanged",
        "InteractionLogged",
        "ComplaintOpened",
        "ComplaintResolved",
        "FeedbackRecorded",
        "ReviewCompleted",
        "ConsentRecorded",
        "MergedInto",
        "DuplicateMerged",
        "CustomerArchived",
    ];

    /// The stable name stored as `event_type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::Registered { .. } => "CustomerRegistered",
            Event::DetailsChanged { .. } => "CustomerDetailsChanged",
            Event::ContactAdded { .. } => "ContactAdded",
            Event::ContactRemoved { .. } => "ContactRemoved",
            Event::AddressAdded { .. } => "AddressAdded",
            Event::AddressRemoved { .. } => "AddressRemoved",
            Event::OwnerAssigned { .. } => "OwnerAssigned",
            Event::TagsChanged { .. } => "TagsChanged",
            Event::ImportanceSet { .. } => "ImportanceSet",
            Event::OrderPlaced { .. } => "OrderPlaced",
            Event::InvoiceIssued { .. } => "InvoiceIssued",
            Event::PaymentReceived { .. } => "PaymentReceived",
            Event::CreditChanged { .. } => "CreditChanged",
            Event::LegalStatusChanged { .. } => "LegalStatusChanged",
            Event::InteractionLogged { .. } => "InteractionLogged",
            Event::ComplaintOpened { .. } => "ComplaintOpened",
            Event::ComplaintResolved { .. } => "ComplaintResolved",
            Event::FeedbackRecorded { .. } => "FeedbackRecorded",
            Event::ReviewCompleted { .. } => "ReviewCompleted",
            Event::ConsentRecorded { .. } => "ConsentRecorded",
            Event::MergedInto { .. } => "MergedInto",
            Event::DuplicateMerged { .. } => "DuplicateMerged",
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
    #[error("address {0} does not exist")]
    AddressNotFound(Uuid),
    #[error("{0} {1} is already recorded")]
    AlreadyRecorded(&'static str, Uuid),
    #[error("invoice {0} does not exist")]
    InvoiceNotFound(Uuid),
    #[error("complaint {0} does not exist or is already resolved")]
    ComplaintNotOpen(Uuid),
}

fn invalid(field: Field, reason: &str) -> DomainError {
    invalid_at(field.as_str(), reason)
}

fn invalid_at(field: &str, reason: &str) -> DomainError {
    DomainError::InvalidField {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The state a decision needs: the current customer file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Customer {
    pub kind: Option<CustomerKind>,
    pub details: BTreeMap<Field, FieldValue>,
    pub contacts: BTreeMap<Uuid, Contact>,
    pub addresses: BTreeMap<Uuid, Address>,
    pub owner: Option<String>,
    pub tags: BTreeSet<String>,
    pub importance: Option<Importance>,
    pub orders: BTreeSet<Uuid>,
    pub receivables: BTreeMap<Uuid, Receivable>,
    /// Money received beyond what was owed (an overpayment, or a payment
    /// with nothing open), by currency: an advance that settles the next
    /// invoices in that currency as they are issued. Never zero or negative.
    pub prepaid: BTreeMap<String, Money>,
    pub payments: BTreeSet<Uuid>,
    pub credit_rating: Option<CreditRating>,
    pub credit_limit: Option<Money>,
    pub legal_status: Option<LegalStatus>,
    pub interactions: BTreeSet<Uuid>,
    /// Complaint id -> still open.
    pub complaints: BTreeMap<Uuid, bool>,
    pub feedback: BTreeSet<Uuid>,
    pub last_review: Option<NaiveDate>,
    /// Purpose -> granted.
    pub consents: BTreeMap<String, bool>,
    pub merged_into: Option<Uuid>,
    /// Duplicates merged into this file.
    pub absorbed: BTreeSet<Uuid>,
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

fn positive(at: &str, m: &Money) -> Result<(), DomainError> {
    if m.is_negative() || m.minor_units() == 0 {
        return Err(invalid_at(at, "must be greater than zero"));
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
        tags,
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
            tags: tags.iter().map(|t| t.as_str().to_owned()).collect(),
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
        Command::AddAddress {
            address_id,
            label,
            text,
        } => {
            if state.addresses.contains_key(&address_id) {
                return Err(DomainError::AlreadyRecorded("address", address_id));
            }
            Ok(vec![Event::AddressAdded {
                address_id,
                address: Address {
                    label: label.map(|l| l.as_str().to_owned()),
                    text,
                },
            }])
        }
        Command::RemoveAddress { address_id } => {
            let address = state
                .addresses
                .get(&address_id)
                .cloned()
                .ok_or(DomainError::AddressNotFound(address_id))?;
            Ok(vec![Event::AddressRemoved {
                address_id,
                address,
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
        Command::Tag { add, remove } => {
            if let Some(t) = add.intersection(&remove).next() {
                return Err(invalid_at(
                    "tags",
                    &format!("{} is both added and removed", t.as_str()),
                ));
            }
            let added: Vec<String> = add
                .iter()
                .map(|t| t.as_str().to_owned())
                .filter(|t| !state.tags.contains(t))
                .collect();
            let removed: Vec<String> = remove
                .iter()
                .map(|t| t.as_str().to_owned())
                .filter(|t| state.tags.contains(t))
                .collect();
            Ok(if added.is_empty() && removed.is_empty() {
                vec![]
            } else {
                vec![Event::TagsChanged { added, removed }]
            })
        }
        Command::SetImportance { importance } => Ok(if state.importance == importance {
            vec![]
        } else {
            vec![Event::ImportanceSet {
                before: state.importance,
                after: importance,
            }]
        }),
        Command::Record(fact) => decide_fact(state, fact),
        Command::MergeInto { survivor } => {
            if state.merged_into.is_some() {
                return Err(DomainError::Archived);
            }
            Ok(vec![Event::MergedInto { survivor }, Event::Archived])
        }
        Command::AbsorbDuplicate { duplicate } => Ok(if state.absorbed.contains(&duplicate) {
            vec![]
        } else {
            vec![Event::DuplicateMerged { duplicate }]
        }),
        Command::Archive => Ok(vec![Event::Archived]),
    }
}

fn decide_fact(state: &Customer, fact: Fact) -> Result<Vec<Event>, DomainError> {
    let event = match fact {
        Fact::Order {
            order_id,
            product,
            amount,
            ordered_on,
        } => {
            if state.orders.contains(&order_id) {
                return Err(DomainError::AlreadyRecorded("order", order_id));
            }
            positive("amount", &amount)?;
            Event::OrderPlaced {
                order_id,
                product: product.as_str().to_owned(),
                amount,
                ordered_on,
            }
        }
        Fact::Invoice {
            invoice_id,
            order_id,
            amount,
            issued_on,
            due_on,
        } => {
            if state.receivables.contains_key(&invoice_id) {
                return Err(DomainError::AlreadyRecorded("invoice", invoice_id));
            }
            positive("amount", &amount)?;
            if due_on < issued_on {
                return Err(invalid_at("due_on", "must not be before issued_on"));
            }
            if let Some(o) = order_id {
                if !state.orders.contains(&o) {
                    return Err(invalid_at("order_id", "no such order of this customer"));
                }
            }
            Event::InvoiceIssued {
                invoice_id,
                order_id,
                amount,
                issued_on,
                due_on,
            }
        }
        Fact::Payment {
            payment_id,
            invoice_id,
            amount,
            received_on,
        } => {
            if state.payments.contains(&payment_id) {
                return Err(DomainError::AlreadyRecorded("payment", payment_id));
            }
            positive("amount", &amount)?;
            if let Some(i) = invoice_id {
                let r = state
                    .receivables
                    .get(&i)
                    .ok_or(DomainError::InvoiceNotFound(i))?;
                if r.amount.currency() != amount.currency() {
                    return Err(invalid_at(
                        "amount",
                        &format!("the invoice is in {}", r.amount.currency()),
                    ));
                }
            }
            Event::PaymentReceived {
                payment_id,
                invoice_id,
                amount,
                received_on,
            }
        }
        Fact::Credit { rating, limit } => {
            if let Some(l) = &limit {
                if l.is_negative() {
                    return Err(invalid_at("limit", "must not be negative"));
                }
            }
            if rating == state.credit_rating && limit == state.credit_limit {
                return Ok(vec![]);
            }
            Event::CreditChanged {
                rating_before: state.credit_rating,
                rating_after: rating,
                limit_before: state.credit_limit.clone(),
                limit_after: limit,
            }
        }
        Fact::Legal { status, since } => {
            let before = state.legal_status.unwrap_or(LegalStatus::Normal);
            if before == status {
                return Ok(vec![]);
            }
            Event::LegalStatusChanged {
                before,
                after: status,
                since,
            }
        }
        Fact::Interaction {
            interaction_id,
            channel,
            outcome,
            occurred_on,
            summary,
        } => {
            if state.interactions.contains(&interaction_id) {
                return Err(DomainError::AlreadyRecorded("interaction", interaction_id));
            }
            Event::InteractionLogged {
                interaction_id,
                channel,
                outcome,
                occurred_on,
                summary: summary.map(|s| s.as_str().to_owned()),
            }
        }
        Fact::ComplaintOpened {
            complaint_id,
            category,
            summary,
            opened_on,
        } => {
            if state.complaints.contains_key(&complaint_id) {
                return Err(DomainError::AlreadyRecorded("complaint", complaint_id));
            }
            Event::ComplaintOpened {
                complaint_id,
                category: category.as_str().to_owned(),
                summary: summary.as_str().to_owned(),
                opened_on,
            }
        }
        Fact::ComplaintResolved {
            complaint_id,
            resolution,
            resolved_on,
        } => {
            if state.complaints.get(&complaint_id) != Some(&true) {
                return Err(DomainError::ComplaintNotOpen(complaint_id));
            }
            Event::ComplaintResolved {
                complaint_id,
                resolution: resolution.as_str().to_owned(),
                resolved_on,
            }
        }
        Fact::Feedback {
            feedback_id,
            satisfaction,
            comment,
            received_on,
        } => {
            if state.feedback.contains(&feedback_id) {
                return Err(DomainError::AlreadyRecorded("feedback", feedback_id));
            }
            if !(1..=5).contains(&satisfaction) {
                return Err(invalid_at("satisfaction", "must be 1 to 5"));
            }
            Event::FeedbackRecorded {
                feedback_id,
                satisfaction,
                comment: comment.map(|c| c.as_str().to_owned()),
                received_on,
            }
        }
        Fact::Review {
            reviewed_on,
            summary,
        } => Event::ReviewCompleted {
            reviewed_on,
            summary: summary.map(|s| s.as_str().to_owned()),
        },
        Fact::Consent {
            purpose,
            granted,
            on,
        } => {
            if state.consents.get(purpose.as_str()) == Some(&granted) {
                return Ok(vec![]);
            }
            Event::ConsentRecorded {
                purpose: purpose.as_str().to_owned(),
                granted,
                on,
            }
        }
    };
    Ok(vec![event])
}

/// Applies a payment to receivables: to its invoice (up to what it still
/// owes), or else to the open receivables in its currency, oldest due date
/// first. Returns what is left over (zero if all of it was owed).
fn apply_payment(
    receivables: &mut BTreeMap<Uuid, Receivable>,
    invoice: Option<Uuid>,
    amount: &Money,
) -> Money {
    let mut open: Vec<(NaiveDate, Uuid)> = match invoice {
        // `decide` accepts only the customer's own invoices in their currency.
        Some(id) => receivables
            .get(&id)
            .filter(|r| r.amount.currency() == amount.currency())
            .map(|r| vec![(r.due_on, id)])
            .unwrap_or_default(),
        None => receivables
            .iter()
            .filter(|(_, r)| !r.is_settled() && r.amount.currency() == amount.currency())
            .map(|(id, r)| (r.due_on, *id))
            .collect(),
    };
    open.sort();
    let mut left = amount.clone();
    for (_, id) in open {
        if left.minor_units() <= 0 {
            break;
        }
        let r = receivables.get_mut(&id).expect("listed above");
        let owed = outstanding(r);
        let take = if left.at_least(&owed) {
            owed
        } else {
            left.clone()
        };
        if let Some(p) = r.paid.checked_add(&take) {
            r.paid = p;
        }
        left = left.minus(&take);
    }
    left
}

/// Adds `amount` (positive) to the prepaid balance in its currency.
fn add_prepaid(prepaid: &mut BTreeMap<String, Money>, amount: Money) {
    let currency = amount.currency().to_owned();
    let sum = match prepaid.get(&currency) {
        Some(b) => b.checked_add(&amount).unwrap_or_else(|| b.clone()),
        None => amount,
    };
    prepaid.insert(currency, sum);
}

/// Settles a new receivable from the prepaid balance in its currency, as
/// far as that goes.
fn settle_from_prepaid(prepaid: &mut BTreeMap<String, Money>, r: &mut Receivable) {
    let Some(balance) = prepaid.remove(r.amount.currency()) else {
        return;
    };
    let take = if balance.at_least(&r.amount) {
        r.amount.clone()
    } else {
        balance.clone()
    };
    r.paid = take.clone();
    let rest = balance.minus(&take);
    if rest.minor_units() > 0 {
        prepaid.insert(rest.currency().to_owned(), rest);
    }
}

/// Applies one event to the state. Total: every event of the log applies.
pub fn evolve(mut state: Customer, event: &Event) -> Customer {
    match event {
        Event::Registered {
            kind,
            details,
            owner,
            tags,
        } => {
            state.kind = Some(*kind);
            state.details = details.clone();
            state.owner = owner.clone();
            state.tags = tags.iter().cloned().collect();
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
        Event::AddressAdded {
            address_id,
            address,
        } => {
            state.addresses.insert(*address_id, address.clone());
        }
        Event::AddressRemoved { address_id, .. } => {
            state.addresses.remove(address_id);
        }
        Event::OwnerAssigned { after, .. } => state.owner = Some(after.clone()),
        Event::TagsChanged { added, removed } => {
            state.tags.extend(added.iter().cloned());
            for t in removed {
                state.tags.remove(t);
            }
        }
        Event::ImportanceSet { after, .. } => state.importance = *after,
        Event::OrderPlaced { order_id, .. } => {
            state.orders.insert(*order_id);
        }
        Event::InvoiceIssued {
            invoice_id,
            amount,
            due_on,
            ..
        } => {
            let mut r = Receivable {
                amount: amount.clone(),
                paid: Money::zero(amount.currency()),
                due_on: *due_on,
            };
            settle_from_prepaid(&mut state.prepaid, &mut r);
            state.receivables.insert(*invoice_id, r);
        }
        Event::PaymentReceived {
            payment_id,
            invoice_id,
            amount,
            ..
        } => {
            state.payments.insert(*payment_id);
            let left = apply_payment(&mut state.receivables, *invoice_id, amount);
            if left.minor_units() > 0 {
                add_prepaid(&mut state.prepaid, left);
            }
        }
        Event::CreditChanged {
            rating_after,
            limit_after,
            ..
        } => {
            state.credit_rating = *rating_after;
            state.credit_limit = limit_after.clone();
        }
        Event::LegalStatusChanged { after, .. } => state.legal_status = Some(*after),
        Event::InteractionLogged { interaction_id, .. } => {
            state.interactions.insert(*interaction_id);
        }
        Event::ComplaintOpened { complaint_id, .. } => {
            state.complaints.insert(*complaint_id, true);
        }
        Event::ComplaintResolved { complaint_id, .. } => {
            state.complaints.insert(*complaint_id, false);
        }
        Event::FeedbackRecorded { feedback_id, .. } => {
            state.feedback.insert(*feedback_id);
        }
        Event::ReviewCompleted { reviewed_on, .. } => {
            state.last_review = Some(
                state
                    .last_review
                    .map_or(*reviewed_on, |d| d.max(*reviewed_on)),
            );
        }
        Event::ConsentRecorded {
            purpose, granted, ..
        } => {
            state.consents.insert(purpose.clone(), *granted);
        }
        Event::MergedInto { survivor } => state.merged_into = Some(*survivor),
        Event::DuplicateMerged { duplicate } => {
            state.absorbed.insert(*duplicate);
        }
        Event::Archived => state.archived = true,
    }
    state
}

/// Folds a sequence of events into a state.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Customer {
    events.into_iter().fold(Customer::default(), evolve)
}

/// Settles a receivable's payments: the amount still owed (never negative).
pub fn outstanding(r: &Receivable) -> Money {
    let left = r.amount.minus(&r.paid);
    if left.is_negative() {
        Money::zero(r.amount.currency())
    } else {
        left
    }
}
