//! The store contract: every [`JobStore`] method's guarantees, as one suite
//! of test bodies run against each store — SQLite in a temporary folder,
//! and PostgreSQL in a database of its own on the test server
//! ([`test_postgres`](super::test_postgres), skipped in one line when there
//! is none). A body gets a [`Harness`]: the store, a second handle on it
//! (another node: its own node id, connections and events) and a fresh,
//! empty store of the same kind (the target of a copy).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{
    ApiKeyRow, Capacity, ExportedJob, Inserted, JobRow, JobState, JobStore, NewJob, Outcome,
    PgStore, SqliteStore, StoreEvent, WriteOp, Written,
};
use crate::model::{JobError, JobResult, JobSpec, JobStatus, Precision, Program, ProgramFormat};

/// Where the store under test lives: how to open another handle on it.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

/// A store under test.
pub(super) struct Harness {
    store: Arc<dyn JobStore>,
    place: Place,
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        Harness {
            store: Arc::new(store),
            place: Place::Sqlite(dir),
        }
    }

    async fn postgres() -> Option<Harness> {
        let db = super::test_postgres::test_postgres().await?;
        let store = PgStore::connect(db.url()).await.unwrap();
        Some(Harness {
            store: Arc::new(store),
            place: Place::Postgres(db.url().to_owned()),
        })
    }

    /// A fresh, empty store of the same kind.
    async fn fresh(&self) -> Harness {
        match self.place {
            Place::Sqlite(_) => Harness::sqlite().await,
            Place::Postgres(_) => Harness::postgres().await.unwrap(),
        }
    }

    fn store(&self) -> &dyn JobStore {
        &*self.store
    }

    /// The store, to move into a task.
    fn shared_handle(&self) -> Arc<dyn JobStore> {
        self.store.clone()
    }

    /// Another handle on the same store: another node.
    async fn second(&self) -> Arc<dyn JobStore> {
        match &self.place {
            Place::Sqlite(dir) => Arc::new(SqliteStore::open(dir.path()).await.unwrap()),
            Place::Postgres(url) => Arc::new(PgStore::connect(url).await.unwrap()),
        }
    }
}

/// Stamps one `#[tokio::test]` per body and store: `sqlite::NAME` and
/// `postgres::NAME`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&super::Harness::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(h) = super::Harness::postgres().await {
                        super::$name(&h).await;
                    }
                }
            )*
        }
    };
}

contract!(
    jobs_round_trip_and_list_newest_first_by_cursor,
    a_job_completes_exactly_once,
    idempotency_keys_replay_or_conflict_per_tenant,
    cancel_and_purge,
    keys_are_stored_listed_and_revoked,
    one_batch_mixes_every_write_and_answers_each_in_order,
    batches_larger_than_one_statement_are_cut_and_padded,
    claims_go_to_the_tenant_with_fewest_running_then_priority_then_age,
    a_claim_takes_only_jobs_that_fit_the_memory_given,
    a_fair_share_claim_takes_only_tenants_with_nothing_running,
    several_claimed_at_once_go_round_the_tenants_within_the_memory,
    concurrent_claims_from_two_nodes_take_each_job_exactly_once,
    an_expired_lease_is_claimed_again_and_the_old_owner_is_fenced_off,
    a_job_inserted_claimed_holds_its_lease_like_a_claim,
    renewing_reports_a_cancel_while_held_and_none_once_lost,
    an_expired_job_whose_cancel_was_asked_is_cancelled_not_claimed,
    a_tenant_limit_turns_inserts_down_but_answers_replays,
    counts_per_tenant_and_status,
    events_wake_on_queue_end_and_cancel,
    an_export_imports_into_a_fresh_store_once,
    recovery_requeues_only_on_a_store_that_is_not_shared,
);

pub(super) fn spec(priority: i32) -> JobSpec {
    JobSpec {
        program: Program {
            format: ProgramFormat::Qasm2,
            source: "OPENQASM 2.0;".into(),
        },
        shots: 10,
        seed: 7,
        result_types: vec![],
        executions: vec![Default::default()],
        precision: Precision::F64,
        noise_model: None,
        method: Default::default(),
        noisy: false,
        qubits: 1,
        memory_bytes: 512,
        result_bytes: 0,
        name: Some("n".into()),
        tags: Default::default(),
        priority,
    }
}

pub(super) fn job(id: &str, tenant: &str, key: Option<(&str, &str)>) -> NewJob {
    NewJob {
        id: id.into(),
        tenant: tenant.into(),
        spec: spec(0),
        created_ms: 1000,
        idempotency: key.map(|(k, h)| (k.into(), h.into())),
        state: JobState::queued(),
        max_active: None,
        lease_until_ms: None,
    }
}

pub(super) fn result() -> JobResult {
    JobResult {
        executions: vec![],
        run_seconds: 0.5,
    }
}

