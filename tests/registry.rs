//! The connection registry's contract, one test per rule of SPEC section 3
//! (R1..R13), driven through `ManagerActor` with fake apps on the outboxes.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use callbackstream::connection::ConnectionStats;
use callbackstream::error::DISCONNECTED;
use callbackstream::manager::{
    Close, CloseAll, CurrentConfig, Describe, IsConnected, Register, RegistryView, Send,
};
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::{
    SubscribeActorEventsRequestAlpha1, SubscribeActorEventsRequestFailedAlpha1,
    SubscribeActorEventsRequestInitialAlpha1,
};
use callbackstream::transport::{
    DeactivateRequest, FireOutcome, InvokeReply, ReminderRequest, TimerRequest,
};
use callbackstream::{
    ConnectionId, ConnectionOptions, Error, ManagerActor, RegistrationConfig, Transport,
};
use futures::FutureExt;
use futures::future::join_all;

use actix::Addr;
use common::*;

async fn current_config(manager: &Addr<ManagerActor>) -> Option<RegistrationConfig> {
    let config = manager.send(CurrentConfig).await.expect("manager alive");
    config.map(|c| (*c).clone())
}

async fn describe(manager: &Addr<ManagerActor>) -> RegistryView {
    manager.send(Describe).await.expect("manager alive")
}

async fn is_connected(manager: &Addr<ManagerActor>) -> bool {
    manager.send(IsConnected).await.expect("manager alive")
}

/// R1: a send with no live connection fails at once with NoConnection.
#[actix_rt::test]
async fn r1_send_without_connection_fails_with_no_connection() {
    let manager = start_manager();

    let raw = within(
        "raw send",
        try_send(&manager, Send::new(invoke("cat", "x"))),
    )
    .await;
    let err = raw.expect_err("no connection to send to");
    assert_eq!(err, Error::NoConnection);
    assert_eq!(err.to_string(), "actor host is not connected");

    let typed = Send::new(invoke("cat", "x")).for_type("cat");
    let typed = within("typed send", try_send(&manager, typed)).await;
    assert_eq!(typed.expect_err("no connection"), Error::NoConnection);
}

/// R2: the newest live connection serves new sends and its registration is the current config.
#[actix_rt::test]
async fn r2_newest_connection_serves_new_sends_and_owns_current_config() {
    let manager = start_manager();
    let mut older = App::register(&manager, &["cat"]).await;
    let mut newer = App::register(&manager, &["dog"]).await;

    for n in 0..3 {
        let pending = send_raw(&manager, &format!("m{n}")).await;
        let (on, request) = landing(&mut [&mut older, &mut newer]).await;
        assert_eq!(on, newer.id);
        assert_eq!(request_id(&request), pending.id());
    }
    assert_eq!(
        current_config(&manager).await,
        Some(RegistrationConfig::hosting(["dog"]))
    );
    assert_eq!(
        describe(&manager).await,
        RegistryView {
            connections: vec![older.id, newer.id],
            actor_types: vec!["cat".into(), "dog".into()],
        }
    );
}

/// R3: closing the newest connection falls back to the previous live one; closing an older one changes nothing.
#[actix_rt::test]
async fn r3_closing_newest_falls_back_closing_older_changes_nothing() {
    let manager = start_manager();
    let mut first = App::register(&manager, &["a"]).await;
    let mut middle = App::register(&manager, &["b"]).await;
    let mut newest = App::register(&manager, &["c"]).await;

    // A request in flight on the newest connection.
    let in_flight = send_raw(&manager, "in flight").await;
    let request = newest.next().await;

    // Closing an older connection: routing, config and the request in flight are untouched.
    close(&manager, middle.id).await;
    middle.until_outbox_ends().await;
    let pending = send_raw(&manager, "after closing middle").await;
    let (on, _) = landing(&mut [&mut first, &mut newest]).await;
    assert_eq!(on, newest.id);
    drop(pending);
    assert_eq!(
        current_config(&manager).await,
        Some(RegistrationConfig::hosting(["c"]))
    );
    newest
        .answer(invoke_response(request_id(&request), "done"))
        .await;
    assert_eq!(
        reply_data(within("in-flight reply", in_flight).await),
        "done"
    );

    // Closing the newest: the previous live one (not the closed middle) takes over.
    close(&manager, newest.id).await;
    let _pending = send_raw(&manager, "after closing newest").await;
    let (on, _) = landing(&mut [&mut first]).await;
    assert_eq!(on, first.id);
    assert_eq!(
        current_config(&manager).await,
        Some(RegistrationConfig::hosting(["a"]))
    );
    assert_eq!(describe(&manager).await.connections, vec![first.id]);
}

