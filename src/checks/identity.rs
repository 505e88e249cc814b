//! Rule 4: information that must be unique per server (SSH host keys, machine-id) is not
//! in the image and is different on every boot.

use super::{Judgement, fail, list, pass, short, skip};
use crate::facts::{BootFacts, Facts, Offline, OfflineFacts};

/// `hostkeys.absent`: no SSH host key files in the image.
pub(super) fn host_keys_absent(f: &OfflineFacts, _: &Facts) -> Judgement {
    if f.host_keys.is_empty() {
        return pass("no host key files");
    }
    let paths: Vec<String> = f.host_keys.iter().map(|k| k.path.clone()).collect();
    fail(format!("host keys baked in: {}", list(&paths)))
}

/// `hostkeys.regenerated`: the running guest has host keys, and none is the image's.
pub(super) fn host_keys_regenerated(b: &BootFacts, facts: &Facts) -> Judgement {
    match (&b.host_key_sha256, &b.probe, &facts.offline) {
        (None, _, _) => skip("no SSH handshake"),
        (Some(_), Some(p), _) if p.host_keys.iter().any(|k| k.sha256.is_empty()) => {
            skip("the probe could not read the host key files (login user without root or sudo)")
        }
        (Some(_), Some(p), Offline::Read(off)) => {
            let kept: Vec<String> = p
                .host_keys
                .iter()
                .filter(|k| off.host_keys.iter().any(|o| o.sha256 == k.sha256))
                .map(|k| k.path.clone())
                .collect();
            if kept.is_empty() {
                pass(format!(
                    "{} host key file(s) generated at boot",
                    p.host_keys.len()
                ))
            } else {
                fail(format!("still the image's baked key: {}", list(&kept)))
            }
        }
        (Some(fp), _, _) => pass(format!("host key SHA256 {}", short(fp))),
    }
}

/// `hostkeys.unique`: every boot's SSH handshake showed a different host key.
pub(super) fn host_keys_unique(facts: &Facts) -> Judgement {
    let keys: Vec<(usize, &String)> = facts
        .boots
        .iter()
        .filter_map(|b| b.host_key_sha256.as_ref().map(|k| (b.index, k)))
        .collect();
    if keys.len() < 2 {
        return skip(format!(
            "needs two boots with an SSH handshake, had {}",
            keys.len()
        ));
    }
    match duplicate(&keys) {
        Some((a, b, k)) => fail(format!(
            "boots {a} and {b} have the same host key SHA256 {}",
            short(k)
        )),
        None => pass(format!("{} different host keys", keys.len())),
    }
}

/// `machine-id.empty`: the image's `/etc/machine-id` is empty or absent.
pub(super) fn machine_id_empty(f: &OfflineFacts, _: &Facts) -> Judgement {
    match &f.machine_id {
        None => pass("/etc/machine-id empty or absent"),
        Some(m) => fail(format!("/etc/machine-id is set: {m}")),
    }
}

/// `machine-id.unique`: the probed boots have different machine-ids.
pub(super) fn machine_id_unique(facts: &Facts) -> Judgement {
    if matches!(&facts.offline, Offline::Read(f) if f.machine_id.is_some()) {
        return skip("the image has a machine-id (see machine-id.empty)");
    }
    let ids: Vec<(usize, &String)> = facts
        .boots
        .iter()
        .filter_map(|b| b.probe.as_ref().map(|p| (b.index, &p.machine_id)))
        .collect();
    if ids.len() < 2 {
        return skip(format!("needs two probed boots, had {}", ids.len()));
    }
    if ids.iter().all(|(_, m)| m.is_empty()) {
        return skip("no machine-id at runtime (no systemd)");
    }
    match duplicate(&ids) {
        Some((a, b, m)) => fail(format!("boots {a} and {b} share machine-id {m:?}")),
        None => pass(format!("{} different machine-ids", ids.len())),
    }
}

/// The first two boots with the same value, and the value.
fn duplicate<'a>(items: &[(usize, &'a String)]) -> Option<(usize, usize, &'a String)> {
    items.iter().enumerate().find_map(|(i, &(a, ka))| {
        items[i + 1..]
            .iter()
            .find(|(_, kb)| *kb == ka)
            .map(|&(b, _)| (a, b, ka))
    })
}
