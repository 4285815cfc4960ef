//! `customer_current` against a real database: incremental projection equals
//! a full rebuild, checkpoints track the head, redelivery is harmless, two
//! runners never double-apply, and rows agree with as-of reads of the log.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use dossier_projections::{
    catch_up, read_current, reset, search_terms, status, step, CustomerCurrent,
};
use dossier_service::{ChangeInput, ContactInput, ReadAt, RegisterInput, Service, WriteMeta};
use dossier_store::{Keyring, Principal, Role, Store};
use dossier_testkit::TestDb;
use uuid::Uuid;

use common::{Base, Lcg};

const NAME: &str = "customer_current";

fn pool(field: &str, company: bool) -> &'static [&'static str] {
    match field {
        "name" if company => &["ACME Ltd", "华为技术有限公司", "Example Co"],
        "name" => &["张三", "Li Si", "Zhang San"],
        "gender" => &["male", "female", "other"],
        "birthday" => &["1990-01-15", "1985-12-31"],
        "marital_status" => &["single", "married", "divorced", "widowed"],
        "occupation" => &["engineer", "teacher", "数据分析师"],
        "phone" => &["13812345678", "19912345678", "010-12345678"],
        "email" => &["a@b.co", "Zhang.San@Example.COM", "li@mail.example.com.cn"],
        "address" => &["1 Main St", "北京市朝阳区建国路 1 号"],
        "national_id" => &["11010519491231002X"],
        "bank_card" => &["4111111111111111", "5555 5555 5555 4444"],
        "credit_code" => &["91350100M000100Y43", "10000000000000000Y"],
        "industry" => &["retail", "finance"],
        "region" => &["north", "east", "华南"],
        other => panic!("no pool for {other}"),
    }
}

const PERSON_FIELDS: &[&str] = &[
    "gender",
    "birthday",
    "marital_status",
    "occupation",
    "phone",
    "email",
    "address",
    "national_id",
    "bank_card",
    "industry",
    "region",
];
const COMPANY_FIELDS: &[&str] = &[
    "phone",
    "email",
    "address",
    "bank_card",
    "credit_code",
    "industry",
    "region",
];

fn fields(company: bool) -> &'static [&'static str] {
    if company {
        COMPANY_FIELDS
    } else {
        PERSON_FIELDS
    }
}

struct Tracked {
    id: Uuid,
    company: bool,
    version: i64,
    contacts: Vec<Uuid>,
    archived: bool,
}

struct World {
    _db: TestDb,
    store: Store,
    keyring: Keyring,
    service: Service,
    caller: Principal,
    customers: Vec<Tracked>,
}

impl World {
    async fn new() -> anyhow::Result<World> {
        let b = Base::new(Role::Sales).await?;
        Ok(World {
            _db: b.db,
            store: b.store,
            keyring: b.keyring,
            service: b.service,
            caller: b.principal,
            customers: Vec::new(),
        })
    }

    fn projection(&self) -> CustomerCurrent {
        CustomerCurrent::new(self.store.clone(), self.keyring.clone())
    }

    async fn register(&mut self, rng: &mut Lcg) -> anyhow::Result<()> {
        let company = rng.chance(40);
        let mut details = BTreeMap::new();
        details.insert(
            "name".to_owned(),
            rng.pick(pool("name", company)).to_owned(),
        );
        for f in fields(company) {
            if rng.chance(50) {
                details.insert((*f).to_owned(), rng.pick(pool(f, company)).to_owned());
            }
        }
        let owner = rng
            .chance(50)
            .then(|| rng.pick(&["alice", "bob"]).to_owned());
        let out = self
            .service
            .register(
                &self.caller,
                RegisterInput {
                    kind: if company { "company" } else { "person" }.to_owned(),
                    details,
                    owner,
                    // Random details may repeat a phone number.
                    force: true,
                    ..Default::default()
                },
                WriteMeta {
                    reason: Some("property test".into()),
                    ..WriteMeta::default()
                },
            )
            .await?;
        self.customers.push(Tracked {
            id: out.customer_id,
            company,
            version: out.version,
            contacts: Vec::new(),
            archived: false,
        });
        Ok(())
    }

