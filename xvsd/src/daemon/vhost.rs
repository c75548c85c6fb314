//! The daemon's vhost-user ports: a socket per port (`xvs-vhost`'s
//! `VhostUserPort`, with its protocol thread), served by one worker,
//! which polls the guest's queues beside its AF_XDP sockets. No
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
    worker: usize,
}

/// What the config asks of a vhost-user port; a change of any of it
/// opens the port again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    no: PortNo,
    socket: PathBuf,
    client: bool,
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
            let port = VhostUserPort::start(name, &w.socket, mode).map_err(|e| {
                DaemonError::Interface {
                    iface: name.clone(),
                    reason: e.to_string(),
                }
            })?;
            let key = self.next_key;
            self.next_key += 1;
            // Spread over the workers by port number, as queues are by
            // their index.
            let worker = usize::from(w.no) % self.workers.len();
            let (reply, done) = crossbeam_channel::bounded(1);
            let cmd = WorkerCmd::AddVhost {
                no: w.no,
                key,
                shared: port.shared().clone(),
                reply,
            };
            let answered = self.workers[worker].cmds.send(cmd).is_ok()
                && matches!(done.recv_timeout(WORKER_REPLY), Ok(Ok(())));
            if !answered {
                return Err(DaemonError::Interface {
                    iface: name.clone(),
                    reason: format!("worker {worker} did not take the vhost-user port"),
                });
            }
            info!(port = %name, socket = %w.socket.display(), client = w.client, worker, "vhost-user port serving");
            self.vhost.insert(
                name.clone(),
                VhostAttached {
                    port,
                    want: w.clone(),
                    key,
                    worker,
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

    /// Stops serving vhost-user port `name`: its worker lets go of the
    /// guest's queues, then the socket closes (a server's is removed).
    pub(super) fn close_vhost(&mut self, name: &str) {
        let Some(a) = self.vhost.remove(name) else {
            return;
        };
        let (reply, done) = crossbeam_channel::bounded(1);
        let w = &self.workers[a.worker];
        if w.cmds.send(WorkerCmd::Remove { key: a.key, reply }).is_ok() {
            match done.recv_timeout(WORKER_REPLY) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(port = name, worker = w.id, "closing a vhost-user port: {e}"),
                Err(_) => warn!(
                    port = name,
                    worker = w.id,
                    "no answer closing a vhost-user port"
                ),
            }
        }
        info!(port = name, socket = %a.port.path().display(), "vhost-user port closed");
        drop(a.port);
    }
}
