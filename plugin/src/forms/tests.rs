//! The dialogs against an in-memory host and a Frame.io faked at the traits.

use super::*;
use crate::fake_host::{FakeHost, json_response};
use crate::flows::fake_frameio::{context, world};
use crate::frameio::model::Generation;
use crate::host::{Rendition, RenditionKind};

fn values(pairs: &[(&str, &str)]) -> Values {
    Values::new(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>())
}

fn field<'f>(form: &'f Form, name: &str) -> &'f Field {
    form.fields.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no field {name} in {form:?}"))
}

fn problems(result: Result<Outcome, SubmitError>) -> Vec<FieldProblem> {
    match result {
        Err(SubmitError::Invalid(problems)) => problems,
        other => panic!("expected refused values, got {other:?}"),
    }
}

fn alice(subject: &str) -> FormContext {
    FormContext { user: "alice".into(), subject: subject.into() }
}

const SETTINGS: [(&str, &str); 4] =
    [("api", "v2"), ("client-id", "cid"), ("client-secret", "the-secret"), ("public-url", "https://dam.example.com/frameio")];

#[test]
fn the_bind_dialog_lists_what_the_user_sees_and_a_clash_makes_nothing() {
    let host = FakeHost::new();
    let frameio = world();
    let ctx = context(&host, &frameio, Generation::V4);
    let form = bind::describe(&ctx, &alice("f1"), &Values::default()).unwrap();
    assert_eq!(field(&form, "account").value, "acc1");
    assert!(field(&form, "account").refresh && field(&form, "workspace").refresh);
    assert_eq!(field(&form, "workspace").label, "Workspace");
    assert_eq!(field(&form, "project").choices, vec![Choice::new("p1", "Spring").in_group("Editorial")]);
    assert_eq!(field(&form, "action-name").value, "Push to Marketing");

    let clash = values(&[("account", "acc1"), ("workspace", "t1"), ("project", "p1"), ("action-name", "send to archive")]);
    let refused = problems(bind::submit(&ctx, &alice("f1"), &clash));
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].field, "action-name");
    assert!(refused[0].message.contains("already exists"), "{refused:?}");
    assert!(!frameio.borrow().calls.iter().any(|c| c.starts_with("create_action")), "nothing made on a clash");
    let shown = bind::describe(&ctx, &alice("f1"), &clash).unwrap().with_problems(&refused);
    assert_eq!(field(&shown, "action-name").value, "send to archive", "the value entered stays");
    assert!(field(&shown, "action-name").problem.contains("already exists"));

    let blank = values(&[("account", ""), ("project", ""), ("action-name", " ")]);
    let fields: Vec<String> = problems(bind::submit(&ctx, &alice("f1"), &blank)).into_iter().map(|p| p.field).collect();
    assert_eq!(fields, ["project", "account", "action-name"]);

    let good = values(&[("account", "acc1"), ("workspace", "t1"), ("project", "p1"), ("action-name", "Push to Marketing")]);
    let outcome = bind::submit(&ctx, &alice("f1"), &good).unwrap();
    assert_eq!(outcome.made[0].0, "binding-id");
    assert!(outcome.message.contains("Spring"), "{}", outcome.message);
}

#[test]
fn the_bind_dialog_names_teams_on_the_legacy_api() {
    let host = FakeHost::new();
    let frameio = world();
    let form = bind::describe(&context(&host, &frameio, Generation::V2), &alice("f1"), &Values::default()).unwrap();
    assert_eq!(field(&form, "workspace").label, "Team");
    assert!(matches!(bind::describe(&context(&host, &frameio, Generation::V2), &alice("nope"), &Values::default()), Err(Error::NotFound(_))));
}