    /// A random PATCH of a random live customer (may be a no-op).
    async fn change(&mut self, rng: &mut Lcg) -> anyhow::Result<()> {
        let live: Vec<usize> = (0..self.customers.len())
            .filter(|&i| !self.customers[i].archived)
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let i = live[rng.below(live.len())];
        let c = &self.customers[i];
        let mut input = ChangeInput::default();
        for _ in 0..rng.below(4) {
            let f = if rng.chance(15) {
                "name"
            } else {
                rng.pick(fields(c.company))
            };
            let v = if f != "name" && rng.chance(25) {
                None
            } else {
                Some(rng.pick(pool(f, c.company)).to_owned())
            };
            input.details.insert(f.to_owned(), v);
        }
        if rng.chance(25) {
            input.owner = Some(rng.pick(&["alice", "bob", "carol"]).to_owned());
        }
        if rng.chance(25) {
            input.add_contacts.push(ContactInput {
                name: rng.pick(&["赵六", "Carol"]).to_owned(),
                role: rng.chance(50).then(|| "buyer".to_owned()),
                phone: rng.chance(50).then(|| "13812345678".to_owned()),
                email: rng.chance(50).then(|| "c@example.com".to_owned()),
            });
        }
        if !c.contacts.is_empty() && rng.chance(20) {
            input
                .remove_contacts
                .push(c.contacts[rng.below(c.contacts.len())]);
        }
        let archive = rng.chance(5);
        input.archive = archive;
        if input.details.is_empty()
            && input.owner.is_none()
            && input.add_contacts.is_empty()
            && input.remove_contacts.is_empty()
            && !archive
        {
            input.owner = Some("dana".to_owned());
        }
        let removed = input.remove_contacts.clone();
        let out = self
            .service
            .change(
                &self.caller,
                c.id,
                c.version,
                input,
                WriteMeta {
                    reason: Some("test change".into()),
                    ..WriteMeta::default()
                },
            )
            .await?;
        let c = &mut self.customers[i];
        c.version = out.version;
        c.archived |= archive;
        c.contacts.retain(|id| !removed.contains(id));
        // Learn ids of added contacts from the log-derived state.
        let snap = self
            .service
            .read(&self.caller, c.id, ReadAt::Seq(i64::MAX))
            .await?;
        if let Some(obj) = snap.contacts.as_object() {
            c.contacts = obj.keys().filter_map(|k| k.parse().ok()).collect();
        } else if let Some(arr) = snap.contacts.as_array() {
            c.contacts = arr
                .iter()
                .filter_map(|v| v["id"].as_str().and_then(|s| s.parse().ok()))
                .collect();
        }
        Ok(())
    }

    async fn random_write(&mut self, rng: &mut Lcg) -> anyhow::Result<()> {
        if self.customers.is_empty() || rng.chance(30) {
            self.register(rng).await
        } else {
            self.change(rng).await
        }
    }

    async fn table(&self) -> anyhow::Result<Vec<String>> {
        Ok(
            sqlx::query_scalar(
                "SELECT t::text FROM customer_current t
                 UNION ALL
                 SELECT (l.customer_id, l.archived, l.name_key, l.created_at, l.updated_at, l.owner, l.region, l.base_facets)::text
                 FROM customer_list l WHERE l.archived IS NOT NULL
                 UNION ALL
                 SELECT s::text FROM customer_search s ORDER BY 1",
            )
            .fetch_all(self.store.pool())
            .await?,
        )
    }

    async fn checkpoint(&self) -> anyhow::Result<i64> {
        Ok(dossier_projections::checkpoint(&self.store, NAME).await?)
    }

    async fn head(&self) -> anyhow::Result<i64> {
        Ok(self.store.head().await?.seq)
    }

