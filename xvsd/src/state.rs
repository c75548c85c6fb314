//! The persisted desired configuration (`xvsd --state PATH`, default
//! /var/lib/xvs/state.json): written after every committed transaction,
//! read at start, so that nothing acknowledged is lost to a crash.
//!
//! A save is atomic: the JSON goes to a temporary file in the same
//! directory, which is fsynced and renamed over the old file, and the
//! directory is fsynced so the rename itself is durable. A reader sees the
//! old state or the new one, never a mix. A state file that does not parse
//! is an error naming the file, line and column; the daemon refuses to
//! start on it unless told to start empty.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use xvs_dataplane::config::Config;

/// The default state file.
pub const DEFAULT_STATE: &str = "/var/lib/xvs/state.json";

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt ({source}); start with --start-empty to discard it")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the state; `None` when there is no file yet.
pub fn load(path: &Path) -> Result<Option<Config>, StateError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| StateError::Corrupt {
            path: path.to_owned(),
            source,
        })
}

/// Writes `config` as the state, atomically and durably.
pub fn save(path: &Path, config: &Config) -> Result<(), StateError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut json = serde_json::to_vec_pretty(config).map_err(|source| StateError::Corrupt {
        path: path.to_owned(),
        source,
    })?;
    json.push(b'\n');
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state.json".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(path)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_dataplane::config::BridgeConfig;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "xvs-state-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn save_then_load_round_trips_and_missing_is_none() {
        let d = dir();
        let path = d.join("sub").join("state.json");
        assert!(load(&path).unwrap().is_none());
        let c = Config {
            bridges: vec![BridgeConfig::new("br0")],
            ..Default::default()
        };
        save(&path, &c).unwrap();
        assert_eq!(load(&path).unwrap(), Some(c.clone()));
        // No temporary file is left behind.
        let files: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(files.len(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_corrupt_state_is_an_error_that_names_the_place() {
        let d = dir();
        fs::create_dir_all(&d).unwrap();
        let path = d.join("state.json");
        fs::write(&path, "{\"bridges\": [{\"name\": \"br0\"}").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("state.json") && e.contains("line 1"), "{e}");
        assert!(e.contains("--start-empty"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}
