//! The one rule for tests that depend on their environment. A test states
//! what it needs first (`if !require_root() { return; }`), and what
//! happens when that is missing depends on who runs it:
//!
//! - By hand (no `XVS_REQUIRE_ALL`), a missing requirement skips the test
//!   loudly: the line goes straight to the terminal, past cargo's capture
//!   of passing tests' output, so a green run cannot hide it.
//! - Under `XVS_REQUIRE_ALL=1` (set by `scripts/test.sh`, and so by CI), a
//!   missing root, tool or file *fails* the test with its reason: the
//!   script installed everything, so a missing piece is a defect of the
//!   set-up, not of the machine.
//! - A kernel feature that this very machine's kernel refuses (probed by
//!   the caller, never assumed) skips under both, because no install step
//!   can fix it.
//!
//! Every skip is appended to the file named by `XVS_SKIP_LOG` (one
//! `test: reason` line), which `scripts/test.sh` prints at the end of the
//! run.

use std::io::Write;
use std::path::Path;

/// The variable that turns missing requirements into failures.
pub const REQUIRE_ALL: &str = "XVS_REQUIRE_ALL";
/// The variable naming the file every skip is appended to.
pub const SKIP_LOG: &str = "XVS_SKIP_LOG";

/// Whether missing requirements fail (`XVS_REQUIRE_ALL=1`) rather than skip.
pub fn require_all() -> bool {
    std::env::var(REQUIRE_ALL).is_ok_and(|v| v == "1")
}

/// The running test, as `binary::path::to::test`: libtest names each
/// test's thread after the test, and the binary tells which crate's tests.
pub fn test_name() -> String {
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        // target/debug/deps/NAME-HASH
        .map(|s| match s.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_owned(),
            _ => s,
        })
        .unwrap_or_else(|| "?".into());
    let thread = std::thread::current();
    match thread.name() {
        Some(t) if t != "main" => format!("{bin}::{t}"),
        _ => bin,
    }
}

/// Whether the process runs as root (namespaces, BPF, AF_XDP).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The test needs root. True if it has it; otherwise fails the test under
/// `XVS_REQUIRE_ALL=1`, else skips it loudly and returns false.
#[must_use = "return from the test when this is false"]
pub fn require_root() -> bool {
    is_root() || missing("needs root (network namespaces, BPF, AF_XDP)")
}

/// The test needs the program `tool` (on `PATH`, or at that path). True
/// if it is there; else as [`require_root`].
#[must_use = "return from the test when this is false"]
pub fn require_tool(tool: &str) -> bool {
    find_tool(tool).is_some() || missing(&format!("{tool} not found on PATH (not installed)"))
}

/// The test needs the file `path` (`what` says what provides it). True
/// if it exists; else as [`require_root`].
#[must_use = "return from the test when this is false"]
pub fn require_file(path: &str, what: &str) -> bool {
    Path::new(path).exists() || missing(&format!("{path} missing ({what})"))
}

/// The test needs a kernel feature, `feature`, that `probe` tries on this
/// machine: `Ok` if the kernel accepts it, `Err(reason)` if the kernel
/// refused it (an errno from the syscall that asks for it). A probe must
/// panic on any other failure, because only the kernel's own refusal may
/// skip a test under `XVS_REQUIRE_ALL=1`. Returns whether the test can
/// go on; a refusal is always a recorded skip.
#[must_use = "return from the test when this is false"]
pub fn require_kernel_feature(feature: &str, probe: impl FnOnce() -> Result<(), String>) -> bool {
    match probe() {
        Ok(()) => true,
        Err(reason) => {
            skip(&format!("this kernel refuses {feature}: {reason}"));
            false
        }
    }
}

/// Where `tool` would be run from.
pub fn find_tool(tool: &str) -> Option<std::path::PathBuf> {
    if tool.contains('/') {
        let p = Path::new(tool);
        return p.is_file().then(|| p.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A requirement that an install step could have met is missing.
fn missing(reason: &str) -> bool {
    if require_all() {
        panic!(
            "{}: {reason} ({REQUIRE_ALL}=1: a missing requirement fails the test; \
             scripts/test.sh installs what the tests need)",
            test_name()
        );
    }
    skip(reason);
    false
}

/// Records a skip where nobody can miss it.
fn skip(reason: &str) {
    let line = format!("{}: {reason}", test_name());
    // Straight to fd 2: `eprintln!` of a passing test is captured by the
    // harness and never shown.
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {line}");
    if let Some(log) = std::env::var_os(SKIP_LOG) {
        // One write of one short line with O_APPEND: lines of tests running
        // in parallel processes do not interleave.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_on_path_is_found_and_a_missing_one_is_not() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("/bin/sh").is_some());
        assert!(find_tool("xvs-no-such-tool-here").is_none());
        assert!(find_tool("/nonexistent/xvs-tool").is_none());
    }

    #[test]
    fn the_test_name_is_the_binary_and_the_test() {
        let n = test_name();
        assert!(
            n.ends_with("the_test_name_is_the_binary_and_the_test"),
            "{n}"
        );
        assert!(n.starts_with("xvs_tests::"), "{n}");
    }

    #[test]
    fn a_refused_kernel_feature_skips_and_is_logged() {
        let log = std::env::temp_dir().join(format!("xvs-skiplog-{}", std::process::id()));
        let _ = std::fs::remove_file(&log);
        // Only this test touches the variable, and it puts back what the
        // run set (other tests of this binary never skip).
        let before = std::env::var_os(SKIP_LOG);
        std::env::set_var(SKIP_LOG, &log);
        let go = require_kernel_feature("frobnication", || Err("EPERM".into()));
        match before {
            Some(v) => std::env::set_var(SKIP_LOG, v),
            None => std::env::remove_var(SKIP_LOG),
        }
        assert!(!go);
        let text = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        assert!(
            text.contains("a_refused_kernel_feature_skips_and_is_logged: this kernel refuses frobnication: EPERM"),
            "{text}"
        );
        assert!(require_kernel_feature("frobnication", || Ok(())));
    }
}
