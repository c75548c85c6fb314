//! The config's mirrors compiled for workers: each mirror's output port,
//! each source port's list of mirrors per direction (ports with the same
//! list share one), and the outputs marked as carrying nothing else.

use rustc_hash::FxHashMap;

use super::compile::Layout;
use crate::snapshot::{MirrorEntry, PortEntry};
use xvs_config::Config;

/// The snapshot's mirrors and mirror sets; sets each source's
/// [`PortEntry::mirror`] slots and each output's
/// [`PortEntry::mirror_output`] in `layout`. The config is valid: every
/// name is a port or tunnel of it.
pub(super) fn mirrors(config: &Config, layout: &mut Layout) -> (Vec<MirrorEntry>, Vec<Box<[u16]>>) {
    let mut entries = Vec::with_capacity(config.mirrors.len());
    // Per port number, the mirrors of its [in, out] direction, in the
    // config's order.
    let mut lists: FxHashMap<u16, [Vec<u16>; 2]> = FxHashMap::default();
    for (i, m) in config.mirrors.iter().enumerate() {
        // Indices follow the config's list, so that counters read back by
        // index name the right mirror; port 0 is never a port, and a
        // worker drops the copies of a mirror without an output.
        let to = layout.number(&m.to).unwrap_or(0);
        let idx = i as u16;
        entries.push(MirrorEntry { to });
        set(&mut layout.ports, to, |e| e.mirror_output = true);
        for s in &m.src {
            let Some(n) = layout.number(s) else { continue };
            let l = lists.entry(n).or_default();
            if m.dir.ingress() {
                l[0].push(idx);
            }
            if m.dir.egress() {
                l[1].push(idx);
            }
        }
    }
    let mut sets: Vec<Box<[u16]>> = Vec::new();
    let mut ports: Vec<_> = lists.into_iter().collect();
    // The same config gives the same sets in the same order, so an
    // unchanged config compiles to an equal snapshot (no policy reset).
    ports.sort_unstable_by_key(|(n, _)| *n);
    for (n, dirs) in ports {
        for (d, list) in dirs.into_iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let k = match sets.iter().position(|s| **s == *list) {
                Some(k) => k,
                None => {
                    sets.push(list.into_boxed_slice());
                    sets.len() - 1
                }
            };
            set(&mut layout.ports, n, |e| e.mirror[d] = Some(k as u16));
        }
    }
    (entries, sets)
}

fn set(ports: &mut [PortEntry], n: u16, f: impl FnOnce(&mut PortEntry)) {
    if n == 0 {
        return;
    }
    if let Some(e) = ports.get_mut(usize::from(n)) {
        f(e);
    }
}
