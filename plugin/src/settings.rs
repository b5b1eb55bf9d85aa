//! The provider descriptor and the administrator's settings.
//!
//! The descriptor is what a DAM shows in its cloud-service settings, prefilled the
//! way the Nuxeo connector documents it; `configure` validates a filled-in form and
//! stores it. Nothing is stored unless every field is valid.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
use crate::frameio::model::Generation;
use crate::host::Host;
use crate::store;

/// The Legacy API's prefilled values: Frame.io's own OAuth server.
pub const V2_DEFAULTS: Defaults = Defaults {
    authorization_url: "https://applications.frame.io/oauth2/auth",
    token_url: "https://applications.frame.io/oauth2/token",
    api_url: "https://api.frame.io/v2",
    web_url: "https://app.frame.io",
    // `offline` for a refresh token, the rest for browsing, reading assets and
    // managing custom actions.
    scopes: "offline account.read team.read project.read asset.read action.create action.read action.update action.delete",
    use_pkce: "false",
};

/// Frame.io V4's prefilled values: Adobe IMS sign-in, always with PKCE.
pub const V4_DEFAULTS: Defaults = Defaults {
    authorization_url: "https://ims-na1.adobelogin.com/ims/authorize/v2",
    token_url: "https://ims-na1.adobelogin.com/ims/token/v3",
    api_url: "https://api.frame.io/v4",
    web_url: "https://next.frame.io",
    scopes: "openid offline_access profile email additional_info.roles",
    use_pkce: "true",
};

/// Scopes without which the push flow cannot work, per generation.
const V2_REQUIRED_SCOPES: [&str; 5] = ["offline", "asset.read", "action.create", "action.delete", "team.read"];
const V4_REQUIRED_SCOPES: [&str; 2] = ["openid", "offline_access"];

/// The values a generation prefills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Defaults {
    pub authorization_url: &'static str,
    pub token_url: &'static str,
    pub api_url: &'static str,
    pub web_url: &'static str,
    pub scopes: &'static str,
    pub use_pkce: &'static str,
}

impl Defaults {
    /// The prefilled values of `generation`.
    pub fn of(generation: Generation) -> Defaults {
        match generation {
            Generation::V2 => V2_DEFAULTS,
            Generation::V4 => V4_DEFAULTS,
        }
    }

    /// As setting names and values.
    pub fn fields(&self) -> [(&'static str, &'static str); 6] {
        [
            ("authorization-url", self.authorization_url),
            ("token-url", self.token_url),
            ("api-url", self.api_url),
            ("web-url", self.web_url),
            ("scopes", self.scopes),
            ("use-pkce", self.use_pkce),
        ]
    }
}

/// One field of the settings form (WIT `provider.setting-field`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingField {
    pub name: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub required: bool,
    pub secret: bool,
    pub default_value: Option<&'static str>,
    /// The values to choose from; empty for free text.
    pub choices: Vec<&'static str>,
}

/// Values to prefill when a choice field takes a value (WIT `provider.preset`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    pub field: &'static str,
    pub choice: &'static str,
    pub values: Vec<(&'static str, &'static str)>,
}

/// The provider descriptor (WIT `provider.descriptor`).
#[derive(Clone, Debug)]
pub struct Descriptor {
    pub service_name: &'static str,
    pub description: &'static str,
    pub settings: Vec<SettingField>,
    pub presets: Vec<Preset>,
}

/// The stored, validated settings.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settings {
    /// Settings stored before V4 support have no generation: they are v2.
    #[serde(default)]
    pub api: Generation,
    pub client_id: String,
    pub client_secret: String,
    pub authorization_url: String,
    pub token_url: String,
    pub api_url: String,
    pub web_url: String,
    pub public_url: String,
    pub scopes: Vec<String>,
    pub use_pkce: bool,
    /// How a document's folder path names the show and episode it is sent to
    /// review under (`/{show}/{episode}`, or with fixed segments before them).
    #[serde(default = "default_structure")]
    pub structure: String,
    /// The project-name marker (such as `[archive]`) that makes a `project.updated`
    /// webhook start an archive; empty leaves archives to be started by hand.
    #[serde(default)]
    pub archive_marker: String,
    /// The DAM folder that archives started by the marker go into.
    #[serde(default)]
    pub archive_folder: String,
}

