//! Where the gateway runs must not change what it does: on one actor thread
//! (the binary's default), on several (connections spread over them, calls
//! crossing between them), or embedded in an application's tokio runtime
//! with the actors on a thread of their own.

mod harness;

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::apphost::AppHostOptions;
use callbackstream::proto::SubscribeActorEventsRequestInvokeResponseAlpha1;
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::threads::ActorSystem;
use harness::{Hosting, TestGateway, invoke, next_invoke, promptly, spawn_invoke};
use tonic::Code;

const HOSTINGS: [Hosting; 3] = [
    Hosting::ActorThreads(1),
    Hosting::ActorThreads(3),
    Hosting::Embedded,
];

/// An echo app that puts its actor type in front of every reply, so a test
/// can tell which app answered.
fn tagging_app(actor_type: &str) -> AppHostOptions {
    let tag = actor_type.as_bytes().to_vec();
    AppHostOptions::echo([actor_type]).with_handler(move |request| match request {
        ResponseType::InvokeRequest(r) => Some(RequestType::InvokeResponse(
            SubscribeActorEventsRequestInvokeResponseAlpha1 {
                id: r.id,
                data: [tag.as_slice(), b":", r.data.as_slice()].concat(),
                metadata: Default::default(),
                error: false,
            },
        )),
        _ => None,
    })
}

async fn start(hosting: Hosting) -> TestGateway {
    TestGateway::start_hosted(
        GatewaySettings::default(),
        ConnectionOptions::default(),
        hosting,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hosting_routes_each_call_to_its_app_and_back() {
    const APPS: usize = 6;
    const CALLS: usize = 300;
    for hosting in HOSTINGS {
        let gw = start(hosting).await;
        let mut apps = Vec::new();
        for i in 0..APPS {
            apps.push(gw.app(tagging_app(&format!("T{i}"))).await);
        }
        // Callers on connections of their own, which land on different threads too.
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(gw.client().await);
        }
        let calls: Vec<_> = (0..CALLS)
            .map(|n| {
                let actor_type = format!("T{}", n % APPS);
                let data = format!("call-{n}");
                let request = invoke(&actor_type, &n.to_string(), "m", data.as_bytes());
                let call = spawn_invoke(&clients[n % clients.len()], request);
                (format!("{actor_type}:{data}"), call)
            })
            .collect();
        for (expected, call) in calls {
            let reply = promptly(call).await.unwrap().unwrap().into_inner();
            assert_eq!(
                String::from_utf8(reply.data).unwrap(),
                expected,
                "{hosting:?}"
            );
        }
        for app in apps {
            promptly(app.close()).await.unwrap();
        }
        gw.wait_until_idle().await;
        promptly(gw.shutdown()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hosting_shuts_down_cleanly_with_calls_in_flight() {
    for hosting in HOSTINGS {
        let gw = start(hosting).await;
        let mut held = Vec::new();
        for i in 0..3 {
            let actor_type = format!("Held{i}");
            let (app, requests) = gw.holding_app(&[&actor_type]).await;
            let client = gw.client().await;
            let call = spawn_invoke(&client, invoke(&actor_type, "1", "m", b"x"));
            held.push((app, requests, call));
        }
        for (_, requests, _) in &mut held {
            next_invoke(requests).await;
        }
        gw.begin_shutdown();
        for (app, _, call) in held {
            let status = promptly(call).await.unwrap().unwrap_err();
            assert_eq!(status.code(), Code::Unavailable, "{hosting:?}");
            promptly(app.finished())
                .await
                .unwrap_or_else(|s| panic!("{hosting:?}: stream ended with {s:?}"));
        }
        promptly(gw.server_result())
            .await
            .unwrap_or_else(|e| panic!("{hosting:?}: {e}"));
    }
}

#[tokio::test]
async fn run_on_each_runs_one_task_on_each_actor_thread() {
    let actors = ActorSystem::start_threads(ConnectionOptions::default(), 3).unwrap();
    let threads = actors.threads();
    assert_eq!(threads.count(), 3);
    let tasks = threads.run_on_each(|i| async move { (i, std::thread::current().id()) });
    let ran = promptly(futures::future::join_all(tasks)).await;
    let ran: Vec<_> = ran.into_iter().map(Option::unwrap).collect();
    assert_eq!(ran.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
    let mut ids: Vec<_> = ran.iter().map(|(_, id)| format!("{id:?}")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three distinct threads");
    assert!(
        ran.iter().all(|(_, id)| *id != std::thread::current().id()),
        "none of them the caller's"
    );
    tokio::task::spawn_blocking(move || actors.stop())
        .await
        .unwrap();
}
