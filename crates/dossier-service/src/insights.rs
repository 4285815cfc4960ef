//! Tier, risk, follow-ups, segments and the rules: reading the insight read
//! models, and the two system events that drive them (rule adoption and the
//! daily evaluation run).

use chrono::{NaiveDate, Utc};
use dossier_events::{decode_system, encode_system, rules_sha256, SystemEvent, SYSTEM_STREAM};
use dossier_insights::{business_date, completeness, Completeness, Rules};
use dossier_projections::{FollowUpItem, FollowUpQuery, RiskRow, SegmentQuery, Segments, TierRow};
use dossier_store::{AppendRequest, ExpectedVersion, NewEvent, Principal, Role};
use serde::Serialize;
use uuid::Uuid;

use crate::access::{actor, authorize, Action};
use crate::error::{at_most, invalid, Result, ServiceError};
use crate::Service;

/// The rule set in force, as adopted in the log.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AdoptedRules {
    pub version: String,
    pub sha256: String,
    /// Seq of the RulesAdopted event (None: the built-in defaults, never adopted).
    pub seq: Option<i64>,
    pub text: String,
}

/// What the system stream says now.
#[derive(Clone, Debug, Default)]
struct SystemState {
    version: i64,
    last_date: Option<NaiveDate>,
    rules: Option<AdoptedRules>,
}

/// The follow-up list request as the caller gives it (the query string of
/// `GET /v1/follow-ups`); [`Service::follow_ups`] validates it.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FollowUpInput {
    /// Comma-separated owners (a team); default: the caller.
    #[param(max_length = 1000)]
    pub owner: Option<String>,
    /// Everyone's follow-ups (not with `owner`).
    #[serde(default)]
    pub all: bool,
    /// Only this kind: no_contact, review_due, birthday, complaint_open, payment_overdue, ...
    #[param(max_length = 50)]
    pub kind: Option<String>,
    /// Only follow-ups due on or before this date (YYYY-MM-DD).
    #[param(format = Date)]
    pub due_by: Option<String>,
    /// 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// Tier, risk and completeness of one customer.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Insights {
    pub tier: Option<TierRow>,
    pub risk: Option<RiskRow>,
    #[schema(value_type = crate::CompletenessDoc)]
    pub completeness: Completeness,
}

impl Service {
    async fn system_state(&self) -> Result<SystemState> {
        let mut s = SystemState::default();
        for e in self.store.read_stream(SYSTEM_STREAM, None).await? {
            let r = e.record;
            s.version = r.stream_version;
            let ev = decode_system(&r.event_type, r.schema_version, r.payload)
                .map_err(|e| ServiceError::Internal(format!("system event {}: {e}", r.seq)))?;
            match ev {
                SystemEvent::EvaluationDate { date } => {
                    s.last_date = Some(s.last_date.map_or(date, |d| d.max(date)));
                }
                SystemEvent::RulesAdopted {
                    version,
                    sha256,
                    text,
                } => {
                    s.rules = Some(AdoptedRules {
                        version,
                        sha256,
                        seq: Some(r.seq),
                        text,
                    })
                }
            }
        }
        Ok(s)
    }