/// The automatic project structure when none is set: the first folder names the
/// show, the one inside it the episode.
pub const DEFAULT_STRUCTURE: &str = "/{show}/{episode}";

fn default_structure() -> String {
    DEFAULT_STRUCTURE.to_string()
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("api", &self.api)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("authorization_url", &self.authorization_url)
            .field("token_url", &self.token_url)
            .field("api_url", &self.api_url)
            .field("public_url", &self.public_url)
            .field("scopes", &self.scopes)
            .field("use_pkce", &self.use_pkce)
            .finish()
    }
}

fn text_field(name: &'static str, label: &'static str, help: &'static str, required: bool, default_value: Option<&'static str>) -> SettingField {
    SettingField { name, label, help, required, secret: false, default_value, choices: Vec::new() }
}

/// The provider descriptor. The first field picks the API generation; the fields
/// after it are prefilled for the Legacy API, and `presets` says what to prefill
/// for each choice.
pub fn describe() -> Descriptor {
    let v2 = V2_DEFAULTS;
    Descriptor {
        service_name: "frameio",
        description: "Frame.io provider: push Frame.io assets into DAM folders (Legacy API v2 or Frame.io V4)",
        settings: vec![
            SettingField {
                choices: vec!["v2", "v4"],
                ..text_field(
                    "api",
                    "Frame.io API",
                    "v4 for Frame.io V4 accounts (sign-in with Adobe IMS); v2 for accounts still on the Legacy API.",
                    true,
                    Some("v2"),
                )
            },
            text_field("client-id", "Client ID", "From the Frame.io OAuth app (v2) or the Adobe Developer Console credential (V4).", true, None),
            SettingField {
                secret: true,
                ..text_field("client-secret", "Client Secret", "From the same app. Not needed when the app uses PKCE without a secret.", false, None)
            },
            text_field("authorization-url", "Authorization Server URL", "The OAuth authorization endpoint.", true, Some(v2.authorization_url)),
            text_field("token-url", "Token Server URL", "The OAuth token endpoint.", true, Some(v2.token_url)),
            text_field("api-url", "API URL", "Frame.io's API base URL.", true, Some(v2.api_url)),
            text_field("web-url", "Web app URL", "Frame.io's web app, for links back to assets.", true, Some(v2.web_url)),
            text_field(
                "public-url",
                "Connector public URL",
                "The host's URL that Frame.io calls for custom actions (the inbound endpoint).",
                true,
                None,
            ),
            text_field(
                "scopes",
                "Scopes",
                "Space- or comma-separated OAuth scopes. v2 needs offline, asset.read, team.read, action.create and action.delete; V4 needs openid and offline_access.",
                true,
                Some(v2.scopes),
            ),
            text_field("use-pkce", "Uses PKCE", "true if the app signs in with PKCE (always on V4).", false, Some(v2.use_pkce)),
            text_field(
                "structure",
                "Review structure",
                "Where sends for review go when no project is chosen: the document's folder path, with {show} naming the Frame.io project and {episode} the folder in it (for example /Shows/{show}/{episode}).",
                false,
                Some(DEFAULT_STRUCTURE),
            ),
            text_field(
                "archive-marker",
                "Archive marker",
                "When a Frame.io project's name gains this text (for example [archive]), the project is archived into the archive folder. Empty: archives start only by hand.",
                false,
                None,
            ),
            text_field(
                "archive-folder",
                "Archive folder",
                "The DAM folder id that archives started by the marker go into; required with a marker.",
                false,
                None,
            ),
        ],
        presets: [Generation::V2, Generation::V4]
            .into_iter()
            .map(|g| Preset { field: "api", choice: g.name(), values: Defaults::of(g).fields().to_vec() })
            .collect(),
    }
}

