//! Rule 4: information that must be unique per server (SSH host keys, machine-id) is not
//! in the image and is different on every boot.

use super::{Judgement, fail, files, list, pass, short, skip};
use crate::facts::{BootFacts, Facts, FileKind, Finding, Offline, OfflineFacts};

/// `hostkeys.absent`: no SSH host key files in the image.
pub(super) fn host_keys_absent(f: &OfflineFacts, _: &Facts) -> Judgement {
    if f.host_keys.is_empty() {
        return pass("no host key files");
    }
    let paths: Vec<String> = f.host_keys.iter().map(|k| k.path.clone()).collect();
    fail(format!("host keys baked in: {}", list(&paths)))
}

/// `hostkeys.regenerated`: the running guest has host keys, and none is the image's: the
/// handshake's key is not one of the image's public host keys, and the probe finds no
/// key file with the image's contents.
pub(super) fn host_keys_regenerated(b: &BootFacts, facts: &Facts) -> Judgement {
    if let (Some(fp), Offline::Read(off)) = (&b.host_key_sha256, &facts.offline)
        && off.host_key_fingerprints.contains(fp)
    {
        return fail(format!(
            "still the image's baked key: the SSH handshake shows it (SHA256 {})",
            short(fp)
        ));
    }
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

/// `identity.dbus-machine-id`: no D-Bus machine-id systemd would copy into every clone.
pub(super) fn dbus_machine_id(f: &OfflineFacts, _: &Facts) -> Judgement {
    files(f, FileKind::DbusMachineId, "no D-Bus machine-id of its own")
}

/// `identity.seeds`: no saved entropy or shared secret. A seed is used at boot, before
/// anything could replace it, so its presence alone fails.
pub(super) fn seeds(f: &OfflineFacts, _: &Facts) -> Judgement {
    files(
        f,
        FileKind::Seed,
        "no saved random seed or credential secret",
    )
}

/// `identity.persistent-net`: no interface names pinned to the build machine's MACs.
pub(super) fn persistent_net(f: &OfflineFacts, _: &Facts) -> Judgement {
    files(f, FileKind::PersistentNet, "no persistent-net rules")
}

/// `identity.cloud-init-state`: no state of a cloud-init instance that already ran.
pub(super) fn cloud_init_state(f: &OfflineFacts, _: &Facts) -> Judgement {
    files(f, FileKind::CloudInitState, "no cloud-init instance state")
}

/// `identity.private-keys`: no private key every server would share. A key the image holds
/// passes only when every probed boot shows a different one at its path (the image's key
/// is then not what the servers use), as cloud-init does with host keys.
pub(super) fn private_keys(f: &OfflineFacts, facts: &Facts) -> Judgement {
    let found = f.found(FileKind::PrivateKey);
    if found.is_empty() {
        return pass("no private key in the image");
    }
    let kept: Vec<String> = found
        .iter()
        .filter(|k| !replaced_at_every_boot(k, facts))
        .map(Finding::evidence)
        .collect();
    if kept.is_empty() {
        pass(format!(
            "{} private key(s) in the image, each replaced with a different one on every boot",
            found.len()
        ))
    } else {
        fail(list(&kept))
    }
}

/// Whether every boot was probed and holds, at `k`'s path, a key other than the image's and
/// other than every other boot's.
fn replaced_at_every_boot(k: &Finding, facts: &Facts) -> bool {
    let runtime: Vec<Option<&String>> = facts
        .boots
        .iter()
        .map(|b| {
            let p = b.probe.as_ref()?;
            p.files.iter().find(|x| x.path == k.path).map(|x| &x.sha256)
        })
        .collect();
    let shas: Vec<&String> = runtime.iter().flatten().copied().collect();
    !runtime.is_empty()
        && shas.len() == runtime.len()
        && shas
            .iter()
            .all(|s| !s.is_empty() && Some(*s) != k.sha256.as_ref())
        && shas
            .iter()
            .enumerate()
            .all(|(i, s)| !shas[i + 1..].contains(s))
}
