//! Rule 2: no network-accessible login that the image's author, or anyone who has the
//! image, can use.

use super::{Judgement, fail, files, list, login_text, pass, probed, skip};
use crate::facts::{BootFacts, Facts, FileKind, Offline, OfflineFacts};

/// `passwords.none-fixed`: no account in the image has a usable or empty password.
pub(super) fn no_fixed_password(f: &OfflineFacts, _: &Facts) -> Judgement {
    if !f.shadow_readable {
        skip("the image has no /etc/shadow")
    } else if f.password_accounts.is_empty() {
        pass("every account is locked")
    } else {
        fail(format!(
            "usable password (in /etc/shadow unless said) for: {}",
            list(&f.password_accounts)
        ))
    }
}

/// `ssh.wrong-password`: a random password is rejected, on the boot that tried one.
pub(super) fn wrong_password(facts: &Facts) -> Judgement {
    // An acceptance anywhere outweighs a rejection elsewhere.
    let tried = facts
        .boots
        .iter()
        .filter_map(|b| b.wrong_password_rejected.map(|r| (b.index, r)))
        .min_by_key(|&(_, rejected)| rejected);
    match (tried, facts.boots.first()) {
        (Some((i, true)), _) => pass(format!("rejected on boot {i}")),
        (Some((i, false)), _) => fail(format!(
            "a random password was accepted for the login user on boot {i}"
        )),
        (None, None) => skip("no boot was run"),
        (None, Some(b)) => skip(format!("cannot tell: {}", login_text(&b.login))),
    }
}

/// `logins.password-copies`: no copy of the account files holds a usable password.
pub(super) fn password_copies(f: &OfflineFacts, _: &Facts) -> Judgement {
    files(
        f,
        FileKind::PasswordCopy,
        "no copy of the account files holds a usable password",
    )
}

/// `logins.authorized-keys`: no SSH public key in the image lets anyone in.
pub(super) fn authorized_keys(f: &OfflineFacts, _: &Facts) -> Judgement {
    files(
        f,
        FileKind::AuthorizedKey,
        "no authorized keys and no cloud-init ssh_authorized_keys",
    )
}

/// `logins.host-trust`: no `.rhosts`, `.shosts` or `hosts.equiv` trust.
pub(super) fn host_trust(f: &OfflineFacts, _: &Facts) -> Judgement {
    files(f, FileKind::HostTrust, "no host-based trust files")
}

/// `logins.sshd-config`: the running SSH server admits no one on the image's word alone.
pub(super) fn sshd_config(b: &BootFacts, _: &Facts) -> Judgement {
    let p = match probed(b) {
        Ok(p) => p,
        Err(no_probe) => return no_probe,
    };
    let setting = |k: &str| p.sshd.get(k).map(String::as_str);
    let mut wrong = Vec::new();
    if setting("permitemptypasswords") == Some("yes") {
        wrong.push("PermitEmptyPasswords yes: accounts without a password log in".to_string());
    }
    if let Some(ca) = setting("trustedusercakeys").filter(|v| *v != "none") {
        wrong.push(format!(
            "TrustedUserCAKeys {ca}: anyone the image's CA signs logs in"
        ));
    }
    if setting("hostbasedauthentication") == Some("yes") {
        wrong.push("HostbasedAuthentication yes: trusted hosts log in without a secret".into());
    }
    if let Some(cmd) = p.dropbear.iter().find(|c| blank_passwords_allowed(c)) {
        wrong.push(format!(
            "dropbear -B (blank passwords allowed): {}",
            cmd.trim()
        ));
    }
    match (wrong.is_empty(), p.sshd.is_empty() && p.dropbear.is_empty()) {
        (false, _) => fail(list(&wrong)),
        (true, true) => skip("neither sshd -T nor a dropbear command line could be read"),
        (true, false) => pass(if p.sshd.is_empty() {
            "dropbear without -B".to_string()
        } else {
            format!(
                "sshd -T: PermitEmptyPasswords {}, no user CA, no host-based login",
                setting("permitemptypasswords").unwrap_or("?")
            )
        }),
    }
}

/// `logins.runtime-keys`: after first boot, the accounts accept no SSH key but the
/// metadata service's (keys the image already had are `logins.authorized-keys`').
pub(super) fn runtime_keys(b: &BootFacts, facts: &Facts) -> Judgement {
    let p = match probed(b) {
        Ok(p) => p,
        Err(no_probe) => return no_probe,
    };
    let baked: &[String] = match &facts.offline {
        Offline::Read(o) => &o.baked_keys,
        Offline::Unreadable { .. } => &[],
    };
    let expected = |k: &str| {
        b.metadata_key.as_deref().is_some_and(|m| m.starts_with(k)) || baked.iter().any(|x| x == k)
    };
    let other: Vec<String> = p
        .authorized_keys
        .iter()
        .filter(|k| !expected(&k.key))
        .map(|k| format!("{}: {} in {}", k.user, abbreviate(&k.key), k.file))
        .collect();
    if other.is_empty() {
        pass(format!(
            "no key but the metadata service's ({} at runtime)",
            p.authorized_keys.len()
        ))
    } else {
        fail(format!(
            "keys the metadata service did not hand out: {}",
            list(&other)
        ))
    }
}

/// Whether a dropbear command line lets accounts with a blank password in.
fn blank_passwords_allowed(cmdline: &str) -> bool {
    cmdline.split_whitespace().any(|w| w == "-B")
}

/// Whether a boot's SSH server is configured to let accounts without a password in
/// (`logins.sshd-config` names that).
fn server_allows_empty(b: &BootFacts) -> bool {
    b.probe.as_ref().is_some_and(|p| {
        p.sshd.get("permitemptypasswords").map(String::as_str) == Some("yes")
            || p.dropbear.iter().any(|c| blank_passwords_allowed(c))
    })
}

/// A key's type and the start of its blob.
fn abbreviate(key: &str) -> String {
    match key.split_once(' ') {
        Some((t, blob)) => format!("{t} {}...", &blob[..blob.len().min(24)]),
        None => key.to_string(),
    }
}

/// `logins.empty-password`: every account with a login shell refused an empty password
/// (accounts the image already shows without a password are `passwords.none-fixed`').
pub(super) fn empty_password(facts: &Facts) -> Judgement {
    let tried: Vec<_> = facts
        .boots
        .iter()
        .flat_map(|b| &b.empty_passwords)
        .collect();
    if tried.is_empty() {
        return match facts.boots.first() {
            None => skip("no boot was run"),
            Some(b) => skip(format!("not tried: {}", login_text(&b.login))),
        };
    }
    let known_empty = |user: &str| match &facts.offline {
        Offline::Read(o) => o
            .password_accounts
            .iter()
            .any(|a| a.starts_with(&format!("{user} (empty"))),
        Offline::Unreadable { .. } => false,
    };
    let accepted: Vec<String> = tried
        .iter()
        .filter(|t| t.rejected == Some(false) && !known_empty(&t.user))
        .map(|t| t.user.clone())
        .collect();
    if accepted.is_empty() {
        let names: Vec<String> = tried.iter().map(|t| t.user.clone()).collect();
        pass(format!("refused for {}", list(&names)))
    } else if facts.boots.iter().any(server_allows_empty) {
        skip(format!(
            "an empty password logs in as {}: the SSH server allows it (see logins.sshd-config)",
            list(&accepted)
        ))
    } else {
        fail(format!(
            "an empty password logs in over SSH as: {}",
            list(&accepted)
        ))
    }
}