pub(super) async fn created(store: &dyn JobStore, j: &NewJob) -> JobRow {
    match store.insert(j).await.unwrap() {
        Inserted::Created(row) => row,
        other => panic!("{other:?}"),
    }
}
async fn jobs_round_trip_and_list_newest_first_by_cursor(h: &Harness) {
    let store = h.store();
    for i in 0..5 {
        created(store, &job(&format!("j{i}"), "alice", None)).await;
    }
    created(store, &job("other", "bob", None)).await;
    let row = store.get("j2").await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.spec.clone(), row.attempt),
        (JobStatus::Queued, spec(0), 0)
    );
    let page = store.list("alice", None, 2, None).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["j4", "j3"]
    );
    let next = store
        .list("alice", None, 2, Some(page[1].seq))
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["j2", "j1"]
    );
    assert!(
        store
            .list("alice", Some(JobStatus::Completed), 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list("bob", None, 10, None).await.unwrap().len(), 1);
}

async fn a_job_completes_exactly_once(h: &Harness) {
    let store = h.store();
    created(store, &job("j", "t", None)).await;
    assert_eq!(store.claim("j", 2000).await.unwrap(), Some(1));
    assert_eq!(store.claim("j", 2000).await.unwrap(), None, "claimed twice");
    let done = Outcome::Completed(result());
    assert!(
        !store.finish("j", 2, &done, 3000).await.unwrap(),
        "wrong attempt"
    );
    assert!(store.finish("j", 1, &done, 3000).await.unwrap());
    assert!(
        !store.finish("j", 1, &done, 3001).await.unwrap(),
        "completed twice"
    );
    let failed = Outcome::Failed(JobError {
        code: "x".into(),
        message: "y".into(),
    });
    assert!(!store.finish("j", 1, &failed, 3002).await.unwrap());
    let row = store.get("j").await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.result, row.ended_ms),
        (JobStatus::Completed, Some(result()), Some(3000))
    );
}

async fn idempotency_keys_replay_or_conflict_per_tenant(h: &Harness) {
    let store = h.store();
    let first = created(store, &job("a", "t", Some(("k", "h1")))).await;
    match store
        .insert(&job("b", "t", Some(("k", "h1"))))
        .await
        .unwrap()
    {
        Inserted::Existing(row) => assert_eq!(row.id, first.id),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .insert(&job("c", "t", Some(("k", "h2"))))
            .await
            .unwrap(),
        Inserted::Conflict
    );
    // Another tenant's key space is its own.
    created(store, &job("d", "u", Some(("k", "h2")))).await;
    assert!(store.get("b").await.unwrap().is_none());
}

async fn cancel_and_purge(h: &Harness) {
    let store = h.store();
    created(store, &job("q", "t", None)).await;
    let err = JobError {
        code: "cancelled".into(),
        message: "m".into(),
    };
    assert!(store.cancel_queued("q", &err, 10).await.unwrap());
    assert!(!store.cancel_queued("q", &err, 11).await.unwrap());
    assert!(!store.request_cancel("q").await.unwrap());
    assert_eq!(store.purge(10).await.unwrap(), 0);
    assert_eq!(store.purge(11).await.unwrap(), 1);
    assert!(store.get("q").await.unwrap().is_none());
}

async fn keys_are_stored_listed_and_revoked(h: &Harness) {
    let store = h.store();
    assert_eq!(store.active_key_count().await.unwrap(), 0);
    let key = ApiKeyRow {
        id: "abc".into(),
        tenant: "t".into(),
        hash: vec![1, 2],
        created_ms: 1,
        revoked_ms: None,
    };
    store.insert_key(&key).await.unwrap();
    assert_eq!(store.find_key("abc").await.unwrap(), Some(key.clone()));
    assert_eq!(store.active_key_count().await.unwrap(), 1);
    assert!(store.revoke_key("abc", 5).await.unwrap());
    assert!(!store.revoke_key("abc", 6).await.unwrap());
    assert_eq!(store.list_keys().await.unwrap()[0].revoked_ms, Some(5));
    assert_eq!(store.active_key_count().await.unwrap(), 0);
    // Revoking does not forget that the store held keys.
    assert!(store.keys_held().await.unwrap());
    // Every handle on the store sees it.
    let other = h.second().await;
    assert!(other.keys_held().await.unwrap());
    assert_eq!(
        other.find_key("abc").await.unwrap().unwrap().revoked_ms,
        Some(5)
    );
}