/// R4: when every connection is closed the manager is as new: no connection, no config, Send → NoConnection.
#[actix_rt::test]
async fn r4_all_closed_is_as_new() {
    let manager = start_manager();
    let mut one = App::register(&manager, &["cat"]).await;
    let mut two = App::register(&manager, &["dog"]).await;
    let mut three = App::register(&manager, &[]).await;

    close(&manager, two.id).await;
    let closed = manager
        .send(CloseAll {
            cause: "shutting down".into(),
        })
        .await
        .expect("manager alive");
    assert_eq!(closed, 2, "CloseAll counts the connections it closed");

    assert!(!is_connected(&manager).await);
    assert_eq!(current_config(&manager).await, None);
    assert_eq!(describe(&manager).await, RegistryView::default());
    let raw = try_send(&manager, Send::new(invoke("cat", "x"))).await;
    assert_eq!(raw.expect_err("nothing live"), Error::NoConnection);
    let typed = try_send(&manager, Send::new(invoke("cat", "x")).for_type("cat")).await;
    assert_eq!(typed.expect_err("nothing live"), Error::NoConnection);
    for app in [&mut one, &mut two, &mut three] {
        assert!(app.until_outbox_ends().await.is_empty());
    }
    let closed_again = manager
        .send(CloseAll {
            cause: "again".into(),
        })
        .await
        .expect("manager alive");
    assert_eq!(closed_again, 0);
}

