//! Enabling and disabling Frame.io in this DAM, as a cloud-service entry is switched
//! on and off: while it is off, Frame.io's requests (custom actions, webhooks) are
//! answered 503 without reaching the connector, and the console offers no connect,
//! bind or send. The settings, connections and bindings stay as they are, so turning
//! it back on resumes everything. The state is a marker file in the data directory,
//! so it survives a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::server::error_response;
use crate::server::public::INBOUND_PREFIX;

/// The marker's name under the data directory.
const MARKER: &str = "frameio.disabled";

pub struct ProviderSwitch {
    disabled: AtomicBool,
    marker: PathBuf,
}

impl ProviderSwitch {
    /// The switch of the host whose data directory is `data_dir`.
    pub fn open(data_dir: &std::path::Path) -> Arc<ProviderSwitch> {
        let marker = data_dir.join(MARKER);
        Arc::new(ProviderSwitch { disabled: AtomicBool::new(marker.exists()), marker })
    }

    pub fn enabled(&self) -> bool {
        !self.disabled.load(Ordering::SeqCst)
    }

    /// Turns Frame.io on or off, durably.
    pub fn set(&self, enabled: bool) -> std::io::Result<()> {
        if enabled {
            match std::fs::remove_file(&self.marker) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        } else {
            std::fs::write(&self.marker, b"Frame.io was disabled in the console\n")?;
        }
        self.disabled.store(!enabled, Ordering::SeqCst);
        Ok(())
    }
}

/// Middleware of the public listener: Frame.io's requests are refused while off.
pub async fn refuse_when_disabled(State(switch): State<Arc<ProviderSwitch>>, request: Request, next: Next) -> Response {
    if !switch.enabled() && request.uri().path().starts_with(INBOUND_PREFIX) {
        return error_response(StatusCode::SERVICE_UNAVAILABLE, "Frame.io is disabled in this DAM");
    }
    next.run(request).await
}