async fn one_batch_mixes_every_write_and_answers_each_in_order(h: &Harness) {
    let store = h.store();
    created(store, &job("old", "t", None)).await;
    created(store, &job("gone", "t", None)).await;
    let err = JobError {
        code: "cancelled".into(),
        message: "m".into(),
    };
    let claim_finish = |id: &str, attempt| {
        (
            WriteOp::Claim {
                id: id.into(),
                now_ms: 20,
            },
            WriteOp::Finish {
                id: id.into(),
                attempt,
                outcome: Outcome::Completed(result()),
                now_ms: 30,
            },
        )
    };
    let (claim_old, finish_old) = claim_finish("old", 1);
    let (_, finish_stale) = claim_finish("old", 7);
    let ops = vec![
        WriteOp::Insert(Box::new(job("a", "t", Some(("k", "h1"))))),
        claim_old,
        WriteOp::CancelQueued {
            id: "gone".into(),
            error: err.clone(),
            now_ms: 5,
        },
        finish_stale,
        finish_old,
        // Same key in the same batch: a replay, then a conflict.
        WriteOp::Insert(Box::new(job("b", "t", Some(("k", "h1"))))),
        WriteOp::Insert(Box::new(job("c", "t", Some(("k", "h2"))))),
        WriteOp::Claim {
            id: "nobody".into(),
            now_ms: 20,
        },
        WriteOp::Insert(Box::new(job("d", "t", None))),
    ];
    let out = store.write_batch(&ops, true).await.unwrap();
    assert_eq!(out.len(), ops.len());
    let Written::Inserted(a) = &out[0] else {
        panic!("{:?}", out[0])
    };
    let Inserted::Created(a) = a.as_ref() else {
        panic!("{a:?}")
    };
    assert_eq!(out[1], Written::Claimed(Some(1)));
    assert_eq!(out[2], Written::Changed(true));
    assert_eq!(
        out[3],
        Written::Changed(false),
        "a stale attempt ends nothing"
    );
    assert_eq!(out[4], Written::Changed(true));
    match &out[5] {
        Written::Inserted(i) => match i.as_ref() {
            Inserted::Existing(row) => assert_eq!(row.id, a.id),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(out[6], Written::Inserted(Box::new(Inserted::Conflict)));
    assert_eq!(out[7], Written::Claimed(None));
    let Written::Inserted(d) = &out[8] else {
        panic!("{:?}", out[8])
    };
    let Inserted::Created(d) = d.as_ref() else {
        panic!("{d:?}")
    };
    assert!(d.seq > a.seq, "inserts keep their order");
    let old = store.get("old").await.unwrap().unwrap();
    assert_eq!(old.status, JobStatus::Completed);
    assert_eq!((old.started_ms, old.ended_ms), (Some(20), Some(30)));
    assert_eq!(old.result, Some(result()));
    assert_eq!(
        store.get("gone").await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    let stored_a = store.get("a").await.unwrap().unwrap();
    assert_eq!(stored_a.spec, a.spec);
    assert_eq!(stored_a.status, JobStatus::Queued);
    assert!(store.get("b").await.unwrap().is_none());
    assert!(store.get("c").await.unwrap().is_none());
}

async fn batches_larger_than_one_statement_are_cut_and_padded(h: &Harness) {
    let store = h.store();
    // 70 = one statement of 64 rows and one of 16 with 10 rows of padding.
    let ids: Vec<String> = (0..70).map(|i| format!("j{i:02}")).collect();
    let inserts: Vec<WriteOp> = ids
        .iter()
        .map(|id| WriteOp::Insert(Box::new(job(id, "t", None))))
        .collect();
    let out = store.write_batch(&inserts, true).await.unwrap();
    let seqs: Vec<i64> = out
        .iter()
        .map(|w| match w {
            Written::Inserted(i) => match i.as_ref() {
                Inserted::Created(row) => row.seq,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let claims: Vec<WriteOp> = ids
        .iter()
        .map(|id| WriteOp::Claim {
            id: id.clone(),
            now_ms: 5,
        })
        .collect();
    let out = store.write_batch(&claims, false).await.unwrap();
    assert!(
        out.iter().all(|w| *w == Written::Claimed(Some(1))),
        "{out:?}"
    );
    let ends: Vec<WriteOp> = ids
        .iter()
        .map(|id| WriteOp::Finish {
            id: id.clone(),
            attempt: 1,
            outcome: Outcome::Completed(result()),
            now_ms: 6,
        })
        .collect();
    let out = store.write_batch(&ends, true).await.unwrap();
    assert!(out.iter().all(|w| *w == Written::Changed(true)), "{out:?}");
    let page = store.list("t", None, 100, None).await.unwrap();
    assert_eq!(page.len(), 70);
    // A list carries summaries; each result is read by itself.
    assert!(page.iter().all(|r| r.status == JobStatus::Completed
        && r.started_ms == Some(5)
        && r.ended_ms == Some(6)
        && r.result.is_none()));
    for r in &page {
        let text = store.result_text("t", &r.id).await.unwrap().unwrap();
        assert_eq!(
            serde_json::from_slice::<JobResult>(text.as_bytes()).unwrap(),
            result()
        );
        assert_eq!(
            store.get_summary(&r.id).await.unwrap().unwrap().result,
            None
        );
    }
    assert!(
        store
            .result_text("other", &page[0].id)
            .await
            .unwrap()
            .is_none()
    );
}

fn job_in(id: &str, tenant: &str, priority: i32, memory_bytes: u64) -> NewJob {
    let mut j = job(id, tenant, None);
    j.spec.priority = priority;
    j.spec.memory_bytes = memory_bytes;
    j
}

const ROOMY: Capacity = Capacity {
    memory_bytes: 1 << 40,
    idle_tenants_only: false,
};

async fn claimed_id(store: &dyn JobStore, now_ms: i64) -> Option<String> {
    store
        .claim_next(&ROOMY, now_ms, 60_000)
        .await
        .unwrap()
        .map(|row| row.id)
}

async fn claims_go_to_the_tenant_with_fewest_running_then_priority_then_age(h: &Harness) {
    let store = h.store();
    for j in [
        job_in("a1", "a", 0, 512),
        job_in("a2", "a", 5, 512),
        job_in("a3", "a", 0, 512),
        job_in("b1", "b", 0, 512),
    ] {
        created(store, &j).await;
    }
    // Nobody runs anything: the highest priority.
    assert_eq!(claimed_id(store, 10).await.as_deref(), Some("a2"));
    // `a` runs one, `b` none: `b`, whatever the priorities.
    assert_eq!(claimed_id(store, 11).await.as_deref(), Some("b1"));
    // One each: the same priority, so the older.
    assert_eq!(claimed_id(store, 12).await.as_deref(), Some("a1"));
    assert_eq!(claimed_id(store, 13).await.as_deref(), Some("a3"));
    assert_eq!(claimed_id(store, 14).await, None);
    let row = store.get("a2").await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.attempt, row.started_ms),
        (JobStatus::Running, 1, Some(10))
    );
}

async fn a_claim_takes_only_jobs_that_fit_the_memory_given(h: &Harness) {
    let store = h.store();
    created(store, &job_in("big", "t", 9, 1 << 30)).await;
    created(store, &job_in("small", "t", 0, 1 << 10)).await;
    let small_node = Capacity {
        memory_bytes: 1 << 20,
        idle_tenants_only: false,
    };
    let first = store
        .claim_next(&small_node, 1, 1000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, "small");
    assert_eq!(first.result, None, "a claim comes without its result");
    assert_eq!(store.claim_next(&small_node, 2, 1000).await.unwrap(), None);
    let exact = Capacity {
        memory_bytes: 1 << 30,
        idle_tenants_only: false,
    };
    assert_eq!(
        store.claim_next(&exact, 3, 1000).await.unwrap().unwrap().id,
        "big"
    );
}

async fn a_fair_share_claim_takes_only_tenants_with_nothing_running(h: &Harness) {
    let store = h.store();
    for j in [
        job_in("a1", "a", 0, 512),
        job_in("a2", "a", 9, 512),
        job_in("b1", "b", 0, 512),
    ] {
        created(store, &j).await;
    }
    let fair = Capacity {
        memory_bytes: 1 << 40,
        idle_tenants_only: true,
    };
    // Nothing runs: any tenant, in the usual order.
    assert_eq!(
        store
            .claim_next(&fair, 1, 60_000)
            .await
            .unwrap()
            .unwrap()
            .id,
        "a2"
    );
    // `a` runs one now: only `b`, though `a1` is older.
    assert_eq!(
        store
            .claim_next(&fair, 2, 60_000)
            .await
            .unwrap()
            .unwrap()
            .id,
        "b1"
    );
    // Both run one: nothing for the fair-share worker, `a1` for a regular one.
    assert_eq!(store.claim_next(&fair, 3, 60_000).await.unwrap(), None);
    assert_eq!(claimed_id(store, 4).await.as_deref(), Some("a1"));
}

async fn several_claimed_at_once_go_round_the_tenants_within_the_memory(h: &Harness) {
    let store = h.store();
    for j in [
        job_in("a1", "a", 0, 512),
        job_in("a2", "a", 0, 512),
        job_in("a3", "a", 0, 512),
        job_in("b1", "b", 0, 512),
        job_in("c1", "c", 0, 2048),
    ] {
        created(store, &j).await;
    }
    let ids = |rows: &[JobRow]| {
        let mut ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        ids.sort();
        ids
    };
    // One of each tenant before a second of any, as one-by-one claims.
    let first = store.claim_several(&ROOMY, 3, 10, 60_000).await.unwrap();
    assert_eq!(ids(&first), ["a1", "b1", "c1"]);
    assert!(
        first
            .iter()
            .all(|r| r.status == JobStatus::Running && r.attempt == 1)
    );
    // The memory given holds two of the rest, not three.
    let tight = Capacity {
        memory_bytes: 1024,
        idle_tenants_only: false,
    };
    let second = store.claim_several(&tight, 3, 11, 60_000).await.unwrap();
    assert_eq!(ids(&second), ["a2", "a3"]);
    assert!(
        store
            .claim_several(&ROOMY, 3, 12, 60_000)
            .await
            .unwrap()
            .is_empty()
    );
    for id in ["a1", "a2", "a3", "b1", "c1"] {
        let row = store.get(id).await.unwrap().unwrap();
        assert_eq!(row.status, JobStatus::Running, "{id}");
    }
}

async fn concurrent_claims_from_two_nodes_take_each_job_exactly_once(h: &Harness) {
    let ops: Vec<WriteOp> = (0..200)
        .map(|i| {
            WriteOp::Insert(Box::new(job(
                &format!("j{i:03}"),
                &format!("t{}", i % 3),
                None,
            )))
        })
        .collect();
    h.store().write_batch(&ops, true).await.unwrap();
    let nodes = [h.shared_handle(), h.second().await];
    let mut tasks = Vec::new();
    for node in &nodes {
        for i in 0..4 {
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                // One at a time, and several at a time.
                loop {
                    let rows = node.claim_several(&ROOMY, 1 + i % 2 * 4, 100, 60_000);
                    let rows = rows.await.unwrap();
                    if rows.is_empty() {
                        break;
                    }
                    for row in rows {
                        got.push((row.id, row.attempt, node.node_id().to_owned()));
                    }
                }
                got
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let ids: HashSet<&str> = all.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!((all.len(), ids.len()), (200, 200), "every job exactly once");
    assert!(all.iter().all(|(_, attempt, _)| *attempt == 1));
    // The store says the same: each running under the node that got it.
    for (id, _, node) in &all[..10] {
        let row = h.store().get(id).await.unwrap().unwrap();
        assert_eq!(row.status, JobStatus::Running);
        let mine = nodes.iter().find(|n| n.node_id() == node).unwrap();
        assert_eq!(
            mine.renew_leases(&[(id.clone(), 1)], 200, 60_000)
                .await
                .unwrap(),
            [Some(false)]
        );
    }
}

async fn a_job_inserted_claimed_holds_its_lease_like_a_claim(h: &Harness) {
    let (old, new) = (h.shared_handle(), h.second().await);
    let mut j = job("j", "t", None);
    j.state.status = JobStatus::Running;
    j.state.attempt = 1;
    j.state.started_ms = Some(1000);
    j.lease_until_ms = Some(1100);
    let row = created(&*old, &j).await;
    assert_eq!((row.status, row.attempt), (JobStatus::Running, 1));
    // Its node renews it as it would a claim's.
    assert_eq!(new.claim_next(&ROOMY, 1050, 100).await.unwrap(), None);
    assert_eq!(
        old.renew_leases(&[("j".into(), 1)], 1090, 100)
            .await
            .unwrap(),
        [Some(false)]
    );
    assert_eq!(new.claim_next(&ROOMY, 1150, 100).await.unwrap(), None);
    // Its node dies: another takes it once the lease ends, and the first
    // node's end is refused.
    let again = new.claim_next(&ROOMY, 1300, 100).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempt), ("j", 2));
    let late = WriteOp::Finish {
        id: "j".into(),
        attempt: 1,
        outcome: Outcome::Completed(result()),
        now_ms: 1310,
    };
    assert_eq!(
        old.write_batch(&[late], true).await.unwrap(),
        vec![Written::Changed(false)]
    );
}

async fn an_expired_lease_is_claimed_again_and_the_old_owner_is_fenced_off(h: &Harness) {
    let (old, new) = (h.shared_handle(), h.second().await);
    assert_ne!(old.node_id(), new.node_id());
    created(&*old, &job("j", "t", None)).await;
    let first = old.claim_next(&ROOMY, 1000, 100).await.unwrap().unwrap();
    assert_eq!(first.attempt, 1);
    // Held until 1100.
    assert_eq!(new.claim_next(&ROOMY, 1050, 100).await.unwrap(), None);
    assert_eq!(
        old.renew_leases(&[("j".into(), 1)], 1090, 100)
            .await
            .unwrap(),
        [Some(false)]
    );
    assert_eq!(
        new.claim_next(&ROOMY, 1150, 100).await.unwrap(),
        None,
        "renewed to 1190"
    );
    // The old node stops renewing (it died, or lost the database).
    let again = new.claim_next(&ROOMY, 1200, 100).await.unwrap().unwrap();
    assert_eq!(
        (again.id.as_str(), again.attempt, again.started_ms),
        ("j", 2, Some(1200))
    );
    assert_eq!(
        old.renew_leases(&[("j".into(), 1)], 1210, 100)
            .await
            .unwrap(),
        [None]
    );
    // The old node's end and requeue are refused, whatever attempt it names.
    let done = Outcome::Completed(result());
    assert!(!old.finish("j", 1, &done, 1300).await.unwrap());
    assert!(
        !old.finish("j", 2, &done, 1300).await.unwrap(),
        "fenced by owner"
    );
    assert!(!old.requeue("j", 2).await.unwrap());
    let out = old
        .write_batch(
            &[WriteOp::Finish {
                id: "j".into(),
                attempt: 2,
                outcome: done.clone(),
                now_ms: 1300,
            }],
            false,
        )
        .await
        .unwrap();
    assert_eq!(out, [Written::Changed(false)]);
    assert!(new.finish("j", 2, &done, 1400).await.unwrap());
    let row = old.get("j").await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.attempt, row.ended_ms),
        (JobStatus::Completed, 2, Some(1400))
    );
    // Ended: no lease to renew, nothing to claim.
    assert_eq!(
        new.renew_leases(&[("j".into(), 2)], 1500, 100)
            .await
            .unwrap(),
        [None]
    );
    assert_eq!(new.claim_next(&ROOMY, 99_999, 100).await.unwrap(), None);
}

async fn renewing_reports_a_cancel_while_held_and_none_once_lost(h: &Harness) {
    let store = h.store();
    created(store, &job("a", "t", None)).await;
    created(store, &job("b", "t", None)).await;
    let a = store.claim_next(&ROOMY, 0, 1000).await.unwrap().unwrap();
    let b = store.claim_next(&ROOMY, 0, 1000).await.unwrap().unwrap();
    assert_eq!((a.id.as_str(), b.id.as_str()), ("a", "b"));
    assert!(h.second().await.request_cancel("b").await.unwrap());
    let held = [
        ("a".to_owned(), 1),
        ("b".to_owned(), 1),
        ("gone".to_owned(), 1),
        ("a".to_owned(), 7),
    ];
    assert_eq!(
        store.renew_leases(&held, 10, 1000).await.unwrap(),
        [Some(false), Some(true), None, None]
    );
    // A graceful stop returns it to the queue, for anyone, uncounted.
    assert!(store.requeue("a", 1).await.unwrap());
    assert_eq!(
        store.renew_leases(&held[..1], 20, 1000).await.unwrap(),
        [None]
    );
    let row = store.get("a").await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.attempt, row.started_ms),
        (JobStatus::Queued, 0, None)
    );
    assert_eq!(
        store.renew_leases(&[], 20, 1000).await.unwrap(),
        Vec::<Option<bool>>::new()
    );
}

