//! A real virtual machine on a tap port (`kind = { type = "tap" }`): QEMU
//! 10 with Linux's virtio-net driver (Debian's kernel, a busybox
//! initramfs: scripts/guest.sh) on the tap `tap1` xvsd created, opened by
//! name as `-netdev tap,ifname=tap1` with QEMU's default offloads (a
//! virtio-net header, the guest's TSO and checksum offload on), a veth
//! namespace on the same bridge. The guest serves a TCP echo (busybox
//! `nc`, `guest::tcp_echo_append`).
//!
//! Through AF_XDP (our XDP program natively on the tap): pings after
//! boot, after QEMU is killed with SIGKILL and started again on the same
//! tap (it persists), after xvsd is killed and restarted under the
//! running guest; a TCP echo's bytes all come back. With `--fastpath`
//! (which keeps the guest's TSO frames whole, where the XDP path answers
//! them "too big" and TCP limps): the port added by `xvsctl add-port
//! --type tap`, a larger echo, the port restored from the state file by
//! an xvsd restarted under the guest, and the tap deleted with the port.
//! Under TCG, so the waits are long.
//!
//! Needs root, QEMU 10 and the guest image (`scripts/guest.sh`), which
//! scripts/test.sh provides.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use xvs_tests::guest::{guest_dir, port_stats, tcp_echo_append, Guest};
use xvs_tests::require::{require_file, require_root, require_tool};
use xvs_tests::{on_thread, veth, Netns, Xvsd};

const GUEST_IP: &str = "10.0.0.2";
const GUEST_MAC: &str = "52:54:00:00:0c:02";
const ECHO_PORT: u16 = 5001;
const TAP: &str = "tap1";

/// The hypervisor namespace xvsd runs in and the VM namespace on its
/// port `p0` (vm0, 10.0.0.1/24).
fn topology(tag: &str) -> (Netns, Netns) {
    let hv = Netns::new(&format!("{tag}hv"));
    let vm = Netns::new(&format!("{tag}vm"));
    veth(
        &vm,
        "vm0",
        "02:00:00:00:0c:01",
        &hv,
        "p0",
        "02:00:00:00:0c:02",
    );
    vm.ip(&["addr", "add", "10.0.0.1/24", "dev", "vm0"]);
    (hv, vm)
}

fn config(with_tap: bool) -> String {
    let mut c =
        "[[bridges]]\nname = \"br0\"\n\n[[ports]]\nname = \"p0\"\nbridge = \"br0\"\n".to_string();
    if with_tap {
        c += &format!(
            "\n[[ports]]\nname = \"{TAP}\"\nbridge = \"br0\"\nkind = {{ type = \"tap\" }}\n"
        );
    }
    c
}

fn requirements() -> bool {
    require_root()
        && require_tool("qemu-system-x86_64")
        && require_file(
            &guest_dir().join("vmlinuz").to_string_lossy(),
            "the guest kernel (scripts/guest.sh DIR, XVS_GUEST_DIR=DIR)",
        )
}

