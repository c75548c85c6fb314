//! What xvsctl reads from files or stdin: `batch FILE` (one or more
//! chained verbs a line, split into words as a shell would) and
//! `fdb-add BR --file FILE` (`MAC PORT [VLAN [REMOTE]]` a line). Every
//! error names the line; nothing is sent unless the whole input reads.

use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches};
use xvs_types::MacAddr;

use super::{Chained, Verb};
use crate::command::{self as cmd, Command};

fn read_input(file: &std::path::Path, stdin: &mut dyn Read) -> Result<String, String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        stdin
            .read_to_string(&mut s)
            .map_err(|e| format!("reading stdin: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
    }
}

/// `fdb-add BR --file FILE`: `MAC PORT [VLAN [REMOTE]]` per line; `#`
/// starts a comment.
pub(super) fn read_fdb_file(
    bridge: &str,
    file: &std::path::Path,
    stdin: &mut dyn Read,
) -> Result<Vec<Command>, String> {
    let text = read_input(file, stdin)?;
    let name = if file.as_os_str() == "-" {
        "stdin".to_string()
    } else {
        file.display().to_string()
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |m: String| format!("{name} line {}: {m}", i + 1);
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 || f.len() > 4 {
            return Err(at(format!(
                "expected MAC PORT [VLAN [REMOTE]], got {line:?}"
            )));
        }
        let mac: MacAddr = f[0].parse().map_err(|e| at(format!("{e}")))?;
        let vlan = match f.get(2) {
            Some(v) => v
                .parse::<u16>()
                .map_err(|_| at(format!("VLAN {v:?} is not a number")))?,
            None => 0,
        };
        let remote = match f.get(3) {
            Some(r) => Some(
                r.parse::<IpAddr>()
                    .map_err(|_| at(format!("remote {r:?} is not an IP address")))?,
            ),
            None => None,
        };
        out.push(Command::FdbAdd(cmd::FdbAdd {
            bridge: bridge.to_string(),
            mac,
            port: f[1].to_string(),
            vlan,
            remote,
        }));
    }
    Ok(out)
}

/// Splits a line into words as a shell would for simple cases: blanks
/// separate, '...' and "..." quote (backslash escapes inside "..."), `#`
/// at the start of a word begins a comment.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err("unterminated '".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x) => cur.push(x),
                            None => return Err("unterminated \"".into()),
                        },
                        Some(x) => cur.push(x),
                        None => return Err("unterminated \"".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `batch`: every line one or more chained (`--`) config-changing verbs.
pub(super) fn read_batch(
    file: Option<&std::path::Path>,
    stdin: &mut dyn Read,
) -> Result<Vec<Command>, String> {
    let dash = PathBuf::from("-");
    let file = file.unwrap_or(&dash);
    let text = read_input(file, stdin)?;
    let mut out = Vec::new();
    let mut no_input = std::io::empty();
    // Built once: clap builds the whole command tree on every
    // `try_parse_from`, which would dominate a batch of 100,000 lines.
    let mut app = Chained::command();
    for (i, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}", i + 1);
        let words = split_words(line).map_err(at)?;
        for group in words.split(|w| w == "--").filter(|g| !g.is_empty()) {
            let verb = app
                .try_get_matches_from_mut(group)
                .and_then(|m| Chained::from_arg_matches(&m))
                .map_err(|e| at(first_line(&e.to_string())))?
                .verb;
            if matches!(
                verb,
                Verb::FdbAdd { file: Some(_), .. } | Verb::Batch { .. }
            ) {
                return Err(at(format!(
                    "{} cannot read another file inside a batch",
                    verb.name()
                )));
            }
            match verb.commands(&mut no_input) {
                Some(Ok(cmds)) => out.extend(cmds),
                Some(Err(e)) => return Err(at(e)),
                None => {
                    return Err(at(format!(
                        "{} does not change the config: a batch holds only config commands",
                        verb.name()
                    )))
                }
            }
        }
    }
    Ok(out)
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"acl-add vm1 --prio 3 'udp,tp_dst=53' "a b\"c" x\ y # comment"#).unwrap(),
            vec![
                "acl-add",
                "vm1",
                "--prio",
                "3",
                "udp,tp_dst=53",
                "a b\"c",
                "x y"
            ]
        );
        assert_eq!(
            split_words("  # only a comment").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(split_words("''").unwrap(), vec![""]);
        assert!(split_words("'open").is_err());
        assert!(split_words("\"open").is_err());
    }
}
