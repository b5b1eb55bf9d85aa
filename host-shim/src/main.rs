//! The `host-shim` binary: the reference DAM host as a server, the demo, and the
//! Frame.io simulator.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use frameio_connector::frameio::model::Generation;
use host_shim::config::Config;

#[derive(Parser)]
#[command(name = "host-shim", version, about = "Reference DAM host for the Frame.io connector component")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host: public listener, admin API and job worker.
    Serve {
        /// Configuration file (TOML); defaults apply without one.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the whole push flow against the simulator, narrating each step.
    Demo {
        /// The connector component.
        #[arg(long, default_value = "target/wasm32-wasip2/wasm/frameio_connector.wasm")]
        component: PathBuf,
        /// Where to keep the demo's state (cleared first), to look at afterwards.
        #[arg(long, default_value = "var/demo")]
        data_dir: PathBuf,
        /// Run on one Frame.io API generation (`v2` or `v4`); both, one after the other, by default.
        #[arg(long, value_parser = parse_api)]
        api: Option<Generation>,
        /// Then keep a simulator and a host with the console running until Ctrl-C, to
        /// click through (the default when the demo runs in a terminal, outside CI).
        #[arg(long, conflicts_with = "no_keep")]
        keep: bool,
        /// Stop when the narrated demo ends.
        #[arg(long)]
        no_keep: bool,
    },
    /// Print the config lines of a console user, reading their password from stdin.
    ConsoleUser {
        /// The user's name, also their DAM user id.
        name: String,
        /// `administrator` or `user`.
        #[arg(long, default_value = "user")]
        role: String,
    },
    /// Measure imports against curl and frameioclient, and print a table.
    Bench {
        #[arg(long, default_value = "target/wasm32-wasip2/wasm/frameio_connector.wasm")]
        component: PathBuf,
        /// Scratch space: needs room for the largest size a few times over.
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
        /// Sizes to import, in MiB.
        #[arg(long, value_delimiter = ',', default_value = "1024,4096")]
        sizes: Vec<u64>,
        /// Skip curl and frameioclient.
        #[arg(long)]
        no_peers: bool,
        /// Only the inbound figures (requests per second, instantiation): no imports.
        #[arg(long)]
        only_inbound: bool,
        /// Only good clicks' latency during a flood of bad signatures, with the
        /// per-source limit off and on.
        #[arg(long)]
        only_flood: bool,
        /// Only comment sync latency, both ways, on both API generations.
        #[arg(long)]
        only_sync: bool,
        /// Comments timed each way by the sync latency benchmark.
        #[arg(long, default_value_t = 1000)]
        sync_comments: usize,
        /// Only send-for-review uploads, on both API generations, against `curl -T`
        /// and the SDKs' uploaders (`--no-peers` skips those).
        #[arg(long)]
        only_upload: bool,
        /// Sizes to upload with `--only-upload`, in MiB.
        #[arg(long, value_delimiter = ',', default_value = "1024,4096")]
        upload_sizes: Vec<u64>,
        /// Only the project archive: a generated project archived under Frame.io's
        /// documented rate limits, on both API generations, against the floor they
        /// impose (and the big original, with `--archive-big-gb`).
        #[arg(long)]
        only_archive: bool,
        /// Files in the project archived at the rate-limit floor (0 skips it).
        #[arg(long, default_value_t = 10_000)]
        archive_files: u64,
        /// Archive at the floor on one generation only (`v2` or `v4`).
        #[arg(long, value_parser = parse_api)]
        archive_api: Option<Generation>,
        /// Also archive a project of one file of this many GiB, killing the host
        /// half way through its download (with `--archive-files 0`, only that).
        #[arg(long)]
        archive_big_gb: Option<u64>,
    },
    /// Show a host's transfers as progress bars until none is running.
    Transfers {
        /// The host's admin API.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        admin: String,
        /// Keep watching after the last transfer finished.
        #[arg(long)]
        follow: bool,
        /// The admin API's token; read from --token-file when not given.
        #[arg(long, env = "FRAMEIO_DAM_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The file the host keeps its generated token in (`admin_token_file` under its data directory).
        #[arg(long, default_value = "var/admin.token")]
        token_file: PathBuf,
    },
    /// Run the Frame.io simulator alone.
    Sim {
        /// Seed file; the bundled fixture when omitted.
        #[arg(long)]
        seed: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: std::net::SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log file or a journal gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match Cli::parse().command {
        Command::Serve { config } => {
            let config = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            let host = host_shim::app::start(config).await?;
            println!("public {}  admin {}", host.public_url, host.admin_url);
            tokio::signal::ctrl_c().await?;
            host.stop();
            Ok(())
        }
        Command::Demo { component, data_dir, api, keep, no_keep } => {
            let apis = api.map_or(vec![Generation::V2, Generation::V4], |one| vec![one]);
            host_shim::demo::run(&component, &data_dir, &apis).await?;
            // In a terminal a person is there to click through it; CI and scripts are not.
            let interactive = std::io::stdin().is_terminal() && std::env::var_os("CI").is_none();
            if keep || (interactive && !no_keep) {
                host_shim::console::demo::keep(&component, &data_dir, api.unwrap_or(Generation::V4)).await
            } else {
                println!("\nTo click through it in the console: cargo xtask demo --keep (host, simulator and console stay up until Ctrl-C).");
                Ok(())
            }
        }
        Command::ConsoleUser { name, role } => console_user(&name, &role),
        Command::Transfers { admin, follow, token, token_file } => {
            let token = match token {
                Some(token) => token,
                None => std::fs::read_to_string(&token_file)
                    .map_err(|e| anyhow::anyhow!("reading the admin token from {}: {e}", token_file.display()))?
                    .trim()
                    .to_string(),
            };
            host_shim::progress::watch(&admin, &token, follow).await
        }
        Command::Bench {
            component,
            work_dir,
            sizes,
            no_peers,
            only_inbound,
            only_flood,
            only_sync,
            sync_comments,
            only_upload,
            upload_sizes,
            only_archive,
            archive_files,
            archive_api,
            archive_big_gb,
        } => {
            let options = host_shim::bench::BenchOptions {
                component,
                work_dir,
                sizes_mib: sizes,
                peers: !no_peers,
                only_inbound,
                only_flood,
                only_sync,
                sync_comments,
                only_upload,
                upload_sizes_mib: upload_sizes,
                only_archive,
                archive_files,
                archive_apis: archive_api.map_or(vec![Generation::V2, Generation::V4], |one| vec![one]),
                archive_big_gib: archive_big_gb,
            };
            host_shim::bench::run(options).await
        }
        Command::Sim { seed, listen } => {
            frameio_sim::serve_until_interrupted(seed.as_deref(), frameio_sim::SimOptions::default(), listen).await
        }
    }
}

/// `v2` or `v4`.
fn parse_api(raw: &str) -> Result<Generation, String> {
    match raw {
        "v2" => Ok(Generation::V2),
        "v4" => Ok(Generation::V4),
        other => Err(format!("{other:?} is not an API generation: use v2 or v4")),
    }
}

/// Reads a password from stdin and prints the `[console.users.<name>]` lines for it.
fn console_user(name: &str, role: &str) -> anyhow::Result<()> {
    use host_shim::console::users::{ConsoleConfig, ConsoleUser, PasswordHash, Role};
    let role = match role {
        "administrator" => Role::Administrator,
        "user" => Role::User,
        other => anyhow::bail!("{other:?} is not a role: use administrator or user"),
    };
    if std::io::stdin().is_terminal() {
        eprintln!("password for {name} (then Enter):");
    }
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(password.chars().count() >= 12, "use a password of at least 12 characters");
    let hash = PasswordHash::new(password).to_string();
    let mut check = ConsoleConfig::default();
    check.users.insert(name.to_string(), ConsoleUser { role, password_hash: hash.clone() });
    check.validate()?;
    let role = if role == Role::Administrator { "administrator" } else { "user" };
    println!("[console.users.{name}]\nrole = \"{role}\"\npassword_hash = \"{hash}\"");
    Ok(())
}
