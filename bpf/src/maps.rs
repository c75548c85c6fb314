//! The programs' maps from userspace: AF_XDP sockets registered in the
//! XSKMAP (from any thread, through an [`XskRegistrar`]), the port
//! headroom, the VTEP addresses and tunnel ports the uplink program
//! terminates, and the per-CPU [`Counters`].

use std::fmt;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::{Error, XdpProgram, MAX_PORT_HEADROOM, MAX_QUEUES};

/// Index of each counter in the per-CPU `counters` array (`enum xvs_counter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Counter {
    PortRedirected = 0,
    PortNoSocket = 1,
    PortHeadroomFailed = 2,
    UplinkRedirected = 3,
    UplinkNoSocket = 4,
    UplinkPassed = 5,
    SnoopArp = 6,
    SnoopNd = 7,
    SnoopLost = 8,
}

const COUNTERS: [Counter; 9] = [
    Counter::PortRedirected,
    Counter::PortNoSocket,
    Counter::PortHeadroomFailed,
    Counter::UplinkRedirected,
    Counter::UplinkNoSocket,
    Counter::UplinkPassed,
    Counter::SnoopArp,
    Counter::SnoopNd,
    Counter::SnoopLost,
];

/// The program's counters, summed over CPUs. Written by the XDP program,
/// read on demand by the control path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Port frames handed to a socket (the redirect itself may still fail
    /// if the socket's rx ring is full: see the socket's `rx_dropped`).
    pub port_redirected: u64,
    /// Port frames dropped: no socket registered for their queue.
    pub port_no_socket: u64,
    /// Port frames dropped: the headroom could not be reserved.
    pub port_headroom_failed: u64,
    /// Uplink tunnel frames handed to a socket.
    pub uplink_redirected: u64,
    /// Uplink tunnel frames dropped: no socket registered for their queue.
    pub uplink_no_socket: u64,
    /// Uplink frames passed to the kernel (including snooped ones).
    pub uplink_passed: u64,
    /// ARP replies copied to the snoop ring.
    pub snoop_arp: u64,
    /// Neighbor advertisements copied to the snoop ring.
    pub snoop_nd: u64,
    /// Snoops lost: the ring was full.
    pub snoop_lost: u64,
}

impl Counters {
    fn slot(&mut self, c: Counter) -> &mut u64 {
        match c {
            Counter::PortRedirected => &mut self.port_redirected,
            Counter::PortNoSocket => &mut self.port_no_socket,
            Counter::PortHeadroomFailed => &mut self.port_headroom_failed,
            Counter::UplinkRedirected => &mut self.uplink_redirected,
            Counter::UplinkNoSocket => &mut self.uplink_no_socket,
            Counter::UplinkPassed => &mut self.uplink_passed,
            Counter::SnoopArp => &mut self.snoop_arp,
            Counter::SnoopNd => &mut self.snoop_nd,
            Counter::SnoopLost => &mut self.snoop_lost,
        }
    }
}

impl Counters {
    /// The frames the program dropped, by reason, as `xvsctl stats` shows
    /// them beside the workers' drops: these never reach a worker.
    pub fn drops(&self) -> [(&'static str, u64); 2] {
        [
            (
                "xdp_no_socket",
                self.port_no_socket.wrapping_add(self.uplink_no_socket),
            ),
            ("xdp_headroom_failed", self.port_headroom_failed),
        ]
    }
}

/// Registers AF_XDP sockets in one program's XSKMAP, from any thread.
pub struct XskRegistrar {
    pub(crate) ifname: String,
    pub(crate) xsks: MapHandle,
}

impl fmt::Debug for XskRegistrar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskRegistrar")
            .field("ifname", &self.ifname)
            .finish_non_exhaustive()
    }
}

impl XskRegistrar {
    /// The interface whose program this registers for.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    fn map_err(&self, op: String) -> impl FnOnce(libbpf_rs::Error) -> Error {
        let ifname = self.ifname.clone();
        move |source| Error::Map {
            ifname,
            map: "xsks",
            op,
            source,
        }
    }

    fn check(&self, queue: u32) -> Result<(), Error> {
        if queue >= MAX_QUEUES {
            return Err(Error::Queue {
                ifname: self.ifname.clone(),
                queue,
                max: MAX_QUEUES,
            });
        }
        Ok(())
    }

    /// Sends frames arriving on rx `queue` to the AF_XDP socket `fd`.
    pub fn register(&self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), Error> {
        self.check(queue)?;
        let raw: u32 = fd.as_raw_fd() as u32;
        self.xsks
            .update(&queue.to_ne_bytes(), &raw.to_ne_bytes(), MapFlags::ANY)
            .map_err(self.map_err(format!("registering queue {queue}")))
    }

    /// Stops sending frames of rx `queue` to a socket.
    pub fn unregister(&self, queue: u32) -> Result<(), Error> {
        self.check(queue)?;
        self.xsks
            .delete(&queue.to_ne_bytes())
            .map_err(self.map_err(format!("unregistering queue {queue}")))
    }
}

