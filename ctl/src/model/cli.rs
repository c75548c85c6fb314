//! `xvsctl model validate|apply|show`: the network model on the command
//! line. Validation runs in xvsctl (it needs no daemon); apply reads the
//! running config, diffs, and sends one transaction that also records the
//! model, so a second apply of the same file sends nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::validate::SysInterfaces;
use super::{compile, diff, validate, Model, Record};
use crate::client::{Client, ClientError};
use crate::command::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelFormat {
    Toml,
    Json,
}

/// What `xvsctl model` does.
#[derive(Debug, Subcommand)]
pub enum ModelVerb {
    /// List every violation of a model file at once (exit 1 if any).
    Validate {
        /// TOML, or JSON if the name ends in .json.
        file: PathBuf,
        /// This host's phys: also check that its interfaces exist here.
        #[arg(long)]
        local: Option<String>,
    },
    /// Apply a model as this host's phys: the smallest change from the
    /// running config, as one transaction (nothing if already applied).
    Apply {
        file: PathBuf,
        #[arg(long)]
        local: String,
        /// Print the commands instead of sending them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the model that was applied.
    Show {
        /// `xvsctl --format json model show` means JSON too.
        #[arg(long, alias = "as", value_enum)]
        format: Option<ModelFormat>,
    },
}

/// Output channels and connection options from the main CLI.
pub(crate) struct Ctx<'a> {
    pub socket: &'a Path,
    pub timeout: Duration,
    pub json: bool,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

/// Runs one `model` verb; returns the exit status (0 ok, 1 refused or
/// invalid, 2 daemon unreachable).
pub(crate) fn run(verb: &ModelVerb, cx: &mut Ctx<'_>) -> i32 {
    match verb {
        ModelVerb::Validate { file, local } => {
            let Some(model) = load(file, cx) else {
                return 1;
            };
            match validate(&model, local.as_deref(), &SysInterfaces) {
                Ok(()) => {
                    if cx.json {
                        let _ = writeln!(cx.out, "{}", json!({"valid": true, "violations": []}));
                    } else {
                        let _ = writeln!(cx.out, "{}: valid", file.display());
                    }
                    0
                }
                Err(v) => {
                    if cx.json {
                        let list: Vec<_> = v
                            .iter()
                            .map(|x| json!({"object": x.object, "message": x.message}))
                            .collect();
                        let _ = writeln!(cx.out, "{}", json!({"valid": false, "violations": list}));
                    } else {
                        let _ = writeln!(cx.err, "{}: {} violation(s):", file.display(), v.len());
                        for x in &v {
                            let _ = writeln!(cx.err, "  - {x}");
                        }
                    }
                    1
                }
            }
        }
        ModelVerb::Apply {
            file,
            local,
            dry_run,
        } => {
            let Some(model) = load(file, cx) else {
                return 1;
            };
            if let Err(v) = validate(&model, Some(local), &SysInterfaces) {
                let _ = writeln!(
                    cx.err,
                    "xvsctl: {}: {} violation(s), nothing applied:",
                    file.display(),
                    v.len()
                );
                for x in &v {
                    let _ = writeln!(cx.err, "  - {x}");
                }
                return 1;
            }
            let mut client = match Client::connect(cx.socket, cx.timeout) {
                Ok(c) => c,
                Err(e) => return fail(&e, cx),
            };
            let running = match client.show() {
                Ok(c) => c,
                Err(e) => return fail(&e, cx),
            };
            let cmds = plan(&running, &model, local);
            if cmds.is_empty() {
                let _ = writeln!(cx.out, "model unchanged");
                return 0;
            }
            if *dry_run {
                print_commands(&cmds, cx);
                return 0;
            }
            let n = cmds.len();
            match client.transact(cmds) {
                Ok(r) => {
                    if cx.json {
                        let _ = writeln!(
                            cx.out,
                            "{}",
                            json!({"commands": n, "applied": r.applied, "changed": r.changed})
                        );
                    } else {
                        let _ = writeln!(cx.out, "model applied: {n} command(s)");
                    }
                    0
                }
                Err(e) => fail(&e, cx),
            }
        }
        ModelVerb::Show { format } => {
            let running = match Client::connect(cx.socket, cx.timeout).and_then(|mut c| c.show()) {
                Ok(c) => c,
                Err(e) => return fail(&e, cx),
            };
            let Some(rec) = Record::of(&running) else {
                let _ = writeln!(cx.err, "xvsctl: no model has been applied");
                return 1;
            };
            let format = format.unwrap_or(if cx.json {
                ModelFormat::Json
            } else {
                ModelFormat::Toml
            });
            let text = match format {
                ModelFormat::Toml => format!("# local = {:?}\n{}", rec.local, rec.model.to_toml()),
                ModelFormat::Json => {
                    serde_json::to_string_pretty(&json!({"local": rec.local, "model": rec.model}))
                        .unwrap_or_default()
                        + "\n"
                }
            };
            let _ = cx.out.write_all(text.as_bytes());
            0
        }
    }
}

/// The commands that apply `model` as phys `local` on top of `running`.
pub fn plan(running: &xvs_config::Config, model: &Model, local: &str) -> Vec<Command> {
    let old = Record::of(running)
        .map(|r| compile(&r.model, &r.local))
        .unwrap_or_default();
    let new = compile(model, local);
    let record = serde_json::to_value(Record {
        local: local.to_string(),
        model: model.clone(),
    })
    .unwrap_or_default();
    diff(running, &old, &new, &record)
}

fn load(file: &Path, cx: &mut Ctx<'_>) -> Option<Model> {
    match Model::load(file) {
        Ok(m) => Some(m),
        Err(e) => {
            let _ = writeln!(cx.err, "xvsctl: {e}");
            None
        }
    }
}

fn print_commands(cmds: &[Command], cx: &mut Ctx<'_>) {
    for c in cmds {
        if cx.json {
            let _ = writeln!(cx.out, "{}", serde_json::to_string(c).unwrap_or_default());
        } else {
            let _ = writeln!(cx.out, "{}", c.label());
        }
    }
}

fn fail(e: &ClientError, cx: &mut Ctx<'_>) -> i32 {
    match e {
        ClientError::Rejected(r) => {
            let _ = writeln!(cx.err, "xvsctl: model apply rejected, nothing changed:");
            for p in r.problems() {
                let _ = writeln!(cx.err, "  - {p}");
            }
        }
        other => {
            let _ = writeln!(cx.err, "xvsctl: {other}");
        }
    }
    e.exit_code()
}
