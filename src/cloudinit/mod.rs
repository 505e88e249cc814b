//! Stock cloud-init images: what imgtest needs to know to test one without changing it.
//!
//! Offline, [`offline_facts`] reads whether cloud-init is installed and how it is
//! configured (`/etc/cloud/cloud.cfg`, then `cloud.cfg.d/*.cfg` in order, later files win):
//! the default user that user-data's `password:` sets, and `ssh_deletekeys`. [`choose`]
//! turns `--firstboot` and `--user` into the agent and login user of a run. Online, the
//! guest finds its datasource through [`NOCLOUD_SERIAL`] in the SMBIOS system serial
//! (what stock cloud-init's `ds-identify` and NoCloud honour with no image change) and
//! fetches `meta-data`, `user-data` and `vendor-data` from the metadata service
//! ([`crate::metadata`]). The YAML reader here is deliberately small: block mappings with
//! scalar values, which is how distributions write these files; flow mappings
//! (`default_user: {name: x}`) are not understood, and `--user` covers them.

use serde::{Deserialize, Serialize};

use crate::checks::facts::{Agent, AgentFacts, CloudInitFacts, Offline};
use crate::fs::FsView;

/// The SMBIOS type 1 serial that points NoCloud at the metadata service. The `-net` form:
/// Debian 12's cloud-init 22.4 only fetches a URL seed once the network is up.
pub const NOCLOUD_SERIAL: &str = "ds=nocloud-net;s=http://169.254.169.254/";

/// The file cloud-init's final stage writes when it has run every module of this instance.
pub const BOOT_FINISHED: &str = "/var/lib/cloud/instance/boot-finished";

/// `--firstboot`: which first-boot agent the image uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FirstbootChoice {
    /// cloud-init when the image has it and no firstboot, else firstboot.
    #[default]
    Auto,
    /// imgtest's firstboot.
    Firstboot,
    /// Stock cloud-init.
    CloudInit,
}

/// cloud-init's facts from the image, None when neither its program nor its config exists.
pub fn offline_facts(view: &FsView) -> Option<CloudInitFacts> {
    let program = view.exists("/usr/bin/cloud-init");
    let mut configs = vec!["/etc/cloud/cloud.cfg".to_string()];
    let mut dropins: Vec<String> = view
        .list("/etc/cloud/cloud.cfg.d")
        .into_iter()
        .filter(|n| n.ends_with(".cfg"))
        .map(|n| format!("/etc/cloud/cloud.cfg.d/{n}"))
        .collect();
    dropins.sort();
    configs.extend(dropins);
    let texts: Vec<String> = configs
        .iter()
        .filter_map(|p| view.read(p))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    let has_config = view.exists("/etc/cloud/cloud.cfg");
    if !program && !has_config {
        return None;
    }
    let last = |path: &[&str]| texts.iter().rev().find_map(|t| yaml_scalar(t, path));
    Some(CloudInitFacts {
        installed: program && has_config,
        disabled: view.exists("/etc/cloud/cloud-init.disabled"),
        default_user: last(&["system_info", "default_user", "name"]),
        ssh_deletekeys: last(&["ssh_deletekeys"]).is_none_or(|v| yaml_true(&v)),
    })
}

/// The agent and login user for an image: `--firstboot` (auto: cloud-init if the image has
/// it and no firstboot) and `--user` (default: root for firstboot, the image's cloud-init
/// default user for cloud-init). An error when a cloud-init image's user cannot be told.
pub fn choose(
    choice: FirstbootChoice,
    user: Option<&str>,
    offline: &Offline,
) -> Result<AgentFacts, String> {
    let facts = match offline {
        Offline::Read(f) => Some(f),
        Offline::Unreadable { .. } => None,
    };
    let cloud = facts.and_then(|f| f.cloud_init.as_ref());
    let (agent, why) = match choice {
        FirstbootChoice::Firstboot => (Agent::Firstboot, "--firstboot firstboot"),
        FirstbootChoice::CloudInit => (Agent::CloudInit, "--firstboot cloud-init"),
        FirstbootChoice::Auto => match facts {
            None => (Agent::Firstboot, "auto: image not readable offline"),
            Some(f) if f.firstboot_program => (Agent::Firstboot, "auto: firstboot installed"),
            Some(_) if cloud.is_some_and(|c| c.installed) => {
                (Agent::CloudInit, "auto: cloud-init installed, no firstboot")
            }
            Some(_) => (Agent::Firstboot, "auto: neither cloud-init nor firstboot"),
        },
    };
    let (user, whose) = match (user, agent) {
        (Some(u), _) => (u.to_string(), "--user".to_string()),
        (None, Agent::Firstboot) => ("root".to_string(), "firstboot sets root's".to_string()),
        (None, Agent::CloudInit) => match cloud.and_then(|c| c.default_user.clone()) {
            Some(u) => (u, "cloud-init's default_user".to_string()),
            None => {
                return Err(
                    "cannot tell the image's cloud-init default user (no system_info: \
                     default_user: name: in /etc/cloud/cloud.cfg); pass --user NAME"
                        .into(),
                );
            }
        },
    };
    Ok(AgentFacts {
        agent,
        reason: format!("{why}; user {user} ({whose})"),
        user,
    })
}

/// Whether a YAML 1.1 scalar (as PyYAML, cloud-init's parser, reads it) is true.
fn yaml_true(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "y")
}

/// The scalar at `path` (a chain of mapping keys) in a block-style YAML document; the last
/// one if the key repeats. List items are not descended into.
pub fn yaml_scalar(doc: &str, path: &[&str]) -> Option<String> {
    let (last, parents) = path.split_last()?;
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut found = None;
    for raw in doc.lines() {
        let line = match raw.find(" #") {
            Some(i) => &raw[..i],
            None => raw,
        };
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t == "---" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        if t.starts_with('-') {
            // A list item: its keys are not mapping keys of the enclosing path.
            stack.push((indent, "-".into()));
            continue;
        }
        let Some((k, v)) = t.split_once(':') else {
            continue;
        };
        let (k, v) = (unquote(k.trim()), v.trim());
        if v.is_empty() {
            stack.push((indent, k));
        } else if k == *last
            && stack
                .iter()
                .map(|(_, k)| k.as_str())
                .eq(parents.iter().copied())
        {
            found = Some(unquote(v));
        }
    }
    found
}

fn unquote(s: &str) -> String {
    let t = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = t.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    t.to_string()
}

#[cfg(test)]
mod tests;
