//! The GSO-preserving fast path's executor, `src/bpf/xvs_tc.bpf.c`: TC
//! programs that carry out, on whole skbs, decisions the AF_XDP pipeline
//! made for a flow (docs/design.md, "A GSO-preserving fast path"), and the
//! flow tables they read: `xvs_tc_port` on a guest port (output, or push
//! and out of the uplink), `xvs_tc_uplink` on the uplink (pop, and out of
//! a guest port).
//!
//! [`TcFlows`] loads the program and owns the table: [`TcFlows::insert`]
//! a decision under its flow key, [`TcFlows::get`] it back with the
//! counters the program keeps, [`TcFlows::attach`] the program on an
//! interface's ingress (a clsact qdisc, made if missing; the filter is
//! removed when the [`TcAttachment`] goes),
//! [`TcFlows::test_run`] it on one frame with `BPF_PROG_TEST_RUN`, which
//! is how `tests/tc_differential.rs` proves it writes the bytes the
//! pipeline's push writes.
//!
//! Not wired into xvsd yet: nothing installs decisions, and a miss goes on
//! as if the program were not there.

use std::mem::size_of;
use std::os::fd::AsFd;

use xvs_types::TunnelOffload;

use libbpf_rs::{
    MapCore, MapFlags, MapHandle, Object, ObjectBuilder, ProgramInput, TcHook, TcHookBuilder,
    TC_INGRESS,
};

/// The compiled BPF object (built by `build.rs`).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xvs_tc.bpf.o"));

/// `XVS_TC_MAX_FLOWS`.
pub const MAX_FLOWS: u32 = 65536;
/// `XVS_TC_MAX_HDR`: the longest outer header a flow may push.
pub const MAX_HDR: usize = 128;
/// `TC_ACT_OK`: the frame goes on as if the program were not there.
pub const TC_ACT_OK: i32 = 0;
/// `TC_ACT_SHOT`.
pub const TC_ACT_SHOT: i32 = 2;
/// `TC_ACT_REDIRECT`: what `bpf_redirect` returns.
pub const TC_ACT_REDIRECT: i32 = 7;

/// `enum xvs_tc_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TcKind {
    Output = 1,
    Push = 2,
}

/// `struct xvs_tc_key`: the pipeline's flow key fields of a plain
/// (untagged, IPv4/IPv6, TCP/UDP) frame, in network order; IPv4 addresses
/// as `::ffff:a.b.c.d`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct TcKey {
    pub ifindex: u32,
    pub dl_dst: [u8; 6],
    pub dl_src: [u8; 6],
    pub eth_type: [u8; 2],
    pub ip_proto: u8,
    pub ip_tos: u8,
    pub nw_src: [u8; 16],
    pub nw_dst: [u8; 16],
    pub tp_src: [u8; 2],
    pub tp_dst: [u8; 2],
}

/// `struct xvs_tc_tunnel_key`: a tunnel packet's flow, for decapsulation
/// on the uplink: outer addresses (the remote VTEP, ours), the UDP
/// destination port, the tunnel header's 8 bytes as they are, and the
/// inner frame's flow (`inner.ifindex` 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct TcTunnelKey {
    pub outer_src: [u8; 16],
    pub outer_dst: [u8; 16],
    pub tun_hdr: [u8; 8],
    pub udp_dst: [u8; 2],
    pub pad: u16,
    pub inner: TcKey,
}

/// A key of one of the program's two tables: which map it goes in.
pub trait TcTableKey: Copy + sealed::Sealed {
    #[doc(hidden)]
    const TUNNEL: bool;
}
impl TcTableKey for TcKey {
    const TUNNEL: bool = false;
}
impl TcTableKey for TcTunnelKey {
    const TUNNEL: bool = true;
}
mod sealed {
    pub trait Sealed {}
    impl Sealed for super::TcKey {}
    impl Sealed for super::TcTunnelKey {}
}

/// Which of the two programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcProgram {
    /// `xvs_tc_port`, on a guest port's ingress: looks up [`TcKey`]s.
    Port,
    /// `xvs_tc_uplink`, on the uplink's ingress: [`TcTunnelKey`]s.
    Uplink,
}

impl TcProgram {
    fn name(self) -> &'static str {
        match self {
            TcProgram::Port => "xvs_tc_port",
            TcProgram::Uplink => "xvs_tc_uplink",
        }
    }
}

