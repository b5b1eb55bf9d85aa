//! Hostile and broken requests at the custom-action endpoint: each gets a clear
//! status and JSON reason, records nothing, and the host keeps serving. Every test
//! runs on both API generations (`<test>::v2`, `<test>::v4`).

use std::time::{SystemTime, UNIX_EPOCH};

use connector_e2e::{Bound, binding_secret, bound_world_on, on_both_apis};
use frameio_sim::sign;
use host_shim::harness::World;
use host_shim::harness::fixture::Fixture;
use serde_json::{Value, json};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A well-formed click payload for the bound action, as `fx`'s generation sends it.
fn click_event(fx: &Fixture, bound: &Bound, interaction: &str) -> Value {
    let mut event = json!({
        "action_id": bound.action_id, "interaction_id": interaction,
        "project": {"id": fx.project}, "user": {"id": fx.pusher}, "type": "dam.push"
    });
    if fx.api.name() == "v2" {
        event["resource"] = json!({"id": fx.video, "type": "asset"});
        event["team"] = json!({"id": fx.workspace});
    } else {
        event["resource"] = json!({"id": fx.video, "type": "file"});
        event["account_id"] = json!(fx.account);
        event["workspace"] = json!({"id": fx.workspace});
    }
    event
}

fn click_body(fx: &Fixture, bound: &Bound, interaction: &str) -> Vec<u8> {
    click_event(fx, bound, interaction).to_string().into_bytes()
}

/// Sends a POST with the given headers to `/frameio/actions/<binding>`.
async fn post(world: &World, binding: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
    let url = format!("{}/frameio/actions/{binding}", world.host.public_url);
    // From an address of its own, as a stranger would send: the simulator, playing
    // Frame.io, sends from 127.0.0.1, and failed signatures are limited per address.
    let client = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap();
    let mut req = client.post(url).header("content-type", "application/json").body(body);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn signed(secret: &str, ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![("x-frameio-request-timestamp", ts.to_string()), ("x-frameio-signature", sign(secret, ts, body))]
}

/// Nothing about the interaction was recorded: no job and no conversation state.
fn nothing_recorded(world: &World, interaction: &str) {
    assert!(connector_e2e::jobs_of_kind(world, "push").is_empty(), "no job");
    let key = format!("interaction/{interaction}");
    assert!(world.host.services.storage.get(&key).unwrap().is_none(), "no interaction record");
}

async fn forged_stale_and_malformed_signatures_get_401_and_record_nothing(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let secret = binding_secret(&world, &bound.binding_id);
    let body = click_body(fx, &bound, "i-bad");
    let ts = now();
    let good = sign(&secret, ts, &body);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no headers", vec![]),
        ("no signature", vec![("x-frameio-request-timestamp", ts.to_string())]),
        ("no timestamp", vec![("x-frameio-signature", good.clone())]),
        ("wrong secret", signed("not-the-secret", ts, &body)),
        ("301 s old", signed(&secret, ts - 301, &body)),
        ("301 s ahead", signed(&secret, ts + 301, &body)),
        ("malformed timestamp", vec![("x-frameio-request-timestamp", "12a".into()), ("x-frameio-signature", good.clone())]),
        ("uppercase hex", vec![("x-frameio-request-timestamp", ts.to_string()), ("x-frameio-signature", format!("v0={}", good[3..].to_uppercase()))]),
        ("wrong prefix", vec![("x-frameio-request-timestamp", ts.to_string()), ("x-frameio-signature", good.replacen("v0=", "v1=", 1))]),
        ("truncated", vec![("x-frameio-request-timestamp", ts.to_string()), ("x-frameio-signature", good[..20].to_string())]),
        (
            "duplicated signature",
            vec![
                ("x-frameio-request-timestamp", ts.to_string()),
                ("x-frameio-signature", good.clone()),
                ("x-frameio-signature", good.clone()),
            ],
        ),
    ];
    for (name, headers) in cases {
        let (status, reply) = post(&world, &bound.binding_id, &headers, body.clone()).await;
        assert_eq!(status, 401, "{name}: {reply}");
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()), "{name}: a JSON reason: {reply}");
    }
    // A body changed by one byte after signing.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let (status, _) = post(&world, &bound.binding_id, &signed(&secret, ts, &body), tampered).await;
    assert_eq!(status, 401, "tampered body");
    nothing_recorded(&world, "i-bad");
    world.stop().await;
}