    async fn append_system(
        &self,
        caller: &Principal,
        expected: i64,
        event: &SystemEvent,
        reason: &str,
    ) -> Result<i64> {
        let enc = encode_system(event);
        let a = self
            .store
            .append(AppendRequest {
                stream_id: SYSTEM_STREAM,
                expected: if expected == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(expected)
                },
                events: vec![NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: enc.event_type.to_owned(),
                    schema_version: enc.schema_version,
                    effective_at: None,
                    actor: actor(caller),
                    reason: Some(reason.to_owned()),
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                    payload: enc.payload,
                }],
                idempotency: None,
            })
            .await?;
        Ok(a.last_seq)
    }

    /// The rules in force (the built-in defaults until a set is adopted).
    pub async fn rules(&self, caller: &Principal) -> Result<AdoptedRules> {
        authorize(caller, Action::ReadCustomers)?;
        Ok(self.system_state().await?.rules.unwrap_or_else(|| {
            let text = Rules::default_text().to_owned();
            AdoptedRules {
                version: Rules::defaults().version().to_owned(),
                sha256: rules_sha256(&text),
                seq: None,
                text,
            }
        }))
    }

    /// Takes a rule set into force by recording it in the log (admins only).
    /// Returns the seq of the RulesAdopted event, or None when exactly this
    /// text is already in force.
    pub async fn adopt_rules(&self, caller: &Principal, text: &str) -> Result<Option<i64>> {
        if caller.role != Role::Admin {
            return Err(ServiceError::Forbidden {
                role: caller.role,
                action: "adopt rules",
            });
        }
        let rules = Rules::parse(text).map_err(|e| invalid("rules", e.to_string()))?;
        let sha256 = rules_sha256(text);
        for _ in 0..5 {
            let state = self.system_state().await?;
            if let Some(r) = &state.rules {
                if r.sha256 == sha256 {
                    return Ok(None);
                }
                if r.version == rules.version() {
                    return Err(invalid(
                        "rules",
                        format!(
                            "version {} is already in force with different text; give the new rules a new version",
                            r.version
                        ),
                    ));
                }
            }
            let event = SystemEvent::rules_adopted(rules.version(), text);
            match self
                .append_system(caller, state.version, &event, "rules adopted")
                .await
            {
                Err(ServiceError::Conflict { .. }) => continue,
                r => return r.map(Some),
            }
        }
        Err(ServiceError::Unavailable(
            "the system stream is contended".into(),
        ))
    }

    /// Records an evaluation run for `date` (default: today's business date):
    /// every customer is evaluated at that date. A date not after the last
    /// run is a no-op (None); a future date is refused.
    pub async fn evaluate(
        &self,
        caller: &Principal,
        date: Option<NaiveDate>,
    ) -> Result<Option<i64>> {
        if !matches!(caller.role, Role::Admin | Role::Manager) {
            return Err(ServiceError::Forbidden {
                role: caller.role,
                action: "start an evaluation run",
            });
        }
        for _ in 0..5 {
            let state = self.system_state().await?;
            let rules = match &state.rules {
                Some(r) => {
                    Rules::parse(&r.text).map_err(|e| ServiceError::Internal(e.to_string()))?
                }
                None => Rules::defaults(),
            };
            let today = business_date(&rules, Utc::now());
            let date = date.unwrap_or(today);
            if date > today {
                return Err(invalid(
                    "date",
                    format!("must not be after today ({today})"),
                ));
            }
            if state.last_date.is_some_and(|d| d >= date) {
                return Ok(None);
            }
            match self
                .append_system(
                    caller,
                    state.version,
                    &SystemEvent::EvaluationDate { date },
                    "daily evaluation run",
                )
                .await
            {
                Err(ServiceError::Conflict { .. }) => continue,
                r => return r.map(Some),
            }
        }
        Err(ServiceError::Unavailable(
            "the system stream is contended".into(),
        ))
    }

    /// Tier, risk and completeness of one customer.
    pub async fn insights(&self, caller: &Principal, id: Uuid) -> Result<Insights> {
        authorize(caller, Action::ReadCustomers)?;
        let (state, _) = self.load(id, None).await?.ok_or(ServiceError::NotFound)?;
        Ok(Insights {
            tier: dossier_projections::read_tier(&self.store, id).await?,
            risk: dossier_projections::read_risk(&self.store, id).await?,
            completeness: completeness(&state),
        })
    }

    /// When and why the customer's tier, importance or lifecycle changed.
    pub async fn tier_history(&self, caller: &Principal, id: Uuid) -> Result<Vec<TierRow>> {
        authorize(caller, Action::ReadHistory)?;
        self.exists(id).await?;
        Ok(dossier_projections::tier_history(&self.store, id).await?)
    }

    /// When and why the customer's risk level or signals changed.
    pub async fn risk_history(&self, caller: &Principal, id: Uuid) -> Result<Vec<RiskRow>> {
        authorize(caller, Action::ReadHistory)?;
        self.exists(id).await?;
        Ok(dossier_projections::risk_history(&self.store, id).await?)
    }

    async fn exists(&self, id: Uuid) -> Result<()> {
        if self.store.stream_version(id).await? == 0 || id == SYSTEM_STREAM {
            return Err(ServiceError::NotFound);
        }
        Ok(())
    }

    /// Whom to contact: the caller's customers by default, most urgent first.
    pub async fn follow_ups(
        &self,
        caller: &Principal,
        input: FollowUpInput,
    ) -> Result<Vec<FollowUpItem>> {
        authorize(caller, Action::ReadCustomers)?;
        let limit = input.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(invalid("limit", "must be 1 to 500"));
        }
        let offset = input.offset.unwrap_or(0);
        if offset < 0 {
            return Err(invalid("offset", "must not be negative"));
        }
        at_most("owner", &input.owner, 1000)?;
        at_most("kind", &input.kind, 50)?;
        let due_by = input
            .due_by
            .as_deref()
            .map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| invalid("due_by", "must be a date written YYYY-MM-DD"))
            })
            .transpose()?;
        let named: Vec<String> = input
            .owner
            .iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if input.all && !named.is_empty() {
            return Err(invalid("owner", "give owner or all, not both"));
        }
        let owners = if input.all {
            Vec::new()
        } else if named.is_empty() {
            vec![caller.name.clone()]
        } else {
            named
        };
        Ok(dossier_projections::follow_ups(
            &self.store,
            &FollowUpQuery {
                owners,
                kind: input.kind,
                due_by,
                limit,
                offset,
            },
        )
        .await?)
    }

    /// Counts by tier × risk, lifecycle and importance for dashboards.
    pub async fn segments(&self, caller: &Principal, q: SegmentQuery) -> Result<Segments> {
        authorize(caller, Action::ReadCustomers)?;
        at_most("owner", &q.owner, 100)?;
        at_most("region", &q.region, 100)?;
        at_most("industry", &q.industry, 100)?;
        Ok(dossier_projections::segments(&self.store, &q).await?)
    }

    /// Adopts `text` as the rules if it is not already in force, acting as
    /// the service principal. Used by `serve` at start.
    pub async fn adopt_rules_as_service(&self, text: &str) -> Result<Option<i64>> {
        let p = self.service_principal().await?;
        self.adopt_rules(&p, text).await
    }

    /// Records today's evaluation run if not yet done, as the service principal.
    pub async fn evaluate_as_service(&self) -> Result<Option<i64>> {
        let p = self.service_principal().await?;
        self.evaluate(&p, None).await
    }

    async fn service_principal(&self) -> Result<Principal> {
        Ok(self
            .store
            .service_principal(SERVICE_PRINCIPAL, Role::Admin)
            .await?)
    }
}

/// The principal the service acts as for rule adoption and evaluation runs.
pub const SERVICE_PRINCIPAL: &str = "dossier-scheduler";
