//! Sockets coming and going while the worker runs: the control thread's
//! requests ([`WorkerCmd`], answered with a [`CmdError`] when refused),
//! what each socket is for ([`SocketRole`]), a failed socket closed and
//! reported ([`SocketLost`]), and the fill targets shared out again
//! after each change. Off the packet path: between rounds, rarely.

use crossbeam_channel::Sender;
use xvs_types::PortNo;

use super::{chunk_of, Worker, WorkerPort, BATCH};
use crate::xsk::XskError;

/// What a socket is for, and so how it is bound ([`WorkerCmd::Add`]).
#[derive(Debug)]
pub enum SocketRole {
    /// Port `no`'s own socket, registered in the XSKMAP of its
    /// interface's program: what it receives came in on port `no`, and
    /// frames to port `no` leave by it.
    Ordinary(xvs_bpf::XskRegistrar),
    /// The far end of the miss pair, registered in its interface's
    /// program: every frame names its ingress port in an 802.1ad tag
    /// (`demux.rs`), taken off before the pipeline sees it. Nothing is
    /// ever sent by it; `no` names no port here (it is only reported
    /// back in [`SocketLost`]).
    Demux(xvs_bpf::XskRegistrar),
    /// Port `no`'s socket on an interface with no XDP program (a guest
    /// port whose frames reach the worker through the demux socket):
    /// frames to port `no` leave by it; it receives nothing, so it is
    /// lent no fill-ring chunks and its rx ring is never read.
    TxOnly { ifname: String },
}

impl SocketRole {
    /// The role without its binding.
    pub fn kind(&self) -> SocketKind {
        match self {
            SocketRole::Ordinary(_) => SocketKind::Ordinary,
            SocketRole::Demux(_) => SocketKind::Demux,
            SocketRole::TxOnly { .. } => SocketKind::TxOnly,
        }
    }
}

/// What a bound socket is for ([`SocketRole`] once bound): decides, once
/// per batch, how its frames are received and where they go back to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SocketKind {
    #[default]
    Ordinary,
    Demux,
    TxOnly,
}

/// A socket the worker closed because it failed; the control thread
/// binds the port again when it can.
#[derive(Debug, Clone)]
pub struct SocketLost {
    pub worker: usize,
    /// The binding it belonged to ([`WorkerCmd::Add`]'s `key`).
    pub key: u64,
    pub no: PortNo,
    pub queue: u32,
    pub error: String,
}

/// Why a worker could not carry out a [`WorkerCmd`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError {
    /// The queue still has a socket being released: ask again shortly.
    pub busy: bool,
    pub reason: String,
}

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl From<XskError> for CmdError {
    fn from(e: XskError) -> Self {
        CmdError {
            busy: matches!(e, XskError::Busy { .. }),
            reason: e.to_string(),
        }
    }
}

/// A reconfiguration request from the control thread, answered on
/// `reply` once done.
#[derive(Debug)]
pub enum WorkerCmd {
    /// Bind a socket on `queue` of the interface `role` names, as port
    /// `no`, part of binding `key`.
    Add {
        no: PortNo,
        queue: u32,
        key: u64,
        /// What the socket is for, with its registrar (or, transmitting
        /// only, its interface).
        role: SocketRole,
        /// Sockets the worker will receive on (ordinary and demux ones)
        /// once the change this is part of is done: fill rings are sized
        /// for them from the first bind, since chunks lent to a fill ring
        /// cannot be taken back. Transmit-only sockets take no share.
        sockets: usize,
        reply: Sender<Result<(), CmdError>>,
    },
    /// Serve vhost-user port `no` (binding `key`) over the guest
    /// queues `shared` carries: poll the transmit queues of pairs `poll`,
    /// send into pair `send_pair`'s receive queue.
    AddVhost {
        no: PortNo,
        key: u64,
        shared: std::sync::Arc<xvs_vhost::Shared>,
        poll: Vec<usize>,
        send_pair: usize,
        reply: Sender<Result<(), CmdError>>,
    },
    /// Close every socket of binding `key` (none left is fine: a socket
    /// that failed is already closed), and its vhost-user port.
    Remove {
        key: u64,
        reply: Sender<Result<(), CmdError>>,
    },
}

impl Worker {
    /// Carries out pending reconfiguration requests (off the packet path:
    /// between rounds, rarely).
    pub(super) fn commands(&mut self) {
        let Some(rx) = &self.cmds else { return };
        let Ok(cmd) = rx.try_recv() else { return };
        match cmd {
            WorkerCmd::Add {
                no,
                queue,
                key,
                role,
                sockets,
                reply,
            } => {
                self.expect = sockets;
                let r = self.add_socket(no, queue, role).map(|s| {
                    self.port(s).key = key;
                });
                let _ = reply.send(r.map_err(CmdError::from));
            }
            WorkerCmd::AddVhost {
                no,
                key,
                shared,
                poll,
                send_pair,
                reply,
            } => {
                self.add_vhost(no, key, shared, poll, send_pair);
                let _ = reply.send(Ok(()));
            }
            WorkerCmd::Remove { key, reply } => {
                let r = self.remove_binding(key);
                let _ = reply.send(r.map_err(CmdError::from));
            }
        }
    }