async fn an_expired_job_whose_cancel_was_asked_is_cancelled_not_claimed(h: &Harness) {
    let (first, other) = (h.shared_handle(), h.second().await);
    created(&*first, &job("c", "t", None)).await;
    first.claim_next(&ROOMY, 0, 100).await.unwrap().unwrap();
    assert!(other.request_cancel("c").await.unwrap());
    let mut events = other.events();
    assert_eq!(other.claim_next(&ROOMY, 500, 100).await.unwrap(), None);
    let row = other.get("c").await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.ended_ms),
        (JobStatus::Cancelled, Some(500))
    );
    assert_eq!(row.error.unwrap().code, "cancelled");
    assert_eq!(
        next_event(&mut events, |e| matches!(e, StoreEvent::Ended(_))).await,
        StoreEvent::Ended("c".into())
    );
    assert!(
        !first
            .finish("c", 1, &Outcome::Completed(result()), 600)
            .await
            .unwrap()
    );
}

async fn a_tenant_limit_turns_inserts_down_but_answers_replays(h: &Harness) {
    let store = h.store();
    let limited = |id: &str, tenant: &str, key: Option<(&str, &str)>| {
        let mut j = job(id, tenant, key);
        j.max_active = Some(2);
        j
    };
    created(store, &limited("a", "t", Some(("k", "h")))).await;
    created(store, &limited("b", "t", None)).await;
    assert_eq!(
        store.insert(&limited("c", "t", None)).await.unwrap(),
        Inserted::TooMany(2)
    );
    match store
        .insert(&limited("a2", "t", Some(("k", "h"))))
        .await
        .unwrap()
    {
        Inserted::Existing(row) => assert_eq!(row.id, "a"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .insert(&limited("a3", "t", Some(("k", "other"))))
            .await
            .unwrap(),
        Inserted::Conflict
    );
    created(store, &limited("u", "u", None)).await;
    // In one batch, each insert counts those before it.
    let out = store
        .write_batch(
            &[
                WriteOp::Insert(Box::new(limited("u2", "u", None))),
                WriteOp::Insert(Box::new(limited("u3", "u", None))),
                WriteOp::Insert(Box::new(job("free", "u", None))),
            ],
            true,
        )
        .await
        .unwrap();
    assert!(matches!(&out[0], Written::Inserted(i) if matches!(**i, Inserted::Created(_))));
    assert_eq!(out[1], Written::Inserted(Box::new(Inserted::TooMany(2))));
    assert!(
        matches!(&out[2], Written::Inserted(i) if matches!(**i, Inserted::Created(_))),
        "unlimited"
    );
    // An ended job no longer counts.
    let claimed = store.claim_next(&ROOMY, 1, 1000).await.unwrap().unwrap();
    assert!(
        store
            .finish(&claimed.id, 1, &Outcome::Completed(result()), 2)
            .await
            .unwrap()
    );
    assert_eq!(
        store.active_count("t").await.unwrap() + store.active_count("u").await.unwrap(),
        4
    );
    let tenant = &claimed.tenant;
    let next = store.insert(&limited("d", tenant, None)).await.unwrap();
    assert!(matches!(next, Inserted::Created(_)), "{next:?}");
    assert_eq!(store.active_count("nobody").await.unwrap(), 0);
}

async fn counts_per_tenant_and_status(h: &Harness) {
    let store = h.store();
    for (id, tenant) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        created(store, &job(id, tenant, None)).await;
    }
    assert_eq!(store.claim("a1", 1).await.unwrap(), Some(1));
    let err = JobError {
        code: "cancelled".into(),
        message: "m".into(),
    };
    assert!(store.cancel_queued("b1", &err, 2).await.unwrap());
    let mut counts = store.count_by_tenant_status().await.unwrap();
    counts.sort_by(|x, y| (&x.0, x.1.as_str()).cmp(&(&y.0, y.1.as_str())));
    assert_eq!(
        counts,
        [
            ("a".to_owned(), JobStatus::Queued, 1),
            ("a".to_owned(), JobStatus::Running, 1),
            ("b".to_owned(), JobStatus::Cancelled, 1),
        ]
    );
    assert_eq!(store.active_count("a").await.unwrap(), 2);
    assert_eq!(store.active_count("b").await.unwrap(), 0);
    let mut by_status = store.count_by_status().await.unwrap();
    by_status.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        by_status,
        [
            (JobStatus::Cancelled, 1),
            (JobStatus::Queued, 1),
            (JobStatus::Running, 1)
        ]
    );
}

