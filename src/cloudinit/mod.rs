//! Stock cloud-init images: what imgtest needs to know to test one without changing it.
//!
//! Offline, [`offline_facts`] reads whether cloud-init is installed and how it is
//! configured (`/etc/cloud/cloud.cfg`, then `cloud.cfg.d/*.cfg` in order, later files win):
//! the default user that user-data's `password:` sets, and `ssh_deletekeys`. [`choose`]
//! turns the requested agent and user into the agent and login user of a run. Online, the
//! guest finds its datasource through [`NOCLOUD_SERIAL`] in the SMBIOS system serial
//! (what stock cloud-init's `ds-identify` and NoCloud honour with no image change) and
//! fetches `meta-data`, `user-data` and `vendor-data` from the metadata service.
//!
//! The configuration is YAML, read with `yaml-rust2` (flow and block styles, anchors and
//! aliases, block scalars, quoting); YAML 1.1 merge keys (`<<:`), which PyYAML (cloud-init's
//! parser) honours, are merged here too, and booleans are read as cloud-init reads them.
//! The files come from the image under test: one larger than [`MAX_CONFIG`], nested deeper
//! than [`MAX_NESTING`], or expanding (aliases resolved) to more than [`MAX_NODES`] nodes is
//! skipped as not parsing, before it is built.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, EventReceiver, Parser};
use yaml_rust2::{Yaml, YamlLoader};

use crate::facts::{Agent, AgentFacts, CloudInitFacts, Offline};
use crate::fs::FsView;

/// The SMBIOS type 1 serial that points NoCloud at the metadata service. The `-net` form:
/// Debian 12's cloud-init 22.4 only fetches a URL seed once the network is up.
pub const NOCLOUD_SERIAL: &str = "ds=nocloud-net;s=http://169.254.169.254/";

crate::named_enum! {
    /// Which first-boot agent the image uses, as a run asks for it.
    #[derive(Default)]
    pub enum FirstbootChoice("first-boot agent") {
        /// cloud-init when the image has it and no firstboot, else firstboot.
        #[default]
        Auto = "auto",
        /// imgtest's firstboot.
        Firstboot = "firstboot",
        /// Stock cloud-init.
        CloudInit = "cloud-init",
    }
}

/// Why a run's login user cannot be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot tell the image's cloud-init default user (no system_info: default_user: name: \
     in /etc/cloud/cloud.cfg or cloud.cfg.d)"
)]
pub struct NoDefaultUser;

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
    let docs: Vec<Yaml> = configs
        .iter()
        .filter_map(|p| view.read(p))
        .filter_map(|b| parse(&String::from_utf8_lossy(&b)))
        .collect();
    let has_config = view.exists("/etc/cloud/cloud.cfg");
    if !program && !has_config {
        return None;
    }
    let last = |path: &[&str]| docs.iter().rev().find_map(|d| lookup(d, path).cloned());
    Some(CloudInitFacts {
        installed: program && has_config,
        switched_off: switched_off(view),
        default_user: last(&["system_info", "default_user", "name"]).and_then(|v| scalar(&v)),
        ssh_deletekeys: last(&["ssh_deletekeys"]).is_none_or(|v| cloud_init_true(&v)),
    })
}

/// cloud-init's units, in the order of its stages; `cloud-config.service` runs the
/// module that sets passwords.
const UNITS: [&str; 4] = [
    "cloud-init-local.service",
    "cloud-init.service",
    "cloud-config.service",
    "cloud-final.service",
];

