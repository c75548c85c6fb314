//! The state file xvsd reads at start (`xvsd::state::load`: the whole
//! file as UTF-8, then `serde_json` into a `Config`), followed by what the
//! daemon does with it (compile it into a snapshot). The file is xvsd's
//! own, but a torn disk, a hand edit or an older xvsd can leave anything
//! in it: a bad one must be an error, never a panic.
//!
//! Also: what xvsd would save of a loaded config loads back the same, or
//! a restart would silently change the configuration. The `meta` records
//! are left out of that comparison: they are opaque JSON of higher control
//! planes, and serde_json's float parsing is not exact for every literal.
//!
//! xvsd itself is not a dependency (it links libbpf); the two calls above
//! are all its loader is.

use xvs_config::Config;
use xvs_dataplane::control::Control;

pub fn state_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = serde_json::from_str::<Config>(text) else {
        return;
    };
    let saved = serde_json::to_string(&config).expect("a loaded config serializes");
    let mut reloaded: Config = serde_json::from_str(&saved)
        .unwrap_or_else(|e| panic!("saved state does not load back ({e}): {saved}"));
    let mut loaded = config.clone();
    loaded.meta.clear();
    reloaded.meta.clear();
    assert_eq!(loaded, reloaded, "saved state loads back different");
    let _ = Control::new().apply(config);
}
