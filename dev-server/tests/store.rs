//! The store conformance suite: one set of cases, run against every [`Store`] implementation
//! (SQLite in a file, PostgreSQL in a throwaway server under `target/`). A case gets a
//! [`Fixture`] that opens handles to one fresh database, so a case can also reopen it (a
//! restart) or open two handles at once (two instances).

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

use std::{collections::HashSet, sync::Arc};

use farm_chat_dev_server::store::{
    Appended, ConversationRecord, Cursor, Idempotency, NewMessage, PostgresStore, Reply,
    SessionRecord, SqliteStore, Store, StoreError, TaskRecord,
};
use farm_chat_protocol::{
    ConversationId, MessageId, TaskId, TenantId, UserId,
    chat::{ConversationKind, Message, Sender, SenderKind},
    task::{TaskKind, TaskSnapshot, TaskState},
};
use farm_chat_testenv::{Certs, Postgres};

/// Opens handles to one fresh database of one engine.
enum Fixture {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Fixture {
    fn sqlite() -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = farm_chat_testenv::target_dir().join("testenv");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("conformance-{}-{n}.sqlite", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Self::Sqlite(path)
    }

    fn postgres() -> Self {
        let server = Postgres::shared().expect("a throwaway PostgreSQL");
        Self::Postgres(server.fresh_database("conformance").unwrap())
    }

    /// PostgreSQL that takes TLS only, reached by name with `sslmode=verify-full` and the
    /// test CA: what an instance does with RDS.
    fn postgres_tls() -> Self {
        let (certs, server) = tls_postgres();
        let db = server.fresh_database_name("conformance_tls").unwrap();
        let params = format!("sslmode=verify-full&sslrootcert={}", certs.ca.display());
        Self::Postgres(server.tcp_url("localhost", &db, &params).unwrap())
    }

    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(path) => Arc::new(SqliteStore::open(path).unwrap()),
            Self::Postgres(url) => Arc::new(PostgresStore::connect(url).await.unwrap()),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Self::Sqlite(path) = self {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// One TLS-only PostgreSQL per test binary, its certificate naming `localhost` only (so
/// `127.0.0.1` is a host name mismatch).
fn tls_postgres() -> &'static (Certs, Postgres) {
    static SERVER: std::sync::OnceLock<(Certs, Postgres)> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let certs = Certs::make("pg", &["localhost"]).expect("openssl makes the test CA");
        let server = Postgres::start_tls(&certs).expect("a throwaway TLS PostgreSQL");
        (certs, server)
    })
}

/// Every case, as a test per engine.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Fixture::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Fixture::postgres()).await;
                }
            )*
        }
        mod postgres_tls {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Fixture::postgres_tls()).await;
                }
            )*
        }
    };
}

conformance!(
    seq_counts_per_conversation,
    concurrent_sends_to_one_conversation_get_every_seq_once,
    an_idempotency_key_stores_once_and_conflicts_on_another_body,
    a_key_sent_concurrently_from_two_instances_stores_once,
    an_assistant_reply_is_stored_with_its_task_and_replayed_with_it,
    history_pages_both_ways_in_seq_order,
    read_marks_never_move_back_nor_past_the_newest_message,
    overviews_give_each_conversation_its_last_message_unread_and_marks,
    conversations_are_per_tenant_and_participants_only_grow,
    sessions_are_created_found_ended_and_purged,
    epochs_never_repeat_even_when_instances_start_together,
    every_instance_gets_the_same_signing_key,
    a_task_snapshot_never_goes_back_to_an_older_version,
    tasks_are_listed_newest_first_and_by_state,
    everything_survives_reopening,
    history_of_an_unknown_conversation_is_empty_and_a_send_to_it_fails,
    a_message_stays_in_the_outbox_until_it_is_announced,
    a_failing_send_among_concurrent_ones_fails_alone,
);

fn tenant() -> TenantId {
    TenantId("demo-farm".into())
}

fn farmer() -> UserId {
    UserId("u-farmer".into())
}

