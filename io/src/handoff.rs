//! Carrying a handoff between processes: a serde message and the file
//! descriptors that go with it over a connected Unix stream socket, the
//! fds as `SCM_RIGHTS`. What xvsd's old and new processes exchange on
//! an upgrade ([`crate::xsk::XskSet::export`] and `adopt`); the message
//! is any serde type, so one exchange can carry every worker's
//! [`Handoff`](crate::xsk::Handoff) and whatever else the daemon hands
//! on, its fds concatenated in an order the message itself records.
//!
//! Wire format: a 16-byte header (`XVSHANDF`, the JSON length and the fd
//! count, little-endian u32s) sent with the first fds, then one byte with
//! each further batch of fds (the kernel takes at most 253 per message),
//! then the JSON. Received fds are close-on-exec. A short read, a bad
//! header, an fd count other than announced or a truncated control
//! message is an error: the receiver never guesses.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

const MAGIC: &[u8; 8] = b"XVSHANDF";
/// Fds per message: below the kernel's `SCM_MAX_FD` (253).
const BATCH: usize = 250;
/// The largest message accepted (a handoff of the largest UMEM is a few
/// MiB of JSON).
const MAX_JSON: u32 = 256 << 20;
/// The most fds accepted.
const MAX_FDS: u32 = 1 << 16;

/// Why a handoff could not be carried.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("handoff socket: {0}")]
    Io(#[from] io::Error),
    #[error("handoff message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("handoff protocol: {0}")]
    Protocol(String),
}

/// Sends `msg` and `fds` over `sock`.
pub fn send<T: Serialize>(
    sock: &UnixStream,
    msg: &T,
    fds: &[OwnedFd],
) -> Result<(), TransferError> {
    let json = serde_json::to_vec(msg)?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|&n| n <= MAX_JSON)
        .ok_or_else(|| TransferError::Protocol(format!("{} bytes of message", json.len())))?;
    let count = u32::try_from(fds.len())
        .ok()
        .filter(|&n| n <= MAX_FDS)
        .ok_or_else(|| TransferError::Protocol(format!("{} fds", fds.len())))?;
    let mut header = [0u8; 16];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&len.to_le_bytes());
    header[12..].copy_from_slice(&count.to_le_bytes());
    let fds: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    let mut batches = fds.chunks(BATCH);
    send_with_fds(sock, &header, batches.next().unwrap_or(&[]))?;
    for batch in batches {
        send_with_fds(sock, b"F", batch)?;
    }
    (&*sock).write_all(&json)?;
    Ok(())
}

/// Sends all of `data` with `fds` attached to its first byte.
fn send_with_fds(sock: &UnixStream, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !cmsg.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("control message buffer too small"));
    }
    let sent = loop {
        match sendmsg(sock, &[IoSlice::new(data)], &mut cmsg, SendFlags::NOSIGNAL) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r?,
        }
    };
    // The fds went with the first byte; the rest is plain data.
    (&*sock).write_all(&data[sent..])
}

