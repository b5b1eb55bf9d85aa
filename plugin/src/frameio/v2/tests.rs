//! The v2 client against recorded Legacy API answers (`fake_host::serve_frameio`),
//! shaped like the `frameioclient` models.

use crate::fake_host::{FakeHost, configure, connect, json_response, serve_frameio};
use crate::frameio::model::{ItemKind, Original};
use crate::frameio::transport::FixedToken;
use crate::frameio::{FrameioApi, client};
use crate::frameio::model::Generation;
use crate::host::{HttpResponse, Method};

fn frameio() -> FakeHost {
    let host = FakeHost::new();
    configure(&host);
    connect(&host, "alice", host.now.get() + 3600);
    serve_frameio(&host);
    host
}

fn api(host: &FakeHost) -> Box<dyn FrameioApi + '_> {
    client(Generation::V2, host, "https://api.frame.io/v2", "https://app.frame.io", Box::new(FixedToken("tok-1".into())), None)
}

#[test]
fn a_file_reads_as_the_neutral_model_with_its_stack() {
    let host = frameio();
    let file = api(&host).file("", "v2").unwrap();
    assert_eq!(file.kind, ItemKind::File);
    assert_eq!(file.version_stack_id.as_deref(), Some("vs"));
    assert_eq!(file.original, Original::Ready { url: "https://s3.example/v2".into() });
    assert_eq!(file.xxhash64.as_deref(), Some("00112233445566aa"), "lowercased");
    assert_eq!((file.project_id.as_str(), file.project_name.as_str(), file.workspace_id.as_str()), ("p1", "Spring", "t1"));
    assert_eq!(file.view_url.as_deref(), Some("https://app.frame.io/player/v2"));
    assert_eq!(file.uploader.unwrap().display(), "Uma <uma@example.com>");
    let uploading = api(&host).file("", "up").unwrap();
    assert_eq!(uploading.original, Original::Uploading);
}

#[test]
fn a_project_is_found_by_id_and_names_its_team_as_workspace() {
    let host = frameio();
    let project = api(&host).project("", "p1").unwrap();
    assert_eq!((project.workspace_id.as_str(), project.root_folder_id.as_str()), ("t1", "root"));
}

#[test]
fn lists_page_by_page_number_until_total_pages() {
    let host = frameio();
    host.respond_with(|req| {
        let page = req.url.split("page=").nth(1).and_then(|p| p.split('&').next()).unwrap_or("?").to_string();
        let mut resp = json_response(200, &format!(r#"[{{"id":"acc{page}","display_name":"Account {page}"}}]"#));
        resp.headers.push(("total-pages".into(), "2".into()));
        resp
    });
    let first = api(&host).accounts(None).unwrap();
    assert_eq!((first.items[0].id.as_str(), first.next.as_deref()), ("acc1", Some("2")));
    let second = api(&host).accounts(first.next.as_deref()).unwrap();
    assert_eq!((second.items[0].id.as_str(), second.next), ("acc2", None));
    assert!(api(&host).accounts(Some("x")).is_err(), "a cursor is a page number");
}

#[test]
fn children_ask_frameio_for_one_kind_and_check_it() {
    let host = frameio();
    host.respond_with(|_| {
        json_response(200, r#"[{"id":"d1","name":"Dailies","type":"folder","parent_id":"top"},{"id":"f1","name":"x.mov","type":"file","parent_id":"top"}]"#)
    });
    let folders = api(&host).children("", "top", &[ItemKind::Folder], None).unwrap();
    assert_eq!(folders.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["d1"]);
    assert!(host.requests.borrow().last().unwrap().url.contains("/assets/top/children?type=folder&page=1"));
}

#[test]
fn an_action_is_created_with_its_secret_and_one_without_a_secret_is_removed() {
    let host = frameio();
    let action = crate::frameio::model::NewAction { name: "Push".into(), description: "d".into(), event: "e".into(), url: "https://x".into() };
    let created = api(&host).create_action("", "t1", &action).unwrap();
    assert_eq!((created.id.as_str(), created.secret.as_str()), ("act1", "whsec"));
    host.respond_with(|req| match req.method {
        Method::Post => json_response(200, r#"{"id":"act2","name":"Push"}"#),
        _ => json_response(204, ""),
    });
    assert!(api(&host).create_action("", "t1", &action).is_err());
    assert!(host.requests.borrow().iter().any(|r| r.method == Method::Delete && r.url.ends_with("/actions/act2")));
}

#[test]
fn deleting_an_action_that_is_gone_succeeds() {
    let host = frameio();
    host.respond_with(|_| json_response(404, r#"{"code":404,"message":"Not Found"}"#));
    api(&host).delete_action("", "act9").unwrap();
}

#[test]
fn a_member_is_found_in_the_team() {
    let host = frameio();
    let pat = api(&host).member("", "t1", "u7").unwrap().unwrap();
    assert_eq!(pat.email, "pat@example.com");
    assert!(api(&host).member("", "t1", "u8").unwrap().is_none());
}

#[test]
fn ids_that_could_reshape_a_path_are_refused_before_any_call() {
    let host = frameio();
    assert!(api(&host).file("", "../me").is_err());
    assert!(host.requests.borrow().is_empty());
}

#[test]
fn a_click_payload_decodes_and_a_v4_one_is_refused() {
    let click = br#"{"action_id":"act1","interaction_id":"i1","resource":{"id":"a1","type":"asset"},"team":{"id":"t1"},"user":{"id":"u7"},"type":"e"}"#;
    let event = super::parse_action(click).unwrap();
    assert_eq!((event.workspace_id.as_deref(), event.resource.unwrap().kind), (Some("t1"), None));
    let v4 = br#"{"account_id":"acc1","action_id":"act1","interaction_id":"i1","workspace":{"id":"t1"}}"#;
    assert!(super::parse_action(v4).unwrap_err().contains("V4"));
    let twice = br#"{"action_id":"act1","interaction_id":"i1","data":{"title":"A","title":"B"}}"#;
    assert!(super::parse_action(twice).unwrap_err().contains("duplicate key"));
    let as_array = br#"["act1","i1"]"#;
    assert!(super::parse_action(as_array).unwrap_err().contains("object"));
}

#[test]
fn a_refused_token_is_renewed_once() {
    let host = frameio();
    host.respond_with(|req| -> HttpResponse {
        let old = req.headers.iter().any(|(n, v)| n == "authorization" && v == "Bearer tok-1");
        if old { json_response(401, r#"{"message":"invalid token"}"#) } else { json_response(200, r#"{"id":"u1"}"#) }
    });
    // A fixed token cannot be renewed: the 401 becomes "reconnect".
    let err = api(&host).me().unwrap_err();
    assert!(matches!(err, crate::error::Error::ReconnectRequired(_)), "{err:?}");
    assert_eq!(host.requests_to("/me"), 1);
}
