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