impl XdpProgram {
    /// A handle on this program's socket map that another thread can own
    /// (a worker binding its own sockets); it stays valid after the
    /// program is dropped (the map lives while a handle does).
    pub fn registrar(&self) -> Result<XskRegistrar, Error> {
        let xsks = MapHandle::try_from(&self.xsks.xsks)
            .map_err(self.map_err("xsks", "duplicating the map handle".into()))?;
        Ok(XskRegistrar {
            ifname: self.ifname.clone(),
            xsks,
        })
    }

    /// Sends frames arriving on rx `queue` to the AF_XDP socket `fd`.
    pub fn register_xsk(&self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), Error> {
        self.xsks.register(queue, fd)
    }

    /// Stops sending frames of rx `queue` to a socket (they are then dropped
    /// on a port and on the uplink, counted as `*_no_socket`).
    pub fn unregister_xsk(&self, queue: u32) -> Result<(), Error> {
        self.xsks.unregister(queue)
    }

    /// Bytes the port program reserves in front of each frame (0: none).
    pub fn set_port_headroom(&self, headroom: u32) -> Result<(), Error> {
        if headroom > MAX_PORT_HEADROOM {
            return Err(Error::Headroom {
                ifname: self.ifname.clone(),
                headroom,
                max: MAX_PORT_HEADROOM,
            });
        }
        self.cfg
            .update(&0u32.to_ne_bytes(), &headroom.to_ne_bytes(), MapFlags::ANY)
            .map_err(self.map_err("cfg", format!("setting port headroom {headroom}")))
    }

    /// Terminates tunnel traffic to the local VTEP address `addr`, or to
    /// a multicast tunnel's group `addr` (RFC 7348 §4.2): the program
    /// matches destinations the same way for both.
    pub fn add_vtep(&self, addr: IpAddr) -> Result<(), Error> {
        let (map, name, key) = self.vtep_key(addr);
        map.update(&key, &[1], MapFlags::ANY)
            .map_err(self.map_err(name, format!("adding VTEP {addr}")))
    }

    /// Stops terminating tunnel traffic to `addr`.
    pub fn remove_vtep(&self, addr: IpAddr) -> Result<(), Error> {
        let (map, name, key) = self.vtep_key(addr);
        map.delete(&key)
            .map_err(self.map_err(name, format!("removing VTEP {addr}")))
    }

    fn vtep_key(&self, addr: IpAddr) -> (&MapHandle, &'static str, Vec<u8>) {
        match addr {
            // Keys are in network byte order, as the program reads them.
            IpAddr::V4(a) => (&self.vtep4, "vtep4", a.octets().to_vec()),
            IpAddr::V6(a) => (&self.vtep6, "vtep6", a.octets().to_vec()),
        }
    }

    /// Terminates UDP to destination `port` (VXLAN 4789, Geneve 6081, ...).
    pub fn add_tunnel_port(&self, port: u16) -> Result<(), Error> {
        self.tunnel_ports
            .update(&port.to_be_bytes(), &[1], MapFlags::ANY)
            .map_err(self.map_err("tunnel_ports", format!("adding UDP port {port}")))
    }

    /// Stops terminating UDP to `port`.
    pub fn remove_tunnel_port(&self, port: u16) -> Result<(), Error> {
        self.tunnel_ports
            .delete(&port.to_be_bytes())
            .map_err(self.map_err("tunnel_ports", format!("removing UDP port {port}")))
    }

    /// The program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, Error> {
        let mut out = Counters::default();
        for c in COUNTERS {
            let idx = c as u32;
            let per_cpu = self
                .counters
                .lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY)
                .map_err(self.map_err("counters", format!("reading counter {c:?}")))?
                .unwrap_or_default();
            *out.slot(c) = per_cpu
                .iter()
                .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()))
                .map(u64::from_ne_bytes)
                .fold(0u64, u64::wrapping_add);
        }
        Ok(out)
    }
}
