//! Sign-in and the token lease, against a scripted Frame.io v2 OAuth server and API.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::fake_host::{FakeHost, configure, connect, serve_frameio};
use crate::frameio::model::{Account, Page};

/// Lists alice's accounts through her connection: the call that makes the lease work.
fn list_accounts(host: &FakeHost) -> Result<Page<Account>> {
    let settings = crate::settings::load(host)?;
    super::api_for(host, &settings, "alice")?.accounts(None)
}

#[test]
fn an_expired_token_is_refreshed_before_use() {
    let host = FakeHost::new();
    configure(&host);
    connect(&host, "alice", host.now.get() + 10);
    serve_frameio(&host);
    list_accounts(&host).unwrap_err();
    assert_eq!(host.requests_to("/oauth2/token"), 1);
    let auth = host.requests.borrow().iter().rev().find(|r| r.url.contains("/v2/")).unwrap().headers.clone();
    assert!(auth.iter().any(|(n, v)| n == "authorization" && v == "Bearer tok-2"));
}

#[test]
fn a_token_frameio_rejects_before_its_expiry_is_refreshed_once_and_the_call_retried() {
    let host = FakeHost::new();
    configure(&host);
    connect(&host, "alice", host.now.get() + 3600);
    serve_frameio(&host);
    // Frame.io revoked tok-1 early: it answers 401 to it, and accepts the refreshed tok-2.
    host.respond_with(|req| {
        let revoked = req.headers.iter().any(|(n, v)| n == "authorization" && v == "Bearer tok-1");
        if req.url.ends_with("/oauth2/token") {
            crate::fake_host::json_response(200, r#"{"access_token":"tok-2","refresh_token":"ref-2","expires_in":3600}"#)
        } else if revoked {
            crate::fake_host::json_response(401, r#"{"message":"invalid token"}"#)
        } else {
            crate::fake_host::json_response(200, r#"[{"id":"acc1","display_name":"Studio"}]"#)
        }
    });
    let accounts = list_accounts(&host).unwrap();
    assert_eq!(accounts.items[0].name, "Studio");
    assert_eq!(host.requests_to("/oauth2/token"), 1, "one refresh");
    assert_eq!(host.requests_to("/accounts"), 2, "the call, then its one retry");
}

#[test]
fn an_authorization_state_works_once() {
    let host = FakeHost::new();
    configure(&host);
    serve_frameio(&host);
    let auth = super::begin(&host, "alice", "https://dam.example.com/oauth/callback").unwrap();
    super::complete(&host, &auth.state, "code-1").unwrap();
    let again = super::complete(&host, &auth.state, "code-1").unwrap_err();
    assert!(matches!(again, Error::InvalidInput(_)), "{again:?}");
}

#[test]
fn a_refresh_that_lost_to_a_concurrent_rotation_uses_the_winners_tokens() {
    let host = FakeHost::new();
    configure(&host);
    connect(&host, "alice", host.now.get() + 10);
    // The token endpoint says invalid_grant (our refresh token was just used by another
    // call), and by then that call has stored fresh tokens.
    let key = format!("{}alice", crate::store::CONNECTION);
    host.respond_with(move |req| {
        if req.url.ends_with("/oauth2/token") {
            crate::fake_host::json_response(400, r#"{"error":"invalid_grant"}"#)
        } else {
            crate::fake_host::json_response(200, "[]")
        }
    });
    let winner = serde_json::json!({
        "user": "alice", "frameio_user": "Ada", "access_token": "tok-winner", "refresh_token": "ref-winner",
        "expires_at": host.now.get() + 3600, "reconnect_reason": null
    });
    // The other call's write lands while our token request is in flight.
    host.writes_during_token_request.borrow_mut().push((key, winner.to_string().into_bytes()));
    list_accounts(&host).unwrap();
    assert_eq!(host.requests_to("/oauth2/token"), 1, "our refresh was tried and refused");
    let auth = host.requests.borrow().iter().rev().find(|r| r.url.contains("/v2/")).unwrap().headers.clone();
    assert!(auth.iter().any(|(n, v)| n == "authorization" && v == "Bearer tok-winner"), "{auth:?}");
    assert!(host.sent.borrow().is_empty(), "no reconnect email for a race");
}


#[test]
fn a_refused_refresh_token_marks_the_connection_until_the_user_connects_again() {
    let host = FakeHost::new();
    configure(&host);
    connect(&host, "alice", host.now.get() + 3600);
    // Frame.io revoked the grant: the access token is refused, and so is the refresh token.
    let revoked = std::rc::Rc::new(std::cell::Cell::new(true));
    let grant_gone = revoked.clone();
    host.respond_with(move |req| match (req.url.ends_with("/oauth2/token"), grant_gone.get()) {
        (true, true) => {
            crate::fake_host::json_response(400, r#"{"error":"invalid_grant","error_description":"The refresh token is unknown or revoked"}"#)
        }
        (true, false) => crate::fake_host::json_response(200, r#"{"access_token":"tok-9","refresh_token":"ref-9","expires_in":3600}"#),
        (false, true) => crate::fake_host::json_response(401, r#"{"message":"invalid token"}"#),
        (false, false) if req.url.ends_with("/v2/me") => crate::fake_host::json_response(200, r#"{"id":"u1","name":"Ada","email":"ada@example.com"}"#),
        (false, false) => crate::fake_host::json_response(200, "[]"),
    });
    let e = list_accounts(&host).unwrap_err();
    assert!(matches!(&e, Error::ReconnectRequired(why) if why.contains("invalid_grant")), "{e:?}");
    assert_eq!(host.sent.borrow().len(), 1, "the user is told once");

    // From now on every call, the connection's status included, says so without asking Frame.io.
    let status = super::status(&host, "alice").unwrap_err();
    assert!(matches!(&status, Error::ReconnectRequired(why) if why.contains("unknown or revoked")), "{status:?}");
    assert!(matches!(super::refresh(&host, "alice").unwrap_err(), Error::ReconnectRequired(_)));
    list_accounts(&host).unwrap_err();
    assert_eq!(host.requests_to("/oauth2/token"), 1, "a refused grant is not tried again");
    assert_eq!(host.sent.borrow().len(), 1, "nor told again");

    // Connecting again clears the mark.
    revoked.set(false);
    let auth = super::begin(&host, "alice", "https://dam.example.com/oauth/callback").unwrap();
    super::complete(&host, &auth.state, "code-2").unwrap();
    let connection = super::status(&host, "alice").unwrap().expect("connected again");
    assert_eq!(connection.frameio_user, "Ada <ada@example.com>");
    list_accounts(&host).unwrap();
}

/// A configured host whose HTTP goes to the scripted Frame.io (no connection yet).
fn frameio_host() -> FakeHost {
    let host = FakeHost::new();
    configure(&host);
    serve_frameio(&host);
    host
}


/// A stored connection for alice whose token `tok-1` expires at `expires_at`, with
/// another call's refresh lease running until `lease_until`.
fn connect_with_lease(host: &FakeHost, expires_at: u64, lease_until: u64) -> String {
    let key = format!("{}alice", crate::store::CONNECTION);
    let conn = serde_json::json!({
        "user": "alice", "frameio_user": "Ada", "access_token": "tok-1", "refresh_token": "ref-1",
        "expires_at": expires_at, "reconnect_reason": null, "refresh_lease_until": lease_until
    });
    crate::host::Host::storage_set(host, &key, conn.to_string().as_bytes()).unwrap();
    key
}


fn bearer_of_last_api_call(host: &FakeHost) -> String {
    let requests = host.requests.borrow();
    let last = requests.iter().rev().find(|r| r.url.contains("/v2/")).expect("an API call");
    last.headers.iter().find(|(n, _)| n == "authorization").map(|(_, v)| v.clone()).unwrap_or_default()
}

#[test]
fn a_call_whose_token_expired_waits_for_a_refresh_under_way_instead_of_refreshing() {
    let host = frameio_host();
    let now = host.now.get();
    let key = connect_with_lease(&host, now - 1, now + 10);
    let done = serde_json::json!({
        "user": "alice", "frameio_user": "Ada", "access_token": "tok-other", "refresh_token": "ref-other",
        "expires_at": now + 3600, "reconnect_reason": null, "refresh_lease_until": null
    });
    // The lease holder stores its tokens while we wait.
    host.writes_during_sleep.borrow_mut().push((key, done.to_string().into_bytes()));
    list_accounts(&host).unwrap_err();
    assert_eq!(host.requests_to("/oauth2/token"), 0, "single flight: the holder's refresh is the only one");
    assert!(host.slept_ms.get() > 0, "it waited");
    assert_eq!(bearer_of_last_api_call(&host), "Bearer tok-other");
}

#[test]
fn a_token_that_has_not_expired_is_used_while_another_call_refreshes_it() {
    let host = frameio_host();
    let now = host.now.get();
    connect_with_lease(&host, now + 30, now + 10);
    list_accounts(&host).unwrap_err();
    assert_eq!((host.slept_ms.get(), host.requests_to("/oauth2/token")), (0, 0), "no wait, no second refresh");
    assert_eq!(bearer_of_last_api_call(&host), "Bearer tok-1");
}

#[test]
fn a_lease_whose_holder_died_makes_callers_fail_briefly_then_runs_out() {
    let host = frameio_host();
    let started = host.now.get();
    connect_with_lease(&host, started - 1, started + 10);
    let waited = list_accounts(&host).unwrap_err();
    assert!(waited.is_transient(), "a passing error after a bounded wait: {waited:?}");
    assert_eq!(host.now.get() - started, 6, "waited six seconds");
    assert_eq!(host.requests_to("/oauth2/token"), 0);
    host.now.set(started + 11);
    list_accounts(&host).unwrap_err();
    assert_eq!(host.requests_to("/oauth2/token"), 1, "the lease ran out: this call refreshes");
    assert_eq!(bearer_of_last_api_call(&host), "Bearer tok-2");
    let stored = crate::store::load::<Value>(&host, &format!("{}alice", crate::store::CONNECTION)).unwrap().unwrap();
    assert_eq!(stored.value["refresh_lease_until"], Value::Null, "the lease is released with the new tokens");
    assert_eq!(stored.value["refresh_token"], "ref-2", "the new refresh token is stored");
}

#[test]
fn a_lease_set_impossibly_far_ahead_is_not_honoured() {
    let host = frameio_host();
    connect_with_lease(&host, host.now.get() - 1, u64::MAX);
    list_accounts(&host).unwrap_err();
    assert_eq!(host.slept_ms.get(), 0);
    assert_eq!(host.requests_to("/oauth2/token"), 1);
}

#[test]
fn a_connection_without_a_refresh_token_needs_reconnecting_and_takes_no_lease() {
    let host = FakeHost::new();
    configure(&host);
    let key = format!("{}alice", crate::store::CONNECTION);
    let conn = serde_json::json!({
        "user": "alice", "frameio_user": "Ada", "access_token": "tok-1", "refresh_token": null,
        "expires_at": host.now.get() - 1, "reconnect_reason": null
    });
    crate::host::Host::storage_set(&host, &key, conn.to_string().as_bytes()).unwrap();
    let before = crate::host::Host::storage_get(&host, &key).unwrap().unwrap().revision;
    let e = list_accounts(&host).unwrap_err();
    assert!(matches!(e, Error::ReconnectRequired(_)), "{e:?}");
    assert_eq!(crate::host::Host::storage_get(&host, &key).unwrap().unwrap().revision, before, "the record is untouched");
}

#[test]
fn a_failed_refresh_releases_its_lease() {
    let host = FakeHost::new();
    configure(&host);
    connect(&host, "alice", host.now.get() + 10);
    host.respond_with(|_| crate::fake_host::json_response(503, r#"{"message":"unavailable"}"#));
    list_accounts(&host).unwrap_err();
    let stored = crate::store::load::<Value>(&host, &format!("{}alice", crate::store::CONNECTION)).unwrap().unwrap();
    assert_eq!(stored.value["refresh_lease_until"], Value::Null);
    assert_eq!(stored.value["access_token"], "tok-1", "nothing else changed");
}

/// A provider configured for Frame.io V4, whose IMS and API answer from `respond`.
fn ims_host(respond: impl Fn(&crate::host::HttpRequest) -> crate::host::HttpResponse + 'static) -> FakeHost {
    let host = FakeHost::new();
    let form = [("api", "v4"), ("client-id", "cid"), ("client-secret", "csecret"), ("public-url", "https://dam.example.com/frameio")];
    let form: Vec<(String, String)> = form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    crate::settings::configure(&host, &form).unwrap();
    host.respond_with(respond);
    host
}

fn form_of(req: &crate::host::HttpRequest) -> std::collections::BTreeMap<String, String> {
    url::form_urlencoded::parse(&req.body).into_owned().collect()
}

#[test]
fn adobe_ims_sign_in_uses_pkce_and_sends_the_client_secret_in_the_body() {
    let host = ims_host(|req| {
        if req.url.contains("/ims/token/v3") {
            crate::fake_host::json_response(200, r#"{"access_token":"ims-1","refresh_token":"imsr-1","expires_in":86399,"token_type":"bearer"}"#)
        } else {
            crate::fake_host::json_response(200, r#"{"data":{"id":"u5","name":"Noor","email":"noor@example.com"}}"#)
        }
    });
    let auth = super::begin(&host, "alice", "https://dam.example.com/oauth/callback").unwrap();
    assert!(auth.url.starts_with("https://ims-na1.adobelogin.com/ims/authorize/v2?"), "{}", auth.url);
    assert!(auth.url.contains("code_challenge_method=S256") && auth.url.contains("scope=openid+offline_access"), "{}", auth.url);
    let connection = super::complete(&host, &auth.state, "code-1").unwrap();
    assert_eq!(connection.frameio_user, "Noor <noor@example.com>");
    assert_eq!(connection.expires_at, host.now.get() + 86399, "expires_in is honoured");
    let requests = host.requests.borrow();
    let token = requests.iter().find(|r| r.url.contains("/ims/token/v3")).unwrap();
    let form = form_of(token);
    assert_eq!((form["client_id"].as_str(), form["client_secret"].as_str()), ("cid", "csecret"));
    assert!(form.get("code_verifier").is_some_and(|v| v.len() >= 43), "{form:?}");
    assert!(!token.headers.iter().any(|(n, _)| n == "authorization"), "no Basic header on IMS");
    assert!(requests.iter().any(|r| r.url == "https://api.frame.io/v4/me"), "the user is read from V4");
}

#[test]
fn rotating_ims_refresh_tokens_are_kept_newest_and_an_answer_without_one_keeps_the_old() {
    let host = ims_host(|req| {
        if req.url.contains("/ims/token/v3") {
            let form = form_of(req);
            match form["refresh_token"].as_str() {
                "ref-1" => crate::fake_host::json_response(200, r#"{"access_token":"ims-2","refresh_token":"ref-2","expires_in":10}"#),
                _ => crate::fake_host::json_response(200, r#"{"access_token":"ims-3","expires_in":3600}"#),
            }
        } else {
            crate::fake_host::json_response(200, r#"{"data":[],"links":{"next":null}}"#)
        }
    });
    let key = format!("{}alice", crate::store::CONNECTION);
    let conn = serde_json::json!({
        "generation": "v4", "user": "alice", "frameio_user": "Noor", "access_token": "ims-1", "refresh_token": "ref-1",
        "expires_at": host.now.get() - 1, "reconnect_reason": null
    });
    crate::host::Host::storage_set(&host, &key, conn.to_string().as_bytes()).unwrap();
    let stored = |host: &FakeHost| crate::store::load::<Value>(host, &key).unwrap().unwrap().value;
    list_accounts(&host).unwrap();
    assert_eq!(stored(&host)["refresh_token"], "ref-2", "the rotated token replaces the spent one");
    host.now.set(host.now.get() + 11);
    list_accounts(&host).unwrap();
    assert_eq!(stored(&host)["access_token"], "ims-3");
    assert_eq!(stored(&host)["refresh_token"], "ref-2", "kept when the answer has none");
}

#[test]
fn a_connection_made_for_the_other_generation_must_be_made_again() {
    let host = ims_host(|_| crate::fake_host::json_response(200, "{}"));
    connect(&host, "alice", host.now.get() + 3600);
    let e = list_accounts(&host).unwrap_err();
    assert!(matches!(&e, Error::ReconnectRequired(why) if why.contains("v2") && why.contains("v4")), "{e:?}");
}
