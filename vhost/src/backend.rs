//! The vhost-user device a guest's virtio-net driver talks to: what it
//! offers, and the hand-over of its virtqueues to whoever polls them.
//!
//! rust-vmm's `vhost-user-backend` runs the protocol (features, memory
//! table, vring addresses, kick and call eventfds) on threads of its own;
//! [`NetBackend`] is what it asks about the device. It never moves a
//! packet: the queues are polled by the owner of a [`GuestQueues`]
//! (an xvs worker), which picks them up from [`Shared`] the first time
//! the driver kicks one of them, the moment it is known they exist.

use super::queue::GuestQueues;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::{VhostUserBackend, VringRwLock};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MQ,
    VIRTIO_NET_F_MRG_RXBUF,
};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};
use vmm_sys_util::eventfd::EventFd;

/// The most queue pairs a port offers (`VIRTIO_NET_F_MQ`): a pair is a
/// receive and a transmit queue (virtio-net's queue 2p is pair p's
/// receive queue, 2p + 1 its transmit queue).
pub const MAX_QUEUE_PAIRS: usize = 8;
/// The most descriptors a queue may have (QEMU's and DPDK's default ring
/// is 256; Linux asks for up to 1,024).
pub const MAX_QUEUE_SIZE: usize = 1024;

/// The virtio features offered.
///
/// - Checksum offload both ways: a guest hands frames over with the L4
///   checksum left to us (`CSUM`), completed by [`GuestQueues`] from the
///   header's `csum_start`/`csum_offset`, and accepts frames whose
///   checksum is complete (`GUEST_CSUM`, which we never leave partial).
/// - TSO from the guest (`HOST_TSO4`/`HOST_TSO6`, with `HOST_ECN`): a
///   guest hands over TCP frames of up to 64 KiB, cut into segments of
///   its MSS here (`gso.rs`), so each one goes through the pipeline and
///   into a tunnel at the guest's MTU.
/// - Multiqueue (`MQ`, with the protocol's `MQ`) when the port has more
///   than one queue pair: the guest spreads its flows over them, the
///   workers poll them (`pairs` is the port's).
/// - TSO to the guest (`GUEST_TSO4`/`GUEST_TSO6`): the guest takes large
///   frames; what we hand it today are the segments as they arrived (the
///   guest's own GRO merges them), never a super-frame, which the
///   feature allows.
pub fn offered_features(pairs: usize) -> u64 {
    let mq = if pairs > 1 { 1 << VIRTIO_NET_F_MQ } else { 0 };
    mq | (1 << VIRTIO_F_VERSION_1)
        | (1 << VIRTIO_NET_F_CSUM)
        | (1 << VIRTIO_NET_F_GUEST_CSUM)
        | (1 << VIRTIO_NET_F_HOST_TSO4)
        | (1 << VIRTIO_NET_F_HOST_TSO6)
        | (1 << VIRTIO_NET_F_HOST_ECN)
        | (1 << VIRTIO_NET_F_GUEST_TSO4)
        | (1 << VIRTIO_NET_F_GUEST_TSO6)
        | (1 << VIRTIO_NET_F_MRG_RXBUF)
        | (1 << VIRTIO_RING_F_EVENT_IDX)
        | (1 << VIRTIO_RING_F_INDIRECT_DESC)
        | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
}

