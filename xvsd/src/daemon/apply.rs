//! Making a config the running one, or changing nothing: validation,
//! the interfaces it adds opened (program attached, one socket per queue
//! on its worker), the snapshot swapped, the interfaces it drops closed,
//! the uplink's maps (VTEP addresses, tunnel ports) kept in step; on any
//! failure the previous config applied again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};
use xvs_bpf::{Mode, XdpProgram};
use xvs_config::Config;
use xvs_io::worker::{SocketRole, WorkerCmd};
use xvs_types::PortNo;

use super::plan::{
    check, extra_headroom, interface_mac, plan, sockets_per_worker, umem_serves, Iface,
};
use super::{host, tap, vhost, Attached, Daemon, DaemonError, Membership, BUSY_WAIT, WORKER_REPLY};

impl Daemon {
    /// Makes `config` the running configuration, or changes nothing:
    /// validates it (what differs from the running config), checks its
    /// interfaces, attaches programs and binds sockets for new interfaces
    /// (workers keep forwarding on the others meanwhile), publishes the
    /// new snapshot in one swap, then closes what the old config had and
    /// the new one has not. An interface the running config does not name
    /// yet must be there (a typo is refused); one it names may be missing
    /// (it waits).
    pub fn apply(&mut self, config: Config) -> Result<(), DaemonError> {
        self.apply_with(config, false)
    }

