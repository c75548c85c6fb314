//! The daemon's vhost-user ports: a socket per port (`xvs-vhost`'s
//! `VhostUserPort`, with its protocol thread), served by every worker:
//! each can send to the guest, and polls the transmit queues of its
//! share of the port's queue pairs (pair p by worker p mod W, as queue q
//! of an interface is), beside its AF_XDP sockets. No
//! interface, no program and no link state: a port is there from the
//! moment its socket is, with or without a guest behind it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tracing::{info, warn};
use xvs_config::{Config, PortKind};
use xvs_io::worker::WorkerCmd;
use xvs_types::PortNo;
use xvs_vhost::{Mode, VhostUserPort};

use super::{Daemon, DaemonError, WORKER_REPLY};

/// A vhost-user port the daemon serves.
#[derive(Debug)]
pub(super) struct VhostAttached {
    /// Dropped last: the worker lets go of the queues first.
    port: VhostUserPort,
    want: Wanted,
    key: u64,
}

/// What the config asks of a vhost-user port; a change of any of it
/// opens the port again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    no: PortNo,
    socket: PathBuf,
    client: bool,
    /// Queue pairs offered (`queues`, 0 meaning 1).
    pairs: usize,
}

/// The vhost-user ports `config` names, by port name.
pub(super) fn wanted(config: &Config) -> BTreeMap<String, Wanted> {
    config
        .ports
        .iter()
        .filter_map(|p| match (&p.kind, p.number) {
            (PortKind::VhostUser { socket, client }, Some(no)) => Some((
                p.name.clone(),
                Wanted {
                    no,
                    socket: socket.clone(),
                    client: *client,
                    pairs: usize::from(p.queues.max(1)),
                },
            )),
            _ => None,
        })
        .collect()
}

impl Daemon {
    /// The vhost-user ports of the running set that `want` drops or
    /// changes.
    pub(super) fn vhost_gone(&self, want: &BTreeMap<String, Wanted>) -> Vec<String> {
        self.vhost
            .iter()
            .filter(|(name, a)| want.get(*name) != Some(&a.want))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Opens the vhost-user ports of `want` not served as they are asked
    /// for; pushes each one opened to `added` (to close on a rollback).
    pub(super) fn open_vhost(
        &mut self,
        want: &BTreeMap<String, Wanted>,
        added: &mut Vec<String>,
    ) -> Result<(), DaemonError> {
        for (name, w) in want {
            if self.vhost.get(name).is_some_and(|a| &a.want == w) {
                continue;
            }
            let mode = if w.client { Mode::Client } else { Mode::Server };
            let port = VhostUserPort::start(name, &w.socket, mode, w.pairs).map_err(|e| {
                DaemonError::Interface {
                    iface: name.clone(),
                    reason: e.to_string(),
                }
            })?;
            let key = self.next_key;
            self.next_key += 1;
            // Every worker may send to the guest; pair p's transmit queue
            // is polled by worker p mod W, and a port with one pair starts
            // at a worker set by its number, so that one-pair ports
            // spread over the workers.
            let n = self.workers.len();
            let first = usize::from(w.no) % n;
            for worker in 0..n {
                let share = (worker + n - first) % n;
                let (reply, done) = crossbeam_channel::bounded(1);
                let cmd = WorkerCmd::AddVhost {
                    no: w.no,
                    key,
                    shared: port.shared().clone(),
                    poll: (share..w.pairs).step_by(n).collect(),
                    send_pair: share % w.pairs,
                    reply,
                };
                let answered = self.workers[worker].cmds.send(cmd).is_ok()
                    && matches!(done.recv_timeout(WORKER_REPLY), Ok(Ok(())));
                if !answered {
                    // Those that took it let it go with the port.
                    self.vhost.insert(
                        name.clone(),
                        VhostAttached {
                            port,
                            want: w.clone(),
                            key,
                        },
                    );
                    self.close_vhost(name);
                    return Err(DaemonError::Interface {
                        iface: name.clone(),
                        reason: format!("worker {worker} did not take the vhost-user port"),
                    });
                }
            }
            info!(port = %name, socket = %w.socket.display(), client = w.client, pairs = w.pairs, "vhost-user port serving");
            self.vhost.insert(
                name.clone(),
                VhostAttached {
                    port,
                    want: w.clone(),
                    key,
                },
            );
            added.push(name.clone());
        }
        Ok(())
    }

    /// A vhost-user port's state: up while a guest's driver has its
    /// queues started, down while the socket waits for one.
    pub(super) fn vhost_state(&self, name: &str) -> Option<xvs_ctl::protocol::PortState> {
        let a = self.vhost.get(name)?;
        Some(if a.port.shared().connected() {
            xvs_ctl::protocol::PortState::Up
        } else {
            xvs_ctl::protocol::PortState::Down
        })
    }

    /// Stops serving vhost-user port `name`: the workers let go of the
    /// guest's queues, then the socket closes (a server's is removed).
    pub(super) fn close_vhost(&mut self, name: &str) {
        let Some(a) = self.vhost.remove(name) else {
            return;
        };
        for w in &self.workers {
            let (reply, done) = crossbeam_channel::bounded(1);
            if w.cmds.send(WorkerCmd::Remove { key: a.key, reply }).is_ok() {
                match done.recv_timeout(WORKER_REPLY) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        warn!(port = name, worker = w.id, "closing a vhost-user port: {e}")
                    }
                    Err(_) => warn!(
                        port = name,
                        worker = w.id,
                        "no answer closing a vhost-user port"
                    ),
                }
            }
        }
        info!(port = name, socket = %a.port.path().display(), "vhost-user port closed");
        drop(a.port);
    }
}