/// The next event `wanted` accepts, within five seconds.
pub(super) async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    wanted: impl Fn(&StoreEvent) -> bool,
) -> StoreEvent {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(e) if wanted(&e) => return e,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("no event within 5 s")
}

async fn events_wake_on_queue_end_and_cancel(h: &Harness) {
    let store = h.store();
    let other = h.second().await;
    let mut mine = store.events();
    let mut theirs = other.events();
    created(store, &job("a", "t", None)).await;
    created(store, &job("b", "t", None)).await;
    assert_eq!(
        next_event(&mut mine, |e| *e == StoreEvent::Queued).await,
        StoreEvent::Queued
    );
    let a = store.claim_next(&ROOMY, 1, 60_000).await.unwrap().unwrap();
    store.claim_next(&ROOMY, 1, 60_000).await.unwrap().unwrap();
    assert!(
        store
            .finish(&a.id, 1, &Outcome::Completed(result()), 2)
            .await
            .unwrap()
    );
    let ended = |e: &StoreEvent| matches!(e, StoreEvent::Ended(_));
    assert_eq!(
        next_event(&mut mine, ended).await,
        StoreEvent::Ended(a.id.clone())
    );
    assert!(store.request_cancel("b").await.unwrap());
    let cancel = |e: &StoreEvent| matches!(e, StoreEvent::CancelRequested(_));
    assert_eq!(
        next_event(&mut mine, cancel).await,
        StoreEvent::CancelRequested("b".into())
    );
    assert!(store.requeue("b", 1).await.unwrap());
    assert_eq!(
        next_event(&mut mine, |e| *e == StoreEvent::Queued).await,
        StoreEvent::Queued
    );
    if store.shared() {
        // Another node hears every one of them.
        assert_eq!(
            next_event(&mut theirs, |e| *e == StoreEvent::Queued).await,
            StoreEvent::Queued
        );
        assert_eq!(
            next_event(&mut theirs, ended).await,
            StoreEvent::Ended(a.id.clone())
        );
        assert_eq!(
            next_event(&mut theirs, cancel).await,
            StoreEvent::CancelRequested("b".into())
        );
        // And this node hears the other's.
        assert!(
            other
                .cancel_queued(
                    "b",
                    &JobError {
                        code: "cancelled".into(),
                        message: "m".into()
                    },
                    3
                )
                .await
                .unwrap()
        );
        assert_eq!(
            next_event(&mut mine, ended).await,
            StoreEvent::Ended("b".into())
        );
    }
}