#[test]
fn settings_are_prefilled_without_the_secret_and_a_bad_value_is_put_beside_its_field() {
    let host = FakeHost::new();
    let form = settings_form::describe(&host, &Values::default()).unwrap();
    assert_eq!(field(&form, "api").kind, FieldKind::Choice);
    assert_eq!(field(&form, "client-secret").kind, FieldKind::Secret);
    assert_eq!(field(&form, "use-pkce").kind, FieldKind::Toggle);
    assert!(!field(&form, "client-secret").is_set);
    assert_eq!(form.actions[0].name, settings_form::TEST);

    let bad = values(&[("api", "v2"), ("client-id", "cid"), ("client-secret", "s"), ("api-url", "not a url"), ("public-url", "https://dam.example.com/frameio")]);
    let refused = problems(settings_form::save(&host, &bad));
    assert_eq!(refused[0].field, "api-url");
    assert!(refused[0].message.starts_with("API URL is not a valid URL"), "{refused:?}");
    assert!(matches!(crate::settings::load(&host), Err(Error::NotConfigured)), "nothing stored");

    settings_form::save(&host, &values(&SETTINGS)).unwrap();
    let form = settings_form::describe(&host, &Values::default()).unwrap();
    assert!(field(&form, "client-secret").is_set);
    assert_eq!(field(&form, "client-secret").value, "", "a stored secret is never given back");
    assert_eq!(field(&form, "client-id").value, "cid");
    // Saving again with the secret left empty keeps the stored one.
    settings_form::save(&host, &values(&[("client-id", "cid2"), ("client-secret", "")])).unwrap();
    let stored = crate::settings::load(&host).unwrap();
    assert_eq!((stored.client_id.as_str(), stored.client_secret.as_str()), ("cid2", "the-secret"));
}

#[test]
fn switching_the_api_prefills_its_endpoints_and_keeps_typed_ones() {
    let host = FakeHost::new();
    settings_form::save(&host, &values(&SETTINGS)).unwrap();
    let form = settings_form::describe(&host, &values(&[("api", "v4")])).unwrap();
    assert_eq!(field(&form, "token-url").value, crate::settings::V4_DEFAULTS.token_url);
    assert_eq!(field(&form, "use-pkce").value, "true");
    let typed = values(&[("api", "v4"), ("token-url", "http://127.0.0.1:9/ims/token/v3")]);
    let form = settings_form::describe(&host, &typed).unwrap();
    assert_eq!(field(&form, "token-url").value, "http://127.0.0.1:9/ims/token/v3");
}

