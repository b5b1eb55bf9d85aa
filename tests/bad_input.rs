//! Hostile and broken requests at the custom-action endpoint: each gets a clear
//! status and JSON reason, records nothing, and the host keeps serving.

use std::time::{SystemTime, UNIX_EPOCH};

use connector_e2e::{Bound, binding_secret, bound_world};
use frameio_sim::sign;
use host_shim::harness::{World, fixture};
use serde_json::{Value, json};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A well-formed click payload for the bound action.
fn click_body(bound: &Bound, interaction: &str) -> Vec<u8> {
    json!({
        "action_id": bound.action_id, "interaction_id": interaction,
        "resource": {"id": fixture::INTERVIEW_MP4, "type": "asset"},
        "team": {"id": fixture::EDITORIAL_TEAM}, "project": {"id": fixture::SPRING_CAMPAIGN},
        "user": {"id": fixture::SAM}, "type": "dam.push"
    })
    .to_string()
    .into_bytes()
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
    assert!(world.host.queue.list(&host_shim::db::Page::first(10)).unwrap().0.is_empty(), "no job");
    let key = format!("interaction/{interaction}");
    assert!(world.host.services.storage.get(&key).unwrap().is_none(), "no interaction record");
}

#[tokio::test]
async fn forged_stale_and_malformed_signatures_get_401_and_record_nothing() {
    let (world, _dir, bound) = bound_world().await;
    let secret = binding_secret(&world, &bound.binding_id);
    let body = click_body(&bound, "i-bad");
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

#[tokio::test]
async fn malformed_json_unknown_bindings_and_oversized_bodies() {
    let (world, _dir, bound) = bound_world().await;
    let secret = binding_secret(&world, &bound.binding_id);
    let ts = now();

    let garbage = b"{\"action_id\": ".to_vec();
    let (status, reply) = post(&world, &bound.binding_id, &signed(&secret, ts, &garbage), garbage).await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("JSON"), "{reply}");

    let body = click_body(&bound, "i-unknown");
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

#[tokio::test]
async fn the_host_keeps_serving_after_bad_input() {
    let (world, _dir, bound) = bound_world().await;
    for _ in 0..20 {
        let (status, _) = post(&world, &bound.binding_id, &[], b"\xff\xfe not json".to_vec()).await;
        assert_eq!(status, 401);
    }
    let (form, message) = world.push(&bound.action_id, fixture::INTERVIEW_MP4, fixture::SAM, json!({"notify": "no"})).await.unwrap();
    assert_eq!(form.status, 200);
    assert_eq!(message.body["title"], "Asset pushed to the DAM");
    let job = world.wait_for_job(&format!("push:{}", form.interaction_id), std::time::Duration::from_secs(30)).await.unwrap();
    assert_eq!(job.state, "done");
    world.stop().await;
}