/// Why cloud-init will not run at boot, when the image shows it: its own switch
/// (`/etc/cloud/cloud-init.disabled`); or, when systemd is the init, every one of its
/// units masked (a link to `/dev/null` in `/etc/systemd/system`), or none enabled (no
/// `.wants`/`.requires` link names one, in `/etc` or the vendor directories). One unit
/// switched off of four is not certain enough: the others may still set the password.
fn switched_off(view: &FsView) -> Option<String> {
    if view.exists("/etc/cloud/cloud-init.disabled") {
        return Some("/etc/cloud/cloud-init.disabled switches cloud-init off".into());
    }
    let systemd = view
        .link_target("/sbin/init")
        .is_some_and(|t| t.contains("systemd"));
    if !systemd {
        return None;
    }
    let masked = |u: &str| {
        view.link_target(&format!("/etc/systemd/system/{u}"))
            .is_some_and(|t| t == "/dev/null")
    };
    if UNITS.iter().all(|u| masked(u)) {
        return Some(format!(
            "every cloud-init unit is masked ({})",
            UNITS.join(", ")
        ));
    }
    let enabled = [
        "/etc/systemd/system",
        "/lib/systemd/system",
        "/usr/lib/systemd/system",
    ]
    .iter()
    .any(|dir| {
        view.list(dir)
            .iter()
            .filter(|d| d.ends_with(".wants") || d.ends_with(".requires"))
            .any(|d| {
                let links = view.list(&format!("{dir}/{d}"));
                UNITS
                    .iter()
                    .any(|u| !masked(u) && links.iter().any(|l| l == u))
            })
    });
    (!enabled).then(|| {
        format!(
            "no cloud-init unit is enabled (no .wants or .requires link names {})",
            UNITS.join(", ")
        )
    })
}

/// The agent and login user for an image: the requested agent (auto: cloud-init if the
/// image has it and no firstboot) and user (default: root for firstboot, the image's
/// cloud-init default user for cloud-init). An error when a cloud-init image's user
/// cannot be told.
pub fn choose(
    choice: FirstbootChoice,
    user: Option<&str>,
    offline: &Offline,
) -> Result<AgentFacts, NoDefaultUser> {
    let facts = match offline {
        Offline::Read(f) => Some(f),
        Offline::Unreadable { .. } => None,
    };
    let cloud = facts.and_then(|f| f.cloud_init.as_ref());
    let (agent, why) = match choice {
        FirstbootChoice::Firstboot => (Agent::Firstboot, "firstboot requested"),
        FirstbootChoice::CloudInit => (Agent::CloudInit, "cloud-init requested"),
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
        (Some(u), _) => (u.to_string(), "requested".to_string()),
        (None, Agent::Firstboot) => ("root".to_string(), "firstboot sets root's".to_string()),
        (None, Agent::CloudInit) => match cloud.and_then(|c| c.default_user.clone()) {
            Some(u) => (u, "cloud-init's default_user".to_string()),
            None => return Err(NoDefaultUser),
        },
    };
    Ok(AgentFacts {
        agent,
        reason: format!("{why}; user {user} ({whose})"),
        user,
    })
}

/// The largest configuration file read, in bytes: cloud-init's own are a few KiB.
pub const MAX_CONFIG: usize = 1 << 20;

/// The deepest nesting of mappings and lists read.
pub const MAX_NESTING: usize = 64;

/// The most nodes a document may hold once its aliases are resolved: a few lines of
/// aliases of aliases can otherwise expand beyond any memory.
pub const MAX_NODES: u64 = 100_000;

/// One YAML document, None if it does not parse (cloud-init skips such a file too) or
/// is larger, deeper or expands to more than this reads (see the module note).
pub fn parse(text: &str) -> Option<Yaml> {
    if text.len() > MAX_CONFIG {
        return None;
    }
    let mut shape = Shape::default();
    Parser::new_from_str(text).load(&mut shape, false).ok()?;
    if shape.too_big {
        return None;
    }
    YamlLoader::load_from_str(text)
        .ok()?
        .into_iter()
        .next()
        .map(merge_keys)
}

/// A first pass over a document's events, before any node is built: how deep it nests and
/// how many nodes it expands to with its aliases resolved.
#[derive(Default)]
struct Shape {
    /// The open mappings and lists: their anchor and the nodes in them so far.
    open: Vec<(usize, u64)>,
    /// The nodes each anchor stands for.
    anchors: HashMap<usize, u64>,
    /// The nodes of the finished top-level values.
    nodes: u64,
    /// Whether it nests deeper than [`MAX_NESTING`] or holds more than [`MAX_NODES`].
    too_big: bool,
}