#[test]
fn test_connection_tells_a_refused_client_from_a_refused_grant_and_stores_nothing() {
    let host = FakeHost::new();
    host.respond_with(|req| match req.url.as_str() {
        u if u.ends_with("/oauth2/token") && String::from_utf8_lossy(&req.body).contains("refresh_token") => {
            let wrong = req.headers.iter().any(|(n, v)| n == "authorization" && v != "Basic Y2lkOnRoZS1zZWNyZXQ=");
            if wrong { json_response(401, r#"{"error":"invalid_client"}"#) } else { json_response(400, r#"{"error":"invalid_grant"}"#) }
        }
        u if u.ends_with("/v2/me") => json_response(401, "{}"),
        _ => json_response(404, "{}"),
    });
    let outcome = settings_form::test(&host, &values(&SETTINGS)).unwrap();
    assert!(outcome.message.contains("Connection works"), "{}", outcome.message);
    assert!(matches!(crate::settings::load(&host), Err(Error::NotConfigured)));

    let mut wrong = SETTINGS.to_vec();
    wrong[2] = ("client-secret", "guess");
    assert_eq!(problems(settings_form::test(&host, &values(&wrong)))[0].field, "client-id");

    let mut elsewhere = SETTINGS.to_vec();
    elsewhere.push(("api-url", "https://example.com/api"));
    assert_eq!(problems(settings_form::test(&host, &values(&elsewhere)))[0].field, "api-url");
}

fn review_setup(generation: Generation) -> (FakeHost, std::rc::Rc<std::cell::RefCell<crate::flows::fake_frameio::World>>, String) {
    let host = FakeHost::new();
    let frameio = world();
    {
        let ctx = context(&host, &frameio, generation);
        let bind = values(&[("account", "acc1"), ("workspace", "t1"), ("project", "p1"), ("action-name", "Push")]);
        bind::submit(&ctx, &alice("f1"), &bind).unwrap();
    }
    let doc = host.ensure_document("f1", "dam:cut", "Cut").unwrap();
    host.add_version(&doc.id, "v1", "blob", &[]).unwrap();
    host.add_version(&doc.id, "v2", "blob", &[]).unwrap();
    let master = Rendition { kind: RenditionKind::Master, blob_id: "b".into(), size: 3 << 20, media_type: "video/mp4".into(), file_name: "cut.mp4".into() };
    host.renditions.borrow_mut().insert(doc.id.clone(), vec![master]);
    (host, frameio, doc.id)
}

#[test]
fn the_review_dialog_offers_what_the_api_honours_and_refuses_beside_the_field() {
    let (host, frameio, doc) = review_setup(Generation::V2);
    let ctx = context(&host, &frameio, Generation::V2);
    let form = review::describe(&ctx, &alice(&doc), &Values::default()).unwrap();
    assert_eq!(field(&form, "version").value, "2");
    assert_eq!(field(&form, "rendition").choices.len(), 1, "no proxy, none offered");
    assert!(field(&form, "destination").value.starts_with("binding:b"));
    assert!(form.fields.iter().all(|f| f.name != "watermark"), "v2 links take no watermark");
    assert!(form.intro.contains("watermark settings"), "{}", form.intro);
    let v4 = review::describe(&context(&host, &frameio, Generation::V4), &alice(&doc), &Values::default()).unwrap();
    assert_eq!(field(&v4, "watermark").kind, FieldKind::Toggle);

    let destination = field(&form, "destination").value.clone();
    let base = [("destination", destination.as_str()), ("reviewers", "rita@client.example, sam@client.example"), ("expires-at", "2030-01-01")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        values(&all)
    };
    assert_eq!(problems(review::submit(&ctx, &alice(&doc), &with(&[("expires-at", "2001-01-01")])))[0].field, "expires-at");
    assert_eq!(problems(review::submit(&ctx, &alice(&doc), &with(&[("expires-at", "soon")])))[0].field, "expires-at");
    let bad_email = problems(review::submit(&ctx, &alice(&doc), &with(&[("reviewers", "rita@client.example\nnot-an-email")])));
    assert_eq!((bad_email[0].field.as_str(), bad_email[0].message.starts_with('"')), ("reviewers", true));
    assert_eq!(problems(review::submit(&ctx, &alice(&doc), &with(&[("password", "abc")])))[0].field, "password");
    assert_eq!(problems(review::submit(&ctx, &alice(&doc), &with(&[("rendition", "proxy")])))[0].field, "rendition");
    assert_eq!(problems(review::submit(&ctx, &alice(&doc), &with(&[("watermark", "true")])))[0].field, "watermark");

    let outcome = review::submit(&ctx, &alice(&doc), &with(&[("password", "s3cret-link")])).unwrap();
    assert_eq!(outcome.enqueue.len(), 1);
    assert!(outcome.enqueue[0].key.starts_with("review:"));
    assert_eq!(outcome.made, vec![("job-key".to_string(), outcome.enqueue[0].key.clone())]);
}

#[test]
fn unknown_dialogs_and_actions_are_not_found() {
    let host = FakeHost::new();
    assert!(matches!(describe(&host, "nope", &alice(""), &Values::default()), Err(Error::NotFound(_))));
    assert!(matches!(submit(&host, "provider-settings", "launch", &alice(""), &Values::default()), Err(SubmitError::Failed(Error::NotFound(_)))));
    assert_eq!(DIALOGS, ["provider-settings", "bind", "send-for-review"]);
}
