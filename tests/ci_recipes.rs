//! `docs/ci.md`'s recipes are what this test checks, not prose: every YAML block parses;
//! every GitHub job that boots guests (`imgtest run`, `matrix`, `bisect`) gets `/dev/kvm` (its container is given
//! the device, or the job opens it on the runner with GitHub's udev rule); every GitLab job
//! that does goes to a runner tagged `kvm`, whose documented `config.toml` passes the
//! device; and every `imgtest`/`fsmaker` command line in them is one the tools' own clap
//! definitions accept, with the long flags the end-to-end tests run, and every script it
//! names exists.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The fenced blocks of `lang` in `text`, in order.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l == format!("```{lang}") => current = Some(String::new()),
            (Some(_), "```") => out.push(current.take().expect("in a block")),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

fn doc() -> String {
    std::fs::read_to_string(repo().join("docs/ci.md")).unwrap()
}

fn yaml_blocks() -> Vec<Yaml> {
    blocks(&doc(), "yaml")
        .iter()
        .map(|b| {
            let mut docs = YamlLoader::load_from_str(b).unwrap_or_else(|e| panic!("{e}:\n{b}"));
            assert_eq!(docs.len(), 1, "{b}");
            docs.remove(0)
        })
        .collect()
}

/// Every shell line a job runs: GitHub `steps[].run`, GitLab `before_script`/`script`.
fn job_lines(job: &Yaml) -> Vec<String> {
    let mut lines = Vec::new();
    for step in job["steps"].as_vec().into_iter().flatten() {
        if let Some(run) = step["run"].as_str() {
            lines.extend(shell_lines(run));
        }
    }
    for key in ["before_script", "script"] {
        for l in job[key].as_vec().into_iter().flatten() {
            lines.extend(shell_lines(l.as_str().unwrap_or_default()));
        }
    }
    lines
}

