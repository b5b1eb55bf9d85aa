//! The V4 client against recorded answers shaped like the `frameio` 4.0.0 SDK
//! models (`FileWithIncludes`, `VersionStackWithIncludes`, `Project`, lists with
//! `links.next`).

use crate::fake_host::{FakeHost, json_response};
use crate::frameio::model::{Generation, ItemKind, NewAction, Original};
use crate::frameio::transport::FixedToken;
use crate::frameio::{FrameioApi, client};
use crate::host::{HttpRequest, HttpResponse, Method};

const FILE: &str = r#"{"data":{"id":"f1","name":"cut.mp4","type":"file","parent_id":"vs1","project_id":"p1",
  "file_size":2048,"media_type":"video/mp4","status":"transcoded","view_url":"https://next.frame.io/project/p1/view/f1",
  "created_at":"2024-03-01T09:00:00Z","updated_at":"2024-03-01T09:00:00Z",
  "media_links":{"original":{"download_url":"https://media.example/f1?sig=1","inline_url":null}}}}"#;
const STACK: &str = r#"{"data":{"id":"vs1","name":"Cut","type":"version_stack","parent_id":"top","project_id":"p1",
  "view_url":"https://next.frame.io/x","created_at":"2024-03-01T09:00:00Z","updated_at":"2024-03-01T09:00:00Z",
  "head_version":{"id":"f1","name":"cut.mp4","type":"file","parent_id":"vs1","project_id":"p1","file_size":2048,"status":"uploaded",
  "view_url":"https://next.frame.io/y","created_at":"2024-03-01T09:00:00Z","updated_at":"2024-03-01T09:00:00Z"}}}"#;

fn path_of(req: &HttpRequest) -> String {
    req.url.split_once("/v4").map(|x| x.1.to_string()).unwrap_or_default()
}

