//! The defect variants of the test images are listed once, in `images/defects/variants.toml`
//! (each with the check ids it must fail): `images/defects/build.sh` reads it with awk for
//! its variant list and `--help`, the tests with the toml crate. Both read the same
//! variants; every tiny variant is one build.sh plants, every Debian variant one
//! `images/debian/build.sh` builds, and every id a variant must fail is a check imgtest has.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{run_ok, variants, variants_of};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn defects_script() -> Command {
    Command::new(repo().join("images/defects/build.sh"))
}

/// The `Variants:` section of `images/defects/build.sh --help`: each name with its
/// description, its wrapped lines joined.
fn help_variants() -> Vec<(String, String)> {
    let o = run_ok(defects_script().arg("--help"));
    let help = String::from_utf8(o.stdout).unwrap();
    let (_, list) = help
        .split_once("\nVariants:\n")
        .expect("a Variants: section");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in list.lines() {
        match (line.strip_prefix("  "), out.last_mut()) {
            (Some(l), Some((_, text))) if l.starts_with(' ') => {
                text.push(' ');
                text.push_str(l.trim());
            }
            (Some(l), _) => {
                let (name, text) = l.split_once(' ').expect("a name and its description");
                out.push((name.to_string(), text.trim().to_string()));
            }
            (None, _) => panic!("not a variant line: {line:?}"),
        }
    }
    out
}

#[test]
fn the_tiny_build_script_lists_the_variants_of_the_file_with_their_descriptions() {
    let all = variants();
    let mut from_file: Vec<(String, String)> = variants_of("tiny")
        .into_iter()
        .map(|v| {
            let text = all[&v].description.clone();
            (v, text)
        })
        .collect();
    let mut from_help = help_variants();
    assert!(from_file.len() >= 20, "{from_file:?}");
    from_file.sort();
    from_help.sort();
    assert_eq!(from_help, from_file);

    // The list it accepts is the same.
    let o = defects_script()
        .args(["bogus", "/nonexistent/x.ext4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let (_, accepted) = err
        .trim_end()
        .strip_suffix(')')
        .and_then(|e| e.split_once("(one of: "))
        .unwrap_or_else(|| panic!("{err}"));
    let accepted: BTreeSet<&str> = accepted.split(' ').collect();
    let tiny = variants_of("tiny");
    assert_eq!(accepted, tiny.iter().map(String::as_str).collect());
}

/// The case labels of build.sh's planting functions (`plant`, `plant_hygiene`).
fn planted() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("images/defects/build.sh")).unwrap();
    let start = text.find("\nplant() {").expect("plant()");
    let end = text
        .find("\nif [ \"${1:-}\" = --plant ]")
        .expect("the --plant entry");
    text[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter_map(|l| l.split_once(')').map(|(label, _)| label))
        .filter(|label| {
            label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-|".contains(c))
        })
        .flat_map(|label| label.split('|').map(str::to_string))
        .collect()
}

#[test]
fn every_tiny_variant_is_planted_by_the_build_script_and_no_other() {
    let planted = planted();
    let tiny: BTreeSet<String> = variants_of("tiny").into_iter().collect();
    assert!(planted.contains("fixed-password") && planted.contains("dropbear-blank"));
    assert_eq!(planted, tiny);
}

#[test]
fn every_debian_variant_is_built_by_the_debian_script() {
    let debian = variants_of("debian");
    assert!(debian.len() >= 10, "{debian:?}");
    // Not root and no such output directory: a known variant passes the name check and
    // stops at the directory, an unknown one at its name.
    let stops_at = |variant: &str| {
        let o = Command::new(repo().join("images/debian/build.sh"))
            .args(["--variant", variant, "/nonexistent/x.ext4"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{variant}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    for v in &debian {
        let err = stops_at(v);
        assert!(err.contains("output directory"), "{v}: {err}");
    }
    assert!(stops_at("bogus").contains("unknown variant 'bogus'"));
}

#[test]
fn every_variant_fails_checks_imgtest_has_and_is_built_for_a_known_image() {
    let catalogue = common::catalogue();
    let ids: BTreeSet<&str> = catalogue
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for (name, v) in variants() {
        assert!(!v.fails.is_empty(), "{name}: fails nothing");
        for id in &v.fails {
            assert!(ids.contains(id.as_str()), "{name}: no check {id}");
        }
        assert!(!v.images.is_empty(), "{name}: built for no image");
        for image in &v.images {
            assert!(
                ["tiny", "debian"].contains(&image.as_str()),
                "{name}: {image}"
            );
        }
        assert!(!v.description.is_empty(), "{name}");
    }
}