fn support() -> UserId {
    UserId("u-support".into())
}

fn conversation(id: &str, kind: ConversationKind) -> ConversationRecord {
    ConversationRecord {
        id: ConversationId(id.into()),
        tenant_id: tenant(),
        kind,
        title: "サポート".into(),
        owner: farmer(),
        participants: match kind {
            ConversationKind::Support => vec![farmer(), support()],
            ConversationKind::Assistant => vec![farmer()],
        },
    }
}

fn message(id: &str, conv: &str, text: &str) -> NewMessage {
    NewMessage {
        message_id: MessageId(id.into()),
        conversation_id: ConversationId(conv.into()),
        sender: Sender {
            id: farmer(),
            kind: SenderKind::User,
            display_name: "山田 太郎".into(),
        },
        text: text.into(),
        created_at: "2026-11-22T00:00:00.000Z".into(),
        task_id: None,
    }
}

fn from_support(mut m: NewMessage) -> NewMessage {
    m.sender = Sender {
        id: support(),
        kind: SenderKind::Support,
        display_name: "サポート 佐藤".into(),
    };
    m
}

fn idem(key: &str, fingerprint: &str) -> Idempotency {
    Idempotency {
        user_id: farmer(),
        key: key.into(),
        fingerprint: fingerprint.into(),
    }
}

fn task(id: &str, conv: &str, reply_message: &str, source: &str, version: u64) -> TaskRecord {
    TaskRecord {
        snapshot: TaskSnapshot {
            task_id: TaskId(id.into()),
            conversation_id: ConversationId(conv.into()),
            message_id: MessageId(reply_message.into()),
            kind: TaskKind::CowList,
            state: TaskState::Running,
            progress: None,
            parts: Vec::new(),
            created_at: "2026-11-22T00:00:00.000Z".into(),
            updated_at: "2026-11-22T00:00:00.000Z".into(),
        },
        owner: farmer(),
        source_message_id: MessageId(source.into()),
        version,
    }
}

async fn ready(fx: &Fixture, conversations: &[ConversationRecord]) -> Arc<dyn Store> {
    let store = fx.open().await;
    store.ensure_conversations(conversations).await.unwrap();
    store
}

async fn append(store: &dyn Store, m: &NewMessage) -> Message {
    match store.append_message(m, None, None).await.unwrap() {
        Appended::Created { message, .. } => message,
        other => panic!("{other:?}"),
    }
}

fn seqs(page: &(Vec<Message>, bool)) -> (Vec<u64>, bool) {
    (page.0.iter().map(|m| m.seq).collect(), page.1)
}

async fn seq_counts_per_conversation(fx: Fixture) {
    let store = ready(
        &fx,
        &[
            conversation("c-a", ConversationKind::Support),
            conversation("c-b", ConversationKind::Support),
        ],
    )
    .await;
    let mut got = Vec::new();
    for (m, c) in [("m1", "c-a"), ("m2", "c-a"), ("m3", "c-b"), ("m4", "c-a")] {
        got.push(append(&*store, &message(m, c, "x")).await.seq);
    }
    assert_eq!(got, [1, 2, 1, 3]);
}

