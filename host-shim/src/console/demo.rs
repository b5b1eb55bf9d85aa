//! The console left running after `host-shim demo --keep`: a simulator and a host
//! with two console users (an administrator and a user, with passwords made for the
//! run), Frame.io registered with the simulator's endpoints, and a DAM folder to
//! bind, so that a person can click through the whole flow. The simulator's own page
//! (`/_sim/ui`) plays the Frame.io user who pushes files.

use std::path::Path;

use anyhow::Context;
use frameio_connector::frameio::model::Generation;

use super::users::{ConsoleConfig, Role};
use crate::harness::{World, WorldOptions, console_user};

/// Starts the world, prints how to reach it, and runs until Ctrl-C.
pub async fn keep(component: &Path, data_dir: &Path, api: Generation) -> anyhow::Result<()> {
    let dir = data_dir.join("console");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let password = |who: &str| format!("{who}-{}", hex::encode(rand::random::<[u8; 4]>()));
    let (admin, user) = (password("ada"), password("dana"));
    let mut console = ConsoleConfig::default();
    console.users.insert("ada".into(), console_user(Role::Administrator, &admin));
    console.users.insert("dana".into(), console_user(Role::User, &user));
    let options = WorldOptions { api, console, transfer_ranges: Some((1 << 20, 2)), ..WorldOptions::new(component, &dir) };
    let world = World::start(options).await?;
    world.configure_provider().await?;
    world.create_folder("/Marketing/Spring", "Spring").await?;
    println!("\n=== The console, running until Ctrl-C ===");
    println!("Console:  {}/", world.host.admin_url);
    println!("  sign in as ada / {admin} (administrator: Cloud services) or dana / {user} (a user)");
    println!("  Frame.io is registered with the simulator's endpoints (Frame.io {}); a folder /Marketing/Spring is there to bind", api.name());
    println!("Frame.io simulator: {}/_sim/ui (run a bound folder's custom action on a file, as a Frame.io user)", world.sim.base_url());
    println!("State: {}", dir.display());
    tokio::signal::ctrl_c().await?;
    world.stop().await;
    Ok(())
}