/// A scripted V4 for account `acc1`.
fn serve(req: &HttpRequest) -> HttpResponse {
    let path = path_of(req);
    let (route, query) = path.split_once('?').unwrap_or((path.as_str(), ""));
    match (req.method, route) {
        (Method::Get, "/me") => json_response(200, r#"{"data":{"id":"u1","name":"Noor","email":"noor@example.com"}}"#),
        (Method::Get, "/accounts/acc1/files/f1") => json_response(200, FILE),
        (Method::Get, "/accounts/acc1/files/locked") if query.contains("include") => {
            json_response(403, r#"{"errors":[{"title":"Forbidden","detail":"no download permission"}]}"#)
        }
        (Method::Get, "/accounts/acc1/files/locked") => json_response(200, &FILE.replace("\"f1\"", "\"locked\"").replace("\"parent_id\":\"vs1\"", "\"parent_id\":\"top\"")),
        (Method::Get, "/accounts/acc1/version_stacks/vs1") => json_response(200, STACK),
        (Method::Get, "/accounts/acc1/version_stacks/top") => json_response(404, r#"{"errors":[{"title":"Not Found"}]}"#),
        (Method::Get, "/accounts/acc1/version_stacks/vs1/children") => json_response(
            200,
            r#"{"data":[{"id":"f0","name":"cut-v1.mp4","type":"file"},{"id":"f1","name":"cut.mp4","type":"file"}],"links":{"next":null}}"#,
        ),
        (Method::Get, "/accounts/acc1/folders/top/children") if !query.contains("after=") => json_response(
            200,
            r#"{"data":[{"id":"d1","name":"Dailies","type":"folder","parent_id":"top"}],"links":{"next":"/v4/accounts/acc1/folders/top/children?after=c%2F2"},"total_count":2}"#,
        ),
        (Method::Get, "/accounts/acc1/folders/top/children") => json_response(
            200,
            r#"{"data":[{"id":"vs1","name":"Cut","type":"version_stack","parent_id":"top"}],"links":{"next":null},"total_count":2}"#,
        ),
        (Method::Get, "/accounts/acc1/projects/p1") => json_response(
            200,
            r#"{"data":{"id":"p1","name":"Launch","root_folder_id":"top","workspace_id":"w1","status":"active","storage":0,
              "view_url":"https://next.frame.io/project/p1","created_at":"2024-03-01T09:00:00Z","updated_at":"2024-03-01T09:00:00Z"}}"#,
        ),
        (Method::Get, "/accounts/acc1/workspaces/w1/users") => json_response(
            200,
            r#"{"data":[{"role":"editor","user":{"id":"u7","name":"Pat","email":"pat@example.com"}},{"role":"reviewer","user":{"id":null,"email":"invited@example.com"}}],"links":{"next":null}}"#,
        ),
        (Method::Post, "/accounts/acc1/workspaces/w1/actions") => {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            assert_eq!(body["data"]["name"], "Push", "the request body is wrapped in data");
            json_response(201, r#"{"data":{"id":"act1","name":"Push","secret":"whsec","active":true,"event":"e","url":"https://x","workspace_id":"w1"}}"#)
        }
        (Method::Delete, "/accounts/acc1/actions/act1") => json_response(204, ""),
        _ => json_response(404, r#"{"errors":[{"title":"Not Found","detail":"no such route"}]}"#),
    }
}

fn frameio() -> FakeHost {
    let host = FakeHost::new();
    host.respond_with(serve);
    host
}

fn api(host: &FakeHost) -> Box<dyn FrameioApi + '_> {
    client(Generation::V4, host, "https://api.frame.io/v4", "https://next.frame.io", Box::new(FixedToken("tok-1".into())), None)
}

#[test]
fn a_file_reads_with_its_media_link_and_its_stack() {
    let host = frameio();
    let file = api(&host).file("acc1", "f1").unwrap();
    assert_eq!(file.original, Original::Ready { url: "https://media.example/f1?sig=1".into() });
    assert_eq!((file.size, file.media_type.as_deref()), (Some(2048), Some("video/mp4")));
    assert_eq!(file.view_url.as_deref(), Some("https://next.frame.io/project/p1/view/f1"));
    assert_eq!(file.version_stack_id.as_deref(), Some("vs1"));
    assert!(host.requests.borrow()[0].url.ends_with("/v4/accounts/acc1/files/f1?include=media_links.original"));
}

#[test]
fn a_file_the_user_may_not_download_reads_as_forbidden() {
    let host = frameio();
    let file = api(&host).file("acc1", "locked").unwrap();
    assert_eq!(file.original, Original::Forbidden);
    assert_eq!(file.version_stack_id, None, "its parent is a folder");
}

#[test]
fn a_stack_names_its_head_first() {
    let host = frameio();
    let stack = api(&host).version_stack("acc1", "vs1").unwrap();
    assert_eq!(stack.head_file_id, "f1");
    assert_eq!(stack.version_ids, ["f1", "f0"]);
}

#[test]
fn children_follow_the_after_cursor_of_links_next() {
    let host = frameio();
    let kinds = [ItemKind::Folder, ItemKind::VersionStack];
    let first = api(&host).children("acc1", "top", &kinds, None).unwrap();
    assert_eq!((first.items[0].kind.clone(), first.next.as_deref()), (ItemKind::Folder, Some("c/2")));
    assert!(host.requests.borrow()[0].url.contains("type=folder%2Cversion_stack&page_size=500"));
    let second = api(&host).children("acc1", "top", &kinds, first.next.as_deref()).unwrap();
    assert_eq!((second.items[0].id.as_str(), second.next), ("vs1", None));
    assert!(host.requests.borrow()[1].url.ends_with("after=c%2F2"));
}

#[test]
fn a_project_carries_its_workspace_and_the_account_it_was_asked_in() {
    let host = frameio();
    let project = api(&host).project("acc1", "p1").unwrap();
    assert_eq!((project.account_id.as_str(), project.workspace_id.as_str(), project.root_folder_id.as_str()), ("acc1", "w1", "top"));
}

#[test]
fn actions_are_created_in_a_workspace_with_their_secret_and_deleted_in_the_account() {
    let host = frameio();
    let action = NewAction { name: "Push".into(), description: "d".into(), event: "e".into(), url: "https://x".into() };
    let created = api(&host).create_action("acc1", "w1", &action).unwrap();
    assert_eq!((created.id.as_str(), created.secret.as_str()), ("act1", "whsec"));
    api(&host).delete_action("acc1", "act1").unwrap();
    api(&host).delete_action("acc1", "gone").unwrap();
}

#[test]
fn members_are_workspace_users_and_invited_people_without_an_id_decode() {
    let host = frameio();
    assert_eq!(api(&host).member("acc1", "w1", "u7").unwrap().unwrap().email, "pat@example.com");
    assert!(api(&host).member("acc1", "w1", "u9").unwrap().is_none());
}

#[test]
fn errors_carry_v4_titles_and_details() {
    let host = frameio();
    let err = api(&host).project("acc1", "nope").unwrap_err().to_string();
    assert!(err.contains("404") && err.contains("Not Found: no such route"), "{err}");
}

#[test]
fn a_click_payload_decodes_and_a_v2_one_is_refused() {
    let click = br#"{"account_id":"adobe:acc-1","action_id":"act1","interaction_id":"i1","project":{"id":"p1"},
        "resource":{"id":"vs1","type":"version_stack"},"type":"e","user":{"id":"u7"},"workspace":{"id":"w1"}}"#;
    let event = super::parse_action(click).unwrap();
    assert_eq!(event.account_id.as_deref(), Some("adobe:acc-1"));
    assert_eq!(event.resource.unwrap().kind, Some(ItemKind::VersionStack));
    let v2 = br#"{"action_id":"act1","interaction_id":"i1","team":{"id":"t1"}}"#;
    assert!(super::parse_action(v2).unwrap_err().contains("Legacy API"));
    let bad_account = br#"{"account_id":"../x","action_id":"act1","interaction_id":"i1","workspace":{"id":"w1"}}"#;
    assert!(super::parse_action(bad_account).unwrap_err().contains("account_id"));
}
