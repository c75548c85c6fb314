//! xvsctl: the command line (clap), its translation into protocol calls,
//! and the human output. The binary is a thin wrapper around [`run`], so
//! tests can drive the whole tool in-process; completions and the man page
//! are generated from [`Cli`].
//!
//! Chaining: `xvsctl [OPTIONS] VERB ARGS -- VERB ARGS -- ...` sends every
//! config-changing verb of the call as one `transact` (as ovs-vsctl does).
//! The `--` separators are split off before clap sees the arguments, so a
//! verb cannot take a literal `--` argument.
//!
//! Exit codes: 0 ok; 1 the request was refused (by xvsd, or by xvsctl
//! itself: bad arguments, over the size limit); 2 xvsd could not be reached
//! or did not answer usably.
//!
//! Parts: `args.rs` is the grammar (the clap structs [`Cli`] and [`Verb`]
//! and their value parsers); `translate.rs` turns a parsed verb into config
//! commands or a protocol call; `input.rs` reads batch and fdb files;
//! `render.rs` is the human output (tables, the `show` tree). This file
//! runs a call: chaining, dispatch, transactions and their size limit, exit
//! codes. Everything public is re-exported here, so users name `cli::X`
//! only.

mod args;
mod capture;
mod input;
mod render;
mod trace;
mod translate;

pub use args::{Chained, Cli, Format, Verb, VlanList};
pub use input::split_words;
pub use render::{render, show_tree, table};

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::client::{Client, ClientError};
use crate::command::Command;
use crate::protocol::{Id, Method, Request, TransactParams, TransactResult, MAX_REQUEST_BYTES};
use input::read_batch;

/// Where the output goes; a struct so tests can capture it.
struct Io<'a> {
    stdin: &'a mut dyn Read,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

/// Runs xvsctl with `args` (the program name first) and returns the exit
/// status.
pub fn run(
    args: Vec<OsString>,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let mut io = Io { stdin, out, err };
    let prog = args.first().cloned().unwrap_or_else(|| "xvsctl".into());
    let rest = args.get(1..).unwrap_or(&[]);
    let mut groups = rest.split(|a| a == "--").map(ovs_style_flags);
    let first: Vec<OsString> = std::iter::once(prog)
        .chain(groups.next().unwrap_or_default())
        .collect();
    let cli = match Cli::try_parse_from(first) {
        Ok(c) => c,
        Err(e) => return clap_exit(e, &mut io),
    };
    let mut verbs = vec![cli.verb];
    for g in groups {
        if g.is_empty() {
            let _ = writeln!(io.err, "xvsctl: empty command between `--` separators");
            return 1;
        }
        match Chained::try_parse_from(&g) {
            Ok(c) => verbs.push(c.verb),
            Err(e) => return clap_exit(e, &mut io),
        }
    }
    let opts = Opts {
        socket: cli.socket,
        format: cli.format,
        timeout: cli.timeout,
    };
    if verbs.len() > 1 {
        let mut cmds = Vec::new();
        for v in &verbs {
            if matches!(v, Verb::Batch { .. }) {
                let _ = writeln!(io.err, "xvsctl: batch cannot be chained");
                return 1;
            }
            match v.commands(io.stdin) {
                Some(Ok(c)) => cmds.extend(c),
                Some(Err(e)) => {
                    let _ = writeln!(io.err, "xvsctl: {e}");
                    return 1;
                }
                None => {
                    let _ = writeln!(
                        io.err,
                        "xvsctl: {} cannot be chained: only config-changing commands go in a transaction",
                        v.name()
                    );
                    return 1;
                }
            }
        }
        return transact(&opts, cmds, false, &mut io);
    }
    let verb = verbs.remove(0);
    single(&opts, verb, &mut io)
}

/// ovs-vsctl puts `--may-exist` and `--if-exists` before the verb
/// (`--may-exist add-br br0`); clap wants them after it. Moves them there.
fn ovs_style_flags(group: &[OsString]) -> Vec<OsString> {
    let with_value = ["--socket", "--format", "--timeout"];
    let mut moved = Vec::new();
    let mut out = Vec::with_capacity(group.len());
    let mut i = 0;
    while i < group.len() {
        let a = &group[i];
        let s = a.to_string_lossy();
        if s == "--may-exist" || s == "--if-exists" {
            moved.push(a.clone());
        } else if with_value.contains(&s.as_ref()) {
            out.extend(group[i..(i + 2).min(group.len())].iter().cloned());
            i += 2;
            continue;
        } else if !s.starts_with('-') {
            // The verb: the rest is its own.
            out.extend(group[i..].iter().cloned());
            out.extend(moved);
            return out;
        } else {
            out.push(a.clone());
        }
        i += 1;
    }
    out.extend(moved);
    out
}

struct Opts {
    socket: PathBuf,
    format: Format,
    timeout: Duration,
}