/// R5: closing a connection promptly fails every request still waiting on it with Disconnected and the cause.
#[actix_rt::test]
async fn r5_close_fails_waiting_requests_promptly_with_cause() {
    // An outbox of one, so some requests are still waiting for room at close.
    let manager = start_manager_with(ConnectionOptions {
        outbox_capacity: 1,
        ..ConnectionOptions::default()
    });

    for cause in [None, Some("app stream reset by peer")] {
        let mut app = App::register(&manager, &["cat"]).await;
        let mut waiters = Vec::new();
        for n in 0..4 {
            let pending = send_raw(&manager, &format!("m{n}")).await;
            // Callers actively awaiting their reply when the close comes.
            waiters.push(actix_rt::spawn(pending));
        }
        app.stats_until("all four waiting, three for room", |s| {
            s == ConnectionStats {
                pending: 4,
                queued: 3,
            }
        })
        .await;

        let close = Close {
            id: app.id,
            cause: cause.map(String::from),
        };
        manager.send(close).await.expect("manager alive");

        let expected_cause = cause.unwrap_or(DISCONNECTED);
        let expected = Error::Disconnected {
            cause: Arc::from(expected_cause),
        };
        for waiter in join_all(waiters.into_iter().map(|w| within("waiter fails", w))).await {
            let err = waiter.expect("caller task").expect_err("no reply can come");
            assert_eq!(err, expected);
            assert_eq!(err.to_string(), expected_cause);
        }
        assert_eq!(app.stats().await, ConnectionStats::default());
        // The one message that made it to the outbox is all the writer sees, then the end.
        assert_eq!(app.until_outbox_ends().await.len(), 1);
    }
    assert_eq!(
        DISCONNECTED, "actor host disconnected before responding",
        "default cause"
    );

    // A send racing the close (routed before it, dispatched after it) fails the same way.
    let app = App::register(&manager, &[]).await;
    let racing = manager.send(Send::new(invoke("cat", "racing")));
    manager
        .send(Close {
            id: app.id,
            cause: None,
        })
        .await
        .unwrap();
    let outcome = async { racing.await.expect("manager alive")?.await };
    assert_eq!(
        within("racing send fails", outcome).await,
        Err(Error::disconnected())
    );

    // CloseAll fails the waiters of every connection with its cause.
    let _a = App::register(&manager, &[]).await;
    let _b = App::register(&manager, &[]).await;
    let waiting = send_raw(&manager, "x").await;
    let cause = "gateway shutting down".to_string();
    manager
        .send(CloseAll {
            cause: cause.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        within("waiter fails", waiting).await,
        Err(Error::Disconnected {
            cause: Arc::from(cause)
        })
    );
}

/// R6: in a rolling restart, a request handed to the older connection completes there; new requests go to the newer one.
#[actix_rt::test]
async fn r6_rolling_restart_keeps_old_requests_on_old_connection() {
    let manager = start_manager();
    let mut old = App::register(&manager, &["cat"]).await;
    let old_call = send_raw(&manager, "to old").await;
    let old_request = old.next().await;

    let mut new = App::register(&manager, &["cat"]).await;
    let new_call = send_raw(&manager, "to new").await;
    let (on, new_request) = landing(&mut [&mut old, &mut new]).await;
    assert_eq!(on, new.id);

    // Ids are only unique per connection (here both are likely the same):
    // each connection's reply still reaches its own caller.
    new.answer(invoke_response(request_id(&new_request), "from new"))
        .await;
    assert_eq!(reply_data(within("new reply", new_call).await), "from new");
    assert_eq!(old.stats().await.pending, 1, "old request still waits");

    old.answer(invoke_response(request_id(&old_request), "from old"))
        .await;
    assert_eq!(reply_data(within("old reply", old_call).await), "from old");

    // The old connection still lives but gets nothing new.
    for n in 0..3 {
        let _pending = send_raw(&manager, &format!("later {n}")).await;
        let (on, _) = landing(&mut [&mut old, &mut new]).await;
        assert_eq!(on, new.id);
    }
}

/// R7: reconnecting after a full disconnect restores routing.
#[actix_rt::test]
async fn r7_reconnect_after_full_disconnect_restores_routing() {
    let manager = start_manager();
    let gone = App::register(&manager, &["cat"]).await;
    let gone_id = gone.id;
    let gone_echo = gone.spawn_echo();
    close(&manager, gone_id).await;
    within("old app's outbox ends", gone_echo).await.unwrap();
    let refused = try_send(&manager, Send::new(invoke("cat", "x"))).await;
    assert_eq!(refused.expect_err("disconnected"), Error::NoConnection);

    let back = App::register(&manager, &["cat", "dog"]).await;
    let back_id = back.id;
    assert_ne!(back_id, gone_id);
    let _echo = back.spawn_echo();
    assert!(is_connected(&manager).await);
    assert_eq!(
        current_config(&manager).await,
        Some(RegistrationConfig::hosting(["cat", "dog"]))
    );

    let raw = send_raw(&manager, "raw").await;
    assert_eq!(reply_data(within("raw reply", raw).await), "raw");
    let transport = Transport::new(manager.clone());
    let typed = within(
        "typed reply",
        transport.invoke(invoke_request("dog", "typed"), None),
    )
    .await
    .expect("served");
    assert_eq!(typed.data, b"typed");
    assert_eq!(typed.metadata[SERVED_BY], back_id.to_string());
}

/// R8: a registered connection is visible to the very next send; closing twice (or an unknown id) is harmless.
#[actix_rt::test]
async fn r8_register_is_visible_at_once_and_close_is_idempotent() {
    let manager = start_manager();
    let mut first = App::register(&manager, &["cat"]).await;
    // No yield, no sleep: as soon as Register answered, sends see it.
    assert!(is_connected(&manager).await);
    let _to_first = send_raw(&manager, "x").await;
    assert_eq!(landing(&mut [&mut first]).await.0, first.id);

    let waiting = send_raw(&manager, "waits on first").await;
    let waiting_request = first.next().await;
    let mut second = App::register(&manager, &["dog"]).await;
    let _to_second = send_raw(&manager, "y").await;
    assert_eq!(landing(&mut [&mut first, &mut second]).await.0, second.id);

    close(&manager, second.id).await;
    close(&manager, second.id).await;
    close(&manager, ConnectionId(u64::MAX)).await;
    assert_eq!(
        describe(&manager).await,
        RegistryView {
            connections: vec![first.id],
            actor_types: vec!["cat".into()],
        }
    );
    assert_eq!(first.stats().await.pending, 2, "first untouched");
    let _to_first = send_raw(&manager, "z").await;
    assert_eq!(landing(&mut [&mut first]).await.0, first.id);
    first
        .answer(invoke_response(request_id(&waiting_request), "ok"))
        .await;
    assert_eq!(reply_data(within("reply", waiting).await), "ok");

    close(&manager, first.id).await;
    close(&manager, first.id).await;
    assert_eq!(describe(&manager).await, RegistryView::default());
}

/// R4/R5 with no explicit Close: dropping a `Connection` handle (its server
/// went away, however) closes the connection and fails what waits on it.
#[actix_rt::test]
async fn dropping_the_connection_handle_closes_it() {
    let manager = start_manager();
    let older = App::register(&manager, &["cat"]).await;
    let dropped = register(&manager, &["cat"]).await;
    let waiting = send_raw(&manager, "lost").await;
    drop(dropped);
    let err = within("the waiting caller fails", waiting).await;
    assert_eq!(err.expect_err("closed"), Error::disconnected());
    assert_eq!(
        describe(&manager).await.connections,
        vec![older.id],
        "routing falls back to the older connection"
    );
}

/// R8: 16 tasks × 25 concurrent register/serve/close cycles leave no connection behind.
/// R8 and R5 when `Register` names another arbiter (as the gateway's stream
/// handler does): the actor starts there after the answer, yet a send that
/// follows at once still lands, and a close still fails what waits.
#[actix_rt::test]
async fn r8_r5_hold_when_the_connection_runs_on_another_arbiter() {
    let manager = start_manager();
    let elsewhere = actix::Arbiter::new();
    let register = Register {
        arbiter: Some(elsewhere.handle()),
        ..Register::new(RegistrationConfig::hosting(["cat"]))
    };
    let mut app: App = manager.send(register).await.expect("manager alive").into();
    let answered = send_raw(&manager, "x").await;
    let request = app.next().await;
    app.answer(invoke_response(request_id(&request), "ok"))
        .await;
    assert_eq!(reply_data(within("reply", answered).await), "ok");

    let waiting = send_raw(&manager, "waits").await;
    app.next().await;
    close(&manager, app.id).await;
    assert!(matches!(
        within("waiter fails", waiting).await,
        Err(Error::Disconnected { .. })
    ));
    assert!(app.until_outbox_ends().await.is_empty());
    elsewhere.stop();
}

#[actix_rt::test]
async fn r8_concurrent_register_close_cycles_leave_nothing() {
    let manager = start_manager();
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let manager = manager.clone();
            actix_rt::spawn(async move {
                let transport = Transport::new(manager.clone());
                let actor_type = format!("type-{task}");
                for cycle in 0..25 {
                    let app = App::register(&manager, &[&actor_type]).await;
                    let id = app.id;
                    let echo = app.spawn_echo();
                    let data = format!("{task}/{cycle}");
                    // Only this task's live connection hosts its type.
                    let reply = transport
                        .invoke(invoke_request(&actor_type, &data), None)
                        .await
                        .expect("own connection serves");
                    assert_eq!(reply.data, data.as_bytes());
                    assert_eq!(reply.metadata[SERVED_BY], id.to_string());
                    close(&manager, id).await;
                    echo.await.expect("echo app ends with its outbox");
                }
            })
        })
        .collect();
    for task in within("all cycles", join_all(tasks)).await {
        task.expect("no task panicked");
    }

    assert_eq!(describe(&manager).await, RegistryView::default());
    assert!(!is_connected(&manager).await);
    assert_eq!(current_config(&manager).await, None);
}

