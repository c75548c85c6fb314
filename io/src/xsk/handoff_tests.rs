//! A handoff is untrusted: forged or damaged ones are refused with a
//! typed error before any fd is touched, never with a panic.

use super::*;
use proptest::prelude::*;

const FRAMES: u32 = 64;
const SLOTS: u32 = 2;
/// The first chunk of the jumbo slots.
const FIRST_SLOT: u64 = (FRAMES - SLOTS * SLOT_CHUNKS as u32) as u64;

/// A consistent handoff: every ordinary chunk in the pool or lent to
/// one of two sockets as `owner` says (0: pool), slot 0 on socket 1's
/// TX ring as two descriptors, slot 1 held by socket 0's chain.
fn handoff(owner: &[u8]) -> Handoff {
    let mut pool = Vec::new();
    let mut kernel = [Vec::new(), Vec::new()];
    for i in 0..FIRST_SLOT {
        match owner.get(i as usize).copied().unwrap_or(0) % 3 {
            0 => pool.push(i * CHUNK),
            o => kernel[usize::from(o - 1)].push(i * CHUNK),
        }
    }
    kernel[1].extend([FIRST_SLOT * CHUNK, (FIRST_SLOT + 1) * CHUNK]);
    let sock = |k: usize, chain| {
        Some(SocketHandoff {
            ifname: format!("xa{k}"),
            queue: 0,
            sg: true,
            in_fill: 0,
            kernel: kernel[k].clone(),
            chain,
        })
    };
    Handoff {
        version: HANDOFF_VERSION,
        frames: FRAMES,
        rx_frames: 16,
        ring: 32,
        frame_headroom: 0,
        jumbo_slots: SLOTS,
        backing: Backing::HugeTmpfs,
        sg: true,
        pool,
        sockets: vec![
            sock(
                0,
                Some(ChainHandoff {
                    slot: Some(1),
                    head: 256,
                    len: 5000,
                    bad: false,
                }),
            ),
            None,
            sock(1, None),
        ],
        slots_out: vec![2, 0],
        jumbo: [0; 4],
        reclaimed: 0,
    }
}

#[test]
fn a_consistent_handoff_is_accepted() {
    let h = handoff(&[0, 1, 2, 1, 0, 2]);
    h.validate().expect("consistent");
    assert_eq!(h.fds(), 4, "file, anchor, two sockets");
    // It survives the trip through JSON unchanged.
    let back: Handoff = serde_json::from_slice(&serde_json::to_vec(&h).unwrap()).unwrap();
    assert_eq!(back, h);
}

#[test]
fn each_kind_of_damage_has_its_own_error() {
    let good = handoff(&[1, 2, 0, 0, 1]);
    let refused = |f: &dyn Fn(&mut Handoff)| {
        let mut h = good.clone();
        f(&mut h);
        h.validate().expect_err("damaged")
    };
    assert_eq!(refused(&|h| h.version += 1), HandoffError::Version(2));
    let end = u64::from(FRAMES) * CHUNK;
    assert_eq!(
        refused(&|h| h.pool.push(end)),
        HandoffError::ChunkOutOfRange { addr: end }
    );
    assert_eq!(
        refused(&|h| h.pool[0] += 1),
        HandoffError::ChunkOutOfRange {
            addr: good.pool[0] + 1
        }
    );
    let dup = good.pool[0];
    assert_eq!(
        refused(&|h| h.sockets[2].as_mut().unwrap().kernel.push(dup)),
        HandoffError::DuplicateChunk { addr: dup }
    );
    assert_eq!(
        refused(&|h| h.pool.push(dup)),
        HandoffError::DuplicateChunk { addr: dup }
    );
    assert!(matches!(
        refused(&|h| {
            h.pool.pop();
        }),
        HandoffError::Unaccounted { missing: 1, .. }
    ));
    let slot_chunk = (FIRST_SLOT + 2) * CHUNK;
    assert_eq!(
        refused(&|h| h.pool.push(slot_chunk)),
        HandoffError::SlotChunkPooled { addr: slot_chunk }
    );
    assert!(matches!(
        refused(&|h| h.slots_out[0] = 3),
        HandoffError::Slot { slot: 0, .. }
    ));
    // A chain on a slot that is on a TX ring.
    assert!(matches!(
        refused(&|h| h.sockets[0].as_mut().unwrap().chain.as_mut().unwrap().slot = Some(0)),
        HandoffError::Slot { slot: 0, .. }
    ));
    assert!(matches!(
        refused(&|h| h.sockets[0].as_mut().unwrap().in_fill = 1000),
        HandoffError::Socket { slot: 0, .. }
    ));
    assert!(matches!(
        refused(&|h| h.sockets[2].as_mut().unwrap().ifname = "a/b".into()),
        HandoffError::Socket { slot: 2, .. }
    ));
    assert!(matches!(refused(&|h| h.ring = 33), HandoffError::Config(_)));
    assert!(matches!(
        refused(&|h| h.frames = u32::MAX),
        HandoffError::Config(_)
    ));
    assert!(matches!(
        refused(&|h| h.slots_out.push(0)),
        HandoffError::Config(_)
    ));
}