fn clap_exit(e: clap::Error, io: &mut Io<'_>) -> i32 {
    use clap::error::ErrorKind;
    let text = e.render().to_string();
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(io.out, "{}", e.render());
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                1
            } else {
                0
            }
        }
        // A usage error is a refused request (1), not an unreachable
        // daemon (2, clap's own default).
        _ => {
            let _ = write!(io.err, "{text}");
            1
        }
    }
}

fn single(opts: &Opts, verb: Verb, io: &mut Io<'_>) -> i32 {
    match &verb {
        Verb::Completions { shell } => {
            let mut c = Cli::command();
            clap_complete::generate(*shell, &mut c, "xvsctl", io.out);
            return 0;
        }
        Verb::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            return match man.render(io.out) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = writeln!(io.err, "xvsctl: {e}");
                    1
                }
            };
        }
        Verb::Model { verb } => {
            let mut cx = crate::model::cli::Ctx {
                socket: &opts.socket,
                timeout: opts.timeout,
                json: opts.format == Format::Json,
                out: io.out,
                err: io.err,
            };
            return crate::model::cli::run(verb, &mut cx);
        }
        Verb::Batch { file, chunked } => {
            return match read_batch(file.as_deref(), io.stdin) {
                Ok(cmds) if cmds.is_empty() => {
                    let _ = writeln!(io.err, "xvsctl: the batch holds no command");
                    1
                }
                Ok(cmds) => transact(opts, cmds, *chunked, io),
                Err(e) => {
                    let _ = writeln!(io.err, "xvsctl: batch: {e}");
                    1
                }
            };
        }
        Verb::Capture {
            port,
            direction,
            count,
            write,
            snaplen,
            duration,
        } => {
            let ask = capture::Ask {
                port,
                direction: match direction.as_str() {
                    "in" => crate::protocol::CaptureDirection::In,
                    "out" => crate::protocol::CaptureDirection::Out,
                    _ => crate::protocol::CaptureDirection::Both,
                },
                count: *count,
                duration: duration.map(Duration::from_secs_f64),
                snaplen: *snaplen,
                file: write,
            };
            return capture::run(&opts.socket, opts.timeout, &ask, io.out, io.err);
        }
        Verb::Restart { wait } => {
            return restart(&opts.socket, opts.timeout, Duration::from_secs(*wait), io);
        }
        Verb::Trace { spec, .. } => {
            // A spec that is neither hex nor a match is the user's to fix,
            // before any call.
            if let Err(e) = trace::frame_hex(spec) {
                let _ = writeln!(io.err, "xvsctl: trace: {e}");
                return 1;
            }
        }
        _ => {}
    }
    if let Some(cmds) = verb.commands(io.stdin) {
        let chunked = matches!(verb, Verb::FdbAdd { chunked: true, .. });
        return match cmds {
            Ok(c) if c.is_empty() => {
                let _ = writeln!(io.err, "xvsctl: nothing to do (no entry read)");
                1
            }
            Ok(c) => transact(opts, c, chunked, io),
            Err(e) => {
                let _ = writeln!(io.err, "xvsctl: {e}");
                1
            }
        };
    }
    let Some(method) = verb.method() else {
        let _ = writeln!(
            io.err,
            "xvsctl: {} is not handled here (a bug)",
            verb.name()
        );
        return 1;
    };
    let result = Client::connect(&opts.socket, opts.timeout).and_then(|mut c| c.call(&method));
    let value = match result {
        Ok(v) => v,
        Err(e) => return report(&e, io),
    };
    let text = match opts.format {
        Format::Json => serde_json::to_string_pretty(&value)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Table => render(&method, value),
    };
    match text {
        Ok(t) => {
            let _ = io.out.write_all(t.as_bytes());
            0
        }
        Err(e) => {
            let _ = writeln!(
                io.err,
                "xvsctl: unexpected answer to {}: {e} (is xvsd of another protocol version?)",
                method.name()
            );
            2
        }
    }
}

fn report(e: &ClientError, io: &mut Io<'_>) -> i32 {
    match e {
        ClientError::Rejected(r) if e.exit_code() == 1 => {
            let problems = r.problems();
            if problems.len() == 1 && problems[0] == r.message {
                let _ = writeln!(io.err, "xvsctl: {}", r.message);
            } else {
                let _ = writeln!(io.err, "xvsctl: rejected, {} problem(s):", problems.len());
                for p in problems {
                    let _ = writeln!(io.err, "  - {p}");
                }
            }
        }
        other => {
            let _ = writeln!(io.err, "xvsctl: {other}");
        }
    }
    e.exit_code()
}

