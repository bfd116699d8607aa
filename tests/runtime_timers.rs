//! Timers and reminders (SPEC TM1-TM3, RM1-RM5, D2/D3's timer parts), end to
//! end through the `Dapr` service, with the app played by hand.
//!
//! Time is tokio's paused clock: each test runs in actix's current-thread
//! system (`#[actix_rt::test]`) and pauses it first, so the manager, the
//! table and the timers run on the test's own clock. Nothing sleeps: the
//! tests `advance` the clock, and `App::next` lets a paused clock jump to
//! the next timer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use callbackstream::config::ActorSettings;
use callbackstream::manager::Register;
use callbackstream::proto::common::v1::{
    JobFailurePolicy, JobFailurePolicyConstant, JobFailurePolicyDrop, job_failure_policy::Policy,
};
use callbackstream::proto::dapr_server::Dapr;
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    GetActorReminderRequest, RegisterActorReminderRequest, RegisterActorTimerRequest,
    SubscribeActorEventsRequestDeactivateResponseAlpha1, SubscribeActorEventsRequestFailedAlpha1,
    UnregisterActorReminderRequest, UnregisterActorTimerRequest,
};
use callbackstream::runtime::table::ActorKey;
use callbackstream::runtime::{JobLimits, Runtime, RuntimeOptions, data};
use callbackstream::service::DaprService;
use callbackstream::store::{MemoryStore, Store};
use callbackstream::{ManagerActor, RegistrationConfig};
use common::{App, fire_response, pass, request_id, settle, start_manager};
use prost::Message;
use tokio::time::Instant;
use tonic::{Code, Request};

const T: &str = "T";

struct Rig {
    manager: Addr<ManagerActor>,
    runtime: Runtime,
    service: DaprService,
}

impl Rig {
    /// A gateway with the runtime over `store`, on the paused clock.
    async fn over(store: Arc<dyn Store>) -> Rig {
        Rig::with_options(store, RuntimeOptions::default()).await
    }

    async fn with_options(store: Arc<dyn Store>, options: RuntimeOptions) -> Rig {
        let manager = start_manager();
        let runtime = Runtime::start(&manager, store, options)
            .await
            .expect("runtime starts");
        let service = DaprService::new(manager.clone(), "app").with_runtime(runtime.clone());
        Rig {
            manager,
            runtime,
            service,
        }
    }

    async fn new() -> Rig {
        tokio::time::pause();
        Rig::over(Arc::new(MemoryStore::new())).await
    }

    async fn app(&self) -> App {
        App::register(&self.manager, &[T]).await
    }

    async fn timer(&self, r: RegisterActorTimerRequest) -> Result<(), tonic::Status> {
        self.service
            .register_actor_timer(Request::new(r))
            .await
            .map(|_| ())
    }

    async fn reminder(&self, r: RegisterActorReminderRequest) -> Result<(), tonic::Status> {
        self.service
            .register_actor_reminder(Request::new(r))
            .await
            .map(|_| ())
    }

    async fn get(
        &self,
        name: &str,
    ) -> Result<callbackstream::proto::GetActorReminderResponse, tonic::Status> {
        let r = GetActorReminderRequest {
            actor_type: T.into(),
            actor_id: "a".into(),
            name: name.into(),
        };
        self.service
            .get_actor_reminder(Request::new(r))
            .await
            .map(|r| r.into_inner())
    }
}

fn timer(id: &str, name: &str, due: &str, period: &str) -> RegisterActorTimerRequest {
    RegisterActorTimerRequest {
        actor_type: T.into(),
        actor_id: id.into(),
        name: name.into(),
        due_time: due.into(),
        period: period.into(),
        callback: "cb".into(),
        ..Default::default()
    }
}

fn reminder(name: &str, due: &str, period: &str) -> RegisterActorReminderRequest {
    RegisterActorReminderRequest {
        actor_type: T.into(),
        actor_id: "a".into(),
        name: name.into(),
        due_time: due.into(),
        period: period.into(),
        ..Default::default()
    }
}

/// The next request, which must be a timer fire.
async fn next_timer(app: &mut App) -> callbackstream::transport::TimerRequest {
    match app.next().await {
        ResponseType::TimerRequest(r) => r,
        other => panic!("expected a timer_request, got {other:?}"),
    }
}