#[test]
fn adopt_refuses_the_wrong_fds_before_mapping_anything() {
    let h = handoff(&[]);
    let err = |r: Result<XskSet, XskError>| match r {
        Err(XskError::Handoff(e)) => e,
        other => panic!("expected a handoff error, got {other:?}"),
    };
    assert_eq!(
        err(XskSet::adopt(h.clone(), Vec::new())),
        HandoffError::FdCount { want: 4, got: 0 }
    );
    // Four fds of the wrong kinds: a file where the UMEM's socket goes.
    let file = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let got = err(XskSet::adopt(h, vec![file(), file(), file(), file()]));
    assert!(matches!(got, HandoffError::Fd { index: 1, .. }), "{got:?}");
}

proptest! {
    /// Whatever the partition of chunks, a consistent handoff passes,
    /// and any one chunk moved out of range, listed twice or dropped is
    /// refused with that error.
    #[test]
    fn tampering_with_any_chunk_is_refused(
        owner in prop::collection::vec(0u8..3, FIRST_SLOT as usize),
        pick in any::<prop::sample::Index>(),
        how in 0u8..4,
        junk in any::<u64>(),
    ) {
        let good = handoff(&owner);
        prop_assert!(good.validate().is_ok());
        let mut h = good.clone();
        // Every listed chunk, wherever it is listed.
        let mut lists: Vec<&mut Vec<u64>> = vec![&mut h.pool];
        lists.extend(h.sockets.iter_mut().flatten().map(|s| &mut s.kernel));
        let total: usize = lists.iter().map(|l| l.len()).sum();
        let mut at = pick.index(total);
        let list = lists.into_iter().find(|l| {
            if at < l.len() { true } else { at -= l.len(); false }
        }).unwrap();
        let addr = list[at];
        let r = match how {
            0 => {
                let bad = u64::from(FRAMES) * CHUNK + junk % (1 << 40);
                list[at] = bad;
                h.validate().map_err(|e| (e.clone(), matches!(e, HandoffError::ChunkOutOfRange { .. })))
            }
            1 => {
                list[at] = addr + 1 + junk % (CHUNK - 1);
                h.validate().map_err(|e| (e.clone(), matches!(e, HandoffError::ChunkOutOfRange { .. })))
            }
            2 => {
                list.push(addr);
                h.validate().map_err(|e| (e.clone(), e == HandoffError::DuplicateChunk { addr }))
            }
            _ => {
                list.remove(at);
                // A slot's chunk taken off the TX list shows as the slot's
                // count disagreeing; any other as a chunk unaccounted for.
                h.validate().map_err(|e| (e.clone(), matches!(
                    e,
                    HandoffError::Unaccounted { missing: 1, .. } | HandoffError::Slot { .. }
                )))
            }
        };
        match r {
            Ok(()) => prop_assert!(false, "accepted a damaged handoff"),
            Err((e, expected)) => prop_assert!(expected, "unexpected error {e:?}"),
        }
    }

    /// Arbitrary numbers in every list never panic the check.
    #[test]
    fn arbitrary_handoffs_never_panic(
        pool in prop::collection::vec(any::<u64>(), 0..80),
        kernel in prop::collection::vec(any::<u64>(), 0..80),
        out in prop::collection::vec(any::<u8>(), 0..4),
        frames in any::<u32>(),
        ring in any::<u32>(),
        slots in any::<u32>(),
        in_fill in any::<u32>(),
        chain_slot in any::<Option<u32>>(),
    ) {
        let mut h = handoff(&[]);
        h.pool = pool;
        h.sockets[0].as_mut().unwrap().kernel = kernel;
        h.sockets[0].as_mut().unwrap().in_fill = in_fill;
        h.sockets[0].as_mut().unwrap().chain.as_mut().unwrap().slot = chain_slot;
        h.slots_out = out;
        h.frames = frames % 256;
        h.ring = ring;
        h.jumbo_slots = slots % 64;
        let _ = h.validate();
    }
}