/// Validates the administrator's form and stores it. Fields left out take the
/// defaults of the chosen generation.
pub fn configure(host: &dyn Host, form: &[(String, String)]) -> Result<()> {
    let settings = parse(form)?;
    if !settings.archive_marker.is_empty() {
        match host.get_folder(&settings.archive_folder) {
            Ok(_) => {}
            Err(crate::host::HostError::NotFound(_) | crate::host::HostError::Refused(_)) => {
                return Err(invalid("archive-folder", "must name an existing DAM folder when an archive marker is set"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    store::save(host, store::SETTINGS, &settings)?;
    Ok(())
}

/// The stored settings, or `NotConfigured`.
pub fn load(host: &dyn Host) -> Result<Settings> {
    store::load(host, store::SETTINGS)?.map(|s| s.value).ok_or(Error::NotConfigured)
}

/// Turns a filled-in form into settings, refusing unknown, missing and malformed fields.
pub fn parse(form: &[(String, String)]) -> Result<Settings> {
    let values = collect_fields(form)?;
    let get = |name: &str| values.get(name).cloned().unwrap_or_default();
    let api = match get("api").as_str() {
        "v2" => Generation::V2,
        "v4" => Generation::V4,
        other => return Err(invalid("api", &format!("must be v2 or v4, not {other:?}"))),
    };
    let use_pkce = match get("use-pkce").as_str() {
        "true" => true,
        "false" if api == Generation::V4 => return Err(invalid("use-pkce", "must be true: Adobe IMS sign-in always uses PKCE")),
        "false" => false,
        other => return Err(invalid("use-pkce", &format!("must be true or false, not {other:?}"))),
    };
    let client_id = get("client-id");
    if client_id.is_empty() || client_id.chars().any(char::is_whitespace) {
        return Err(invalid("client-id", "is required and may not contain spaces"));
    }
    let client_secret = get("client-secret");
    if client_secret.trim().is_empty() && !use_pkce {
        return Err(invalid("client-secret", "is required unless the app uses PKCE"));
    }
    Ok(Settings {
        api,
        client_id,
        client_secret,
        authorization_url: checked_url("authorization-url", &get("authorization-url"))?,
        token_url: checked_url("token-url", &get("token-url"))?,
        api_url: checked_url("api-url", &get("api-url"))?.trim_end_matches('/').to_string(),
        web_url: checked_url("web-url", &get("web-url"))?.trim_end_matches('/').to_string(),
        public_url: checked_url("public-url", &get("public-url"))?.trim_end_matches('/').to_string(),
        scopes: checked_scopes(api, &get("scopes"))?,
        use_pkce,
        structure: checked_structure(&get("structure"))?,
        archive_marker: checked_marker(&get("archive-marker"))?,
        archive_folder: get("archive-folder").trim().to_string(),
    })
}

/// Merges the form over the chosen generation's defaults; refuses unknown and
/// repeated names.
fn collect_fields(form: &[(String, String)]) -> Result<BTreeMap<String, String>> {
    let descriptor = describe();
    let mut seen = Vec::new();
    for (name, _) in form {
        if !descriptor.settings.iter().any(|f| f.name == name) {
            return Err(Error::InvalidInput(format!("unknown setting {name:?}")));
        }
        if seen.contains(&name) {
            return Err(invalid(name, "is given twice"));
        }
        seen.push(name);
    }
    let chosen = form.iter().find(|(n, _)| n == "api").map_or("v2", |(_, v)| v.trim());
    let mut values: BTreeMap<String, String> = descriptor
        .settings
        .iter()
        .filter_map(|f| f.default_value.map(|d| (f.name.to_string(), d.to_string())))
        .collect();
    if let Some(preset) = descriptor.presets.iter().find(|p| p.choice == chosen) {
        values.extend(preset.values.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    }
    values.extend(form.iter().map(|(n, v)| (n.clone(), v.trim().to_string())));
    Ok(values)
}

fn invalid(field: &str, why: &str) -> Error {
    Error::InvalidInput(format!("setting {field} {why}"))
}

/// An absolute https URL without query or fragment; plain http only for loopback
/// hosts, which is how the simulator and local development run.
fn checked_url(field: &str, raw: &str) -> Result<String> {
    let url = Url::parse(raw).map_err(|e| invalid(field, &format!("is not a valid URL ({e})")))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(invalid(field, "must be an https URL")),
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(invalid(field, "may not carry a query, fragment or credentials"));
    }
    Ok(raw.to_string())
}

/// An archive marker: short, printable text matched within project names.
fn checked_marker(raw: &str) -> Result<String> {
    let marker = raw.trim();
    if marker.chars().count() > 64 || marker.chars().any(char::is_control) {
        return Err(invalid("archive-marker", "must be at most 64 printable characters"));
    }
    Ok(marker.to_string())
}

/// A structure pattern: absolute, with `{show}` before `{episode}`, each once and as
/// whole segments.
fn checked_structure(raw: &str) -> Result<String> {
    let segments: Vec<&str> = raw.trim_end_matches('/').split('/').skip(1).collect();
    let show = segments.iter().position(|s| *s == "{show}");
    let episode = segments.iter().position(|s| *s == "{episode}");
    let well_formed = raw.starts_with('/')
        && matches!((show, episode), (Some(s), Some(e)) if s < e)
        && segments.iter().all(|s| !s.is_empty() && (s.starts_with('{') == s.ends_with('}')))
        && raw.matches("{show}").count() == 1
        && raw.matches("{episode}").count() == 1;
    if !well_formed {
        return Err(invalid("structure", "must be a folder path with {show} before {episode}, as whole segments (for example /{show}/{episode})"));
    }
    Ok(raw.trim_end_matches('/').to_string())
}

/// Whether `scope` belongs to the Legacy API's vocabulary (`offline`, `asset.read`...).
fn is_legacy_scope(scope: &str) -> bool {
    let verb = scope.rsplit_once('.').map(|(_, verb)| verb);
    scope == "offline" || (!scope.starts_with("additional_info.") && matches!(verb, Some("read" | "create" | "update" | "delete")))
}

/// Whether `scope` belongs to Adobe IMS's vocabulary (`openid`, `offline_access`...).
fn is_ims_scope(scope: &str) -> bool {
    matches!(scope, "openid" | "offline_access" | "profile" | "email" | "AdobeID") || scope.starts_with("additional_info.")
}

fn checked_scopes(api: Generation, raw: &str) -> Result<Vec<String>> {
    let scopes: Vec<String> = raw.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_string).collect();
    if let Some(bad) = scopes.iter().find(|s| !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')) {
        return Err(invalid("scopes", &format!("has a malformed scope {bad:?}")));
    }
    let (foreign, required): (fn(&str) -> bool, &[&str]) = match api {
        Generation::V2 => (is_ims_scope, &V2_REQUIRED_SCOPES),
        Generation::V4 => (is_legacy_scope, &V4_REQUIRED_SCOPES),
    };
    if let Some(wrong) = scopes.iter().find(|s| foreign(s)) {
        let why = match api {
            Generation::V2 => format!("has {wrong:?}, an Adobe IMS scope: a v2 provider signs in with Frame.io's legacy scopes ({})", V2_DEFAULTS.scopes),
            Generation::V4 => format!("has {wrong:?}, a Legacy API scope: a V4 provider signs in with Adobe IMS scopes ({})", V4_DEFAULTS.scopes),
        };
        return Err(invalid("scopes", &why));
    }
    if let Some(missing) = required.iter().find(|needed| !scopes.iter().any(|s| s == *needed)) {
        return Err(invalid("scopes", &format!("must include {missing}")));
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn minimal() -> Vec<(String, String)> {
        form(&[("client-id", "abc"), ("client-secret", "s3cret"), ("public-url", "https://dam.example.com/frameio")])
    }

    fn with(mut f: Vec<(String, String)>, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
        for (k, v) in overrides {
            f.retain(|(n, _)| n != k);
            f.push((k.to_string(), v.to_string()));
        }
        f
    }

    #[test]
    fn defaults_fill_everything_but_the_app_credentials() {
        let s = parse(&minimal()).unwrap();
        assert_eq!(s.api, Generation::V2);
        assert_eq!(s.authorization_url, V2_DEFAULTS.authorization_url);
        assert_eq!(s.token_url, V2_DEFAULTS.token_url);
        assert_eq!(s.api_url, V2_DEFAULTS.api_url);
        assert!(s.scopes.contains(&"offline".to_string()));
        assert!(!s.use_pkce);
    }

    #[test]
    fn choosing_v4_prefills_adobe_ims_and_the_v4_api() {
        let s = parse(&with(minimal(), &[("api", "v4")])).unwrap();
        assert_eq!(s.api, Generation::V4);
        assert_eq!(s.authorization_url, "https://ims-na1.adobelogin.com/ims/authorize/v2");
        assert_eq!(s.token_url, "https://ims-na1.adobelogin.com/ims/token/v3");
        assert_eq!(s.api_url, "https://api.frame.io/v4");
        assert_eq!(s.scopes.join(" "), "openid offline_access profile email additional_info.roles");
        assert!(s.use_pkce);
    }

    #[test]
    fn a_scope_list_of_the_other_generation_is_refused_with_the_reason() {
        let err = parse(&with(minimal(), &[("api", "v4"), ("scopes", V2_DEFAULTS.scopes)])).unwrap_err().to_string();
        assert!(err.contains("Legacy API scope") && err.contains("openid offline_access"), "{err}");
        let err = parse(&with(minimal(), &[("scopes", V4_DEFAULTS.scopes)])).unwrap_err().to_string();
        assert!(err.contains("Adobe IMS scope"), "{err}");
    }

    #[test]
    fn settings_stored_before_v4_read_as_v2() {
        let mut stored = serde_json::to_value(parse(&minimal()).unwrap()).unwrap();
        stored.as_object_mut().unwrap().remove("api");
        let s: Settings = serde_json::from_value(stored).unwrap();
        assert_eq!(s.api, Generation::V2);
    }

    #[test]
    fn descriptor_is_prefilled_like_the_nuxeo_provider_with_a_preset_per_generation() {
        let d = describe();
        assert_eq!(d.service_name, "frameio");
        let field = |n| d.settings.iter().find(|f| f.name == n).unwrap();
        assert_eq!(field("authorization-url").default_value, Some(V2_DEFAULTS.authorization_url));
        assert_eq!(field("token-url").default_value, Some(V2_DEFAULTS.token_url));
        assert!(field("client-secret").secret);
        assert_eq!(field("api").choices, ["v2", "v4"]);
        let v4 = d.presets.iter().find(|p| p.choice == "v4").unwrap();
        assert!(v4.values.contains(&("token-url", V4_DEFAULTS.token_url)));
    }

    #[test]
    fn refuses_bad_fields_naming_them() {
        let cases = [
            (vec![("client-id", "")], "client-id"),
            (vec![("client-secret", " ")], "client-secret"),
            (vec![("token-url", "ftp://x")], "token-url"),
            (vec![("token-url", "http://example.com/token")], "token-url"),
            (vec![("public-url", "https://dam/x?y=1")], "public-url"),
            (vec![("scopes", "asset.read")], "scopes"),
            (vec![("use-pkce", "yes")], "use-pkce"),
            (vec![("api", "v3")], "api"),
            (vec![("api", "v4"), ("use-pkce", "false")], "use-pkce"),
            (vec![("structure", "/{episode}/{show}")], "structure"),
            (vec![("structure", "shows/{show}/{episode}")], "structure"),
            (vec![("colour", "blue")], "colour"),
        ];
        for (overrides, field) in cases {
            let err = parse(&with(minimal(), &overrides)).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn pkce_apps_need_no_secret_and_loopback_may_use_http() {
        let f = form(&[
            ("client-id", "abc"),
            ("use-pkce", "true"),
            ("public-url", "http://127.0.0.1:8080/frameio"),
            ("api-url", "http://127.0.0.1:9090/v2/"),
        ]);
        let s = parse(&f).unwrap();
        assert!(s.use_pkce);
        assert_eq!(s.api_url, "http://127.0.0.1:9090/v2");
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let s = parse(&minimal()).unwrap();
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn repeated_field_is_refused() {
        let mut f = minimal();
        f.push(("client-id".into(), "other".into()));
        assert!(parse(&f).unwrap_err().to_string().contains("twice"));
    }
}
