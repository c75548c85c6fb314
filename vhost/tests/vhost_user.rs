//! A vhost-user port against a real virtio-net driver: DPDK's virtio-user
//! PMD in `dpdk-testpmd` (`--no-huge`: its memory is memfd-backed and
//! shared over the socket as a guest's is), forwarding every frame it
//! receives back out (io mode, the port looped to itself). What xvs hands
//! the driver must come back byte for byte, in order; and the port must
//! take the next driver after one is killed.

use std::time::{Duration, Instant};
use xvs_tests::require::{require_root, require_tool};
use xvs_tests::testpmd::Testpmd;
use xvs_vhost::{GuestQueues, Mode, VhostUserPort};

/// The frame the test sends as number `i`: a broadcast Ethernet frame of
/// a length that varies from 60 to 1,514 bytes, its bytes numbered.
fn frame(i: usize) -> Vec<u8> {
    let len = 60 + (i * 97) % 1455;
    let mut f = vec![0u8; len];
    f[..6].fill(0xff);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental ethertype
    f[14..18].copy_from_slice(&(i as u32).to_be_bytes());
    for (k, b) in f[18..].iter_mut().enumerate() {
        *b = (k + i) as u8;
    }
    f
}

/// Waits (bounded) for the driver to start the queues.
fn queues(port: &VhostUserPort, testpmd: &mut Testpmd) -> GuestQueues {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(q) = port.shared().queues(0) {
            return q;
        }
        if let Ok(Some(status)) = testpmd.child.try_wait() {
            panic!(
                "dpdk-testpmd exited ({status}) before starting the queues: {}",
                testpmd.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the driver did not start the queues in 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The probe [`warm_up`] sends: another ethertype than the test's frames.
fn probe() -> Vec<u8> {
    let mut f = frame(0);
    f[12..14].copy_from_slice(&0x88b6u16.to_be_bytes());
    f
}

/// Waits (bounded) until the driver forwards: it takes receive buffers
/// before its forwarding starts, and drops what it cannot send yet.
fn warm_up(q: &mut GuestQueues) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        q.send(std::iter::once(probe().as_slice()));
        std::thread::sleep(Duration::from_millis(50));
        let mut back = false;
        q.recv(
            64,
            || Some(vec![0u8; 2048]),
            |_, r| back |= r.is_ok_and(|n| n > 0),
        );
        if back {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the driver forwarded no probe in 20 s ({:?})",
            q.counters
        );
    }
    // Probes still on their way are drained.
    std::thread::sleep(Duration::from_millis(100));
    q.recv(1024, || Some(vec![0u8; 2048]), |_, _| {});
}

/// Sends `frames` to the driver and collects what it sends back (bounded).
fn round_trip(q: &mut GuestQueues, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut sent, mut back) = (0usize, Vec::new());
    while back.len() < frames.len() && Instant::now() < deadline {
        // The driver posts receive buffers at its own pace: a frame that
        // found none is counted and sent again, one at a time so the
        // order holds. testpmd drops what its transmit ring has no room
        // for (128 frames: a descriptor for the header, one for the
        // data), so no more than 64 are on their way at once.
        while sent < frames.len()
            && sent < back.len() + 64
            && q.send(std::iter::once(frames[sent].as_slice())) == 1
        {
            sent += 1;
        }
        q.recv(
            64,
            || Some(vec![0u8; 2048]),
            |mut b, r| {
                let len = r.expect("testpmd's frames are well formed");
                if len > 0 && b[12..14] == [0x88, 0xb5] {
                    b.truncate(len);
                    back.push(b);
                }
            },
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    back
}

#[test]
fn testpmd_loops_every_frame_back_byte_for_byte() {
    if !require_root() || !require_tool("dpdk-testpmd") {
        return;
    }
    let dir = tempdir();
    let sock = dir.join("vhost.sock");
    let port = VhostUserPort::start("vu0", &sock, Mode::Server, 1).expect("port starts");
    assert!(sock.exists(), "the server's socket exists once started");

    let mut pmd = Testpmd::start(&sock, "a", "io", false);
    let mut q = queues(&port, &mut pmd);
    warm_up(&mut q);
    let frames: Vec<Vec<u8>> = (0..500).map(frame).collect();
    let back = round_trip(&mut q, &frames);
    assert_eq!(
        back.len(),
        frames.len(),
        "every frame came back ({:?})",
        q.counters
    );
    for (i, (a, b)) in frames.iter().zip(&back).enumerate() {
        assert_eq!(a, b, "frame {i} came back changed");
    }
    assert_eq!(q.counters.bad_chains, 0);
    assert_eq!(q.counters.bad_rx_chains, 0);

    // The driver dies without a word: the port withdraws the queues and
    // takes the next one, from a fresh device.
    let gen = q.generation();
    pmd.kill9();
    let deadline = Instant::now() + Duration::from_secs(10);
    while port.shared().generation() == gen {
        assert!(
            Instant::now() < deadline,
            "the port did not notice the driver's death"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        port.shared().queues(0).is_none(),
        "no queues without a driver"
    );
    drop(q);

    let mut pmd = Testpmd::start(&sock, "b", "io", false);
    let mut q = queues(&port, &mut pmd);
    warm_up(&mut q);
    let back = round_trip(&mut q, &frames[..100]);
    assert_eq!(
        back.as_slice(),
        &frames[..100],
        "the second driver loops frames back too"
    );
    drop(pmd);
    drop(port);
    assert!(!sock.exists(), "a stopped server removes its socket");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("xvs-vhost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