/// `struct xvs_tc_action`: what to do with a flow's frames, and the
/// counters the program keeps (packets as segments on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct TcAction {
    pub out_ifindex: u32,
    pub kind: u8,
    pub v6: u8,
    pub tos_inherit: u8,
    pub base_tos: u8,
    pub hdr_len: u16,
    pub udp_off: u16,
    pub base_csum: u16,
    /// Network order.
    pub src_port: [u8; 2],
    /// For a push: the uplink's MTU, which a frame (or each segment of a
    /// super-packet) must fit once encapsulated, else it goes to the
    /// pipeline (which answers it with ICMP).
    pub max_ip_len: u16,
    pub pad: [u16; 3],
    pub packets: u64,
    pub bytes: u64,
    pub last_used_ns: u64,
    pub hdr: [u8; MAX_HDR],
}

impl Default for TcAction {
    fn default() -> Self {
        TcAction {
            out_ifindex: 0,
            kind: 0,
            v6: 0,
            tos_inherit: 0,
            base_tos: 0,
            hdr_len: 0,
            udp_off: 0,
            base_csum: 0,
            src_port: [0; 2],
            max_ip_len: 0,
            pad: [0; 3],
            packets: 0,
            bytes: 0,
            last_used_ns: 0,
            hdr: [0; MAX_HDR],
        }
    }
}

/// `struct xvs_tc_port`: a guest port whose misses go to the workers
/// through the miss pair, tagged with its number (802.1ad VID).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TcPort {
    pub miss_ifindex: u32,
    pub port_no: u16,
    pub pad: u16,
    /// Frames sent to the pipeline.
    pub misses: u64,
    /// Frames lost on the way there (a failed tag push).
    pub miss_errors: u64,
}

/// Errors of [`TcFlows`], each naming the step.
#[derive(Debug, thiserror::Error)]
pub enum TcError {
    #[error("loading the fast path's TC program ({what}): {source}")]
    Load {
        what: &'static str,
        source: libbpf_rs::Error,
    },
    #[error("the fast path's BPF object has no {0}")]
    Missing(&'static str),
    #[error("fast path flow table: {0}")]
    Map(libbpf_rs::Error),
    #[error("an outer header of {0} bytes is longer than the fast path's {MAX_HDR}")]
    HeaderTooLong(usize),
    #[error("attaching the fast path on ifindex {ifindex}: {source}")]
    Attach {
        ifindex: i32,
        source: libbpf_rs::Error,
    },
    #[error("BPF_PROG_TEST_RUN: {0}")]
    TestRun(libbpf_rs::Error),
}

/// The loaded programs and their flow tables.
pub struct TcFlows {
    obj: Object,
    flows: MapHandle,
    tunnel_flows: MapHandle,
    ports: MapHandle,
    uplink_maps: Vec<(&'static str, MapHandle)>,
}

/// The program attached on one interface's ingress; detached on drop.
pub struct TcAttachment {
    hook: TcHook,
}

impl std::fmt::Debug for TcAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcAttachment").finish_non_exhaustive()
    }
}

impl Drop for TcAttachment {
    fn drop(&mut self) {
        // Our filter only: the clsact qdisc may carry others' filters (on
        // egress too), and an empty one costs nothing. Nothing to do if
        // the interface is gone already.
        let _ = self.hook.detach();
    }
}

impl std::fmt::Debug for TcFlows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcFlows").finish_non_exhaustive()
    }
}