/// R9: replies are matched to callers by id alone; strays are dropped and the connection keeps working.
#[actix_rt::test]
async fn r9_replies_matched_by_id_and_strays_dropped() {
    // An outbox of two, so a third request is issued but not yet written.
    let manager = start_manager_with(ConnectionOptions {
        outbox_capacity: 2,
        ..ConnectionOptions::default()
    });
    let mut app = App::register(&manager, &["cat"]).await;
    let mut first = send_raw(&manager, "first").await;
    let mut second = send_raw(&manager, "second").await;
    let mut third = send_raw(&manager, "third").await;
    let ids = [first.id(), second.id(), third.id()];
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "ids are unique per connection"
    );
    assert_eq!(app.stats().await.queued, 1, "third waits for room");

    // Ids are issued as consecutive decimals (src/connection/mod.rs), so this is the id
    // the next request will get: a reply for it before it exists is a stray.
    let next_id = (ids[2].parse::<u64>().unwrap() + 1).to_string();
    let strays = [
        from_app(invoke_response("999999", "unknown id")),
        from_app(invoke_response("", "no id")),
        from_app(invoke_response("not-a-number", "garbage id")),
        from_app(invoke_response(&format!("0{}", ids[0]), "padded id")),
        from_app(invoke_response(&ids[2], "third is not written yet")),
        from_app(invoke_response(&next_id, "not issued yet")),
        SubscribeActorEventsRequestAlpha1 { request_type: None },
        from_app(RequestType::InitialRequest(
            SubscribeActorEventsRequestInitialAlpha1 {
                entities: vec!["cat".into()],
                ..Default::default()
            },
        )),
    ];
    for stray in strays {
        app.deliver(stray).await;
    }
    // Stats answer after every stray was handled (one mailbox, in order).
    assert_eq!(
        app.stats().await,
        ConnectionStats {
            pending: 3,
            queued: 1
        }
    );
    for (n, call) in [&mut first, &mut second, &mut third]
        .into_iter()
        .enumerate()
    {
        assert!(call.now_or_never().is_none(), "request {n} still waits");
    }
    let written: Vec<_> = [app.next().await, app.next().await, app.next().await]
        .iter()
        .map(|r| request_id(r).to_owned())
        .collect();
    assert_eq!(written, ids);

    // Answered in reverse order, each reply reaches its own caller.
    app.answer(invoke_response(&ids[1], "for second")).await;
    app.answer(invoke_response(&ids[0], "for first")).await;
    assert_eq!(reply_data(within("second", second).await), "for second");
    assert_eq!(reply_data(within("first", first).await), "for first");
    app.stats().await;
    assert!(
        (&mut third).now_or_never().is_none(),
        "the early reply did not count"
    );

    // The early reply did not answer the request that later got its id either;
    // and the reply's kind plays no part in matching.
    let mut fourth = send_raw(&manager, "fourth").await;
    assert_eq!(request_id(&app.next().await), next_id);
    app.stats().await;
    assert!((&mut fourth).now_or_never().is_none(), "fourth still waits");
    let failed = RequestType::RequestFailed(SubscribeActorEventsRequestFailedAlpha1 {
        id: next_id.clone(),
        code: 13,
        message: "boom".into(),
    });
    app.answer(failed.clone()).await;
    assert_eq!(within("fourth", fourth).await, Ok(failed));
    app.answer(invoke_response(&ids[2], "for third")).await;
    assert_eq!(reply_data(within("third", third).await), "for third");
    assert_eq!(app.stats().await, ConnectionStats::default());
}