impl EventReceiver for Shape {
    fn on_event(&mut self, ev: Event) {
        let done = match ev {
            Event::Scalar(_, _, anchor, _) => Some((anchor, 1)),
            Event::Alias(id) => Some((0, self.anchors.get(&id).copied().unwrap_or(1))),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.open.push((anchor, 1));
                self.too_big |= self.open.len() > MAX_NESTING;
                None
            }
            Event::SequenceEnd | Event::MappingEnd => self.open.pop(),
            _ => None,
        };
        if let Some((anchor, n)) = done {
            if anchor != 0 {
                self.anchors.insert(anchor, n);
            }
            let total = match self.open.last_mut() {
                Some((_, inside)) => inside,
                None => &mut self.nodes,
            };
            *total = total.saturating_add(n);
            self.too_big |= *total > MAX_NODES;
        }
    }
}

/// The document with YAML 1.1 merge keys applied: `<<: *base` (or a list of them) adds the
/// base mapping's entries that the mapping does not set itself, as PyYAML does.
fn merge_keys(doc: Yaml) -> Yaml {
    match doc {
        Yaml::Hash(h) => {
            let merge_key = Yaml::String("<<".into());
            let mut out = yaml_rust2::yaml::Hash::new();
            let mut bases = Vec::new();
            for (k, v) in h {
                if k == merge_key {
                    match merge_keys(v) {
                        Yaml::Array(a) => bases.extend(a),
                        other => bases.push(other),
                    }
                } else {
                    out.insert(k, merge_keys(v));
                }
            }
            for base in bases {
                if let Yaml::Hash(b) = base {
                    for (k, v) in b {
                        out.entry(k).or_insert(v);
                    }
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(a) => Yaml::Array(a.into_iter().map(merge_keys).collect()),
        other => other,
    }
}

/// The node at `path` (a chain of mapping keys).
pub fn lookup<'a>(doc: &'a Yaml, path: &[&str]) -> Option<&'a Yaml> {
    path.iter().try_fold(doc, |node, key| match node {
        Yaml::Hash(h) => h.get(&Yaml::String((*key).to_string())),
        _ => None,
    })
}

/// How many SSH public keys `doc` hands cloud-init to install: `ssh_authorized_keys` at the
/// top, for `system_info`'s default user, and for each entry of `users` (cloud-init also
/// reads the dashed spelling there).
pub fn authorized_keys(doc: &Yaml) -> usize {
    let count = |v: Option<&Yaml>| match v {
        Some(Yaml::Array(a)) => a.len(),
        Some(Yaml::String(s)) if !s.trim().is_empty() => 1,
        _ => 0,
    };
    let of_user = |u: &Yaml| {
        count(lookup(u, &["ssh_authorized_keys"])) + count(lookup(u, &["ssh-authorized-keys"]))
    };
    let users = match lookup(doc, &["users"]) {
        Some(Yaml::Array(a)) => a.iter().map(of_user).sum(),
        _ => 0,
    };
    count(lookup(doc, &["ssh_authorized_keys"]))
        + lookup(doc, &["system_info", "default_user"]).map_or(0, of_user)
        + users
}

/// A scalar node as text (strings, numbers, booleans), None for mappings, lists and null.
pub fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether cloud-init reads `v` as true (`util.translate_bool`): a YAML boolean, or a
/// string or number spelling one (PyYAML's `yes`/`on` are booleans to it as well).
fn cloud_init_true(v: &Yaml) -> bool {
    match v {
        Yaml::Boolean(b) => *b,
        other => scalar(other).is_some_and(|s| {
            matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "on" | "yes"
            )
        }),
    }
}

#[cfg(test)]
mod tests;