async fn malformed_json_unknown_bindings_and_oversized_bodies(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let secret = binding_secret(&world, &bound.binding_id);
    let ts = now();

    let garbage = b"{\"action_id\": ".to_vec();
    let (status, reply) = post(&world, &bound.binding_id, &signed(&secret, ts, &garbage), garbage).await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("JSON"), "{reply}");

    let body = click_body(fx, &bound, "i-unknown");
    let (status, reply) = post(&world, "b000000000000000000000000", &signed(&secret, ts, &body), body.clone()).await;
    assert_eq!(status, 404, "{reply}");
    // Encoded so the client sends it as is and it reaches the component's routing.
    let (status, reply) = post(&world, "..%2F..%2Fadmin", &signed(&secret, ts, &body), body.clone()).await;
    assert_eq!(status, 404, "{reply}");
    assert_eq!(reply["error"], "unknown binding", "{reply}");

    let huge = vec![b' '; 300 * 1024];
    let (status, reply) = post(&world, &bound.binding_id, &signed(&secret, ts, &huge), huge).await;
    assert_eq!(status, 413, "{reply}");
    nothing_recorded(&world, "i-unknown");

    // The same oversized body without a Content-Length (chunked) is cut off too.
    let url = format!("{}/frameio/actions/{}", world.host.public_url, bound.binding_id);
    let chunks = futures_util::stream::iter((0..300).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let resp = reqwest::Client::new().post(url).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    world.stop().await;
}

async fn the_host_keeps_serving_after_bad_input(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    for _ in 0..20 {
        let (status, _) = post(&world, &bound.binding_id, &[], b"\xff\xfe not json".to_vec()).await;
        assert_eq!(status, 401);
    }
    let (form, message) = world.push(&bound.action_id, fx.video, fx.pusher, json!({"notify": "no"})).await.unwrap();
    assert_eq!(form.status, 200);
    assert_eq!(message.body["title"], "Asset pushed to the DAM");
    let job = world.wait_for_job(&format!("push:{}", form.interaction_id), std::time::Duration::from_secs(30)).await.unwrap();
    assert_eq!(job.state, "done");
    world.stop().await;
}

/// Correctly signed events that are still wrong: another generation's payload, another
/// workspace or account, another action, identifiers that could reshape a path.
async fn signed_events_that_name_the_wrong_things_get_400_and_record_nothing(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let secret = binding_secret(&world, &bound.binding_id);
    let good = click_event(fx, &bound, "i-wrong");
    let mut other_generation = good.clone();
    let object = other_generation.as_object_mut().unwrap();
    if fx.api.name() == "v2" {
        object.insert("account_id".into(), json!("20000000-0000-4000-8000-000000000003"));
        object.insert("workspace".into(), json!({"id": fx.workspace}));
        object.remove("team");
    } else {
        object.remove("account_id");
        object.remove("workspace");
        object.insert("team".into(), json!({"id": fx.workspace}));
    }
    let edit = |path: &[&str], value: Value| {
        let mut event = good.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut event;
        for key in parents {
            at = &mut at[*key];
        }
        at[*last] = value;
        event
    };
    let workspace_key: &[&str] = if fx.api.name() == "v2" { &["team", "id"] } else { &["workspace", "id"] };
    let mut cases = vec![
        ("the other generation's payload", other_generation, "binding speaks"),
        ("an unknown workspace", edit(workspace_key, json!("30000000-0000-4000-8000-00000000dead")), "another workspace"),
        ("another action", edit(&["action_id"], json!("60000000-0000-4000-8000-000000000000")), "another custom action"),
        ("a path in the resource id", edit(&["resource", "id"], json!("../../admin")), "resource.id"),
        ("a slash in the interaction id", edit(&["interaction_id"], json!("a/b")), "interaction_id"),
        ("a number as the action id", edit(&["action_id"], json!(7)), "JSON"),
    ];
    if fx.api.name() == "v4" {
        cases.push(("another account", edit(&["account_id"], json!("20000000-0000-4000-8000-000000000001")), "another account"));
        cases.push(("a malformed account id", edit(&["account_id"], json!("acc 1")), "account_id"));
    }
    let ts = now();
    for (name, event, words) in cases {
        let body = event.to_string().into_bytes();
        let (status, reply) = post(&world, &bound.binding_id, &signed(&secret, ts, &body), body).await;
        assert_eq!(status, 400, "{name}: {reply}");
        assert!(reply["error"].as_str().unwrap_or("").contains(words), "{name}: {reply}");
    }
    nothing_recorded(&world, "i-wrong");
    world.stop().await;
}

on_both_apis!(
    forged_stale_and_malformed_signatures_get_401_and_record_nothing,
    malformed_json_unknown_bindings_and_oversized_bodies,
    the_host_keeps_serving_after_bad_input,
    signed_events_that_name_the_wrong_things_get_400_and_record_nothing,
);
