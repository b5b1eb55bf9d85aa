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
use crate::host::Host;
use crate::store;

/// Frame.io's Legacy (v2) OAuth authorization endpoint.
pub const DEFAULT_AUTHORIZATION_URL: &str = "https://applications.frame.io/oauth2/auth";
/// Frame.io's Legacy (v2) OAuth token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://applications.frame.io/oauth2/token";
/// Frame.io's Legacy API base.
pub const DEFAULT_API_URL: &str = "https://api.frame.io/v2";
/// Frame.io's web app, for links back to an asset.
pub const DEFAULT_WEB_URL: &str = "https://app.frame.io";
/// The scopes the connector needs: `offline` for a refresh token, the rest for
/// browsing, reading assets and managing custom actions.
pub const DEFAULT_SCOPES: &str =
    "offline account.read team.read project.read asset.read action.create action.read action.update action.delete";

/// Scopes without which the push flow cannot work.
const REQUIRED_SCOPES: [&str; 5] = ["offline", "asset.read", "action.create", "action.delete", "team.read"];

/// One field of the settings form (WIT `provider.setting-field`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingField {
    pub name: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub required: bool,
    pub secret: bool,
    pub default_value: Option<&'static str>,
}

/// The provider descriptor (WIT `provider.descriptor`).
#[derive(Clone, Debug)]
pub struct Descriptor {
    pub service_name: &'static str,
    pub description: &'static str,
    pub settings: Vec<SettingField>,
}

/// The stored, validated settings.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settings {
    pub client_id: String,
    pub client_secret: String,
    pub authorization_url: String,
    pub token_url: String,
    pub api_url: String,
    pub web_url: String,
    pub public_url: String,
    pub scopes: Vec<String>,
    pub use_pkce: bool,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
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

/// The provider descriptor.
pub fn describe() -> Descriptor {
    let field = |name, label, help, required, secret, default_value| SettingField {
        name,
        label,
        help,
        required,
        secret,
        default_value,
    };
    Descriptor {
        service_name: "frameio",
        description: "Frame.io provider: push Frame.io assets into DAM folders",
        settings: vec![
            field("client-id", "Client ID", "From the Frame.io OAuth app.", true, false, None),
            field(
                "client-secret",
                "Client Secret",
                "From the Frame.io OAuth app. Not needed when the app uses PKCE.",
                false,
                true,
                None,
            ),
            field(
                "authorization-url",
                "Authorization Server URL",
                "Frame.io's OAuth authorization endpoint.",
                true,
                false,
                Some(DEFAULT_AUTHORIZATION_URL),
            ),
            field("token-url", "Token Server URL", "Frame.io's OAuth token endpoint.", true, false, Some(DEFAULT_TOKEN_URL)),
            field("api-url", "API URL", "Frame.io's Legacy API base URL.", true, false, Some(DEFAULT_API_URL)),
            field("web-url", "Web app URL", "Frame.io's web app, for links back to assets.", true, false, Some(DEFAULT_WEB_URL)),
            field(
                "public-url",
                "Connector public URL",
                "The host's URL that Frame.io calls for custom actions (the inbound endpoint).",
                true,
                false,
                None,
            ),
            field(
                "scopes",
                "Scopes",
                "Space- or comma-separated OAuth scopes; must include offline, asset.read, team.read, action.create and action.delete.",
                true,
                false,
                Some(DEFAULT_SCOPES),
            ),
            field("use-pkce", "Uses PKCE", "true if the Frame.io OAuth app was registered with PKCE.", false, false, Some("false")),
        ],
    }
}

/// Validates the administrator's form and stores it. Fields left out take their defaults.
pub fn configure(host: &dyn Host, form: &[(String, String)]) -> Result<()> {
    let settings = parse(form)?;
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
    let use_pkce = match get("use-pkce").as_str() {
        "true" => true,
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
        client_id,
        client_secret,
        authorization_url: checked_url("authorization-url", &get("authorization-url"))?,
        token_url: checked_url("token-url", &get("token-url"))?,
        api_url: checked_url("api-url", &get("api-url"))?.trim_end_matches('/').to_string(),
        web_url: checked_url("web-url", &get("web-url"))?.trim_end_matches('/').to_string(),
        public_url: checked_url("public-url", &get("public-url"))?.trim_end_matches('/').to_string(),
        scopes: checked_scopes(&get("scopes"))?,
        use_pkce,
    })
}

/// Merges the form over the defaults; refuses unknown and repeated names.
fn collect_fields(form: &[(String, String)]) -> Result<BTreeMap<String, String>> {
    let descriptor = describe();
    let mut values: BTreeMap<String, String> = descriptor
        .settings
        .iter()
        .filter_map(|f| f.default_value.map(|d| (f.name.to_string(), d.to_string())))
        .collect();
    let mut seen = Vec::new();
    for (name, value) in form {
        if !descriptor.settings.iter().any(|f| f.name == name) {
            return Err(Error::InvalidInput(format!("unknown setting {name:?}")));
        }
        if seen.contains(&name) {
            return Err(invalid(name, "is given twice"));
        }
        seen.push(name);
        values.insert(name.clone(), value.trim().to_string());
    }
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

fn checked_scopes(raw: &str) -> Result<Vec<String>> {
    let scopes: Vec<String> = raw
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = scopes.iter().find(|s| !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')) {
        return Err(invalid("scopes", &format!("has a malformed scope {bad:?}")));
    }
    for needed in REQUIRED_SCOPES {
        if !scopes.iter().any(|s| s == needed) {
            return Err(invalid("scopes", &format!("must include {needed}")));
        }
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

    #[test]
    fn defaults_fill_everything_but_the_app_credentials() {
        let s = parse(&minimal()).unwrap();
        assert_eq!(s.authorization_url, DEFAULT_AUTHORIZATION_URL);
        assert_eq!(s.token_url, DEFAULT_TOKEN_URL);
        assert_eq!(s.api_url, DEFAULT_API_URL);
        assert!(s.scopes.contains(&"offline".to_string()));
        assert!(!s.use_pkce);
    }

    #[test]
    fn descriptor_is_prefilled_like_the_nuxeo_provider() {
        let d = describe();
        assert_eq!(d.service_name, "frameio");
        let default = |n| d.settings.iter().find(|f| f.name == n).unwrap().default_value;
        assert_eq!(default("authorization-url"), Some(DEFAULT_AUTHORIZATION_URL));
        assert_eq!(default("token-url"), Some(DEFAULT_TOKEN_URL));
        assert!(d.settings.iter().find(|f| f.name == "client-secret").unwrap().secret);
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
            (vec![("colour", "blue")], "colour"),
        ];
        for (overrides, field) in cases {
            let mut f = minimal();
            for (k, v) in overrides {
                f.retain(|(n, _)| n != k);
                f.push((k.to_string(), v.to_string()));
            }
            let err = parse(&f).unwrap_err().to_string();
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
