//! The fuzz inputs the repository keeps, replayed on the stable toolchain
//! by the ordinary test suite: every file of `fuzz/regressions/<target>/`
//! (crashes libFuzzer found, kept so they stay fixed) and of
//! `fuzz/corpus/<target>/` (the seeds) through its target. Also checks
//! that the replay cannot silently find nothing: every target has a corpus,
//! every input directory names a target, every cargo-fuzz entry point has
//! a body here, and the committed seeds are the ones `seeds.rs` builds.

use std::collections::BTreeSet;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use xvs_fuzz_targets::seeds::{fuzz_dir, seeds};
use xvs_fuzz_targets::TARGETS;

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.expect("reading a fuzz input directory").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn subdirs(dir: &Path) -> BTreeSet<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    rd.map(|e| e.expect("reading fuzz/").path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn regressions_and_corpus_replay_clean() {
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, target) in TARGETS {
        for kind in ["regressions", "corpus"] {
            for path in files(&fuzz_dir().join(kind).join(name)) {
                let data = fs::read(&path).expect("reading a fuzz input");
                ran += 1;
                // Every failing file is listed, not just the first; the
                // panic hook has already printed each one's message.
                if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
                    failed.push(format!(
                        "{}\n    reproduce: cargo test -p xvs-fuzz-targets --test replay, or \
                         cargo +nightly fuzz run --fuzz-dir fuzz/harness {name} {}",
                        path.display(),
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(
        ran > 0,
        "no fuzz inputs found under {}",
        fuzz_dir().display()
    );
    assert!(
        failed.is_empty(),
        "{} fuzz input(s) crash their target:\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}

#[test]
fn every_target_has_a_corpus() {
    for (name, _) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        assert!(
            !files(&dir).is_empty(),
            "no seed inputs in {}",
            dir.display()
        );
    }
}

#[test]
fn input_directories_name_targets() {
    let known: BTreeSet<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    for kind in ["corpus", "regressions"] {
        for d in subdirs(&fuzz_dir().join(kind)) {
            assert!(
                known.contains(&d),
                "fuzz/{kind}/{d} is not a target (so it is never replayed): one of {known:?}"
            );
        }
    }
}

#[test]
fn every_entry_point_has_a_body() {
    let known: BTreeSet<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    let entry: BTreeSet<String> = files(&fuzz_dir().join("harness/fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entry, known, "fuzz/harness/fuzz_targets vs TARGETS");
}

/// Set `XVS_WRITE_SEEDS=1` to (re)write them after changing `seeds.rs`.
#[test]
fn committed_seeds_are_current() {
    let write = std::env::var_os("XVS_WRITE_SEEDS").is_some();
    let mut stale = Vec::new();
    for s in seeds() {
        let dir = fuzz_dir().join("corpus").join(s.target);
        let path = dir.join(s.name);
        if write {
            fs::create_dir_all(&dir).expect("creating a corpus directory");
            fs::write(&path, &s.data).expect("writing a seed");
        } else if fs::read(&path).ok().as_deref() != Some(&s.data[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "seeds missing or different from seeds.rs (rewrite with XVS_WRITE_SEEDS=1 \
         cargo test -p xvs-fuzz-targets --test replay committed_seeds_are_current): {stale:?}"
    );
}
