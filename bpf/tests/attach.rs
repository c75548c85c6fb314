//! The loader on a real interface: a stale program replaced, ours
//! detached on drop. Needs root (namespaces, BPF) (`xvs_tests::require`:
//! fails without it under XVS_REQUIRE_ALL=1, skips loudly by hand); the
//! namespaces are deleted on drop, panics included. What the programs do
//! to frames is seen through AF_XDP sockets, in `io/tests/afxdp.rs`.

use xvs_bpf::{AttachFlags, AttachMode, Mode, XdpProgram};
use xvs_tests::{ip_out, on_thread, require_root, veth, Netns};

const MAC_A_S: &str = "02:00:00:00:0a:01";
const MAC_B_S: &str = "02:00:00:00:0b:01";

/// A program left attached by a crashed process is replaced on the next
/// attach; a foreign program is refused.
#[test]
fn stale_program_is_replaced_and_drop_detaches() {
    if !require_root() {
        return;
    }
    let a = Netns::new("sa");
    let b = Netns::new("sb");
    veth(&a, "xs0", MAC_A_S, &b, "xs1", MAC_B_S);
    on_thread(|| {
        a.enter();
        let first = XdpProgram::attach("xs0", Mode::Uplink, AttachFlags::GenericOnly).unwrap();
        assert_eq!(first.attach_mode(), AttachMode::Generic);
        let stale_id = first.prog_id();
        // Crash: nothing detaches.
        std::mem::forget(first);
        let second = XdpProgram::attach("xs0", Mode::Port, AttachFlags::Auto).unwrap();
        assert_ne!(second.prog_id(), stale_id);
        let shown = ip_out(&["link", "show", "xs0"]);
        assert!(
            shown.contains(&format!("id {}", second.prog_id())),
            "the new program is attached: {shown}"
        );
        drop(second);
        let shown = ip_out(&["link", "show", "xs0"]);
        assert!(!shown.contains("xdp"), "detached on drop: {shown}");
    });
}

/// Our programs declare fragments (`xdp.frags`), so a veth whose peer
/// has a jumbo MTU still takes them natively (without, the driver refuses
/// anything over about 3.5 KB with `ERANGE`); where native mode is
/// refused anyway, the generic fallback keeps the reason for the
/// operator.
#[test]
fn a_jumbo_mtu_veth_attaches_natively_and_a_fallback_says_why() {
    if !require_root() {
        return;
    }
    let a = Netns::new("ja");
    let b = Netns::new("jb");
    veth(&a, "xj0", MAC_A_S, &b, "xj1", MAC_B_S);
    a.ip(&["link", "set", "xj0", "mtu", "9000"]);
    b.ip(&["link", "set", "xj1", "mtu", "9000"]);
    on_thread(|| {
        a.enter();
        for mode in [Mode::Port, Mode::Uplink] {
            let p = XdpProgram::attach("xj0", mode, AttachFlags::Auto).unwrap();
            assert_eq!(p.attach_mode(), AttachMode::Native, "{mode:?}");
            assert_eq!(p.native_refused(), None);
        }
        // The loopback has no native XDP at all.
        let p = XdpProgram::attach("lo", Mode::Port, AttachFlags::Auto).unwrap();
        assert_eq!(p.attach_mode(), AttachMode::Generic);
        assert!(p.native_refused().is_some_and(|r| !r.is_empty()));
        assert!(!p.refused_for_mtu(), "{:?}", p.native_refused());
    });
}