/// R10: a caller that gives up (dropped future or passed deadline) leaves no entry; its late reply is dropped.
#[actix_rt::test]
async fn r10_caller_that_gives_up_leaves_no_entry() {
    let manager = start_manager();
    let mut app = App::register(&manager, &["cat"]).await;

    let dropped = send_raw(&manager, "dropped").await;
    let dropped_request = app.next().await;
    assert_eq!(app.stats().await.pending, 1);
    drop(dropped);
    app.stats_until("dropped caller forgotten", |s| s.pending == 0)
        .await;

    let send = Send::new(invoke("cat", "timed")).timeout(Duration::from_millis(50));
    let timed = try_send(&manager, send).await.expect("accepted");
    let timed_request = app.next().await;
    assert_eq!(
        within("deadline", timed).await,
        Err(Error::DeadlineExceeded)
    );
    app.stats_until("timed-out caller forgotten", |s| s.pending == 0)
        .await;

    // The typed transport's deadline behaves the same.
    let transport = Transport::new(manager.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
    let typed = transport.invoke(invoke_request("cat", "typed"), Some(deadline));
    assert_eq!(
        within("typed deadline", typed).await,
        Err(Error::DeadlineExceeded)
    );
    let typed_request = app.next().await;
    app.stats_until("typed caller forgotten", |s| s.pending == 0)
        .await;

    // A typed call dropped mid-flight, once its request is out, leaves nothing either.
    let mut abandoned = Box::pin(transport.invoke(invoke_request("cat", "abandoned"), None));
    let abandoned_request = within("abandoned request written", async {
        loop {
            assert!(futures::poll!(&mut abandoned).is_pending());
            if let Some(request) = app.try_next() {
                return request;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    drop(abandoned);
    app.stats_until("abandoned caller forgotten", |s| s.pending == 0)
        .await;

    // Late replies are dropped quietly; the connection still serves.
    for late in [
        &dropped_request,
        &timed_request,
        &typed_request,
        &abandoned_request,
    ] {
        app.answer(invoke_response(request_id(late), "late")).await;
    }
    assert_eq!(app.stats().await, ConnectionStats::default());
    let fresh = send_raw(&manager, "fresh").await;
    let fresh_request = app.next().await;
    app.echo(&fresh_request).await;
    assert_eq!(reply_data(within("fresh", fresh).await), "fresh");
}

/// R11: a full outbox makes senders wait, in order, until room, deadline or close; nothing is dropped or duplicated.
#[actix_rt::test]
async fn r11_full_outbox_makes_senders_wait_without_dropping() {
    let manager = start_manager_with(ConnectionOptions {
        outbox_capacity: 2,
        ..ConnectionOptions::default()
    });
    let mut app = App::register(&manager, &["cat"]).await;

    // Two fill the outbox; the third waits for room.
    let mut calls = Vec::new();
    for data in ["m1", "m2", "m3"] {
        calls.push((data, send_raw(&manager, data).await));
    }
    assert_eq!(
        app.stats().await,
        ConnectionStats {
            pending: 3,
            queued: 1
        }
    );
    // A sender in the middle of the queue gives up at its deadline.
    let send = Send::new(invoke("cat", "m4")).timeout(Duration::from_millis(100));
    let gives_up = try_send(&manager, send).await.expect("accepted");
    calls.push(("m5", send_raw(&manager, "m5").await));
    assert_eq!(
        within("deadline while queued", gives_up).await,
        Err(Error::DeadlineExceeded)
    );
    app.stats_until("m4 left the queue", |s| {
        s == ConnectionStats {
            pending: 4,
            queued: 2,
        }
    })
    .await;
    for (data, call) in &mut calls {
        assert!(call.now_or_never().is_none(), "{data} still waits");
    }

    // Draining lets every waiting sender through, once each, in order.
    let mut written = Vec::new();
    for _ in 0..4 {
        written.push(app.next().await);
    }
    let data: Vec<_> = written.iter().map(request_data).collect();
    assert_eq!(data, ["m1", "m2", "m3", "m5"]);
    app.stats_until("queue drained", |s| s.queued == 0).await;
    app.assert_no_request();
    for request in &written {
        app.echo(request).await;
    }
    for (data, call) in calls {
        assert_eq!(reply_data(within(data, call).await), data);
    }

    // With the reader on another thread, as the gRPC stream writer is, and
    // sends racing its reads: every message comes out exactly once, in order.
    let burst: Vec<String> = (0..300).map(|n| format!("burst-{n}")).collect();
    let inbound = app.inbound.clone();
    let reader = app.read_on_other_thread(burst.len());
    let mut waiting = Vec::new();
    for data in &burst {
        waiting.push(send_raw(&manager, data).await);
    }
    let (written, _app) = within("reader thread", reader)
        .await
        .expect("reader thread");
    let ids: HashSet<_> = written.iter().map(request_id).collect();
    assert_eq!(ids.len(), burst.len(), "no id written twice");
    let data: Vec<_> = written.iter().map(request_data).collect();
    assert_eq!(data, burst);
    let stats = inbound.stats().await;
    assert_eq!(
        stats,
        ConnectionStats {
            pending: burst.len(),
            queued: 0
        }
    );
}

/// R12: 64 concurrent callers on one connection each receive exactly their own reply.
#[actix_rt::test]
async fn r12_many_concurrent_callers_each_get_their_own_reply() {
    const CALLERS: usize = 64;
    let manager = start_manager();
    let mut app = App::register(&manager, &["cat"]).await;
    let transport = Transport::new(manager.clone());

    let callers: Vec<_> = (0..CALLERS)
        .map(|n| {
            let transport = transport.clone();
            actix_rt::spawn(async move {
                let data = format!("caller-{n}");
                transport.invoke(invoke_request("cat", &data), None).await
            })
        })
        .collect();
    let mut requests = Vec::new();
    for _ in 0..CALLERS {
        requests.push(app.next().await);
    }
    let ids: HashSet<_> = requests.iter().map(request_id).collect();
    assert_eq!(ids.len(), CALLERS, "every request has its own id");

    // Answer in the reverse of arrival order: only the id can pair them up.
    for request in requests.iter().rev() {
        app.echo(request).await;
    }
    for (n, caller) in within("all callers", join_all(callers))
        .await
        .into_iter()
        .enumerate()
    {
        let reply = caller.expect("caller task").expect("own reply");
        assert_eq!(reply.data, format!("caller-{n}").as_bytes());
    }
    assert_eq!(app.stats().await, ConnectionStats::default());
}

/// R13: typed calls go to the newest live connection listing their type, else the newest overall; raw Send keeps R2.
#[actix_rt::test]
async fn r13_typed_calls_route_to_newest_connection_hosting_the_type() {
    let manager = start_manager();
    let mut a = App::register(&manager, &["cat", "dog"]).await;
    let mut b = App::register(&manager, &["dog"]).await;
    let mut c = App::register(&manager, &[]).await;

    let typed = |actor_type: &str| Send::new(invoke(actor_type, "x")).for_type(actor_type);
    let cases = [
        (typed("cat"), a.id),                  // only a lists it, though older
        (typed("dog"), b.id),                  // the newest of those listing it
        (typed("bird"), c.id),                 // nobody lists it: the newest overall
        (Send::new(invoke("cat", "x")), c.id), // raw: newest overall, whatever it carries
    ];
    for (send, expected) in cases {
        let _pending = try_send(&manager, send).await.expect("accepted");
        assert_eq!(landing(&mut [&mut a, &mut b, &mut c]).await.0, expected);
    }

    // Every typed call of the transport routes by the type it carries.
    let transport = Transport::new(manager.clone());
    for kind in ["invoke", "reminder", "timer", "deactivate"] {
        let transport = transport.clone();
        let call = actix_rt::spawn(async move { typed_call(&transport, kind, "cat").await });
        let (on, request) = landing(&mut [&mut a, &mut b, &mut c]).await;
        assert_eq!(on, a.id, "{kind} for cat");
        a.echo(&request).await;
        within(kind, call).await.unwrap();
    }

    // Routing follows closes: the next lister, then the newest overall.
    close(&manager, b.id).await;
    let _pending = try_send(&manager, typed("dog")).await.unwrap();
    assert_eq!(landing(&mut [&mut a, &mut c]).await.0, a.id);
    close(&manager, a.id).await;
    let _pending = try_send(&manager, typed("cat")).await.unwrap();
    assert_eq!(landing(&mut [&mut c]).await.0, c.id);

    // A newer lister takes over its type, and only its type.
    let mut d = App::register(&manager, &["cat"]).await;
    let _pending = try_send(&manager, typed("cat")).await.unwrap();
    assert_eq!(landing(&mut [&mut c, &mut d]).await.0, d.id);
    let _pending = try_send(&manager, typed("dog")).await.unwrap();
    assert_eq!(
        landing(&mut [&mut c, &mut d]).await.0,
        d.id,
        "newest overall"
    );
}

/// One typed transport call of `kind` for `actor_type`, answered by the echo policy.
async fn typed_call(transport: &Transport, kind: &str, actor_type: &str) {
    let actor_type = actor_type.to_owned();
    match kind {
        "invoke" => {
            let reply = transport
                .invoke(invoke_request(&actor_type, "x"), None)
                .await;
            assert!(matches!(reply, Ok(InvokeReply { .. })), "{reply:?}");
        }
        "reminder" => {
            let request = ReminderRequest {
                actor_type,
                ..Default::default()
            };
            let reply = transport.reminder(request, None).await;
            assert_eq!(reply, Ok(FireOutcome::Continue));
        }
        "timer" => {
            let request = TimerRequest {
                actor_type,
                ..Default::default()
            };
            assert_eq!(
                transport.timer(request, None).await,
                Ok(FireOutcome::Continue)
            );
        }
        "deactivate" => {
            let request = DeactivateRequest {
                actor_type,
                ..Default::default()
            };
            assert_eq!(transport.deactivate(request, None).await, Ok(()));
        }
        other => panic!("unknown call kind {other}"),
    }
}