/// Receives what [`send`] sent: the message and its fds, in order.
pub fn recv<T: DeserializeOwned>(sock: &UnixStream) -> Result<(T, Vec<OwnedFd>), TransferError> {
    let mut header = [0u8; 16];
    let mut fds = Vec::new();
    recv_with_fds(sock, &mut header, &mut fds)?;
    if &header[..8] != MAGIC {
        return Err(TransferError::Protocol("not a handoff header".into()));
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let (len, count) = (word(8), word(12));
    if len > MAX_JSON || count > MAX_FDS {
        return Err(TransferError::Protocol(format!(
            "{len} bytes and {count} fds announced"
        )));
    }
    let count = count as usize;
    while fds.len() < count {
        let before = fds.len();
        let mut byte = [0u8; 1];
        recv_with_fds(sock, &mut byte, &mut fds)?;
        if byte != *b"F" || fds.len() == before {
            return Err(TransferError::Protocol("an fd batch without fds".into()));
        }
    }
    if fds.len() != count {
        return Err(TransferError::Protocol(format!(
            "{} fds for {count} announced",
            fds.len()
        )));
    }
    let mut json = vec![0u8; len as usize];
    (&*sock).read_exact(&mut json)?;
    Ok((serde_json::from_slice(&json)?, fds))
}

/// Cuts the fds of one exchange into consecutive groups of `counts`
/// (each worker's [`Handoff::fds`](crate::xsk::Handoff::fds), in the
/// order the message lists the handoffs): a sender concatenates every
/// set's fds, the receiver takes them apart again. Refuses a total
/// other than the fds there are.
pub fn split_fds(
    counts: impl IntoIterator<Item = usize>,
    fds: Vec<OwnedFd>,
) -> Result<Vec<Vec<OwnedFd>>, TransferError> {
    let total = fds.len();
    let mut fds = fds.into_iter();
    let mut groups = Vec::new();
    let mut want = 0usize;
    for n in counts {
        want = want.saturating_add(n);
        groups.push(fds.by_ref().take(n).collect::<Vec<_>>());
    }
    if want != total {
        return Err(TransferError::Protocol(format!(
            "{total} fds for groups of {want} in all"
        )));
    }
    Ok(groups)
}

/// Fills `data` from `sock`, appending the fds that came with its first
/// byte to `fds`.
fn recv_with_fds(
    sock: &UnixStream,
    data: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> Result<(), TransferError> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match recvmsg(
            sock,
            &mut [IoSliceMut::new(data)],
            &mut cmsg,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r.map_err(io::Error::from)?,
        }
    };
    // Take ownership of whatever came before judging it, so that every
    // fd received is closed on an error.
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(got) = m {
            fds.extend(got);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(TransferError::Protocol("fds truncated".into()));
    }
    if msg.bytes == 0 {
        return Err(TransferError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    (&*sock).read_exact(&mut data[msg.bytes..])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_message_and_more_fds_than_one_batch_arrive_in_order() {
        let (a, b) = UnixStream::pair().unwrap();
        // 300 fds: two batches. Each is a pipe end whose peer tells
        // which it is.
        let mut keep = Vec::new();
        let mut fds = Vec::new();
        for _ in 0..300 {
            let (r, w) = std::io::pipe().unwrap();
            fds.push(OwnedFd::from(r));
            keep.push(w);
        }
        let msg = vec![1u64, 2, 3];
        let t = std::thread::spawn(move || send(&a, &msg, &fds).unwrap());
        let (got, fds): (Vec<u64>, _) = recv(&b).unwrap();
        t.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(fds.len(), 300);
        for (i, (fd, w)) in fds.into_iter().zip(&mut keep).enumerate() {
            w.write_all(&(i as u32).to_le_bytes()).unwrap();
            let mut buf = [0u8; 4];
            std::fs::File::from(fd).read_exact(&mut buf).unwrap();
            assert_eq!(u32::from_le_bytes(buf), i as u32);
        }
    }

    #[test]
    fn fds_are_cut_into_their_groups_in_order() {
        let fds: Vec<OwnedFd> = (0..5)
            .map(|_| std::fs::File::open("/dev/null").unwrap().into())
            .collect();
        let raw: Vec<i32> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let groups = split_fds([2, 0, 3], fds).unwrap();
        let got: Vec<Vec<i32>> = groups
            .iter()
            .map(|g| g.iter().map(AsRawFd::as_raw_fd).collect())
            .collect();
        assert_eq!(got, [raw[..2].to_vec(), vec![], raw[2..].to_vec()]);
        let fds: Vec<OwnedFd> = vec![std::fs::File::open("/dev/null").unwrap().into()];
        assert!(split_fds([2], fds).is_err());
    }

    #[test]
    fn garbage_and_a_short_stream_are_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        (&a).write_all(b"NOTAHANDOFFHEADER").unwrap();
        assert!(matches!(recv::<u32>(&b), Err(TransferError::Protocol(_))));
        let (a, b) = UnixStream::pair().unwrap();
        let mut header = [0u8; 16];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&10u32.to_le_bytes());
        header[12..].copy_from_slice(&2u32.to_le_bytes());
        let fd = std::fs::File::open("/dev/null").unwrap();
        send_with_fds(&a, &header, &[fd.as_fd()]).unwrap();
        drop(a);
        // One fd of two announced, then the end: an error, not a hang.
        assert!(recv::<u32>(&b).is_err());
        assert!(fd.as_raw_fd() >= 0);
    }
}