    /// Binds a socket for port `no` on `queue` of the interface `role`
    /// names, as `role` says; returns its slot.
    pub fn add_socket(
        &mut self,
        no: PortNo,
        queue: u32,
        role: SocketRole,
    ) -> Result<usize, XskError> {
        let kind = role.kind();
        let s = match role {
            SocketRole::Ordinary(reg) | SocketRole::Demux(reg) => self.set.bind_with(queue, reg)?,
            SocketRole::TxOnly { ifname } => self.set.bind_tx_only(&ifname, queue)?,
        };
        self.serve(s, no, queue, kind);
        Ok(s)
    }

    /// Serves bound socket `s` as port `no`'s on `queue`.
    fn serve(&mut self, s: usize, no: PortNo, queue: u32, kind: SocketKind) -> &mut WorkerPort {
        if self.ports.len() <= s {
            self.ports.resize_with(s + 1, || None);
        }
        let mut p = WorkerPort::new(no, queue, s, 0).with_kind(kind);
        // Room for what one round can queue for the port, replicas
        // included, so that a flood never grows it on the packet path.
        p.pending.reserve_exact(self.set.ring_size());
        self.ports[s] = Some(p);
        self.rebalance();
        self.port(s)
    }

    /// Takes over socket `s` of the set this worker was built with, one
    /// adopted from a running daemon (xvsd's upgrade, `XskSet::adopt`):
    /// bound, receiving, its rings as the old owner left them. It becomes
    /// port `no`'s, part of binding `key`, registered in `role`'s XSKMAP
    /// (the new program's, not yet attached: the old one still sends
    /// frames to the same socket); what [`Self::add_socket`] does once it
    /// has bound one. `sockets` is as in [`WorkerCmd::Add`].
    pub fn adopt_socket(
        &mut self,
        s: usize,
        no: PortNo,
        key: u64,
        role: SocketRole,
        sockets: usize,
    ) -> Result<(), XskError> {
        let queue = self.set.queue(s).ok_or(XskError::NoSocket(s))?;
        let kind = role.kind();
        match role {
            SocketRole::Ordinary(reg) | SocketRole::Demux(reg) => self.set.register(s, reg)?,
            SocketRole::TxOnly { .. } => {}
        }
        self.expect = sockets;
        self.serve(s, no, queue, kind).key = key;
        Ok(())
    }

    /// Closes every socket of port `no`; frames still queued for it are
    /// dropped (the snapshot no longer names the port by then).
    pub fn remove_port(&mut self, no: PortNo) -> Result<(), XskError> {
        for i in 0..self.vhost.len() {
            if self.vhost[i].as_ref().is_some_and(|v| v.no == no) {
                self.close_vhost(i);
            }
        }
        self.remove_where(|p| p.no == no)
    }

    /// Closes every socket of binding `key`, and its vhost-user port.
    pub fn remove_binding(&mut self, key: u64) -> Result<(), XskError> {
        for i in 0..self.vhost.len() {
            if self.vhost[i].as_ref().is_some_and(|v| v.key == key) {
                self.close_vhost(i);
            }
        }
        self.remove_where(|p| p.key == key)
    }

    fn remove_where(&mut self, f: impl Fn(&WorkerPort) -> bool) -> Result<(), XskError> {
        let mut first_err = None;
        for s in 0..self.ports.len() {
            if self.ports[s].as_ref().is_some_and(&f) {
                if let Err(e) = self.close(s) {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.rebalance();
        first_err.map_or(Ok(()), Err)
    }

    /// Closes socket `s`: its pending frames go back to the pool, the
    /// chunks its rings held are taken back (the I/O layer's `remove`).
    /// Every chunk comes back even when unregistering it fails.
    fn close(&mut self, s: usize) -> Result<(), XskError> {
        let Some(p) = self.ports[s].take() else {
            return Ok(());
        };
        for &(a, _) in &p.pending {
            // A frame the failed `tx_send` already queued is the
            // kernel's: `remove` takes it back, not this.
            let _ = self.set.release(chunk_of(a));
        }
        self.set.remove(s).map(|_| ())
    }

    /// Socket `s` failed: closes it (see [`Self::close`]) and says so;
    /// the worker goes on with the others.
    pub(super) fn lose(&mut self, s: usize, e: XskError) {
        let Some((no, queue, key)) = self.ports[s].as_ref().map(|p| (p.no, p.queue, p.key)) else {
            return;
        };
        self.counters.sockets_lost += 1;
        // The interface is usually gone: unregistering may fail too.
        let _ = self.close(s);
        self.rebalance();
        if let Some(tx) = &self.lost {
            let _ = tx.try_send(SocketLost {
                worker: self.ws.id,
                key,
                no,
                queue,
                error: e.to_string(),
            });
        }
    }

    /// Shares the UMEM's chunks out between the fill rings: half for
    /// receiving, the rest for frames in flight and replicas. Sized for
    /// the sockets the worker was told it will have: a fill ring keeps
    /// what it was lent until frames arrive on it, so targets computed
    /// one socket at a time (2,048 each for the first four, then less)
    /// left an idle worker with nothing for replicas from its 12th
    /// socket on.
    ///
    /// Transmit-only sockets take no share: they never receive, and what
    /// their fill rings held would be stranded.
    fn rebalance(&mut self) {
        self.rebuild_tx_of();
        let receiving = self.ports().filter(|p| p.receives()).count();
        let n = receiving.max(self.expect).max(1);
        let per = (self.set.chunks() / 2 / n).clamp(BATCH, self.set.ring_size());
        for p in self.ports.iter_mut().flatten() {
            p.fill_target = if p.receives() { per } else { 0 };
        }
    }
}
