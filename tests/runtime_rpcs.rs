//! The runtime's state RPCs over real gRPC, against a real gateway, with
//! hostile input (SPEC P4, ST1-ST3): every bad request gets its status and
//! changes nothing; GetMetadata counts the active actors (D1).

mod harness;

use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::{
    ExecuteActorStateTransactionRequest, GetActorStateRequest, GetMetadataRequest,
    TransactionalActorStateOperation,
};
use harness::{TestGateway, invoke};
use tonic::Code;
use tonic::transport::Channel;

fn upsert(key: &str, value: &[u8]) -> TransactionalActorStateOperation {
    TransactionalActorStateOperation {
        operation_type: "upsert".into(),
        key: key.into(),
        value: Some(prost_types::Any {
            type_url: "ignored/by.us".into(),
            value: value.to_vec(),
        }),
        metadata: Default::default(),
    }
}

fn transaction(
    actor_type: &str,
    actor_id: &str,
    ops: Vec<TransactionalActorStateOperation>,
) -> ExecuteActorStateTransactionRequest {
    ExecuteActorStateTransactionRequest {
        actor_type: actor_type.into(),
        actor_id: actor_id.into(),
        operations: ops,
    }
}

async fn read(client: &mut DaprClient<Channel>, key: &str) -> Result<Vec<u8>, tonic::Status> {
    let request = GetActorStateRequest {
        actor_type: "Echo".into(),
        actor_id: "1".into(),
        key: key.into(),
    };
    Ok(client.get_actor_state(request).await?.into_inner().data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p4_bad_state_requests_get_their_status_and_change_nothing() {
    let gw = TestGateway::start().await;
    let _app = gw.echo_app(&["Echo"]).await;
    let mut client = gw.client().await;
    // Activate Echo/1, then store one key.
    client
        .invoke_actor(invoke("Echo", "1", "m", b"x"))
        .await
        .unwrap();
    client
        .execute_actor_state_transaction(transaction("Echo", "1", vec![upsert("k", b"kept")]))
        .await
        .unwrap();
    assert_eq!(
        read(&mut client, "k").await.unwrap(),
        b"kept",
        "the type_url is ignored (ST2)"
    );

    let long_key = "k".repeat(5000);
    let mut bad_ttl = upsert("k", b"changed");
    bad_ttl
        .metadata
        .insert("ttlInSeconds".into(), "soon".into());
    let mut unknown = upsert("k", b"changed");
    unknown.operation_type = "merge".into();
    let cases = [
        (
            "an unknown operation type",
            vec![upsert("k", b"changed"), unknown],
            Code::Unimplemented,
        ),
        (
            "an empty key",
            vec![upsert("k", b"changed"), upsert("", b"v")],
            Code::InvalidArgument,
        ),
        (
            "a key over the cap",
            vec![upsert("k", b"changed"), upsert(&long_key, b"v")],
            Code::InvalidArgument,
        ),
        (
            "a ttl that is no integer",
            vec![bad_ttl],
            Code::InvalidArgument,
        ),
    ];
    for (what, ops, code) in cases {
        let refused = client
            .execute_actor_state_transaction(transaction("Echo", "1", ops))
            .await
            .expect_err(what);
        assert_eq!(refused.code(), code, "{what}: {}", refused.message());
    }
    let too_long = read(&mut client, &long_key)
        .await
        .expect_err("a key over the cap");
    assert_eq!(too_long.code(), Code::InvalidArgument);
    let inactive = client
        .execute_actor_state_transaction(transaction("Echo", "2", vec![upsert("k", b"v")]))
        .await
        .expect_err("Echo/2 is not active");
    assert_eq!(inactive.code(), Code::Internal);
    assert_eq!(inactive.message(), "actor instance is missing");
    assert_eq!(
        read(&mut client, "k").await.unwrap(),
        b"kept",
        "nothing applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_get_metadata_counts_the_active_actors_of_each_type() {
    let gw = TestGateway::start().await;
    let _app = gw.echo_app(&["Echo", "Other"]).await;
    let mut client = gw.client().await;
    for id in ["1", "2", "3", "2"] {
        client
            .invoke_actor(invoke("Echo", id, "m", b"x"))
            .await
            .unwrap();
    }
    let metadata = client
        .get_metadata(GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    let counts: Vec<(String, i32)> = metadata
        .actor_runtime
        .unwrap()
        .active_actors
        .into_iter()
        .map(|a| (a.r#type, a.count))
        .collect();
    assert_eq!(counts, [("Echo".to_owned(), 3), ("Other".to_owned(), 0)]);
}
