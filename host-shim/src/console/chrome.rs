//! What every console page shows around its content: the navigation, who is signed
//! in (with the sign-out form), a message left by the last action, and a banner
//! while Frame.io is disabled.

use super::ConsoleState;
use super::session::Viewer;

/// The navigation's sections.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Folders,
    Jobs,
    Archives,
    Connect,
    Cloud,
}

/// The data of `base.html`.
pub struct Chrome {
    pub title: String,
    pub user: String,
    pub is_admin: bool,
    pub csrf: String,
    pub flash: Option<String>,
    pub section: Section,
    pub enabled: bool,
}

impl Chrome {
    pub fn new(state: &ConsoleState, viewer: &Viewer, section: Section, title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            user: viewer.user.clone(),
            is_admin: viewer.is_admin(),
            csrf: viewer.csrf.clone(),
            flash: state.sessions.take_flash(viewer),
            section,
            enabled: state.switch.enabled(),
        }
    }

    /// `aria-current="page"` for the section shown, as the template writes it.
    pub fn current(&self, section: &str) -> &'static str {
        let this = match self.section {
            Section::Folders => "folders",
            Section::Jobs => "jobs",
            Section::Archives => "archives",
            Section::Connect => "connect",
            Section::Cloud => "cloud",
        };
        if this == section { "page" } else { "false" }
    }
}
