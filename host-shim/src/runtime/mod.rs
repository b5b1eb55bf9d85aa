//! Running the connector component: one Engine, the component compiled once,
//! an `InstancePre`, and a fresh Store per call with a deadline and a memory cap.
//!
//! A fresh instance per call means no state leaks between calls or tenants and a
//! trap poisons nothing: the connector keeps its state in the `storage` import.

mod cache;
mod forms;
mod limits;
mod links;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use wasmtime::component::{HasSelf, Instance, InstancePre, Linker, ResourceTable};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::blobs::BlobStore;
use crate::config::{Config, RuntimeConfig};
use crate::imports::http::HttpClient;
use crate::imports::notifications::Notifier;
use crate::imports::repository::Repository;
use crate::imports::storage::KvStore;
use crate::imports::transfer::TransferEngine;

/// The generated bindings for the WIT world `connector`.
pub mod wit {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "connector",
        imports: { default: async },
        exports: { default: async },
        // The admin API speaks these records as JSON.
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub use wit::exports::frameio_dam::connector::{archive, bindings, browse, dam_events, forms as dialogs, inbound, jobs, oauth, provider, review};
pub use wit::frameio_dam::connector::types::{Error as ConnectorError, JobRequest, Property};

/// How often the epoch advances: the granularity of call deadlines, and how often
/// a long-running call yields its thread to other requests.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The real parts behind the component's imports, shared by every call.
pub struct Services {
    pub storage: KvStore,
    pub repository: Repository,
    pub blobs: BlobStore,
    pub notifier: Notifier,
    pub http: HttpClient,
    pub transfers: TransferEngine,
}

/// What one Store holds: WASI's context, limits, and the services.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: limits::CallLimits,
    services: Arc<Services>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A compiled connector, ready to instantiate per call.
pub struct Runtime {
    engine: Engine,
    pre: InstancePre<HostState>,
    exports: Exports,
    services: Arc<Services>,
    call_timeout: Duration,
    max_memory_bytes: usize,
    /// The most linear memory any call has grown to.
    memory_peak: Arc<AtomicUsize>,
    /// One permit per pool slot: with pooling, a call waits for a free slot rather
    /// than fail when every instance is in use.
    slots: Option<Arc<Semaphore>>,
}

/// Where each exported interface's functions are, looked up once. A call loads
/// (and type-checks) only the interface it calls, not all sixteen exports as the
/// generated `ConnectorPre::instantiate` would on every instantiation.
struct Exports {
    provider: provider::GuestIndices,
    oauth: oauth::GuestIndices,
    browse: browse::GuestIndices,
    bindings: bindings::GuestIndices,
    inbound: inbound::GuestIndices,
    jobs: jobs::GuestIndices,
    dam_events: dam_events::GuestIndices,
    review: review::GuestIndices,
    dialogs: dialogs::GuestIndices,
    archive: archive::GuestIndices,
}

impl Exports {
    fn new(pre: &InstancePre<HostState>) -> anyhow::Result<Exports> {
        Ok(Exports {
            provider: provider::GuestIndices::new(pre)?,
            oauth: oauth::GuestIndices::new(pre)?,
            browse: browse::GuestIndices::new(pre)?,
            bindings: bindings::GuestIndices::new(pre)?,
            inbound: inbound::GuestIndices::new(pre)?,
            jobs: jobs::GuestIndices::new(pre)?,
            dam_events: dam_events::GuestIndices::new(pre)?,
            review: review::GuestIndices::new(pre)?,
            dialogs: dialogs::GuestIndices::new(pre)?,
            archive: archive::GuestIndices::new(pre)?,
        })
    }
}

/// One call's instance, its Store, and the pool slot it holds. Fields drop in
/// order, so the slot is released only after the Store has given it back.
struct Call {
    store: Store<HostState>,
    instance: Instance,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Runtime {
    /// Compiles (or loads from cache) the component and links it.
    pub fn new(config: &Config, services: Arc<Services>) -> anyhow::Result<Runtime> {
        let engine = Engine::new(&engine_config(&config.runtime))?;
        let component = cache::load_component(&engine, &config.component, &config.data_dir.join(&config.runtime.cache_dir))?;
        let mut linker = Linker::new(&engine);
        // A wasm32-wasip2 std build always imports a few WASI interfaces (clocks,
        // random, cli, io); they are given with no files, environment or network.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wit::Connector::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;
        let pre = linker.instantiate_pre(&component).map_err(anyhow::Error::from).context("linking the connector component")?;
        let exports = Exports::new(&pre)?;
        spawn_epoch_ticker(&engine);
        Ok(Runtime {
            engine,
            pre,
            exports,
            services,
            call_timeout: Duration::from_millis(config.runtime.call_timeout_ms),
            max_memory_bytes: config.runtime.max_memory_bytes,
            memory_peak: Arc::new(AtomicUsize::new(0)),
            slots: (config.runtime.pooling_instances > 0)
                .then(|| Arc::new(Semaphore::new(config.runtime.pooling_instances as usize))),
        })
    }

    /// The most linear memory any call into the component has used, in bytes.
    pub fn guest_memory_peak(&self) -> usize {
        self.memory_peak.load(Ordering::Relaxed)
    }

    /// The services the component's imports use.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// A fresh instance in a fresh Store, with this call's deadline and memory cap.
    async fn instance(&self) -> anyhow::Result<Call> {
        let slot = match &self.slots {
            Some(slots) => Some(slots.clone().acquire_owned().await?),
            None => None,
        };
        let state = HostState {
            // No files, environment, arguments or network: the defaults.
            wasi: WasiCtx::default(),
            table: ResourceTable::new(),
            limits: limits::CallLimits::new(self.max_memory_bytes, self.memory_peak.clone()),
            services: self.services.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        // Every epoch tick, a call still running yields its thread to the executor (a
        // guest spinning in a loop must not hold a runtime thread, and with it every
        // request queued there, until its deadline), and traps once its deadline is past.
        // The yield is tokio's own: it makes the thread poll for network events before
        // the call resumes. A plain yield (`UpdateDeadline::Yield`) would put the call
        // straight back in the queue, and a thread running only spinning guests would
        // then look for network events once every 61 turns (tokio's `event_interval`),
        // that is every 0.6 s at a 10 ms tick: requests would wait for the loops.
        let deadline = Instant::now() + self.call_timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        let instance = self.pre.instantiate_async(&mut store).await?;
        Ok(Call { store, instance, _slot: slot })
    }

    pub async fn describe(&self) -> anyhow::Result<provider::Descriptor> {
        let mut call = self.instance().await?;
        Ok(self.exports.provider.load(&mut call.store, &call.instance)?.call_describe(&mut call.store).await?)
    }

    pub async fn configure(&self, settings: Vec<Property>) -> anyhow::Result<Result<(), ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.provider.load(&mut call.store, &call.instance)?.call_configure(&mut call.store, &settings).await?)
    }

