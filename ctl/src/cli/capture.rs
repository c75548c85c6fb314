//! `xvsctl capture`: starts a capture in xvsd, reads what it took every
//! 50 ms and writes it as pcapng (to a file, or to stdout for `tshark -r
//! -`), until a count, a duration, Ctrl-C or a closed pipe ends it; then
//! stops it and says on stderr what it took and what it lost.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;

use crate::client::{Client, ClientError};
use crate::protocol::{
    CaptureBatch, CaptureDirection, CaptureParams, CaptureStartParams, CaptureStarted, Method,
};

/// How often the capture is read: with 1,024 copies per worker, a port
/// at 20,000 frames per second loses none.
const READ_EVERY: Duration = Duration::from_millis(50);

/// What `xvsctl capture` was asked for.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub port: &'a str,
    pub direction: CaptureDirection,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub snaplen: u32,
    /// `-`: stdout.
    pub file: &'a Path,
}

/// Runs a capture; the exit status.
pub fn run(
    socket: &Path,
    timeout: Duration,
    ask: &Ask<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
    }
    let mut client = match Client::connect(socket, timeout) {
        Ok(c) => c,
        Err(e) => return fail(err, &e),
    };
    let started: CaptureStarted = match call(
        &mut client,
        &Method::CaptureStart(CaptureStartParams {
            port: ask.port.to_owned(),
            direction: ask.direction,
            snaplen: Some(ask.snaplen),
        }),
    ) {
        Ok(s) => s,
        Err(e) => return fail(err, &e),
    };
    let mut file;
    let sink: &mut dyn Write = if ask.file == Path::new("-") {
        out
    } else {
        match std::fs::File::create(ask.file) {
            Ok(f) => {
                file = std::io::BufWriter::new(f);
                &mut file
            }
            Err(e) => {
                let _ = writeln!(err, "xvsctl: capture: {}: {e}", ask.file.display());
                let _ = stop_capture(&mut client, started.id);
                return 1;
            }
        }
    };
    let mut w = match Writer::start(sink, &started) {
        Ok(w) => w,
        Err(e) => {
            let _ = stop_capture(&mut client, started.id);
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return 0;
            }
            let _ = writeln!(err, "xvsctl: capture: writing: {e}");
            return 1;
        }
    };
    let limit = ask.count.unwrap_or(u64::MAX);
    let begun = Instant::now();
    let (mut dropped, mut status, mut open) = (0, 0, true);
    while !stop.load(Ordering::Relaxed)
        && w.written < limit
        && ask.duration.is_none_or(|d| begun.elapsed() < d)
    {
        std::thread::sleep(READ_EVERY);
        match call::<CaptureBatch>(
            &mut client,
            &Method::CaptureRead(CaptureParams { id: started.id }),
        ) {
            Ok(b) => {
                dropped = b.dropped;
                if let Err(e) = w.write(&b, limit) {
                    // A reader that went away (`tshark -c`, `head`) ends it.
                    if e.kind() != std::io::ErrorKind::BrokenPipe {
                        let _ = writeln!(err, "xvsctl: capture: writing: {e}");
                        status = 1;
                    }
                    open = false;
                    break;
                }
            }
            Err(e) => {
                let _ = stop_capture(&mut client, started.id);
                return fail(err, &e);
            }
        }
    }
    if let Ok(b) = stop_capture(&mut client, started.id) {
        dropped = b.dropped;
        if open && w.written < limit {
            let _ = w.write(&b, limit);
        }
    }
    let _ = writeln!(
        err,
        "xvsctl: capture of {}: {} frames written, {dropped} lost (not read in time)",
        started.port, w.written
    );
    status
}

fn call<T: serde::de::DeserializeOwned>(c: &mut Client, m: &Method) -> Result<T, ClientError> {
    let v = c.call(m)?;
    serde_json::from_value(v).map_err(|e| ClientError::Protocol {
        path: String::new(),
        message: e.to_string(),
    })
}

fn stop_capture(c: &mut Client, id: u64) -> Result<CaptureBatch, ClientError> {
    call(c, &Method::CaptureStop(CaptureParams { id }))
}

fn fail(err: &mut dyn Write, e: &ClientError) -> i32 {
    let _ = writeln!(err, "xvsctl: capture: {e}");
    e.exit_code()
}

/// The pcapng stream: a section header and the port's interface block,
/// then a block per frame.
struct Writer<'w> {
    pcap: PcapNgWriter<&'w mut dyn Write>,
    written: u64,
}

/// pcap-file's error as the I/O error it mostly is (a closed pipe is
/// told apart by its kind).
fn io_error(e: pcap_file::PcapError) -> std::io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        other => std::io::Error::other(other.to_string()),
    }
}

impl<'w> Writer<'w> {
    fn start(sink: &'w mut dyn Write, c: &CaptureStarted) -> std::io::Result<Writer<'w>> {
        let mut pcap = PcapNgWriter::new(sink).map_err(io_error)?;
        pcap.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: c.snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(c.port.clone())),
                // Timestamps in nanoseconds.
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        })
        .map_err(io_error)?;
        pcap.get_mut().flush()?;
        Ok(Writer { pcap, written: 0 })
    }

    /// Writes `b`'s frames, up to `limit` in all, and flushes them.
    fn write(&mut self, b: &CaptureBatch, limit: u64) -> std::io::Result<()> {
        for pkt in &b.packets {
            if self.written >= limit {
                break;
            }
            let data = xvs_config::parse_hex(&pkt.data)
                .map_err(|e| std::io::Error::other(format!("xvsd sent a frame not in hex: {e}")))?;
            // pcapng's epb_flags: the direction in the low two bits.
            let flags = match pkt.dir {
                CaptureDirection::Out => 2,
                CaptureDirection::In | CaptureDirection::Both => 1,
            };
            self.pcap
                .write_pcapng_block(EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: Duration::from_nanos(pkt.ts_ns),
                    original_len: pkt.len,
                    data: Cow::Owned(data),
                    options: vec![EnhancedPacketOption::Flags(flags)],
                })
                .map_err(io_error)?;
            self.written += 1;
        }
        self.pcap.get_mut().flush()
    }
}