/// What the protocol threads and the poller share for one port.
pub struct Shared {
    /// The connection's vrings, once the driver has kicked one; `None`
    /// before and after the connection.
    vrings: Mutex<Option<Vec<VringRwLock>>>,
    /// Bumped whenever `vrings` changes: the poller's one check per batch.
    generation: AtomicU64,
    /// The features the driver acknowledged.
    acked: AtomicU64,
    /// The guest's memory, as the library keeps it updated.
    mem: Mutex<Option<GuestMemoryAtomic<GuestMemoryMmap<()>>>>,
    /// The queue pairs the device has.
    pairs: usize,
    /// Written on every kick of the guest's, one per queue pair: the
    /// poller of a pair sleeping in poll(2) waits on its own.
    kicks: Vec<EventFd>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// For a device of `pairs` queue pairs (1 to [`MAX_QUEUE_PAIRS`]).
    pub fn new(pairs: usize) -> std::io::Result<Shared> {
        let pairs = pairs.clamp(1, MAX_QUEUE_PAIRS);
        Ok(Shared {
            vrings: Mutex::new(None),
            generation: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            mem: Mutex::new(None),
            pairs,
            kicks: (0..pairs)
                .map(|_| EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))
                .collect::<std::io::Result<_>>()?,
        })
    }

    /// The queue pairs the device has.
    pub fn pairs(&self) -> usize {
        self.pairs
    }

    /// The eventfd a sleeping poller of `pair` waits on (readable after
    /// a kick of its transmit queue).
    pub fn kick_fd(&self, pair: usize) -> std::os::fd::RawFd {
        self.kicks[pair % self.pairs].as_raw_fd()
    }

    /// Clears `pair`'s kick eventfd once awake.
    pub fn take_kick(&self, pair: usize) {
        let _ = self.kicks[pair % self.pairs].read();
    }

    /// The generation of the queues: unchanged means a poller's
    /// [`GuestQueues`] is still the connection's.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a driver has started the queues of the connection.
    pub fn connected(&self) -> bool {
        self.vrings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Queue pair `pair` of the connection, if the driver has started
    /// the queues (the pair itself may not be enabled: a guest uses as
    /// many pairs as it chooses, and the others stay off).
    pub fn queues(&self, pair: usize) -> Option<GuestQueues> {
        let generation = self.generation();
        let vrings = self.vrings.lock().unwrap_or_else(|e| e.into_inner());
        let v = vrings.as_ref()?;
        let (rx, tx) = (v.get(2 * pair)?, v.get(2 * pair + 1)?);
        let mem = self.mem.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        Some(GuestQueues::new(
            rx.clone(),
            tx.clone(),
            mem,
            self.acked.load(Ordering::Acquire),
            generation,
        ))
    }

    fn publish(&self, vrings: &[VringRwLock]) {
        let mut slot = self.vrings.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() && vrings.len() >= 2 * self.pairs {
            *slot = Some(vrings.to_vec());
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The connection ended: the poller lets its queues go, and with them
    /// the guest's memory mappings.
    pub(crate) fn disconnected(&self) {
        let mut slot = self.vrings.lock().unwrap_or_else(|e| e.into_inner());
        *slot = None;
        *self.mem.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The device as `vhost-user-backend` sees it. One per connection (a new
/// connection starts from a new device), sharing [`Shared`] with the port.
#[derive(Clone)]
pub struct NetBackend {
    shared: Arc<Shared>,
    /// Stops the protocol library's epoll thread when the connection ends.
    exit: Arc<Mutex<Option<(EventConsumer, EventNotifier)>>>,
}

impl NetBackend {
    pub(crate) fn new(shared: Arc<Shared>) -> std::io::Result<Self> {
        let pair = new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC)?;
        Ok(Self {
            shared,
            exit: Arc::new(Mutex::new(Some(pair))),
        })
    }
}

impl VhostUserBackend for NetBackend {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        2 * self.shared.pairs
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        offered_features(self.shared.pairs)
    }

    fn acked_features(&self, features: u64) {
        self.shared.acked.store(features, Ordering::Release);
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        // MQ: QEMU asks how many queues there are (GET_QUEUE_NUM) before
        // it offers its guest more than one pair.
        VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
            | VhostUserProtocolFeatures::MQ
    }

    fn set_event_idx(&self, _enabled: bool) {
        // The library sets it on each vring; GuestQueues reads it there.
    }

    fn update_memory(&self, mem: GuestMemoryAtomic<GuestMemoryMmap<()>>) -> std::io::Result<()> {
        // The library's one GuestMemoryAtomic, which it updates in place
        // from now on: kept once, loaded afresh by the poller per batch.
        *self.shared.mem.lock().unwrap_or_else(|e| e.into_inner()) = Some(mem);
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        let mut slot = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        let (consumer, notifier) = slot.take()?;
        // The library keeps the notifier to stop its thread; we keep
        // nothing: the port ends the thread through the library's handle.
        Some((consumer, notifier))
    }

    fn handle_event(
        &self,
        device_event: u16,
        _evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> std::io::Result<()> {
        self.shared.publish(vrings);
        // The poller of the kicked queue's pair, asleep, wakes up; one
        // awake reads it on its next sleep.
        let _ = self.shared.kicks[usize::from(device_event / 2) % self.shared.pairs].write(1);
        Ok(())
    }
}