    /// Every customer's row agrees with its stream and with an as-of read.
    async fn check_rows_against_log(&self) -> anyhow::Result<()> {
        let head = self.head().await?;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM customer_current")
            .fetch_one(self.store.pool())
            .await?;
        assert_eq!(count as usize, self.customers.len(), "one row per customer");
        for c in &self.customers {
            let stream = self.store.read_stream(c.id, None).await?;
            let last = stream.last().expect("stream has events");
            let row = read_current(&self.store, c.id)
                .await?
                .unwrap_or_else(|| panic!("customer {} not projected", c.id));
            assert_eq!(
                row.version, last.record.stream_version,
                "version of {}",
                c.id
            );
            assert_eq!(row.version, stream.len() as i64);
            assert_eq!(row.version, c.version);
            assert_eq!(row.last_seq, last.record.seq, "last_seq of {}", c.id);
            assert_eq!(row.last_hash, hex::encode(last.hash.0));
            assert_eq!(row.archived, c.archived);
            let snap = self
                .service
                .read(&self.caller, c.id, ReadAt::Seq(head))
                .await?;
            assert_eq!(row.details, snap.details, "details of {}", c.id);
            assert_eq!(row.contacts, snap.contacts, "contacts of {}", c.id);
            assert_eq!(row.version, snap.version);
            assert_eq!(row.last_seq, snap.last_seq);
            // The list's columns: contact fields and search terms from the details.
            let d = &snap.details;
            let text = |f: &str| d[f].as_str().map(str::to_owned);
            let (entries, search_key): (Vec<String>, String) = sqlx::query_as(
                "SELECT terms, name_key FROM customer_search WHERE customer_id = $1",
            )
            .bind(c.id)
            .fetch_one(self.store.pool())
            .await?;
            let (phone, email, code, facets, name_key, archived): (
                Option<String>,
                Option<String>,
                Option<String>,
                Vec<String>,
                String,
                bool,
            ) = sqlx::query_as(
                "SELECT c.phone, c.email, c.credit_code, l.base_facets, l.name_key, l.archived
                 FROM customer_current c JOIN customer_list l USING (customer_id)
                 WHERE customer_id = $1",
            )
            .bind(c.id)
            .fetch_one(self.store.pool())
            .await?;
            assert_eq!(phone, text("phone"), "phone of {}", c.id);
            assert_eq!(email, text("email"), "email of {}", c.id);
            assert_eq!(code, text("credit_code"), "credit_code of {}", c.id);
            let want = search_terms(
                text("name").as_deref(),
                phone.as_deref(),
                email.as_deref(),
                code.as_deref(),
            );
            assert!(!want.is_empty());
            let terms: Vec<String> = entries
                .iter()
                .filter_map(|f| f.strip_prefix("q:").map(str::to_owned))
                .collect();
            assert_eq!(terms, want, "search terms of {}", c.id);
            let name = text("name").unwrap_or_default().to_lowercase();
            assert_eq!(name_key, name, "name key of {}", c.id);
            assert_eq!(search_key, name, "search name key of {}", c.id);
            assert!(
                !facets
                    .iter()
                    .any(|f| f.starts_with("q:") || f.starts_with("m:")),
                "no search terms in the list facets of {}",
                c.id
            );
            for t in &terms {
                let mid = entries.contains(&format!("m:{t}"));
                let short = t.chars().count() <= 2;
                assert_eq!(
                    mid,
                    short && !name.starts_with(t.as_str()),
                    "m:{t} of {}",
                    c.id
                );
            }
            assert!(facets.contains(&format!("kind:{}", snap.kind)));
            assert_eq!(archived, c.archived);
        }
        Ok(())
    }
}