fn bytes_of<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: T is a repr(C) plain-data struct of this module (no padding
    // holes: the layout test checks the sizes add up), read as bytes.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

impl TcAction {
    /// An action sending the frame out of `out_ifindex` as it is (after
    /// the decapsulation, for a tunnel flow).
    pub fn output(out_ifindex: u32) -> TcAction {
        TcAction {
            out_ifindex,
            kind: TcKind::Output as u8,
            ..TcAction::default()
        }
    }

    /// An action pushing a tunnel's outer header (as the dataplane's
    /// `Template::offload` gives it) with the flow's UDP source port, and
    /// sending the frame out of `out_ifindex`, whose MTU is `mtu`.
    pub fn push(
        out_ifindex: u32,
        t: &TunnelOffload<'_>,
        src_port: u16,
        mtu: u16,
    ) -> Result<TcAction, TcError> {
        if t.hdr.len() > MAX_HDR {
            return Err(TcError::HeaderTooLong(t.hdr.len()));
        }
        let mut a = TcAction {
            out_ifindex,
            kind: TcKind::Push as u8,
            v6: u8::from(t.v6),
            tos_inherit: u8::from(t.tos_inherit),
            base_tos: t.base_tos,
            hdr_len: t.hdr.len() as u16,
            udp_off: t.udp_off as u16,
            base_csum: t.base_csum,
            src_port: src_port.to_be_bytes(),
            max_ip_len: mtu,
            ..TcAction::default()
        };
        a.hdr[..t.hdr.len()].copy_from_slice(t.hdr);
        Ok(a)
    }
}

impl TcFlows {
    /// Loads the program and creates its (empty) flow table.
    pub fn load() -> Result<TcFlows, TcError> {
        let open = ObjectBuilder::default()
            .open_memory(OBJECT)
            .map_err(|source| TcError::Load {
                what: "open",
                source,
            })?;
        let obj = open.load().map_err(|source| TcError::Load {
            what: "load (are we root?)",
            source,
        })?;
        let map = |name: &'static str| {
            obj.maps()
                .find(|m| m.name() == name)
                .ok_or(TcError::Missing(name))
                .and_then(|m| MapHandle::try_from(&m).map_err(TcError::Map))
        };
        let flows = map("flows")?;
        let tunnel_flows = map("tunnel_flows")?;
        let ports = map("ports")?;
        let uplink_maps = ["vtep4", "vtep6", "tunnel_ports", "counters", "snoop"]
            .into_iter()
            .map(|n| map(n).map(|m| (n, m)))
            .collect::<Result<_, _>>()?;
        Ok(TcFlows {
            obj,
            flows,
            tunnel_flows,
            ports,
            uplink_maps,
        })
    }

    fn table<K: TcTableKey>(&self) -> &MapHandle {
        if K::TUNNEL {
            &self.tunnel_flows
        } else {
            &self.flows
        }
    }

    /// Installs (or replaces) the decision for a flow.
    pub fn insert<K: TcTableKey>(&self, key: &K, action: &TcAction) -> Result<(), TcError> {
        self.table::<K>()
            .update(bytes_of(key), bytes_of(action), MapFlags::ANY)
            .map_err(TcError::Map)
    }

    /// The decision for a flow, with the program's counters.
    pub fn get<K: TcTableKey>(&self, key: &K) -> Result<Option<TcAction>, TcError> {
        let Some(v) = self
            .table::<K>()
            .lookup(bytes_of(key), MapFlags::ANY)
            .map_err(TcError::Map)?
        else {
            return Ok(None);
        };
        if v.len() != size_of::<TcAction>() {
            return Ok(None);
        }
        // SAFETY: TcAction is plain data for which any bytes are valid,
        // and `v` has exactly its size; read unaligned from the Vec.
        Ok(Some(unsafe {
            std::ptr::read_unaligned(v.as_ptr().cast::<TcAction>())
        }))
    }

    /// Removes a flow's decision; false if there was none.
    pub fn remove<K: TcTableKey>(&self, key: &K) -> Result<bool, TcError> {
        match self.table::<K>().delete(bytes_of(key)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(TcError::Map(e)),
        }
    }

    /// The uplink's maps `xvs_tc_uplink` shares with the uplink's XDP
    /// object (`XdpProgram::load_unattached_sharing`), by name.
    pub fn uplink_maps(&self) -> Vec<(&'static str, std::os::fd::BorrowedFd<'_>)> {
        self.uplink_maps
            .iter()
            .map(|(n, m)| (*n, m.as_fd()))
            .collect()
    }

    /// Sends the misses of the port on `ifindex` (port number `no`) to
    /// the pipeline through the miss pair's near end `miss_ifindex`
    /// (without an entry a miss goes on to the stack). Resets its
    /// counters.
    pub fn set_port(&self, ifindex: u32, no: u16, miss_ifindex: u32) -> Result<(), TcError> {
        let v = TcPort {
            miss_ifindex,
            port_no: no,
            ..TcPort::default()
        };
        self.ports
            .update(&ifindex.to_ne_bytes(), bytes_of(&v), MapFlags::ANY)
            .map_err(TcError::Map)
    }

    /// The port entry of `ifindex`, with its counters.
    pub fn port(&self, ifindex: u32) -> Result<Option<TcPort>, TcError> {
        let Some(v) = self
            .ports
            .lookup(&ifindex.to_ne_bytes(), MapFlags::ANY)
            .map_err(TcError::Map)?
        else {
            return Ok(None);
        };
        if v.len() != size_of::<TcPort>() {
            return Ok(None);
        }
        // SAFETY: TcPort is plain data for which any bytes are valid, and
        // `v` has exactly its size; read unaligned from the Vec.
        Ok(Some(unsafe {
            std::ptr::read_unaligned(v.as_ptr().cast::<TcPort>())
        }))
    }

    /// Removes the port entry of `ifindex`; false if there was none.
    pub fn unset_port(&self, ifindex: u32) -> Result<bool, TcError> {
        match self.ports.delete(&ifindex.to_ne_bytes()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(TcError::Map(e)),
        }
    }

    /// Every installed decision of one table with its counters (a dump:
    /// the control thread's, off the packet path).
    pub fn entries<K: TcTableKey>(&self) -> Vec<(K, TcAction)> {
        let map = self.table::<K>();
        let mut out = Vec::new();
        for k in map.keys() {
            if k.len() != size_of::<K>() {
                continue;
            }
            let Ok(Some(v)) = map.lookup(&k, MapFlags::ANY) else {
                continue;
            };
            if v.len() != size_of::<TcAction>() {
                continue;
            }
            // SAFETY: K and TcAction are plain data of this module for
            // which any bytes are valid, and each Vec has exactly the
            // size; read unaligned.
            let (key, action) = unsafe {
                (
                    std::ptr::read_unaligned(k.as_ptr().cast::<K>()),
                    std::ptr::read_unaligned(v.as_ptr().cast::<TcAction>()),
                )
            };
            out.push((key, action));
        }
        out
    }

    /// Removes every installed decision of both tables; returns how many.
    pub fn flush(&self) -> usize {
        let mut n = 0;
        for map in [&self.flows, &self.tunnel_flows] {
            let keys: Vec<Vec<u8>> = map.keys().collect();
            for k in keys {
                if map.delete(&k).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }

    /// Attaches program `p` on `ifindex`'s ingress (a clsact qdisc).
    pub fn attach(&self, p: TcProgram, ifindex: i32) -> Result<TcAttachment, TcError> {
        let prog = self
            .obj
            .progs()
            .find(|prog| prog.name() == p.name())
            .ok_or(TcError::Missing("program"))?;
        // The hook keeps the program's fd number; the program itself stays
        // loaded as long as `self.obj`.
        let mut hook = TcHookBuilder::new(prog.as_fd())
            .ifindex(ifindex)
            .replace(true)
            .handle(1)
            .priority(1)
            .hook(TC_INGRESS);
        hook.create()
            .map_err(|source| TcError::Attach { ifindex, source })?;
        hook.attach()
            .map_err(|source| TcError::Attach { ifindex, source })?;
        Ok(TcAttachment { hook })
    }

    /// Runs program `p` once on `frame` as if it arrived on `ifindex`;
    /// returns its verdict and the frame as it left the program.
    pub fn test_run(
        &mut self,
        p: TcProgram,
        frame: &[u8],
        ifindex: u32,
    ) -> Result<(i32, Vec<u8>), TcError> {
        self.test_run_gso(p, frame, ifindex, 0)
    }

    /// As [`TcFlows::test_run`], the frame a super-packet whose segments
    /// carry `gso_size` bytes of payload each (0: a plain frame).
    pub fn test_run_gso(
        &mut self,
        p: TcProgram,
        frame: &[u8],
        ifindex: u32,
        gso_size: u32,
    ) -> Result<(i32, Vec<u8>), TcError> {
        let prog = self
            .obj
            .progs_mut()
            .find(|prog| prog.name() == p.name())
            .ok_or(TcError::Missing("program"))?;
        // struct __sk_buff: ingress_ifindex sits at byte 36 (after the
        // nine u32s len, pkt_type, mark, queue_mapping, protocol,
        // vlan_present, vlan_tci, vlan_proto, priority), gso_size at 176
        // (after the pointers and stamps BPF_PROG_TEST_RUN wants zero);
        // the rest stays zero.
        let mut ctx = [0u8; 192];
        ctx[36..40].copy_from_slice(&ifindex.to_ne_bytes());
        ctx[176..180].copy_from_slice(&gso_size.to_ne_bytes());
        let mut out = vec![0u8; frame.len() + 256];
        let input = ProgramInput {
            data_in: Some(frame),
            data_out: Some(&mut out),
            context_in: Some(&mut ctx),
            ..ProgramInput::default()
        };
        let r = prog.test_run(input).map_err(TcError::TestRun)?;
        let ret = r.return_value as i32;
        let n = r.data.map_or(0, |d| d.len());
        out.truncate(n);
        Ok((ret, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust mirrors have the C structs' sizes (no padding anywhere).
    #[test]
    fn layouts_match_the_c_structs() {
        assert_eq!(size_of::<TcKey>(), 4 + 6 + 6 + 2 + 1 + 1 + 16 + 16 + 2 + 2);
        assert_eq!(size_of::<TcAction>(), 16 + 8 + 24 + MAX_HDR);
        assert_eq!(size_of::<TcPort>(), 4 + 2 + 2 + 8 + 8);
        assert_eq!(
            size_of::<TcTunnelKey>(),
            16 + 16 + 8 + 2 + 2 + size_of::<TcKey>()
        );
    }
}