    pub async fn oauth_begin(&self, user: &str, redirect_uri: &str) -> anyhow::Result<Result<oauth::Authorization, ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.oauth.load(&mut call.store, &call.instance)?.call_begin(&mut call.store, user, redirect_uri).await?)
    }

    pub async fn oauth_complete(&self, state: &str, code: &str) -> anyhow::Result<Result<oauth::Connection, ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.oauth.load(&mut call.store, &call.instance)?.call_complete(&mut call.store, state, code).await?)
    }

    pub async fn oauth_status(&self, user: &str) -> anyhow::Result<Result<Option<oauth::Connection>, ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.oauth.load(&mut call.store, &call.instance)?.call_status(&mut call.store, user).await?)
    }

    pub async fn oauth_refresh(&self, user: &str) -> anyhow::Result<Result<oauth::Connection, ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.oauth.load(&mut call.store, &call.instance)?.call_refresh(&mut call.store, user).await?)
    }

    /// One page of a browse listing; `list` picks the export and its arguments.
    pub async fn browse(&self, user: &str, list: &BrowseList, cursor: Option<&str>) -> anyhow::Result<Result<browse::Page, ConnectorError>> {
        let mut call = self.instance().await?;
        let b = self.exports.browse.load(&mut call.store, &call.instance)?;
        let store = &mut call.store;
        Ok(match list {
            BrowseList::Accounts => b.call_accounts(store, user, cursor).await?,
            BrowseList::Workspaces { account } => b.call_workspaces(store, user, account, cursor).await?,
            BrowseList::Projects { account, workspace } => b.call_projects(store, user, account, workspace, cursor).await?,
            BrowseList::SharedProjects => b.call_shared_projects(store, user, cursor).await?,
            BrowseList::Children { account, folder, kinds } => b.call_children(store, user, account, folder, *kinds, cursor).await?,
        })
    }

    pub async fn bind(&self, req: &bindings::BindRequest) -> anyhow::Result<Result<bindings::Binding, ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.bindings.load(&mut call.store, &call.instance)?.call_bind(&mut call.store, req).await?)
    }

    pub async fn unbind(&self, id: &str) -> anyhow::Result<Result<(), ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.bindings.load(&mut call.store, &call.instance)?.call_unbind(&mut call.store, id).await?)
    }

    pub async fn list_bindings(&self) -> anyhow::Result<Result<Vec<bindings::Binding>, ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.bindings.load(&mut call.store, &call.instance)?.call_list_bindings(&mut call.store).await?)
    }

    pub async fn handle_inbound(&self, req: &inbound::Request) -> anyhow::Result<inbound::Reply> {
        let mut call = self.instance().await?;
        Ok(self.exports.inbound.load(&mut call.store, &call.instance)?.call_handle(&mut call.store, req).await?)
    }

    pub async fn run_job(&self, job: &jobs::Job) -> anyhow::Result<jobs::Outcome> {
        let mut call = self.instance().await?;
        Ok(self.exports.jobs.load(&mut call.store, &call.instance)?.call_run(&mut call.store, job).await?)
    }

    /// The jobs the connector wants queued on a schedule.
    pub async fn scheduled_jobs(&self) -> anyhow::Result<Vec<jobs::ScheduledJob>> {
        let mut call = self.instance().await?;
        Ok(self.exports.jobs.load(&mut call.store, &call.instance)?.call_schedule(&mut call.store).await?)
    }

    /// What sending for review can honour on the configured API.
    pub async fn review_capabilities(&self) -> anyhow::Result<Result<review::ReviewCapabilities, ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.review.load(&mut call.store, &call.instance)?.call_capabilities(&mut call.store).await?)
    }

    /// Checks a send for review; the job to queue.
    pub async fn review_send(&self, req: &review::ReviewRequest) -> anyhow::Result<Result<review::ReviewTicket, ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.review.load(&mut call.store, &call.instance)?.call_send(&mut call.store, req).await?)
    }

    /// Checks an archive request; the job to queue and the archive as it stands.
    pub async fn archive_start(&self, req: &archive::ArchiveRequest) -> anyhow::Result<Result<archive::ArchiveTicket, ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.archive.load(&mut call.store, &call.instance)?.call_start(&mut call.store, req).await?)
    }

    /// Every archive the connector knows, newest first.
    pub async fn archives(&self) -> anyhow::Result<Result<Vec<archive::ArchiveProgress>, ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.archive.load(&mut call.store, &call.instance)?.call_archives(&mut call.store).await?)
    }

    /// Tells the connector about something that happened in the DAM; the jobs to queue.
    pub async fn dam_event(&self, event: &dam_events::Event) -> anyhow::Result<Result<Vec<JobRequest>, ConnectorError>> {
        let mut call = self.instance().await?;
        Ok(self.exports.dam_events.load(&mut call.store, &call.instance)?.call_notify(&mut call.store, event).await?)
    }
}