async fn an_export_imports_into_a_fresh_store_once(h: &Harness) {
    let store = h.store();
    created(store, &job("done", "t", Some(("k1", "h1")))).await;
    created(store, &job("running", "t", None)).await;
    created(store, &job("waiting", "u", Some(("k2", "h2")))).await;
    created(store, &job("gone", "u", None)).await;
    assert_eq!(store.claim("done", 5).await.unwrap(), Some(1));
    assert!(
        store
            .finish("done", 1, &Outcome::Completed(result()), 6)
            .await
            .unwrap()
    );
    assert_eq!(store.claim("running", 7).await.unwrap(), Some(1));
    let err = JobError {
        code: "cancelled".into(),
        message: "m".into(),
    };
    assert!(store.cancel_queued("gone", &err, 8).await.unwrap());
    for (id, revoked) in [("k-live", None), ("k-old", Some(9))] {
        store
            .insert_key(&ApiKeyRow {
                id: id.into(),
                tenant: "t".into(),
                hash: vec![7; 32],
                created_ms: 1,
                revoked_ms: revoked,
            })
            .await
            .unwrap();
    }
    // Paged, as a copy reads it.
    let mut exported: Vec<ExportedJob> = Vec::new();
    loop {
        let after = exported.last().map_or(0, |j| j.row.seq);
        let page = store.export_jobs(after, 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        exported.extend(page);
    }
    assert_eq!(
        exported
            .iter()
            .map(|j| j.row.id.as_str())
            .collect::<Vec<_>>(),
        ["done", "running", "waiting", "gone"]
    );
    assert_eq!(exported[0].row.result, Some(result()));
    assert_eq!(exported[0].idempotency, Some(("k1".into(), "h1".into())));

    let target = h.fresh().await;
    let copy = target.store();
    assert_eq!(copy.import_jobs(&exported).await.unwrap(), 4);
    assert_eq!(
        copy.import_jobs(&exported).await.unwrap(),
        0,
        "a second copy adds nothing"
    );
    for key in store.list_keys().await.unwrap() {
        assert!(copy.import_key(&key).await.unwrap());
        assert!(!copy.import_key(&key).await.unwrap());
    }
    assert_eq!(
        copy.list_keys().await.unwrap(),
        store.list_keys().await.unwrap()
    );
    assert!(copy.keys_held().await.unwrap());
    assert_eq!(copy.active_key_count().await.unwrap(), 1);
    let mut counts = copy.count_by_status().await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        [
            (JobStatus::Cancelled, 1),
            (JobStatus::Completed, 1),
            (JobStatus::Queued, 2)
        ],
        "the running job arrives queued"
    );
    let done = copy.get("done").await.unwrap().unwrap();
    assert_eq!(
        (done.result, done.ended_ms, done.attempt),
        (Some(result()), Some(6), 1)
    );
    let text = copy.result_text("t", "done").await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_slice::<JobResult>(text.as_bytes()).unwrap(),
        result()
    );
    let (replayed, hash) = copy.find_idempotent("u", "k2").await.unwrap().unwrap();
    assert_eq!((replayed.id.as_str(), hash.as_str()), ("waiting", "h2"));
    match copy
        .insert(&job("again", "t", Some(("k1", "h1"))))
        .await
        .unwrap()
    {
        Inserted::Existing(row) => assert_eq!(row.id, "done"),
        other => panic!("{other:?}"),
    }
    let running = copy.get("running").await.unwrap().unwrap();
    assert_eq!(
        (running.status, running.started_ms),
        (JobStatus::Queued, None)
    );
    // The copy's queue runs: the formerly running job is claimed again.
    let mut ids: Vec<String> = Vec::new();
    while let Some(row) = copy.claim_next(&ROOMY, 100, 1000).await.unwrap() {
        ids.push(row.id);
    }
    ids.sort();
    assert_eq!(ids, ["running", "waiting"]);
}

async fn recovery_requeues_only_on_a_store_that_is_not_shared(h: &Harness) {
    let store = h.store();
    created(store, &job("r", "t", None)).await;
    store.claim_next(&ROOMY, 1, 1000).await.unwrap().unwrap();
    let status = store.get("r").await.unwrap().unwrap().status;
    assert_eq!(status, JobStatus::Running);
    if store.shared() {
        // Another node may be running it: its lease decides.
        assert_eq!(store.recover(2).await.unwrap(), 0);
        assert_eq!(
            store.get("r").await.unwrap().unwrap().status,
            JobStatus::Running
        );
    } else {
        assert_eq!(store.recover(2).await.unwrap(), 1);
        let row = store.get("r").await.unwrap().unwrap();
        assert_eq!((row.status, row.attempt), (JobStatus::Queued, 1));
    }
}