/// Splits commands into transactions that each fit the request limit.
fn chunks(cmds: Vec<Command>) -> Vec<Vec<Command>> {
    // The envelope around the commands is well under this.
    let budget = MAX_REQUEST_BYTES - 512;
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut size = 0;
    for c in cmds {
        let n = serde_json::to_vec(&c)
            .map(|v| v.len() + 1)
            .unwrap_or(budget);
        if !cur.is_empty() && size + n > budget {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += n;
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn request_size(cmds: &[Command]) -> usize {
    let req = Request::new(
        Id::Number(1),
        &Method::Transact(TransactParams {
            commands: cmds.to_vec(),
        }),
    );
    serde_json::to_vec(&req)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

fn transact(opts: &Opts, cmds: Vec<Command>, chunked: bool, io: &mut Io<'_>) -> i32 {
    let n = cmds.len();
    let size = request_size(&cmds);
    let parts = if size <= MAX_REQUEST_BYTES {
        vec![cmds]
    } else if chunked {
        chunks(cmds)
    } else {
        let _ = writeln!(
            io.err,
            "xvsctl: {n} commands make a {size}-byte request, over the {MAX_REQUEST_BYTES}-byte limit: \
             split them, or pass --chunked to send several transactions (each atomic, not all together)"
        );
        return 1;
    };
    let mut client = match Client::connect(&opts.socket, opts.timeout) {
        Ok(c) => c,
        Err(e) => return report(&e, io),
    };
    let total = parts.len();
    let mut applied = 0;
    let mut changed = false;
    for (i, part) in parts.into_iter().enumerate() {
        let len = part.len();
        match client.transact(part) {
            Ok(r) => {
                applied += r.applied;
                changed |= r.changed;
            }
            Err(e) => {
                if total > 1 {
                    let _ = writeln!(
                        io.err,
                        "xvsctl: transaction {} of {total} (commands {}..{}) failed; the {applied} commands before it were committed",
                        i + 1,
                        applied + 1,
                        applied + len
                    );
                }
                return report(&e, io);
            }
        }
    }
    if opts.format == Format::Json {
        let r = TransactResult { applied, changed };
        let _ = writeln!(
            io.out,
            "{}",
            serde_json::to_string_pretty(&r).unwrap_or_default()
        );
    }
    0
}

#[cfg(test)]
mod testutil {
    use clap::Parser;

    use super::{Cli, Verb};

    /// `args` parsed as xvsctl's (the program name added), clap's error as
    /// text.
    pub fn parse(args: &[&str]) -> Result<Verb, String> {
        let mut all = vec!["xvsctl"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
            .map(|c| c.verb)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command as cmd;
    use xvs_types::MacAddr;

    #[test]
    fn big_transactions_are_split_under_the_limit() {
        let cmds: Vec<Command> = (0..30_000u64)
            .map(|i| {
                Command::FdbAdd(cmd::FdbAdd {
                    bridge: "br0".into(),
                    mac: MacAddr::from_u64(0x0200_0000_0000 | i),
                    port: "vm1".into(),
                    vlan: 0,
                    remote: None,
                })
            })
            .collect();
        assert!(request_size(&cmds) > MAX_REQUEST_BYTES);
        let parts = chunks(cmds.clone());
        assert!(parts.len() >= 2);
        assert!(parts.iter().all(|p| request_size(p) <= MAX_REQUEST_BYTES));
        assert_eq!(parts.concat(), cmds, "nothing lost or reordered");
    }

    #[test]
    fn ovs_vsctl_style_flags_before_the_verb() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            ovs_style_flags(&os(&["--socket", "/x", "--may-exist", "add-br", "br0"])),
            os(&["--socket", "/x", "add-br", "br0", "--may-exist"])
        );
        assert_eq!(
            ovs_style_flags(&os(&["--if-exists", "del-port", "vm1"])),
            os(&["del-port", "vm1", "--if-exists"])
        );
        let same = os(&["add-flow", "br0", "--may-exist"]);
        assert_eq!(ovs_style_flags(&same), same);
    }
}

/// `xvsctl restart`: the daemon starts its binary again, which takes its
/// sockets over; then waits (at most `wait`) until the control socket
/// answers from the new process.
fn restart(socket: &std::path::Path, timeout: Duration, wait: Duration, io: &mut Io) -> i32 {
    use crate::client::Client;
    use crate::protocol::{Method, RestartResult};
    let asked = Client::connect(socket, timeout).and_then(|mut c| {
        let old = c.hello()?.pid;
        let r: RestartResult = c.call_as(&Method::Restart)?;
        Ok((old, r.pid))
    });
    let (old, new) = match asked {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(io.err, "xvsctl: restart: {e}");
            return e.exit_code();
        }
    };
    let started = std::time::Instant::now();
    while started.elapsed() < wait {
        std::thread::sleep(Duration::from_millis(100));
        let pid = Client::connect(socket, timeout)
            .and_then(|mut c| c.hello())
            .ok()
            .and_then(|h| h.pid);
        if pid == Some(new) {
            let _ = writeln!(
                io.out,
                "xvsd {new} took over from {} in {:.1} s",
                old.map_or("the old daemon".to_string(), |p| p.to_string()),
                started.elapsed().as_secs_f64()
            );
            return 0;
        }
    }
    let _ = writeln!(
        io.err,
        "xvsctl: restart: the new xvsd ({new}) did not answer within {wait:?}: see its log; \
         the old one forwards unless it said otherwise"
    );
    1
}
