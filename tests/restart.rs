//! Reminders across a restart of the real binary on its data directory
//! (SPEC RM1, RM5, P3): their schedule, the repetitions left and the ttl are
//! kept whether the gateway stops cleanly (SIGTERM) or is killed (SIGKILL).
//!
//! The reminders have one-second periods, so the test waits for real fires;
//! every wait is bounded, and the gateway's readiness is polled.

mod child;

use std::sync::Arc;
use std::time::{Duration, Instant};

use callbackstream::kit::apphost::{AppHost, AppHostOptions, echo};
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    GetActorReminderRequest, GetActorReminderResponse, RegisterActorReminderRequest,
};
use child::{BOUND, ChildGateway};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tonic::Code;
use tonic::transport::Channel;

const T: &str = "Reminded";

/// A fire: the reminder's name and when it came.
type Fire = (String, Instant);

/// How a gateway goes down.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Down {
    Sigterm,
    Sigkill,
}

async fn channel(gateway: &ChildGateway) -> Channel {
    let give_up = Instant::now() + BOUND;
    loop {
        match Channel::from_shared(gateway.url()).unwrap().connect().await {
            Ok(channel) => return channel,
            Err(e) if Instant::now() > give_up => panic!("cannot connect: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// An app hosting `T` that answers every fire and reports it on `fires`.
async fn app(gateway: &ChildGateway, fires: mpsc::UnboundedSender<Fire>) -> AppHost {
    let fires = Arc::new(fires);
    let options = AppHostOptions::echo([T]).with_handler(move |request| {
        if let ResponseType::ReminderRequest(fire) = &request {
            let _ = fires.send((fire.name.clone(), Instant::now()));
        }
        echo(request)
    });
    // The gateway listens before its runtime is up: retry until it serves.
    let give_up = Instant::now() + BOUND;
    loop {
        match AppHost::connect(channel(gateway).await, options_clone(&options)).await {
            Ok(app) => return app,
            Err(e) if Instant::now() > give_up => panic!("app cannot register: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn options_clone(options: &AppHostOptions) -> AppHostOptions {
    AppHostOptions {
        registration: options.registration.clone(),
        api_token: options.api_token.clone(),
        handler: options.handler.clone(),
    }
}

fn reminder(name: &str, due: &str, period: &str, ttl: &str) -> RegisterActorReminderRequest {
    RegisterActorReminderRequest {
        actor_type: T.into(),
        actor_id: "a".into(),
        name: name.into(),
        due_time: due.into(),
        period: period.into(),
        ttl: ttl.into(),
        data: b"rstate".to_vec(),
        ..Default::default()
    }
}

async fn get(
    client: &mut DaprClient<Channel>,
    name: &str,
) -> Result<GetActorReminderResponse, Code> {
    let request = GetActorReminderRequest {
        actor_type: T.into(),
        actor_id: "a".into(),
        name: name.into(),
    };
    client
        .get_actor_reminder(request)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| s.code())
}

/// The next fire, failing the test if none comes within `BOUND`.
async fn next_fire(fires: &mut mpsc::UnboundedReceiver<Fire>) -> Fire {
    tokio::time::timeout(BOUND, fires.recv())
        .await
        .expect("a fire within the bound")
        .expect("the app is still there")
}

/// Every fire that comes until `until`.
async fn fires_until(fires: &mut mpsc::UnboundedReceiver<Fire>, until: Instant) -> Vec<Fire> {
    let mut seen = Vec::new();
    while let Ok(Some(fire)) = tokio::time::timeout_at(until.into(), fires.recv()).await {
        seen.push(fire);
    }
    seen
}

fn named<'a>(fires: &'a [Fire], name: &str) -> Vec<&'a Fire> {
    fires.iter().filter(|(n, _)| n == name).collect()
}

/// Registers three reminders, lets the two short ones fire once, takes the
/// gateway down, starts it again on the same directory, and checks what
/// comes back.
async fn reminders_survive(down: Down) {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let gateway = ChildGateway::start(&data);
    let (sent, mut fires) = mpsc::unbounded_channel();
    let first_app = app(&gateway, sent).await;
    let mut client = DaprClient::new(channel(&gateway).await);
    let registered = Instant::now();
    // Three fires in all, a second apart.
    client
        .register_actor_reminder(reminder("rep", "0s", "R3/PT1S", ""))
        .await
        .unwrap();
    // Fires at 0 s, 1 s and 2 s: its ttl (from the due time) ends at 2.5 s.
    client
        .register_actor_reminder(reminder("ttl", "0s", "1s", "2500ms"))
        .await
        .unwrap();
    // Never due in the test: only its schedule is checked.
    client
        .register_actor_reminder(reminder("later", "1h", "1h", ""))
        .await
        .unwrap();
    let later = get(&mut client, "later").await.unwrap();
    let mut before = Vec::new();
    while named(&before, "rep").is_empty() || named(&before, "ttl").is_empty() {
        before.push(next_fire(&mut fires).await);
    }
    match down {
        Down::Sigterm => assert!(gateway.stop().success()),
        Down::Sigkill => gateway.kill(),
    }
    drop(first_app);

    let gateway = ChildGateway::start(&data);
    let (sent, mut fires) = mpsc::unbounded_channel();
    let _app = app(&gateway, sent).await;
    let mut client = DaprClient::new(channel(&gateway).await);
    assert_eq!(get(&mut client, "later").await, Ok(later));
    // Past the ttl's end and the last repetition, with a period to spare
    // for a fire that should not come.
    let expired = registered + Duration::from_millis(2500);
    let after = fires_until(&mut fires, expired + Duration::from_millis(1500)).await;

    let rep_before = named(&before, "rep").len();
    let rep_after = named(&after, "rep").len();
    // Each fire answered before the stop was written (a clean stop
    // flushes), so exactly the two left come; a kill may lose the last
    // write, and the fire it recorded comes again (at least once, RM5).
    let rep_total = rep_before + rep_after;
    match down {
        Down::Sigterm => assert_eq!(rep_total, 3, "before {before:?}, after {after:?}"),
        Down::Sigkill => assert!(
            (3..=3 + rep_before).contains(&rep_total),
            "before {before:?}, after {after:?}"
        ),
    }
    let ttl_after = named(&after, "ttl");
    assert!(!ttl_after.is_empty(), "ttl: no fire after the restart");
    // A little slack for the delivery itself.
    let slack = Duration::from_millis(300);
    for (_, at) in &ttl_after {
        assert!(
            *at <= expired + slack,
            "ttl fired {:?} after it expired",
            at.duration_since(expired)
        );
    }
    assert!(named(&after, "later").is_empty());
    // Spent: gone from the store too.
    assert_eq!(get(&mut client, "rep").await.unwrap_err(), Code::NotFound);
    assert_eq!(get(&mut client, "ttl").await.unwrap_err(), Code::NotFound);
    // And still gone after one more restart.
    assert!(gateway.stop().success());
    let gateway = ChildGateway::start(&data);
    let mut client = DaprClient::new(channel(&gateway).await);
    let (sent, _fires) = mpsc::unbounded_channel();
    let _app = app(&gateway, sent).await;
    assert_eq!(get(&mut client, "rep").await.unwrap_err(), Code::NotFound);
    assert!(get(&mut client, "later").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm1_p3_reminders_keep_schedule_repetitions_and_ttl_across_a_sigterm_restart() {
    reminders_survive(Down::Sigterm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm1_rm5_p3_reminders_keep_schedule_repetitions_and_ttl_across_a_sigkill() {
    reminders_survive(Down::Sigkill).await;
}