/// `ip -d link show NAME` in `ns`, or `None` if there is no such link.
fn tap_details(ns: &Netns, name: &str) -> Option<String> {
    let out = ns.exec("ip", &["-d", "link", "show", name]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Pings the guest until `n` answers in a row come back (bounded): the
/// first after a boot waits for the guest's ARP entry and the port.
fn pings_answered(vm: &Netns, n: u32, what: &str, g: &Guest, d: &Xvsd) {
    xvs_tests::guest::pings_answered(vm, GUEST_IP, TAP, n, what, g, d);
}

/// Sends `len` bytes of a pattern to the guest's TCP echo from `vm` while
/// reading them back; the bytes read must be the bytes sent. Bounded:
/// every read and write by 30 s, the whole by `secs`. Returns the
/// seconds it took.
fn echo(vm: &Netns, len: usize, secs: u64) -> Result<f64, String> {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    on_thread(|| {
        vm.enter();
        let addr: SocketAddr = format!("{GUEST_IP}:{ECHO_PORT}").parse().expect("address");
        let start = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("connecting to the guest's echo: {e}"))?;
        let t = Some(Duration::from_secs(30));
        s.set_read_timeout(t)
            .and(s.set_write_timeout(t))
            .map_err(|e| e.to_string())?;
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        std::thread::scope(|sc| {
            let sender = sc.spawn(|| w.write_all(&data));
            let mut back = vec![0u8; len];
            let deadline = start + Duration::from_secs(secs);
            let received = (|| {
                let mut got = 0;
                while got < len {
                    if Instant::now() > deadline {
                        return Err(format!("{got} of {len} bytes back in {secs} s"));
                    }
                    match s.read(&mut back[got..]) {
                        Ok(0) => return Err(format!("the echo closed after {got} of {len} bytes")),
                        Ok(n) => got += n,
                        Err(e) => return Err(format!("{got} of {len} bytes back: {e}")),
                    }
                }
                Ok(())
            })();
            // A sender still writing to a guest that stopped reading
            // fails at once rather than at its write timeout.
            if received.is_err() {
                let _ = s.shutdown(Shutdown::Both);
            }
            let sent = sender.join().expect("sender thread");
            received?;
            sent.map_err(|e| format!("sending: {e}"))?;
            if back != data {
                let at = back.iter().zip(&data).position(|(a, b)| a != b);
                return Err(format!("the bytes came back changed, first at {at:?}"));
            }
            Ok(start.elapsed().as_secs_f64())
        })
    })
}

#[test]
fn a_qemu_guest_on_a_tap_port_answers_through_qemu_kill_and_an_xvsd_restart() {
    if !requirements() {
        return;
    }
    eprintln!("QEMU under TCG (no KVM for a non-PVM guest kernel here)");
    let (hv, vm) = topology("tg");
    let mut d = Xvsd::start(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &hv,
        &config(true),
        &[],
    );
    let details = tap_details(&hv, TAP).unwrap_or_else(|| panic!("no {TAP}\n{}", d.log()));
    for want in ["tun type tap", "vnet_hdr on", "persist on", "prog/xdp"] {
        assert!(details.contains(want), "{TAP}: no {want:?}: {details}");
    }

    let mut g = Guest::boot_tap(
        &hv,
        TAP,
        GUEST_MAC,
        &format!("{GUEST_IP}/24"),
        &tcp_echo_append(ECHO_PORT),
        "tap-a",
    );
    g.wait_ready(1, 120);
    pings_answered(&vm, 3, "after boot", &g, &d);
    // The guest's TSO frames reach the XDP path whole and are answered
    // "too big" (the port's icmp_too_big); TCP gets through by
    // retransmitting, slowly: every byte must still come back.
    let secs = echo(&vm, 256 * 1024, 120)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", port_stats(&d, TAP), g.console()));
    eprintln!(
        "256 KiB echoed through the XDP path in {secs:.1} s, {} of the guest's frames too big",
        port_stats(&d, TAP)["icmp_too_big"].as_u64().unwrap_or(0)
    );

    // QEMU killed: the tap stays, with our program; a new QEMU opens it.
    g.kill9();
    let details = tap_details(&hv, TAP).expect("the tap outlives QEMU");
    assert!(details.contains("prog/xdp"), "{details}");
    g.boot_again();
    g.wait_ready(1, 120);
    pings_answered(&vm, 3, "after QEMU was killed and booted again", &g, &d);

    // xvsd killed under the running guest and started again: the tap is
    // still QEMU's, the program and socket go on it again.
    d.restart();
    pings_answered(&vm, 3, "after xvsd was killed and restarted", &g, &d);
    let s = port_stats(&d, TAP);
    assert_eq!(s["state"], "up", "{s}");

    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    // A stopped xvsd leaves the tap to the guest (a restart finds it).
    assert!(tap_details(&hv, TAP).is_some(), "the tap went with xvsd");
}

#[test]
fn a_tap_port_added_by_xvsctl_carries_tso_under_the_fast_path_and_goes_with_the_port() {
    if !requirements() {
        return;
    }
    eprintln!("QEMU under TCG (no KVM for a non-PVM guest kernel here)");
    let (hv, vm) = topology("tf");
    let mut d = Xvsd::start(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &hv,
        &config(false),
        &["--fastpath"],
    );
    d.ok(&["add-port", "br0", TAP, "--type", "tap"]);
    assert!(
        tap_details(&hv, TAP).is_some(),
        "add-port made no tap\n{}",
        d.log()
    );
    let mut g = Guest::boot_tap(
        &hv,
        TAP,
        GUEST_MAC,
        &format!("{GUEST_IP}/24"),
        &tcp_echo_append(ECHO_PORT),
        "tap-f",
    );
    g.wait_ready(1, 120);
    pings_answered(&vm, 3, "after boot", &g, &d);
    let secs = echo(&vm, 4 << 20, 120)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", port_stats(&d, TAP), g.console()));
    eprintln!("4 MiB echoed under the fast path in {secs:.2} s");

    // Restored from the state file, the config file having no tap.
    d.restart_from_state();
    pings_answered(&vm, 3, "after xvsd was restarted from its state", &g, &d);
    echo(&vm, 1 << 20, 120).unwrap_or_else(|e| panic!("after the restart: {e}"));
    let s = port_stats(&d, TAP);
    assert!(s["rx_packets"].as_u64().unwrap_or(0) > 0, "{s}");

    // Deleting the port deletes the tap (the guest loses its link).
    d.ok(&["del-port", TAP]);
    assert!(tap_details(&hv, TAP).is_none(), "the tap outlived its port");
    g.kill9();
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}