    /// [`Self::apply`]; `lenient`: any interface may be missing (the
    /// persisted state, a rollback). On failure the previous running
    /// state is restored exactly (interfaces, sockets, uplink maps,
    /// snapshot) by applying the previous config again.
    pub(super) fn apply_with(&mut self, config: Config, lenient: bool) -> Result<(), DaemonError> {
        // Validated here, once, against the running config: what the
        // transaction changed is checked, not the whole config again (the
        // result is the whole validation's). The control plane takes it
        // as it is.
        let mut valid = self
            .ctl
            .valid()
            .revalidate(config)
            .map_err(DaemonError::Config)?;
        let config = valid.config();
        host::check(config, self.ctl.config()).map_err(DaemonError::Config)?;
        // Taps are there before `plan` looks for the interfaces; those
        // made for a change that fails go with it.
        let tap_gone = tap::gone(self.ctl.config(), config);
        let mut tap_made: Vec<String> = Vec::new();
        let made = self.ensure_taps(config, &mut tap_made);
        let planned = made.and_then(|()| plan(config, &self.opts));
        let (plan, absent) =
            planned.inspect_err(|_| tap_made.iter().for_each(|n| tap::remove(n)))?;
        self.planned = sockets_per_worker(&plan, self.opts.workers);
        if self.fastpath.is_some() {
            // Each worker's socket on the miss pair.
            for n in &mut self.planned {
                *n += 1;
            }
        }
        umem_serves(&self.planned, &self.opts)?;
        if !lenient {
            if let Some(w) = absent
                .iter()
                .find(|w| !self.ifaces.contains_key(&w.name) && !self.missing.contains_key(&w.name))
            {
                // The error names it the way `check` does.
                check(w, &self.opts)?;
            }
        }
        if let Some(u) = &config.uplink {
            if u.mac.is_none() && !absent.iter().any(|w| w.name == u.iface) {
                let mac = interface_mac(&u.iface)?;
                valid.set_uplink_mac(mac).map_err(DaemonError::Config)?;
            }
        }
        let config = valid.config();
        let need = extra_headroom(config);
        if need > self.opts.frame_headroom {
            return Err(DaemonError::Options(format!(
                "the longest tunnel header needs {need} bytes of UMEM headroom beyond the \
                 kernel's 256; start xvsd with --frame-headroom {need} or more"
            )));
        }
        self.links.fault.begin(lenient);

        // What goes, what comes: an interface whose role, number or
        // queues changed is closed and set up again.
        let same = |a: &Attached, i: &Iface| {
            a.mode == i.mode && a.no == i.no && a.queues == i.queues && a.want == i.want
        };
        let gone: Vec<String> = self
            .ifaces
            .iter()
            .filter(|(name, a)| !plan.iter().any(|i| &i.name == *name && same(a, i)))
            .map(|(name, _)| name.clone())
            .collect();
        let new: Vec<&Iface> = plan
            .iter()
            .filter(|i| !self.ifaces.get(&i.name).is_some_and(|a| same(a, i)))
            .collect();
        // A changed interface must be closed before it is set up again.
        let changed: Vec<String> = gone
            .iter()
            .filter(|g| new.iter().any(|i| &i.name == *g))
            .cloned()
            .collect();
        for name in &changed {
            self.close(name);
        }

        // vhost-user ports: one changed is closed before it opens again
        // (its socket path may be the same).
        let want_vhost = vhost::wanted(config);
        let vhost_gone = self.vhost_gone(&want_vhost);
        for name in &vhost_gone {
            self.close_vhost(name);
        }

        let mut added: Vec<String> = Vec::new();
        let mut added_vhost: Vec<String> = Vec::new();
        let result = (|| {
            for i in &new {
                self.open(i)?;
                added.push(i.name.clone());
            }
            self.links.fault.step("vhost-user")?;
            self.open_vhost(&want_vhost, &mut added_vhost)?;
            self.links.fault.step("uplink maps")?;
            self.sync_uplink_maps(config)?;
            self.links.fault.step("snapshot")?;
            if self.ctl.config() != config {
                self.ctl.underlay.uplink_mac = config.uplink.as_ref().and_then(|u| u.mac);
                self.ctl
                    .apply_valid(valid.clone())
                    .map_err(DaemonError::Config)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            for name in &added {
                self.close(name);
            }
            for name in &tap_made {
                tap::remove(name);
            }
            for name in &added_vhost {
                self.close_vhost(name);
            }
            if !lenient {
                // Whatever was closed or changed on the way goes back to
                // what the running config says.
                let previous = self.ctl.config().clone();
                if let Err(back) = self.apply_with(previous, true) {
                    error!("restoring the running config after a failed change: {back}");
                }
            }
            return Err(e);
        }
        for name in gone.iter().filter(|g| !changed.contains(g)) {
            self.close(name);
        }
        for name in &tap_gone {
            tap::remove(name);
        }
        self.missing = absent.into_iter().map(|w| (w.name.clone(), w)).collect();
        Ok(())
    }

    /// Creates the taps of `config`'s tap ports that are not there,
    /// their names into `made`; one already served is not looked at.
    fn ensure_taps(&self, config: &Config, made: &mut Vec<String>) -> Result<(), DaemonError> {
        for name in tap::names(config).filter(|n| !self.ifaces.contains_key(*n)) {
            if tap::ensure(name)? {
                made.push(name.to_string());
            }
            if self.fastpath.is_none() {
                // tun hands a guest's TSO frame to XDP whole, its segment
                // size lost, and the workers do not segment: each is
                // answered "too big" and TCP crawls (2.5 Mbit/s against
                // 830 with --fastpath, whose TC program keeps the skb).
                warn!(
                    iface = name,
                    "tap port without --fastpath: the guest's TSO frames will not fit; \
                     run xvsd --fastpath, or give QEMU's virtio-net-pci host_tso4=off,host_tso6=off"
                );
            }
        }
        Ok(())
    }

    /// Attaches the program to `i` and has the workers bind its queues.
    pub(super) fn open(&mut self, i: &Iface) -> Result<(), DaemonError> {
        self.links.fault.step("attach")?;
        // With the fast path no interface gets an XDP program, which
        // would take GSO away from a veth's peer, but the TC executor.
        let prog = match &self.fastpath {
            // Taking over: the running daemon's program forwards until
            // this one replaces it (`takeover.rs`).
            None if self.takeover.is_some() => XdpProgram::load_for_takeover(&i.name, i.mode)?,
            Some(_) if i.mode == Mode::Port => XdpProgram::load_unattached(&i.name, i.mode)?,
            // The uplink's object shares its VTEPs, tunnel ports, snoop
            // ring and counters with the TC program that serves it.
            Some(fp) => XdpProgram::load_unattached_sharing(&i.name, i.mode, &fp.uplink_maps())?,
            None => XdpProgram::attach(&i.name, i.mode, self.opts.attach)?,
        };
        if let Some(id) = prog.replaced_stale() {
            warn!(iface = %i.name, id, "removed a stale xvs XDP program (a previous xvsd did not exit cleanly)");
        }
        // Before the fast path's attachment, which nothing would undo if
        // this failed after it.
        let snoop = match i.mode {
            Mode::Uplink => Some(prog.snoop_poller()?),
            Mode::Port => None,
        };
        if let Some(fp) = &mut self.fastpath {
            if i.no > 0xfff {
                return Err(DaemonError::Interface {
                    iface: i.name.clone(),
                    reason: format!(
                        "port number {} does not fit the fast path's 12-bit miss tag",
                        i.no
                    ),
                });
            }
            let ifindex = prog.ifindex() as u32;
            match i.mode {
                Mode::Port => fp.attach_port(ifindex, i.no),
                Mode::Uplink => fp.attach_uplink(ifindex, i.no),
            }
            .map_err(|e| DaemonError::Interface {
                iface: i.name.clone(),
                reason: format!("the fast path's TC program: {e}"),
            })?;
            info!(iface = %i.name, program = ?i.mode, queues = i.queues, "fast path attached (TC, misses through the miss pair)");
        } else {
            info!(iface = %i.name, program = ?i.mode, mode = %prog.attach_mode(), queues = i.queues, "XDP attached");
        }
        if let Some(reason) = prog.native_refused() {
            warn!(
                iface = %i.name,
                "{}",
                generic_xdp_note(reason, prog.refused_for_mtu())
            );
        }
        let key = self.next_key;
        self.next_key += 1;
        self.ifaces.insert(
            i.name.clone(),
            Attached {
                prog,
                no: i.no,
                mode: i.mode,
                queues: i.queues,
                want: i.want,
                key,
                vteps: BTreeSet::new(),
                tunnel_ports: BTreeSet::new(),
                groups: BTreeMap::new(),
            },
        );
        if let Some(pending) = &mut self.takeover {
            // Claimed from the running daemon's sets, not bound.
            for q in 0..i.queues {
                pending.push(super::takeover::Pending {
                    iface: i.name.clone(),
                    no: i.no,
                    queue: q,
                    key,
                    worker: q as usize % self.opts.workers,
                });
            }
            if snoop.is_some() {
                self.snoop = snoop;
            }
            return Ok(());
        }
        for q in 0..i.queues {
            let w = q as usize % self.workers.len();
            let answer = match self.links.fault.step("bind") {
                Ok(()) => self.bind_queue(w, &i.name, i.no, q, key),
                Err(e) => Err(e.to_string()),
            };
            if let Err(reason) = answer {
                self.close(&i.name);
                return Err(DaemonError::Interface {
                    iface: i.name.clone(),
                    reason: format!("binding queue {q} (worker {w}): {reason}"),
                });
            }
            debug!(iface = %i.name, queue = q, worker = w, "socket bound");
        }
        if snoop.is_some() {
            self.snoop = snoop;
        }
        Ok(())
    }

    /// Has worker `w` bind queue `q` of `name` (attached) as port `no`,
    /// binding `key`.
    pub(super) fn bind_queue(
        &self,
        w: usize,
        name: &str,
        no: PortNo,
        q: u32,
        key: u64,
    ) -> Result<(), String> {
        let sockets = self.planned.get(w).copied().unwrap_or(0);
        self.add_socket(w, no, q, key, sockets, || {
            Ok(if self.fastpath.is_some() {
                SocketRole::TxOnly {
                    ifname: name.to_string(),
                }
            } else {
                SocketRole::Ordinary(
                    self.ifaces[name]
                        .prog
                        .registrar()
                        .map_err(|e| e.to_string())?,
                )
            })
        })
    }

    /// Has worker `w` bind a socket of `role()` on queue `q` as port `no`,
    /// binding `key`, `sockets` the sockets it will serve. The queue's
    /// previous socket, closed a moment ago (a port deleted and added
    /// again, an interface back), may still be being released by the
    /// kernel: asked again for a bounded time.
    pub(super) fn add_socket(
        &self,
        w: usize,
        no: PortNo,
        q: u32,
        key: u64,
        sockets: usize,
        role: impl Fn() -> Result<SocketRole, String>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + BUSY_WAIT;
        loop {
            let (reply, done) = crossbeam_channel::bounded(1);
            self.workers[w]
                .cmds
                .send(WorkerCmd::Add {
                    no,
                    queue: q,
                    key,
                    role: role()?,
                    sockets,
                    reply,
                })
                .map_err(|_| "the worker is gone".to_string())?;
            match done.recv_timeout(WORKER_REPLY) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) if e.busy && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(Err(e)) => return Err(e.reason),
                Err(_) => return Err("no answer from the worker".into()),
            }
        }
    }