async fn concurrent_sends_to_one_conversation_get_every_seq_once(fx: Fixture) {
    let conv = conversation("c-a", ConversationKind::Support);
    let (a, b) = (ready(&fx, &[conv]).await, fx.open().await);
    let mut sends = Vec::new();
    for i in 0..40 {
        // Two handles: two instances sending at once.
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        sends.push(tokio::spawn(async move {
            append(&*store, &message(&format!("m{i}"), "c-a", "同時"))
                .await
                .seq
        }));
    }
    let mut got = Vec::new();
    for send in sends {
        got.push(send.await.unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, (1..=40).collect::<Vec<u64>>());
    let page = a
        .history(&ConversationId("c-a".into()), Cursor::Latest, 100)
        .await
        .unwrap();
    assert_eq!(seqs(&page), ((1..=40).collect(), false));
}

async fn an_idempotency_key_stores_once_and_conflicts_on_another_body(fx: Fixture) {
    let store = ready(&fx, &[conversation("c-a", ConversationKind::Support)]).await;
    let Appended::Created { message: first, .. } = store
        .append_message(
            &message("m1", "c-a", "hi"),
            Some(&idem("k", "c-a|hi")),
            None,
        )
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    assert_eq!(first.idempotency_key.as_deref(), Some("k"));
    let again = store
        .append_message(
            &message("m2", "c-a", "hi"),
            Some(&idem("k", "c-a|hi")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        Appended::Replayed {
            message: first,
            task_id: None
        }
    );
    let other = store
        .append_message(
            &message("m3", "c-a", "bye"),
            Some(&idem("k", "c-a|bye")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(other, Appended::Conflict);
    // Another user's same key is theirs.
    let mut theirs = idem("k", "c-a|hi");
    theirs.user_id = support();
    assert!(matches!(
        store
            .append_message(
                &from_support(message("m4", "c-a", "hi")),
                Some(&theirs),
                None
            )
            .await
            .unwrap(),
        Appended::Created { .. }
    ));
    let page = store
        .history(&ConversationId("c-a".into()), Cursor::Latest, 50)
        .await
        .unwrap();
    assert_eq!(seqs(&page), (vec![1, 2], false));
}

async fn a_key_sent_concurrently_from_two_instances_stores_once(fx: Fixture) {
    let (a, b) = (
        ready(&fx, &[conversation("c-a", ConversationKind::Support)]).await,
        fx.open().await,
    );
    let mut sends = Vec::new();
    for i in 0..10 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        sends.push(tokio::spawn(async move {
            store
                .append_message(
                    &message(&format!("m{i}"), "c-a", "一度だけ"),
                    Some(&idem("retry", "c-a|一度だけ")),
                    None,
                )
                .await
                .unwrap()
        }));
    }
    let mut created = Vec::new();
    let mut replayed = Vec::new();
    for send in sends {
        match send.await.unwrap() {
            Appended::Created { message, .. } => created.push(message),
            Appended::Replayed { message, .. } => replayed.push(message),
            Appended::Conflict => panic!("same body, no conflict"),
        }
    }
    assert_eq!(created.len(), 1, "stored once");
    assert!(replayed.iter().all(|m| *m == created[0]), "{replayed:?}");
    let page = a
        .history(&ConversationId("c-a".into()), Cursor::Latest, 50)
        .await
        .unwrap();
    assert_eq!(page.0.len(), 1);
}

async fn an_assistant_reply_is_stored_with_its_task_and_replayed_with_it(fx: Fixture) {
    let store = ready(&fx, &[conversation("c-ai", ConversationKind::Assistant)]).await;
    let mut answer = message("m-reply", "c-ai", "");
    answer.sender = Sender {
        id: UserId("assistant".into()),
        kind: SenderKind::Assistant,
        display_name: "アシスタント".into(),
    };
    answer.task_id = Some(TaskId("t-1".into()));
    let reply = Reply {
        message: answer,
        task: task("t-1", "c-ai", "m-reply", "m-ask", 1),
    };
    let asked = message("m-ask", "c-ai", "牛の一覧");
    let Appended::Created {
        message: stored,
        reply: Some(stored_reply),
    } = store
        .append_message(&asked, Some(&idem("k-ai", "ai")), Some(&reply))
        .await
        .unwrap()
    else {
        panic!("not created with a reply")
    };
    assert_eq!((stored.seq, stored_reply.seq), (1, 2));
    assert_eq!(
        stored_reply.task.as_ref().map(|t| t.task_id.as_str()),
        Some("t-1"),
        "the reply carries its task's snapshot"
    );
    let again = store
        .append_message(&asked, Some(&idem("k-ai", "ai")), Some(&reply))
        .await
        .unwrap();
    assert_eq!(
        again,
        Appended::Replayed {
            message: stored,
            task_id: Some(TaskId("t-1".into()))
        }
    );
    assert_eq!(
        store.task(&TaskId("t-1".into())).await.unwrap(),
        Some(reply.task)
    );
}

async fn history_pages_both_ways_in_seq_order(fx: Fixture) {
    let store = ready(&fx, &[conversation("c-a", ConversationKind::Support)]).await;
    for i in 1..=7 {
        append(&*store, &message(&format!("m{i}"), "c-a", "x")).await;
    }
    let c = ConversationId("c-a".into());
    let page = |cursor, limit| {
        let (store, c) = (store.clone(), c.clone());
        async move { seqs(&store.history(&c, cursor, limit).await.unwrap()) }
    };
    assert_eq!(page(Cursor::Latest, 3).await, (vec![5, 6, 7], true));
    assert_eq!(page(Cursor::Before(5), 3).await, (vec![2, 3, 4], true));
    assert_eq!(page(Cursor::Before(2), 3).await, (vec![1], false));
    assert_eq!(page(Cursor::After(4), 2).await, (vec![5, 6], true));
    assert_eq!(page(Cursor::After(5), 5).await, (vec![6, 7], false));
    assert_eq!(page(Cursor::Latest, 7).await, ((1..=7).collect(), false));
}

async fn read_marks_never_move_back_nor_past_the_newest_message(fx: Fixture) {
    let store = ready(&fx, &[conversation("c-a", ConversationKind::Support)]).await;
    let c = ConversationId("c-a".into());
    assert_eq!(
        store.mark_read(&c, &farmer(), 5).await.unwrap(),
        0,
        "nothing to read yet"
    );
    for i in 1..=3 {
        append(
            &*store,
            &from_support(message(&format!("m{i}"), "c-a", "x")),
        )
        .await;
    }
    assert_eq!(store.mark_read(&c, &farmer(), 2).await.unwrap(), 2);
    assert_eq!(
        store.mark_read(&c, &farmer(), 1).await.unwrap(),
        2,
        "never back"
    );
    assert_eq!(
        store.mark_read(&c, &farmer(), 99).await.unwrap(),
        3,
        "never past the newest"
    );
    assert_eq!(
        store.mark_read(&c, &farmer(), u64::MAX).await.unwrap(),
        3,
        "any u64 is safe"
    );
}

async fn overviews_give_each_conversation_its_last_message_unread_and_marks(fx: Fixture) {
    let store = ready(
        &fx,
        &[
            conversation("c-ai", ConversationKind::Assistant),
            conversation("c-s", ConversationKind::Support),
        ],
    )
    .await;
    let empty = store.overviews(&tenant(), &farmer(), None).await.unwrap();
    let ids: Vec<&str> = empty.iter().map(|o| o.conversation.id.as_str()).collect();
    assert_eq!(ids, ["c-ai", "c-s"], "in the order they were made");
    assert!(
        empty
            .iter()
            .all(|o| o.last_message.is_none() && o.unread == 0)
    );

    for i in 1..=3 {
        append(
            &*store,
            &from_support(message(&format!("s{i}"), "c-s", &format!("返信{i}"))),
        )
        .await;
    }
    append(&*store, &message("f1", "c-s", "ありがとう")).await;
    append(
        &*store,
        &from_support(message("s4", "c-s", "どういたしまして")),
    )
    .await;

    let support_only = store
        .overviews(&tenant(), &farmer(), Some(ConversationKind::Support))
        .await
        .unwrap();
    assert_eq!(support_only.len(), 1);
    let o = &support_only[0];
    assert_eq!(
        o.conversation,
        conversation("c-s", ConversationKind::Support)
    );
    assert_eq!(o.last_message.as_ref().map(|m| m.seq), Some(5));
    assert_eq!(
        o.last_message.as_ref().map(|m| m.text.as_str()),
        Some("どういたしまして")
    );
    assert_eq!(
        o.unread, 1,
        "the farmer's own send marked what came before it read"
    );
    assert_eq!(
        o.read_marks,
        vec![(farmer(), 4), (support(), 5)],
        "each sender has read up to their own message"
    );
    let theirs = store.overviews(&tenant(), &support(), None).await.unwrap();
    assert_eq!(
        theirs.len(),
        1,
        "support takes no part in the farmer's assistant chat"
    );
    assert_eq!(theirs[0].unread, 0);
    assert!(
        store
            .overviews(&TenantId("other-farm".into()), &farmer(), None)
            .await
            .unwrap()
            .is_empty(),
        "another tenant sees nothing"
    );
}

async fn conversations_are_per_tenant_and_participants_only_grow(fx: Fixture) {
    let store = ready(&fx, &[conversation("c-s", ConversationKind::Support)]).await;
    // Ensuring again with fewer participants removes nobody; with a new one adds it.
    let mut again = conversation("c-s", ConversationKind::Support);
    again.participants = vec![farmer(), UserId("u-support-2".into())];
    again.title = "別の題".into();
    store.ensure_conversations(&[again]).await.unwrap();
    let got = store
        .conversation(&tenant(), &ConversationId("c-s".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.title, "サポート", "an existing conversation is kept");
    assert_eq!(
        got.participants,
        vec![farmer(), support(), UserId("u-support-2".into())]
    );
    assert_eq!(
        store
            .conversation(
                &TenantId("other-farm".into()),
                &ConversationId("c-s".into())
            )
            .await
            .unwrap(),
        None,
        "not found from another tenant"
    );
    // Support staff provisioned later join every support chat of their tenant only.
    let mut elsewhere = conversation("c-x", ConversationKind::Support);
    elsewhere.tenant_id = TenantId("other-farm".into());
    store
        .ensure_conversations(&[elsewhere, conversation("c-ai", ConversationKind::Assistant)])
        .await
        .unwrap();
    let late = UserId("u-support-late".into());
    store
        .join_support_conversations(&tenant(), &late)
        .await
        .unwrap();
    store
        .join_support_conversations(&tenant(), &late)
        .await
        .unwrap();
    let joined: Vec<String> = store
        .overviews(&tenant(), &late, None)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.conversation.id.to_string())
        .collect();
    assert_eq!(joined, ["c-s"]);
}

async fn sessions_are_created_found_ended_and_purged(fx: Fixture) {
    let store = fx.open().await;
    let session = |id: &str, expires_at| SessionRecord {
        id: id.into(),
        user_id: farmer(),
        expires_at,
    };
    store.create_session(&session("old", 100)).await.unwrap();
    store.create_session(&session("new", 10_000)).await.unwrap();
    assert_eq!(
        store.session("new").await.unwrap(),
        Some(session("new", 10_000))
    );
    assert!(matches!(
        store.create_session(&session("new", 1)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.purge_expired_sessions(100).await.unwrap(), 1);
    assert_eq!(store.session("old").await.unwrap(), None);
    assert!(store.delete_session("new").await.unwrap());
    assert!(!store.delete_session("new").await.unwrap());
    assert_eq!(store.session("new").await.unwrap(), None);
}

async fn epochs_never_repeat_even_when_instances_start_together(fx: Fixture) {
    let first = fx.open().await.next_epoch().await.unwrap();
    let mut starts = Vec::new();
    for _ in 0..6 {
        let store = fx.open().await;
        starts.push(tokio::spawn(
            async move { store.next_epoch().await.unwrap() },
        ));
    }
    let mut epochs = HashSet::new();
    for start in starts {
        let epoch = start.await.unwrap();
        assert!(epoch > first);
        assert!(epochs.insert(epoch), "epoch {epoch} given twice");
    }
}

async fn every_instance_gets_the_same_signing_key(fx: Fixture) {
    let mut starts = Vec::new();
    for _ in 0..4 {
        let store = fx.open().await;
        starts.push(tokio::spawn(
            async move { store.signing_key().await.unwrap() },
        ));
    }
    let mut keys = HashSet::new();
    for start in starts {
        keys.insert(start.await.unwrap());
    }
    assert_eq!(keys.len(), 1, "one key for every instance");
    assert_eq!(keys.iter().next().map(Vec::len), Some(32));
}

async fn stored_with_task(store: &dyn Store, task: &TaskRecord, n: u32) {
    let mut answer = message(&format!("m-reply-{n}"), "c-ai", "");
    answer.sender.id = UserId("assistant".into());
    answer.sender.kind = SenderKind::Assistant;
    answer.task_id = Some(task.snapshot.task_id.clone());
    store
        .append_message(
            &message(task.source_message_id.as_str(), "c-ai", "牛"),
            None,
            Some(&Reply {
                message: answer,
                task: task.clone(),
            }),
        )
        .await
        .unwrap();
}

async fn a_task_snapshot_never_goes_back_to_an_older_version(fx: Fixture) {
    let store = ready(&fx, &[conversation("c-ai", ConversationKind::Assistant)]).await;
    let v1 = task("t-1", "c-ai", "m-reply-0", "m-ask-0", 1);
    stored_with_task(&*store, &v1, 0).await;
    let mut v3 = v1.clone();
    v3.version = 3;
    v3.snapshot.state = TaskState::Succeeded;
    v3.snapshot.updated_at = "2026-11-22T00:00:09.000Z".into();
    store.save_task(&v3).await.unwrap();
    let mut v2 = v1.clone();
    v2.version = 2;
    store.save_task(&v2).await.unwrap();
    assert_eq!(
        store.task(&TaskId("t-1".into())).await.unwrap(),
        Some(v3.clone())
    );
    assert!(store.running_tasks().await.unwrap().is_empty());
    let history = store
        .history(&ConversationId("c-ai".into()), Cursor::Latest, 10)
        .await
        .unwrap();
    assert_eq!(
        history.0[1].task.as_ref().map(|t| t.state),
        Some(TaskState::Succeeded),
        "history carries the task's stored snapshot"
    );
    assert_eq!(store.task(&TaskId("t-none".into())).await.unwrap(), None);
}

async fn tasks_are_listed_newest_first_and_by_state(fx: Fixture) {
    let store = ready(&fx, &[conversation("c-ai", ConversationKind::Assistant)]).await;
    for n in 0..3 {
        let t = task(
            &format!("t-{n}"),
            "c-ai",
            &format!("m-reply-{n}"),
            &format!("m-ask-{n}"),
            1,
        );
        stored_with_task(&*store, &t, n).await;
    }
    let mut done = store.task(&TaskId("t-1".into())).await.unwrap().unwrap();
    done.version = 2;
    done.snapshot.state = TaskState::Cancelled;
    store.save_task(&done).await.unwrap();
    let ids = |tasks: Vec<TaskRecord>| -> Vec<String> {
        tasks
            .into_iter()
            .map(|t| t.snapshot.task_id.to_string())
            .collect()
    };
    assert_eq!(
        ids(store.tasks_of(&farmer(), None).await.unwrap()),
        ["t-2", "t-1", "t-0"]
    );
    assert_eq!(
        ids(store
            .tasks_of(&farmer(), Some(TaskState::Running))
            .await
            .unwrap()),
        ["t-2", "t-0"]
    );
    assert_eq!(
        ids(store
            .tasks_of(&farmer(), Some(TaskState::Cancelled))
            .await
            .unwrap()),
        ["t-1"]
    );
    assert!(store.tasks_of(&support(), None).await.unwrap().is_empty());
    let mut running = ids(store.running_tasks().await.unwrap());
    running.sort();
    assert_eq!(running, ["t-0", "t-2"]);
}

async fn everything_survives_reopening(fx: Fixture) {
    let (key, epoch) = {
        let store = ready(&fx, &[conversation("c-a", ConversationKind::Support)]).await;
        append(&*store, &message("m1", "c-a", "残る")).await;
        store
            .create_session(&SessionRecord {
                id: "s".into(),
                user_id: farmer(),
                expires_at: 9,
            })
            .await
            .unwrap();
        (
            store.signing_key().await.unwrap(),
            store.next_epoch().await.unwrap(),
        )
    };
    let store = fx.open().await;
    assert_eq!(store.signing_key().await.unwrap(), key);
    assert_eq!(store.next_epoch().await.unwrap(), epoch + 1);
    let (messages, _) = store
        .history(&ConversationId("c-a".into()), Cursor::Latest, 10)
        .await
        .unwrap();
    assert_eq!(messages[0].text, "残る");
    assert!(store.session("s").await.unwrap().is_some());
    // The next send goes on from the stored seq.
    assert_eq!(append(&*store, &message("m2", "c-a", "次")).await.seq, 2);
}

async fn history_of_an_unknown_conversation_is_empty_and_a_send_to_it_fails(fx: Fixture) {
    let store = fx.open().await;
    let page = store
        .history(&ConversationId("c-none".into()), Cursor::Latest, 10)
        .await
        .unwrap();
    assert_eq!(seqs(&page), (vec![], false));
    assert!(
        store
            .append_message(&message("m1", "c-none", "x"), None, None)
            .await
            .is_err(),
        "no message without its conversation"
    );
}

/// Sends that arrive together may be stored in one transaction (SQLite's group commit): one
/// that fails must fail alone, and every other one is stored exactly once.
async fn a_failing_send_among_concurrent_ones_fails_alone(fx: Fixture) {
    let store = ready(&fx, &[conversation("c-a", ConversationKind::Support)]).await;
    let mut sends = Vec::new();
    for i in 0..60 {
        let store = store.clone();
        // Every tenth goes to a conversation that does not exist.
        let conv = if i % 10 == 5 { "c-none" } else { "c-a" };
        let m = message(&format!("m{i}"), conv, "まとめて");
        sends.push(tokio::spawn(async move {
            store.append_message(&m, None, None).await
        }));
    }
    let (mut stored, mut failed) = (Vec::new(), 0);
    for send in sends {
        match send.await.unwrap() {
            Ok(Appended::Created { message, .. }) => stored.push(message.seq),
            Ok(other) => panic!("{other:?}"),
            Err(_) => failed += 1,
        }
    }
    stored.sort_unstable();
    assert_eq!(failed, 6);
    assert_eq!(stored, (1..=54).collect::<Vec<u64>>());
    let page = store
        .history(&ConversationId("c-a".into()), Cursor::Latest, 100)
        .await
        .unwrap();
    assert_eq!(seqs(&page), ((1..=54).collect(), false));
}

async fn a_message_stays_in_the_outbox_until_it_is_announced(fx: Fixture) {
    let store = ready(&fx, &[conversation("c-a", ConversationKind::Support)]).await;
    let mut first = message("m1", "c-a", "一");
    first.created_at = "2026-11-22T00:00:01.000Z".into();
    let mut second = message("m2", "c-a", "二");
    second.created_at = "2026-11-22T00:00:02.000Z".into();
    append(&*store, &first).await;
    append(&*store, &second).await;
    let ids = |list: Vec<farm_chat_dev_server::store::Unannounced>| -> Vec<String> {
        list.into_iter().map(|u| u.message_id.to_string()).collect()
    };
    assert_eq!(
        ids(store
            .unannounced("2026-11-22T00:00:02.000Z", 10)
            .await
            .unwrap()),
        ["m1"],
        "only what was stored before the cutoff"
    );
    let all = store
        .unannounced("2099-01-01T00:00:00.000Z", 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].seq, 1);
    assert_eq!(all[0].participants, vec![farmer(), support()]);
    store
        .mark_announced(&[MessageId("m1".into())])
        .await
        .unwrap();
    assert_eq!(
        ids(store
            .unannounced("2099-01-01T00:00:00.000Z", 10)
            .await
            .unwrap()),
        ["m2"]
    );
    assert_eq!(
        store
            .unannounced("2099-01-01T00:00:00.000Z", 1)
            .await
            .unwrap()
            .len(),
        1,
        "at most the limit"
    );
}

/// PostgreSQL going away is [`StoreError::Unavailable`] (the server answers 503 with
/// `Retry-After`), and the same store works again once it is back, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_is_unavailable_and_coming_back_heals() {
    let server = Postgres::start().expect("a throwaway PostgreSQL");
    let url = server.fresh_database("outage").unwrap();
    let store = PostgresStore::connect(&url).await.unwrap();
    store
        .ensure_conversations(&[conversation("c-a", ConversationKind::Support)])
        .await
        .unwrap();
    append(&store, &message("m1", "c-a", "前")).await;
    server.stop().unwrap();
    let down = store
        .append_message(
            &message("m2", "c-a", "停止中"),
            Some(&idem("k2", "f")),
            None,
        )
        .await;
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
    server.restart().unwrap();
    // The pool drops the broken connections and opens new ones.
    let mut healed = None;
    for _ in 0..50 {
        match store
            .append_message(
                &message("m2", "c-a", "停止中"),
                Some(&idem("k2", "f")),
                None,
            )
            .await
        {
            Ok(appended) => {
                healed = Some(appended);
                break;
            }
            Err(StoreError::Unavailable(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let Some(Appended::Created { message: m, .. }) = healed else {
        panic!("not healed: {healed:?}")
    };
    assert_eq!(m.seq, 2, "nothing was half-written during the outage");
}

/// A database migrated by a newer farm-chat is refused, not damaged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_schema_from_the_future() {
    let server = Postgres::shared().expect("a throwaway PostgreSQL");
    let url = server.fresh_database("future").unwrap();
    PostgresStore::connect(&url).await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute("INSERT INTO schema_migrations (version) VALUES (999)", &[])
        .await
        .unwrap();
    let refused = PostgresStore::connect(&url).await.unwrap_err().to_string();
    assert!(refused.contains("newer farm-chat"), "{refused}");
}

/// libpq's rules over TLS, each failure one clear line that names its cause, never a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tls_follows_sslmode_and_says_why_it_refuses() {
    let (certs, server) = tls_postgres();
    let db = server.fresh_database_name("sslmodes").unwrap();
    let ca = certs.ca.display().to_string();
    let url = |host: &str, params: &str| server.tcp_url(host, &db, params).unwrap();
    let refused = |e: StoreError| {
        let text = e.to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        text
    };
    // The server takes TLS only: a client that will not is refused, and told so.
    let plain = PostgresStore::connect(&url("localhost", "sslmode=disable"))
        .await
        .unwrap_err();
    let plain = refused(plain);
    assert!(plain.contains("accepts only TLS"), "{plain}");
    // The default (prefer) and require encrypt without checking the certificate.
    for params in [
        "",
        "sslmode=require",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ] {
        let store = PostgresStore::connect(&url("127.0.0.1", params))
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        store.ping().await.unwrap();
    }
    // verify-full checks the name: the certificate names localhost, not 127.0.0.1.
    let full = format!("sslmode=verify-full&sslrootcert={ca}");
    PostgresStore::connect(&url("localhost", &full))
        .await
        .unwrap()
        .ping()
        .await
        .unwrap();
    let name = refused(
        PostgresStore::connect(&url("127.0.0.1", &full))
            .await
            .unwrap_err(),
    );
    assert!(name.contains("does not name the host"), "{name}");
    // A CA that did not sign the server's certificate.
    let other = Certs::make("other", &["localhost"]).unwrap();
    let wrong = format!("sslmode=verify-full&sslrootcert={}", other.ca.display());
    let wrong = refused(
        PostgresStore::connect(&url("localhost", &wrong))
            .await
            .unwrap_err(),
    );
    assert!(
        wrong.contains("not signed by a CA in sslrootcert"),
        "{wrong}"
    );
    // The verify modes without a CA say where to put one.
    let missing = refused(
        PostgresStore::connect(&url("localhost", "sslmode=verify-full"))
            .await
            .unwrap_err(),
    );
    assert!(missing.contains("sslrootcert=FILE"), "{missing}");
}