async fn run_seed(seed: u64) -> anyhow::Result<()> {
    let mut rng = Lcg(seed);
    let mut w = World::new().await?;
    let p = w.projection();

    // (a) incremental: steps interleaved with writes.
    let writes = 25 + rng.below(15);
    for _ in 0..writes {
        w.random_write(&mut rng).await?;
        if rng.chance(40) {
            let before = w.checkpoint().await?;
            let n = step(&w.store, &p).await?;
            let after = w.checkpoint().await?;
            assert_eq!(
                after,
                w.head().await?,
                "step applies everything below BATCH"
            );
            assert_eq!(after - before, n as i64, "step reports what it applied");
        }
    }
    while step(&w.store, &p).await? > 0 {}
    let head = w.head().await?;
    assert_eq!(w.checkpoint().await?, head);
    let incremental = w.table().await?;
    // One customer_current, customer_list and customer_search row per customer.
    assert_eq!(incremental.len(), 3 * w.customers.len());
    w.check_rows_against_log().await?;

    // (d) at-least-once: a step with nothing new changes nothing.
    assert_eq!(step(&w.store, &p).await?, 0);
    assert_eq!(step(&w.store, &p).await?, 0);
    assert_eq!(w.table().await?, incremental);
    assert_eq!(w.checkpoint().await?, head);

    // (d') redelivery: moving the checkpoint back re-applies events already
    // in the table; the result must not change.
    let back = head / 2;
    let owner = w._db.owner_pool().await?;
    sqlx::query("UPDATE projection_checkpoints SET seq = $1 WHERE name = $2")
        .bind(back)
        .bind(NAME)
        .execute(&owner)
        .await?;
    owner.close().await;
    while step(&w.store, &p).await? > 0 {}
    assert_eq!(w.checkpoint().await?, head);
    assert_eq!(
        w.table().await?,
        incremental,
        "re-applying events changed rows"
    );

    // (b) full rebuild equals the incremental result.
    reset(&w.store, &p).await?;
    assert_eq!(w.checkpoint().await?, 0);
    assert!(w.table().await?.is_empty());
    let st = status(&w.store, NAME).await?;
    assert_eq!(st.lag_events, head);
    catch_up(&w.store, &p, |_, _| {}).await?;
    assert_eq!(
        w.table().await?,
        incremental,
        "rebuild differs from incremental"
    );

    // (c) checkpoint at head, lag 0.
    let st = status(&w.store, NAME).await?;
    assert_eq!(st.checkpoint, head);
    assert_eq!(st.head, head);
    assert_eq!(st.lag_events, 0);
    assert_eq!(st.lag_seconds, 0.0);

    // (f) rows equal as-of reads at the head.
    w.check_rows_against_log().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_equals_rebuild_seed_1() -> anyhow::Result<()> {
    run_seed(1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_equals_rebuild_seed_2() -> anyhow::Result<()> {
    run_seed(0x5eed_2026).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_equals_rebuild_seed_3() -> anyhow::Result<()> {
    run_seed(0xdead_beef_cafe).await
}

// (e) two runners on one database: exactly one leads, nothing is applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_project_each_event_once() -> anyhow::Result<()> {
    let mut rng = Lcg(42);
    let mut w = World::new().await?;
    let poll = Duration::from_millis(50);
    let a = tokio::spawn(dossier_projections::run(
        w.store.clone(),
        w.projection(),
        poll,
    ));
    let b = tokio::spawn(dossier_projections::run(
        w.store.clone(),
        w.projection(),
        poll,
    ));

    for round in 0..3 {
        for _ in 0..15 {
            w.random_write(&mut rng).await?;
        }
        let head = w.head().await?;
        let reached =
            dossier_projections::wait_for(&w.store, NAME, head, Duration::from_secs(20)).await?;
        assert!(
            reached.is_some(),
            "round {round}: runners did not reach {head}"
        );
        assert_eq!(reached, Some(head), "checkpoint beyond head");
        w.check_rows_against_log().await?;
    }

    // Exactly one session holds the projection's lock.
    let holders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(w.store.pool())
    .await?;
    assert_eq!(holders, 1, "exactly one runner leads");

    let runners_table = w.table().await?;
    a.abort();
    b.abort();
    let _ = a.await;
    let _ = b.await;

    // A rebuild from the log gives the same table.
    let p = w.projection();
    reset(&w.store, &p).await?;
    catch_up(&w.store, &p, |_, _| {}).await?;
    assert_eq!(w.table().await?, runners_table);
    Ok(())
}