/// A script's commands, one per line, with `\`-continued and folded lines joined.
fn shell_lines(script: &str) -> Vec<String> {
    script
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Whether a job boots guests: `imgtest run`, `matrix` or `bisect` (merging reports and
/// building images do not).
fn boots_images(job: &Yaml) -> bool {
    job_lines(job).iter().any(|l| {
        ["imgtest run ", "imgtest matrix ", "imgtest bisect "]
            .iter()
            .any(|c| l.starts_with(c))
    })
}

/// The jobs of a block: GitHub's under `jobs:` (or a fragment of them), GitLab's at the
/// top level.
fn jobs(block: &Yaml) -> Vec<(String, &Yaml, bool)> {
    let (map, github) = match (&block["jobs"], block.as_hash()) {
        (Yaml::Hash(h), _) => (h, true),
        (_, Some(h)) => (h, false),
        // A list of steps to add to a job (the udev rule): no job of its own.
        (_, None) => return Vec::new(),
    };
    map.iter()
        .filter(|(_, v)| v.as_hash().is_some())
        .map(|(k, v)| {
            let github = github || !v["runs-on"].is_badvalue();
            (k.as_str().unwrap_or_default().to_string(), v, github)
        })
        .collect()
}

#[test]
fn every_job_that_boots_images_gets_kvm() {
    let mut github = 0;
    let mut gitlab = 0;
    for block in yaml_blocks() {
        for (name, job, is_github) in jobs(&block) {
            if !boots_images(job) {
                continue;
            }
            if is_github {
                github += 1;
                let options = job["container"]["options"].as_str().unwrap_or_default();
                let udev = job_lines(job)
                    .iter()
                    .any(|l| l.contains("KERNEL==\"kvm\"") && l.contains("MODE=\"0666\""));
                if job["container"].is_badvalue() {
                    assert!(
                        udev,
                        "{name} runs on the runner without GitHub's KVM udev rule"
                    );
                } else {
                    assert!(
                        options
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .windows(2)
                            .any(|w| w == ["--device", "/dev/kvm"]),
                        "{name}'s container is not given /dev/kvm: {options:?}"
                    );
                }
            } else {
                gitlab += 1;
                let tags: Vec<&str> = job["tags"]
                    .as_vec()
                    .into_iter()
                    .flatten()
                    .filter_map(Yaml::as_str)
                    .collect();
                assert!(
                    tags.contains(&"kvm"),
                    "{name} does not ask for a KVM runner: {tags:?}"
                );
            }
        }
    }
    assert!(
        github >= 2 && gitlab >= 2,
        "jobs seen: GitHub {github}, GitLab {gitlab}"
    );
    // The runner the GitLab jobs ask for: its documented configuration passes the device.
    let configs: Vec<toml::Table> = blocks(&doc(), "toml")
        .iter()
        .map(|b| b.parse().unwrap_or_else(|e| panic!("{e}:\n{b}")))
        .collect();
    let passes = configs.iter().any(|c| {
        c["runners"].as_array().into_iter().flatten().any(|r| {
            r["executor"].as_str() == Some("docker")
                && r["docker"]["devices"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|v| v.as_str() == Some("/dev/kvm")))
        })
    });
    assert!(passes, "no documented GitLab runner passes /dev/kvm");
    // The udev rule GitHub documents is given too, for jobs on the runner itself.
    let udev = yaml_blocks().iter().any(|b| {
        b.as_vec().into_iter().flatten().any(|step| {
            shell_lines(step["run"].as_str().unwrap_or_default())
                .iter()
                .any(|l| l.contains("99-kvm4all.rules"))
        })
    });
    assert!(udev, "the udev recipe is missing");
}

/// CI variables become a plausible value, quotes go: `"$CI_NODE_INDEX/$CI_NODE_TOTAL"`
/// -> `1/3`, `${{ matrix.shard }}` -> `1`.
fn words(line: &str) -> Vec<String> {
    let mut l = line.to_string();
    while let Some(start) = l.find("${{") {
        let end = l[start..].find("}}").map_or(l.len(), |e| start + e + 2);
        l.replace_range(start..end, "1");
    }
    l = l
        .replace("$CI_NODE_INDEX", "1")
        .replace("$CI_NODE_TOTAL", "3");
    l.split_whitespace()
        .map(|w| w.trim_matches('"').to_string())
        .collect()
}

#[test]
fn every_command_is_one_the_tools_accept_and_the_tests_run() {
    let tests: String = [
        "tests/imgtest_e2e.rs",
        "tests/imgtest_matrix.rs",
        "tests/faults.rs",
    ]
    .iter()
    .map(|t| std::fs::read_to_string(repo().join(t)).unwrap())
    .collect();
    let mut commands = 0;
    for block in yaml_blocks() {
        let mut lines = Vec::new();
        for (_, job, _) in jobs(&block) {
            lines.extend(job_lines(job));
        }
        for line in lines {
            for command in line.split("||").map(str::trim) {
                let w = words(command);
                let Some(program) = w.first() else { continue };
                let cmd = match program.as_str() {
                    "imgtest" => imgtest::cli::imgtest::command(),
                    "fsmaker" => imgtest::cli::fsmaker::command(),
                    p if p.starts_with("scripts/") || p.starts_with("images/") => {
                        assert!(repo().join(p).is_file(), "{p} does not exist");
                        continue;
                    }
                    _ => continue,
                };
                // `fsmaker kernel list | grep ...`: the tool's part only.
                let w: Vec<String> = w.into_iter().take_while(|x| x != "|").collect();
                cmd.try_get_matches_from(&w)
                    .unwrap_or_else(|e| panic!("{}:\n{e}", w.join(" ")));
                commands += 1;
                for flag in w.iter().filter(|x| x.starts_with("--")) {
                    assert!(
                        tests.contains(&format!("\"{flag}\"")),
                        "{flag} (in `{}`) is run by no end-to-end test",
                        w.join(" ")
                    );
                }
            }
        }
    }
    assert!(commands >= 8, "only {commands} tool commands found");
}
