//! Rule 2: no network-accessible login that the image's author, or anyone who has the
//! image, can use.

use super::{Judgement, fail, list, login_text, pass, skip};
use crate::facts::{Facts, OfflineFacts};

/// `passwords.none-fixed`: no account in the image has a usable or empty password.
pub(super) fn no_fixed_password(f: &OfflineFacts, _: &Facts) -> Judgement {
    if !f.shadow_readable {
        skip("the image has no /etc/shadow")
    } else if f.password_accounts.is_empty() {
        pass("every account is locked")
    } else {
        fail(format!(
            "usable password in /etc/shadow for: {}",
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
