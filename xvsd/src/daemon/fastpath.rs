//! The daemon's side of the fast path (`--fastpath`, `crate::fastpath`):
//! the workers' sockets on the miss pair, and the control round that
//! installs, flushes and folds the executor's decisions.

use tracing::info;
use xvs_io::worker::SocketRole;

use super::{Daemon, DaemonError, Options};
use crate::fastpath::FastPath;

/// The binding key of the miss pair's sockets (interfaces' keys count up
/// from 1).
pub(super) const MISS_PAIR_KEY: u64 = u64::MAX;

/// The fast path if `opts` ask for it: its programs loaded and the miss
/// pair made, before the workers start (they offer flows to it).
pub(super) fn start(opts: &Options) -> Result<Option<FastPath>, DaemonError> {
    if !opts.fastpath {
        return Ok(None);
    }
    let fp = FastPath::new(opts.workers as u32, opts.attach)?;
    info!(
        near = crate::fastpath::NEAR,
        far = crate::fastpath::FAR,
        "fast path: guest ports through TC, misses through the miss pair"
    );
    Ok(Some(fp))
}

impl Daemon {
    /// Has each worker bind its queue of the miss pair's far end, where
    /// the guest ports' misses arrive tagged with their port.
    pub(super) fn bind_miss_pair(&mut self) -> Result<(), DaemonError> {
        let Some(fp) = &self.fastpath else {
            return Ok(());
        };
        for w in 0..self.workers.len() {
            let role = || {
                fp.far()
                    .registrar()
                    .map(SocketRole::Demux)
                    .map_err(|e| e.to_string())
            };
            self.add_socket(w, xvs_types::NO_PORT, w as u32, MISS_PAIR_KEY, 1, role)
                .map_err(|reason| DaemonError::Interface {
                    iface: crate::fastpath::FAR.to_string(),
                    reason: format!("binding queue {w} (worker {w}): {reason}"),
                })?;
        }
        Ok(())
    }

    /// The fast path's round: flush what a new snapshot made stale,
    /// install what the workers offered; once a second (`tick`) fold the
    /// executor's counters and learn for the flows it carries.
    pub(super) fn fastpath_round(&mut self, tick: bool, now: u64) {
        let Some(fp) = &mut self.fastpath else {
            return;
        };
        let snap = self.ctl.snapshot();
        let ifaces = &self.ifaces;
        fp.sync(&snap, |no| {
            ifaces
                .values()
                .find(|a| a.no == no)
                .map(|a| a.prog.ifindex() as u32)
        });
        if tick {
            let learn = self.ctl.learn_sender();
            fp.fold(now, |ev| {
                let _ = learn.try_send(ev);
            });
        }
    }
}