async fn answer_timer(app: &App, id: &str, cancel: bool) {
    app.answer(RequestType::TimerResponse(fire_response(id.into(), cancel)))
        .await;
}

async fn fail(app: &App, id: &str, code: u32) {
    let failed = SubscribeActorEventsRequestFailedAlpha1 {
        id: id.into(),
        code,
        message: "no such actor".into(),
    };
    app.answer(RequestType::RequestFailed(failed)).await;
}

/// The JSON text inside a BytesValue Any.
fn any_text(any: &prost_types::Any) -> String {
    assert_eq!(any.type_url, data::BYTES_VALUE_TYPE_URL);
    String::from_utf8(Vec::<u8>::decode(any.value.as_slice()).unwrap()).unwrap()
}

fn assert_status<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, message: &str) {
    let status = r.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().starts_with(message),
        "{:?} does not start with {message:?}",
        status.message()
    );
}

#[actix_rt::test]
async fn tm3_ten_timers_fire_with_the_registered_fields_and_data() {
    let rig = Rig::new().await;
    let mut app = rig.app().await;
    for n in 0..10 {
        let mut r = timer(&format!("a{n}"), &format!("t{n}"), "0h0m1s0ms0μs", "");
        r.data = br#"{"n":7}"#.to_vec();
        rig.timer(r).await.unwrap();
    }
    settle().await;
    app.assert_no_request();
    pass(Duration::from_secs(1)).await;
    let mut names = Vec::new();
    for _ in 0..10 {
        let r = next_timer(&mut app).await;
        assert_eq!(r.actor_type, T);
        assert_eq!(r.actor_id, format!("a{}", &r.name[1..]));
        assert_eq!(r.due_time, "0h0m1s0ms0μs");
        assert_eq!(r.period, "");
        assert_eq!(r.callback, "cb");
        assert_eq!(any_text(r.data.as_ref().unwrap()), r#""eyJuIjo3fQ==""#);
        names.push(r.name.clone());
        answer_timer(&app, &r.id, false).await;
    }
    names.sort();
    assert_eq!(names, (0..10).map(|n| format!("t{n}")).collect::<Vec<_>>());
    pass(Duration::from_secs(60)).await;
    app.assert_no_request(); // no period: once each
}

#[actix_rt::test]
async fn tm3_fires_of_one_timer_never_overlap() {
    let rig = Rig::new().await;
    let mut app = rig.app().await;
    rig.timer(timer("a", "t", "", "1s")).await.unwrap();
    let first = next_timer(&mut app).await;
    let start = Instant::now();
    // Three periods pass while the app sits on the first fire.
    pass(Duration::from_secs(3)).await;
    app.assert_no_request();
    answer_timer(&app, &first.id, false).await;
    let second = next_timer(&mut app).await;
    assert!(Instant::now() - start >= Duration::from_secs(4));
    answer_timer(&app, &second.id, false).await;
}

#[actix_rt::test]
async fn tm2_r3_fires_exactly_three_times() {
    let rig = Rig::new().await;
    let mut app = rig.app().await;
    rig.timer(timer("a", "t", "", "R3/PT1S")).await.unwrap();
    for _ in 0..3 {
        let r = next_timer(&mut app).await;
        assert_eq!(r.period, "R3/PT1S");
        answer_timer(&app, &r.id, false).await;
    }
    pass(Duration::from_secs(30)).await;
    app.assert_no_request();
}

#[actix_rt::test]
async fn tm2_ttl_stops_the_timer() {
    let rig = Rig::new().await;
    let mut app = rig.app().await;
    let mut r = timer("a", "t", "", "1s");
    r.ttl = "2.5s".into();
    rig.timer(r).await.unwrap();
    for _ in 0..3 {
        let r = next_timer(&mut app).await; // at 0 s, 1 s, 2 s
        answer_timer(&app, &r.id, false).await;
    }
    pass(Duration::from_secs(30)).await;
    app.assert_no_request();
}

#[actix_rt::test]
async fn tm3_cancel_stops_the_timer() {
    let rig = Rig::new().await;
    let mut app = rig.app().await;
    rig.timer(timer("a", "t", "", "1s")).await.unwrap();
    let r = next_timer(&mut app).await;
    answer_timer(&app, &r.id, true).await;
    pass(Duration::from_secs(30)).await;
    app.assert_no_request();
}

#[actix_rt::test]
async fn tm3_a_failed_fire_is_logged_and_the_timer_goes_on() {
    let rig = Rig::new().await;
    let mut app = rig.app().await;
    rig.timer(timer("a", "t", "", "1s")).await.unwrap();
    let r = next_timer(&mut app).await;
    fail(&app, &r.id, 13).await;
    let r = next_timer(&mut app).await;
    answer_timer(&app, &r.id, false).await;
}

#[actix_rt::test]
async fn tm3_unregister_stops_the_timer_and_is_idempotent() {
    let rig = Rig::new().await;
    let mut app = rig.app().await;
    rig.timer(timer("a", "t", "1s", "1s")).await.unwrap();
    for _ in 0..2 {
        let r = UnregisterActorTimerRequest {
            actor_type: T.into(),
            actor_id: "a".into(),
            name: "t".into(),
        };
        rig.service
            .unregister_actor_timer(Request::new(r))
            .await
            .unwrap();
    }
    pass(Duration::from_secs(30)).await;
    app.assert_no_request();
}

#[actix_rt::test]
async fn tm1_the_same_name_replaces_and_the_actor_need_not_be_active() {
    let rig = Rig::new().await;
    let mut app = rig.app().await;
    let key = ActorKey::new(T, "a");
    let mut first = timer("a", "t", "1s", "");
    first.data = b"old".to_vec();
    rig.timer(first).await.unwrap();
    let mut second = timer("a", "t", "2s", "");
    second.data = b"new".to_vec();
    rig.timer(second).await.unwrap();
    assert!(!rig.runtime.is_active(key.clone()).await.unwrap());
    pass(Duration::from_secs(1)).await;
    app.assert_no_request();
    pass(Duration::from_secs(1)).await;
    let r = next_timer(&mut app).await;
    assert_eq!(any_text(r.data.as_ref().unwrap()), r#""bmV3""#);
    // D1: the fire activated it.
    assert!(rig.runtime.is_active(key).await.unwrap());
    answer_timer(&app, &r.id, false).await;
    pass(Duration::from_secs(30)).await;
    app.assert_no_request();
}

#[actix_rt::test]
async fn tm1_a_timer_needs_a_hosted_type() {
    let rig = Rig::new().await;
    let _app = rig.app().await;
    let mut r = timer("a", "t", "1s", "");
    r.actor_type = "Unhosted".into();
    assert_status(
        rig.timer(r).await,
        Code::Internal,
        "error creating actor timer: ",
    );
}

#[actix_rt::test]
async fn tm2_bad_schedules_are_internal_with_daprds_prefix() {
    let rig = Rig::new().await;
    let _app = rig.app().await;
    let bad_timer = timer("a", "t", "soon", "");
    assert_status(
        rig.timer(bad_timer).await,
        Code::Internal,
        "error creating actor timer: ",
    );
    let bad_reminder = reminder("r", "", "R0/PT1S");
    assert_status(
        rig.reminder(bad_reminder).await,
        Code::Internal,
        "error creating actor reminder: ",
    );
}

#[actix_rt::test]
async fn tm1_rm2_names_are_validated() {
    let rig = Rig::new().await;
    let _app = rig.app().await;
    // An empty timer name is accepted (facts §2).
    rig.timer(timer("a", "", "1h", "")).await.unwrap();
    for bad in ["a/b", "a#b", "a?b", "a\\b", "a\0b", ".", ".."] {
        let r = rig.timer(timer("a", bad, "1h", "")).await;
        assert_status(r, Code::InvalidArgument, "");
        let r = rig.reminder(reminder(bad, "1h", "")).await;
        assert_status(r, Code::InvalidArgument, "");
    }
    let long = "n".repeat(1025);
    assert_status(
        rig.timer(timer("a", &long, "1h", "")).await,
        Code::InvalidArgument,
        "",
    );
    assert_status(
        rig.timer(timer("", "t", "1h", "")).await,
        Code::InvalidArgument,
        "",
    );
    assert_status(
        rig.timer(timer("a/b", "t", "1h", "")).await,
        Code::InvalidArgument,
        "",
    );
    assert_status(
        rig.reminder(reminder("", "1h", "")).await,
        Code::InvalidArgument,
        "invalid request: reminder name cannot be empty",
    );
}

#[actix_rt::test]
async fn rm1_a_reminder_fire_carries_the_any_the_sdk_decodes() {
    let rig = Rig::new().await;
    let mut app = rig.app().await;
    let mut r = reminder("r", "0h0m1s0ms0μs", "0h0m5s0ms0μs");
    r.data = b"rstate".to_vec();
    rig.reminder(r).await.unwrap();
    pass(Duration::from_secs(1)).await;
    let fire = app.next_reminder().await;
    assert_eq!((fire.actor_type.as_str(), fire.actor_id.as_str()), (T, "a"));
    assert_eq!(fire.name, "r");
    assert_eq!(fire.due_time, "0h0m1s0ms0μs");
    assert_eq!(fire.period, "0h0m5s0ms0μs");
    assert_eq!(any_text(fire.data.as_ref().unwrap()), r#""cnN0YXRl""#);
    app.answer_reminder(&fire.id, false).await;
    // RM3: GetActorReminder answers with the same Any.
    assert_eq!(rig.get("r").await.unwrap().data, fire.data);
}

#[actix_rt::test]
async fn rm1_reminders_survive_a_restart() {
    tokio::time::pause();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let before = Rig::over(store.clone()).await;
    let _old_app = before.app().await;
    before.reminder(reminder("r", "10s", "1m")).await.unwrap();
    // A second gateway over the same store: the first one's app is not its.
    let after = Rig::over(store).await;
    let mut app = after.app().await;
    assert_eq!(
        after.get("r").await.unwrap().due_time.as_deref(),
        Some("10s")
    );
    drop(_old_app);
    pass(Duration::from_secs(10)).await;
    let fire = app.next_reminder().await;
    assert_eq!(fire.name, "r");
}

#[actix_rt::test]
async fn rm2_overwrite_false_refuses_and_unset_replaces() {
    let rig = Rig::new().await;
    let _app = rig.app().await;
    rig.reminder(reminder("r", "1h", "")).await.unwrap();
    let mut keep = reminder("r", "2h", "");
    keep.overwrite = Some(false);
    assert_status(
        rig.reminder(keep).await,
        Code::AlreadyExists,
        "actor reminder already exists: r",
    );
    assert_eq!(rig.get("r").await.unwrap().due_time.as_deref(), Some("1h"));
    rig.reminder(reminder("r", "3h", "")).await.unwrap();
    assert_eq!(rig.get("r").await.unwrap().due_time.as_deref(), Some("3h"));
    let mut replace = reminder("r", "4h", "");
    replace.overwrite = Some(true);
    rig.reminder(replace).await.unwrap();
    assert_eq!(rig.get("r").await.unwrap().due_time.as_deref(), Some("4h"));
}

#[actix_rt::test]
async fn rm2_reminders_of_an_unhosted_type_are_permission_denied() {
    let rig = Rig::new().await;
    let _app = rig.app().await;
    let denied = "operations on actor reminders are only possible on hosted actor types";
    let mut r = reminder("r", "1h", "");
    r.actor_type = "Unhosted".into();
    assert_status(rig.reminder(r).await, Code::PermissionDenied, denied);
    let u = UnregisterActorReminderRequest {
        actor_type: "Unhosted".into(),
        actor_id: "a".into(),
        name: "r".into(),
    };
    let got = rig.service.unregister_actor_reminder(Request::new(u)).await;
    assert_status(got, Code::PermissionDenied, denied);
    let g = GetActorReminderRequest {
        actor_type: "Unhosted".into(),
        actor_id: "a".into(),
        name: "r".into(),
    };
    let got = rig.service.get_actor_reminder(Request::new(g)).await;
    assert_status(got, Code::PermissionDenied, denied);
}

#[actix_rt::test]
async fn rm3_get_returns_what_was_registered_and_unregister_is_idempotent() {
    let rig = Rig::new().await;
    let _app = rig.app().await;
    let mut r = reminder("r", "1h", "R5/PT10M");
    r.ttl = "3h".into();
    r.data = b"rstate".to_vec();
    rig.reminder(r).await.unwrap();
    let got = rig.get("r").await.unwrap();
    assert_eq!((got.actor_type.as_str(), got.actor_id.as_str()), (T, "a"));
    assert_eq!(got.due_time.as_deref(), Some("1h"));
    assert_eq!(got.period.as_deref(), Some("R5/PT10M"));
    assert_eq!(got.ttl.as_deref(), Some("3h"));
    assert_eq!(got.data, data::encode(b"rstate"));
    for _ in 0..2 {
        let u = UnregisterActorReminderRequest {
            actor_type: T.into(),
            actor_id: "a".into(),
            name: "r".into(),
        };
        rig.service
            .unregister_actor_reminder(Request::new(u))
            .await
            .unwrap();
    }
    assert_status(
        rig.get("r").await,
        Code::NotFound,
        "actor reminder not found: r",
    );
    assert_status(
        rig.get("nope").await,
        Code::NotFound,
        "actor reminder not found: nope",
    );
}

/// Registers a one-shot reminder due now with `policy`, fails every fire
/// with NOT_FOUND, and counts the fires until none comes for a minute.
async fn fires_while_failing(policy: Option<JobFailurePolicy>, cap: usize) -> usize {
    let rig = Rig::new().await;
    let mut app = rig.app().await;
    let mut r = reminder("r", "", "");
    r.failure_policy = policy;
    rig.reminder(r).await.unwrap();
    let mut fires = 0;
    while fires < cap {
        settle().await;
        let request = match app.try_next() {
            Some(request) => request,
            None => {
                pass(Duration::from_secs(60)).await;
                match app.try_next() {
                    Some(request) => request,
                    None => break,
                }
            }
        };
        fires += 1;
        fail(&app, request_id(&request), 5).await;
    }
    fires
}

#[actix_rt::test]
async fn rm4_default_policy_retries_three_times_not_found_included() {
    assert_eq!(fires_while_failing(None, 100).await, 4);
}

#[actix_rt::test]
async fn rm4_drop_does_not_retry() {
    let drop = JobFailurePolicy {
        policy: Some(Policy::Drop(JobFailurePolicyDrop {})),
    };
    assert_eq!(fires_while_failing(Some(drop), 100).await, 1);
}

fn constant(secs: i64, max_retries: Option<u32>) -> JobFailurePolicy {
    JobFailurePolicy {
        policy: Some(Policy::Constant(JobFailurePolicyConstant {
            interval: Some(prost_types::Duration {
                seconds: secs,
                nanos: 0,
            }),
            max_retries,
        })),
    }
}

#[actix_rt::test]
async fn rm4_constant_retries_max_retries_times() {
    assert_eq!(
        fires_while_failing(Some(constant(2, Some(1))), 100).await,
        2
    );
}

#[actix_rt::test]
async fn rm4_constant_with_zero_max_retries_does_not_retry() {
    assert_eq!(
        fires_while_failing(Some(constant(2, Some(0))), 100).await,
        1
    );
}

#[actix_rt::test]
async fn rm4_constant_without_max_retries_retries_forever() {
    assert_eq!(fires_while_failing(Some(constant(1, None)), 25).await, 25);
}

#[actix_rt::test]
async fn rm4_retries_wait_the_interval() {
    let rig = Rig::new().await;
    let mut app = rig.app().await;
    let mut r = reminder("r", "", "");
    r.failure_policy = Some(constant(5, Some(1)));
    rig.reminder(r).await.unwrap();
    let first = app.next_reminder().await;
    fail(&app, &first.id, 5).await;
    pass(Duration::from_secs(4)).await;
    app.assert_no_request();
    pass(Duration::from_secs(1)).await;
    let retry = app.next_reminder().await;
    app.answer_reminder(&retry.id, false).await;
}

#[actix_rt::test]
async fn rm4_cancel_deletes_the_reminder() {
    let rig = Rig::new().await;
    let mut app = rig.app().await;
    rig.reminder(reminder("r", "", "1s")).await.unwrap();
    let fire = app.next_reminder().await;
    app.answer_reminder(&fire.id, true).await;
    settle().await;
    assert_status(
        rig.get("r").await,
        Code::NotFound,
        "actor reminder not found: r",
    );
    pass(Duration::from_secs(30)).await;
    app.assert_no_request();
}

#[actix_rt::test]
async fn rm5_a_reminder_due_while_unhosted_fires_once_when_a_host_registers() {
    let rig = Rig::new().await;
    let first = rig.app().await;
    rig.reminder(reminder("r", "5s", "1s")).await.unwrap();
    drop(first); // the type's last host goes
    settle().await;
    // Ten periods go by with nobody to fire at.
    pass(Duration::from_secs(15)).await;
    let mut app = rig.app().await;
    let fire = app.next_reminder().await;
    app.answer_reminder(&fire.id, false).await;
    settle().await;
    app.assert_no_request(); // once, not once per missed period
    pass(Duration::from_secs(1)).await;
    let next = app.next_reminder().await;
    app.answer_reminder(&next.id, false).await;
}

#[actix_rt::test]
async fn d2_timers_are_removed_on_deactivation() {
    let rig = Rig::new().await;
    let config = RegistrationConfig {
        settings: ActorSettings {
            idle_timeout: Some(Duration::from_secs(2)),
            ..Default::default()
        },
        ..RegistrationConfig::hosting([T])
    };
    let connection = rig.manager.send(Register::new(config)).await.unwrap();
    let mut app = App::from(connection);
    rig.timer(timer("a", "t", "1s", "20s")).await.unwrap();
    rig.reminder(reminder("r", "40s", "")).await.unwrap();
    pass(Duration::from_secs(1)).await;
    let fire = next_timer(&mut app).await;
    answer_timer(&app, &fire.id, false).await;
    // Idle for 2 s: deactivated within a scan.
    let deactivate = match app.next().await {
        ResponseType::DeactivateRequest(r) => r,
        other => panic!("expected a deactivate_request, got {other:?}"),
    };
    let ack = SubscribeActorEventsRequestDeactivateResponseAlpha1 { id: deactivate.id };
    app.answer(RequestType::DeactivateResponse(ack)).await;
    settle().await;
    // The timer's next fire (21 s) never comes; the reminder (40 s) does.
    pass(Duration::from_secs(30)).await;
    app.assert_no_request();
    pass(Duration::from_secs(10)).await;
    let fire = app.next_reminder().await;
    assert_eq!(fire.name, "r");
}

#[actix_rt::test]
async fn d3_timers_are_removed_when_the_type_loses_its_last_host() {
    let rig = Rig::new().await;
    let mut first = rig.app().await;
    rig.timer(timer("a", "t", "", "1s")).await.unwrap();
    let fire = next_timer(&mut first).await;
    answer_timer(&first, &fire.id, false).await;
    settle().await;
    drop(first);
    settle().await;
    let mut second = rig.app().await;
    pass(Duration::from_secs(10)).await;
    second.assert_no_request();
}

/// P4: the gateway keeps at most `max_timers` timers and `max_reminders`
/// reminders; one more is RESOURCE_EXHAUSTED and changes nothing, while
/// replacing one at the cap is fine and removing one makes room.
#[actix_rt::test]
async fn p4_timers_and_reminders_are_capped_per_gateway() {
    tokio::time::pause();
    let options = RuntimeOptions {
        job_limits: JobLimits {
            max_timers: 2,
            max_reminders: 2,
        },
        ..RuntimeOptions::default()
    };
    let rig = Rig::with_options(Arc::new(MemoryStore::new()), options).await;
    let _app = rig.app().await;
    rig.timer(timer("a", "t1", "1h", "")).await.unwrap();
    rig.timer(timer("b", "t2", "1h", "")).await.unwrap();
    let over = rig.timer(timer("c", "t3", "1h", "")).await;
    assert_status(over, Code::ResourceExhausted, "too many timers");
    rig.timer(timer("b", "t2", "2h", "")).await.unwrap();
    let unregister = UnregisterActorTimerRequest {
        actor_type: T.into(),
        actor_id: "a".into(),
        name: "t1".into(),
    };
    rig.service
        .unregister_actor_timer(Request::new(unregister))
        .await
        .unwrap();
    rig.timer(timer("c", "t3", "1h", "")).await.unwrap();

    rig.reminder(reminder("r1", "1h", "")).await.unwrap();
    rig.reminder(reminder("r2", "1h", "")).await.unwrap();
    let over = rig.reminder(reminder("r3", "1h", "")).await;
    assert_status(over, Code::ResourceExhausted, "too many reminders");
    assert_eq!(rig.get("r3").await.unwrap_err().code(), Code::NotFound);
    rig.reminder(reminder("r2", "2h", "")).await.unwrap();
}
