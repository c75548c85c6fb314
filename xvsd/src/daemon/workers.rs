//! A worker built over its set and started on a thread of its own, pinned
//! to its core: at start (over new sets) and at a takeover (over adopted
//! ones, whose sockets are claimed in between).

use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use tracing::{info, warn};
use xvs_io::worker::{Worker, WorkerCmd, WorkerReport};
use xvs_io::xsk::XskSet;

use super::{Daemon, DaemonError, WorkerThread};

/// What a worker's [`WorkerThread`] keeps besides the thread.
pub(super) struct WorkerParts {
    pub(super) report: Arc<Mutex<WorkerReport>>,
    pub(super) cmds: Sender<WorkerCmd>,
    pub(super) tap: Arc<xvs_io::worker::Tap>,
}

impl Daemon {
    /// Worker `id` over `set`, not yet running, and what its thread
    /// entry keeps.
    pub(super) fn new_worker(&mut self, id: usize, set: XskSet) -> (Worker, WorkerParts) {
        let report = Arc::new(Mutex::new(WorkerReport {
            id,
            ..Default::default()
        }));
        let (cmds, cmd_rx) = crossbeam_channel::bounded(64);
        let tap = Arc::new(xvs_io::worker::Tap::default());
        let worker = Worker::new(
            id,
            set,
            Vec::new(),
            self.ctl.handle(),
            Some(self.ctl.learn_sender()),
        )
        .with_upcalls(self.ctl.upcall_sender())
        .with_mode(self.opts.poll)
        .with_epoch(self.epoch)
        .with_report(Arc::clone(&report))
        .with_tap(Arc::clone(&tap))
        .with_commands(cmd_rx)
        .with_lost(self.lost_tx.clone());
        let worker = match &self.fastpath {
            Some(fp) => worker.with_offers(fp.offer_sender()),
            None => worker,
        };
        (worker, WorkerParts { report, cmds, tap })
    }

    /// Runs `worker` on a thread of its own, pinned to its core.
    pub(super) fn spawn_worker(
        &mut self,
        worker: Worker,
        parts: WorkerParts,
    ) -> Result<(), DaemonError> {
        let id = self.workers.len();
        let core = self.cores.get(id).copied().flatten();
        let stop = Arc::clone(&self.stop_workers);
        let thread = std::thread::Builder::new()
            .name(format!("xvs-worker-{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        warn!(worker = id, core, "could not pin the worker");
                    }
                }
                info!(worker = id, core = ?core, "worker running");
                let mut worker = worker;
                worker.run(&stop)?;
                Ok(worker.into_set())
            })
            .map_err(|e| DaemonError::Worker {
                id,
                reason: format!("spawning the thread: {e}"),
            })?;
        self.workers.push(WorkerThread {
            id,
            thread: Some(thread),
            report: parts.report,
            cmds: parts.cmds,
            tap: parts.tap,
        });
        Ok(())
    }
}