/// Epoch interruption always; the pooling allocator when configured. Pooling keeps
/// instance slots (memories, tables, stacks) mapped between calls, so a fresh
/// instance per call is cheaper; `Runtime::instance` holds a slot permit per call,
/// so calls beyond the pool wait instead of failing.
fn engine_config(runtime: &RuntimeConfig) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    if runtime.pooling_instances > 0 {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(runtime.pooling_instances)
            .total_core_instances(runtime.pooling_instances * 4)
            .total_memories(runtime.pooling_instances * 2)
            .total_tables(runtime.pooling_instances * 4)
            .total_stacks(runtime.pooling_instances)
            .max_memory_size(runtime.max_memory_bytes);
        keep_slots_resident(&mut pool);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Linear memory (and table) bytes a call may leave resident in its pool slot,
/// reset in place for the next call: the connector uses about 1.2 MiB. Pages past
/// this are released as before, so at most 2 MiB of memory and 2 MiB of tables per
/// slot stay resident, however much a call grew: 128 MiB at worst with the default
/// 32 slots, about 1.2 MiB a slot in practice.
const KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// Resets a slot's memory and tables by copying back only the pages the last call
/// wrote, found with Linux's `PAGEMAP_SCAN` (6.7 and later), instead of unmapping
/// them with `madvise`. The next call then takes no page faults and the reset no
/// TLB shootdown: the two dominated the cost of a fresh instance. Without the
/// ioctl, keeping pages resident would mean `memset`-ing all of them on every
/// call, so slots are then released as before.
fn keep_slots_resident(pool: &mut PoolingAllocationConfig) {
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES);
    }
}

/// Which browse export to call, with its arguments.
#[derive(Clone, Debug)]
pub enum BrowseList {
    Accounts,
    Workspaces { account: String },
    Projects { account: String, workspace: String },
    SharedProjects,
    Children { account: String, folder: String, kinds: browse::ChildKinds },
}

/// Advances the engine's epoch on a timer for as long as the engine lives, so a
/// guest stuck in a loop reaches its deadline and traps.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}
