//! Comment and review-status sync, both ways, on both API generations.
//!
//! - [`subscriptions`]: the webhook of each followed workspace.
//! - [`incoming`]: Frame.io to the DAM, converging each file on Frame.io's state.
//! - [`outgoing`]: the DAM to Frame.io, without echoes.
//! - [`reconcile`]: the periodic catch-up.
//! - [`links`]: which files are whose, and which comments are whose.

pub mod incoming;
pub mod links;
pub mod outgoing;
pub mod reconcile;
pub mod subscriptions;

pub use incoming::SyncJob;
pub use outgoing::PostJob;
pub use reconcile::ReconcileJob;

#[cfg(test)]
mod tests;