    /// Has the workers close `name`'s sockets and returns its program,
    /// which detaches when dropped: callers drop it at once; the
    /// lifecycle ([`links`]) may keep it to detach it in the namespace
    /// the interface went to.
    pub(super) fn close(&mut self, name: &str) -> Option<XdpProgram> {
        let a = self.ifaces.remove(name)?;
        for w in &self.workers {
            let (reply, done) = crossbeam_channel::bounded(1);
            if w.cmds.send(WorkerCmd::Remove { key: a.key, reply }).is_ok() {
                match done.recv_timeout(WORKER_REPLY) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => warn!(iface = name, worker = w.id, "closing sockets: {e}"),
                    Err(_) => warn!(iface = name, worker = w.id, "no answer closing sockets"),
                }
            }
        }
        if a.mode == Mode::Uplink {
            self.snoop = None;
        }
        if let Some(fp) = &mut self.fastpath {
            match a.mode {
                Mode::Port => fp.detach_port(a.prog.ifindex() as u32),
                Mode::Uplink => fp.detach_uplink(),
            }
        }
        info!(iface = name, "XDP detached");
        Some(a.prog)
    }

    /// Makes the uplink program's VTEP and tunnel-port maps, and the
    /// uplink's group memberships, match `config`. Groups are joined
    /// before anything else changes, so a failed join leaves all as it was.
    pub(super) fn sync_uplink_maps(&mut self, config: &Config) -> Result<(), DaemonError> {
        let Some(u) = &config.uplink else {
            return Ok(());
        };
        let Some(a) = self.ifaces.get_mut(&u.iface) else {
            return Ok(());
        };
        let groups: BTreeSet<IpAddr> = config.tunnels.iter().filter_map(|t| t.group()).collect();
        let mut joined = Vec::new();
        for g in groups.iter().filter(|g| !a.groups.contains_key(g)) {
            let ifindex = a.prog.ifindex() as u32;
            let m = Membership::join(*g, ifindex).map_err(|e| DaemonError::Interface {
                iface: u.iface.clone(),
                reason: format!("joining multicast group {g}: {e}"),
            })?;
            info!(iface = %u.iface, group = %g, "joined multicast group");
            joined.push(m);
        }
        a.groups.retain(|g, _| {
            let keep = groups.contains(g);
            if !keep {
                info!(group = %g, "left multicast group");
            }
            keep
        });
        a.groups.extend(joined.into_iter().map(|m| (m.group(), m)));
        // Packets to a group are terminated like those to a local VTEP.
        let vteps: BTreeSet<IpAddr> = u.local_ips.iter().copied().chain(groups).collect();
        let ports: BTreeSet<u16> = config.tunnels.iter().map(|t| t.udp_port()).collect();
        for ip in vteps.difference(&a.vteps) {
            a.prog.add_vtep(*ip)?;
        }
        for ip in a.vteps.difference(&vteps) {
            a.prog.remove_vtep(*ip)?;
        }
        for p in ports.difference(&a.tunnel_ports) {
            a.prog.add_tunnel_port(*p)?;
        }
        for p in a.tunnel_ports.difference(&ports) {
            a.prog.remove_tunnel_port(*p)?;
        }
        a.vteps = vteps;
        a.tunnel_ports = ports;
        Ok(())
    }
}

/// What an interface on generic XDP is told by (the log, `xvsctl stats`):
/// native mode was refused for `reason`; `mtu`, the driver's `ERANGE` (on
/// veth, a peer MTU too large for native XDP).
pub(super) fn generic_xdp_note(reason: &str, mtu: bool) -> String {
    if mtu {
        format!(
            "generic XDP: native refused because of the MTU ({reason}); frames longer than a page are lost"
        )
    } else {
        format!("generic XDP: native refused ({reason}); slower, and frames longer than a page are lost")
    }
}
