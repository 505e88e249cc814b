//! sparsecopy end to end: the real binary on real files, compressors, partition
//! tools (sfdisk, sgdisk) and the `gpt` crate reading the result back.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sparsecopy");
const MIB: u64 = 1 << 20;

/// Run a command in `dir`, feeding `stdin`.
fn run_in(dir: &Path, cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    cmd.current_dir(dir).stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    child.wait_with_output().unwrap()
}

fn sc(dir: &Path, args: &[&str]) -> Output {
    run_in(dir, Command::new(BIN).args(args), None)
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn tool(dir: &Path, prog: &str, args: &[&str]) -> String {
    let out = run_in(dir, Command::new(prog).args(args), None);
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One error line on stderr and exit code 2.
fn fails(out: Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err.trim_end().to_string()
}

/// A pseudo-random, zero-free pattern.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) | 1
        })
        .collect()
}

/// A 6 MiB image: 1 MiB data, 1 MiB explicit zeros, 2 MiB hole, 1 MiB data
/// with zero blocks inside, then a hole to the end.
fn image(dir: &Path) -> (PathBuf, Vec<u8>) {
    let mut bytes = vec![0u8; 6 * MIB as usize];
    bytes[..MIB as usize].copy_from_slice(&pattern(MIB as usize, 1));
    let d = &mut bytes[4 * MIB as usize..5 * MIB as usize];
    d.copy_from_slice(&pattern(MIB as usize, 2));
    d[8192..16384].fill(0);
    let path = dir.join("src.img");
    let f = File::create(&path).unwrap();
    f.write_all_at(&bytes[..2 * MIB as usize], 0).unwrap();
    f.write_all_at(&bytes[4 * MIB as usize..5 * MIB as usize], 4 * MIB)
        .unwrap();
    f.set_len(6 * MIB).unwrap();
    (path, bytes)
}

fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

/// Make timings in a summary line stable for snapshots.
fn normalise(s: &str) -> String {
    let Some(start) = s.find(" in ") else {
        return s.to_string();
    };
    let end = s[start..]
        .find("):")
        .map(|e| start + e + 1)
        .unwrap_or(s.len());
    format!("{} in [TIME]{}", &s[..start], &s[end..])
}

#[test]
fn copies_a_file_keeping_holes_and_dropping_zero_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = image(dir.path());
    let out = ok(sc(dir.path(), &["src.img", "dst.img"]));
    assert_eq!(fs::read(dir.path().join("dst.img")).unwrap(), bytes);
    // 2 MiB of data minus the 8 KiB zero blocks; the explicit zeros are holes.
    assert_eq!(allocated(&dir.path().join("dst.img")), 2 * MIB - 8192);
    // DST has the mode any new file gets here (the umask's), not a temp file's 0600.
    fs::write(dir.path().join("new"), b"").unwrap();
    let mode = |name: &str| fs::metadata(dir.path().join(name)).unwrap().mode() & 0o777;
    assert_eq!(mode("dst.img"), mode("new"));
    insta::assert_snapshot!(normalise(String::from_utf8_lossy(&out.stderr).trim_end()), @"sparsecopy: copied 6.0 MiB in [TIME]: read 3.0 MiB, wrote 2.0 MiB, skipped 4.0 MiB; DST size 6.0 MiB");
    let quiet = ok(sc(dir.path(), &["-q", "--verify", "src.img", "dst2.img"]));
    assert!(quiet.stderr.is_empty() && quiet.stdout.is_empty());
}

#[test]
fn size_flag_makes_an_empty_sparse_file() {
    let dir = tempfile::tempdir().unwrap();
    ok(sc(dir.path(), &["-q", "-f2G", "/dev/null", "myfs"]));
    let meta = fs::metadata(dir.path().join("myfs")).unwrap();
    assert_eq!(meta.len(), 2 << 30);
    assert_eq!(meta.blocks(), 0);
    // It is ready for mkfs.
    tool(dir.path(), "mkfs.ext4", &["-q", "-F", "myfs"]);
    // And grows an existing file without touching its data.
    ok(sc(dir.path(), &["-q", "--size", "3G", "/dev/null", "myfs"]));
    assert_eq!(
        fs::metadata(dir.path().join("myfs")).unwrap().len(),
        3 << 30
    );
    tool(dir.path(), "e2fsck", &["-fn", "myfs"]);
}

#[test]
fn reads_stdin_and_compressed_files_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let (src, bytes) = image(dir.path());
    let raw = fs::read(&src).unwrap();
    let stdin_out = run_in(
        dir.path(),
        Command::new(BIN).args(["-q", "--verify", "-", "plain.img"]),
        Some(&raw),
    );
    ok(stdin_out);
    assert_eq!(fs::read(dir.path().join("plain.img")).unwrap(), bytes);
    assert_eq!(allocated(&dir.path().join("plain.img")), 2 * MIB - 8192);
    for (prog, ext) in [("gzip", "gz"), ("zstd", "zst"), ("xz", "xz")] {
        let compressed = dir.path().join(format!("src.img.{ext}"));
        tool(dir.path(), prog, &["-kq", "src.img"]);
        let data = fs::read(&compressed).unwrap();
        let as_file = format!("file-{ext}.img");
        ok(sc(
            dir.path(),
            &["-q", "--verify", compressed.to_str().unwrap(), &as_file],
        ));
        let as_stream = format!("stdin-{ext}.img");
        ok(run_in(
            dir.path(),
            Command::new(BIN).args(["-q", "-", &as_stream]),
            Some(&data),
        ));
        for out in [as_file, as_stream] {
            assert_eq!(fs::read(dir.path().join(&out)).unwrap(), bytes, "{out}");
            assert_eq!(allocated(&dir.path().join(&out)), 2 * MIB - 8192, "{out}");
        }
    }
    // --skip and --count on a plain stream, and on the decompressed stream.
    let args = [
        "-q",
        "--skip",
        "4M",
        "--count",
        "512K",
        "-",
        "part-stdin.img",
    ];
    ok(run_in(dir.path(), Command::new(BIN).args(args), Some(&raw)));
    let part = fs::read(dir.path().join("part-stdin.img")).unwrap();
    assert_eq!(part, &bytes[4 << 20..(4 << 20) + (512 << 10)]);
    ok(sc(
        dir.path(),
        &[
            "-q",
            "--skip",
            "4M",
            "--count",
            "512K",
            "src.img.gz",
            "part.img",
        ],
    ));
    assert_eq!(
        fs::read(dir.path().join("part.img")).unwrap(),
        &bytes[4 << 20..(4 << 20) + (512 << 10)]
    );
}

/// A 32 MiB MBR disk: partition 1 at 1 MiB (8 MiB), partition 2 at 9 MiB.
fn mbr_disk(dir: &Path) -> Vec<u8> {
    let disk = dir.join("disk.img");
    File::create(&disk).unwrap().set_len(32 * MIB).unwrap();
    let script = "label: dos\nlabel-id: 0x12345678\nstart=2048, size=16384, type=83, bootable\nstart=18432, type=83\n";
    let out = run_in(
        dir,
        Command::new("sfdisk").args(["-q", "disk.img"]),
        Some(script.as_bytes()),
    );
    assert!(out.status.success(), "{out:?}");
    // Old contents in both partitions.
    let f = fs::OpenOptions::new().write(true).open(&disk).unwrap();
    f.write_all_at(&pattern(8 * MIB as usize, 7), MIB).unwrap();
    f.write_all_at(&pattern(4 * MIB as usize, 8), 9 * MIB)
        .unwrap();
    fs::read(&disk).unwrap()
}

#[test]
fn seek_writes_into_a_partition_and_leaves_the_rest_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = image(dir.path());
    let before = mbr_disk(dir.path());
    ok(sc(
        dir.path(),
        &["-q", "--verify", "--seek", "1M", "src.img", "disk.img"],
    ));
    let after = fs::read(dir.path().join("disk.img")).unwrap();
    assert_eq!(after.len(), before.len(), "DST keeps its size");
    let (m, s) = (MIB as usize, 6 * MIB as usize);
    assert_eq!(&after[..m], &before[..m], "MBR and gap untouched");
    assert_eq!(&after[m..m + s], &bytes[..], "partition 1 holds SRC");
    assert_eq!(
        &after[m + s..],
        &before[m + s..],
        "rest of partition 1 and partition 2 untouched"
    );
    // The old data under SRC's zeros was punched out, not rewritten.
    let f = File::open(dir.path().join("disk.img")).unwrap();
    let extents = imgtest::sparsecopy::extents::data_extents(&f, 2 * MIB..7 * MIB).unwrap();
    assert_eq!(
        extents,
        vec![5 * MIB..5 * MIB + 8192, 5 * MIB + 16384..6 * MIB]
    );
    let table = tool(dir.path(), "sfdisk", &["-d", "disk.img"]);
    assert!(
        table.contains("disk.img1 : start=        2048, size=       16384"),
        "{table}"
    );
    assert!(table.contains("disk.img2 : start=       18432"), "{table}");

    // --skip/--count read one partition back out.
    ok(sc(
        dir.path(),
        &["-q", "--skip", "9M", "--count", "4M", "disk.img", "p2.img"],
    ));
    assert_eq!(
        fs::read(dir.path().join("p2.img")).unwrap(),
        &before[9 * m..13 * m]
    );
}

fn gpt_disk(dir: &Path, name: &str, size: u64) {
    File::create(dir.join(name)).unwrap().set_len(size).unwrap();
    tool(
        dir,
        "sgdisk",
        &[
            "-U",
            "11111111-2222-3333-4444-555555555555",
            "-n",
            "1:2048:+4M",
            "-t",
            "1:ef02",
            "-c",
            "1:bios",
            "-u",
            "1:AAAAAAAA-0000-0000-0000-000000000001",
            "-n",
            "2:0:0",
            "-c",
            "2:root",
            "-u",
            "2:AAAAAAAA-0000-0000-0000-000000000002",
            name,
        ],
    );
}

fn check_relocated(dir: &Path, name: &str, size: u64) {
    let disk = gpt::GptConfig::new()
        .writable(false)
        .open(dir.join(name))
        .unwrap();
    let primary = disk.primary_header().unwrap();
    let backup = disk.backup_header().unwrap();
    assert_eq!(primary.backup_lba, size / 512 - 1);
    assert_eq!(backup.current_lba, size / 512 - 1);
    assert_eq!(primary.last_usable, size / 512 - 34);
    assert_eq!(backup.part_start, size / 512 - 33);
    let names: Vec<_> = disk.partitions().values().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["bios", "root"]);
    let verify = tool(dir, "sgdisk", &["-v", name]);
    assert!(verify.contains("No problems found"), "{verify}");
}

#[test]
fn gpt_backup_moves_to_the_end_of_a_larger_dst() {
    let dir = tempfile::tempdir().unwrap();
    gpt_disk(dir.path(), "gpt.img", 16 * MIB);
    let src = fs::read(dir.path().join("gpt.img")).unwrap();
    let out = ok(sc(
        dir.path(),
        &["-f", "64M", "--verify", "gpt.img", "big.img"],
    ));
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("backup GPT moved to the end"), "{summary}");
    check_relocated(dir.path(), "big.img", 64 * MIB);
    // The partitions' bytes are SRC's.
    let big = fs::read(dir.path().join("big.img")).unwrap();
    assert_eq!(
        &big[MIB as usize..15 * MIB as usize],
        &src[MIB as usize..15 * MIB as usize]
    );
    // Also into an existing larger file.
    File::create(dir.path().join("existing.img"))
        .unwrap()
        .set_len(40 * MIB)
        .unwrap();
    ok(sc(dir.path(), &["-q", "gpt.img", "existing.img"]));
    check_relocated(dir.path(), "existing.img", 40 * MIB);
    // Same size: nothing to move, byte-identical.
    ok(sc(dir.path(), &["-q", "gpt.img", "same.img"]));
    assert_eq!(fs::read(dir.path().join("same.img")).unwrap(), src);
}

/// Allocation depends on the file system the test runs on.
fn mask_allocated(human: &str) -> String {
    let lines = human.lines().map(|l| {
        if l.starts_with("  allocated:") {
            "  allocated: [ALLOC]"
        } else {
            l
        }
    });
    lines.collect::<Vec<_>>().join("\n")
}

#[test]
fn info_describes_gpt_and_mbr_images() {
    let dir = tempfile::tempdir().unwrap();
    gpt_disk(dir.path(), "gpt.img", 16 * MIB);
    ok(sc(dir.path(), &["-q", "-f", "32M", "gpt.img", "big.img"]));
    let human = String::from_utf8(ok(sc(dir.path(), &["--info", "big.img"])).stdout).unwrap();
    insta::assert_snapshot!("info_gpt_human", mask_allocated(&human));
    let json =
        String::from_utf8(ok(sc(dir.path(), &["--info", "--json", "big.img"])).stdout).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["allocated"].as_u64().unwrap() > 0);
    v["allocated"] = "[ALLOC]".into();
    insta::assert_snapshot!("info_gpt_json", serde_json::to_string_pretty(&v).unwrap());
    mbr_disk(dir.path());
    let human = String::from_utf8(ok(sc(dir.path(), &["--info", "disk.img"])).stdout).unwrap();
    insta::assert_snapshot!("info_mbr_human", mask_allocated(&human));
    // Standard input redirected from the image is the image.
    let stdin = Command::new(BIN)
        .args(["--info", "-"])
        .stdin(File::open(dir.path().join("disk.img")).unwrap())
        .output()
        .unwrap();
    let from_stdin = String::from_utf8(ok(stdin).stdout).unwrap();
    assert_eq!(
        from_stdin.replace("/dev/stdin", "disk.img"),
        human,
        "{from_stdin}"
    );
    // A compressed image's table is in its decompressed bytes: not read, and not "none".
    tool(dir.path(), "gzip", &["-kf", "disk.img"]);
    let gz = String::from_utf8(ok(sc(dir.path(), &["--info", "disk.img.gz"])).stdout).unwrap();
    assert!(gz.contains("compressed: gzip"), "{gz}");
    assert!(
        gz.contains("partition table: not read (decompress the image to see it)"),
        "{gz}"
    );
    let json = ok(sc(dir.path(), &["--info", "--json", "disk.img.gz"])).stdout;
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["table"]["kind"], "unread");
}

#[test]
fn bad_input_gets_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    image(d);
    fs::create_dir(d.join("adir")).unwrap();
    fs::hard_link(d.join("src.img"), d.join("link.img")).unwrap();
    let mut lines = Vec::new();
    let mut case = |name: &str, out: Output| lines.push(format!("{name}: {}", fails(out)));
    case("missing SRC", sc(d, &["nope.img", "out.img"]));
    case("SRC a directory", sc(d, &["adir", "out.img"]));
    case("DST same as SRC", sc(d, &["src.img", "src.img"]));
    case("DST a hard link to SRC", sc(d, &["src.img", "link.img"]));
    case("DST a directory", sc(d, &["src.img", "adir"]));
    case("DST a character device", sc(d, &["src.img", "/dev/null"]));
    let from_file = Command::new(BIN)
        .args(["-", "src.img"])
        .current_dir(d)
        .stdin(File::open(d.join("src.img")).unwrap())
        .output();
    case("DST is stdin's file", from_file.unwrap());
    case(
        "size too small",
        sc(d, &["--size", "5M", "src.img", "out.img"]),
    );
    case(
        "size too small at seek",
        sc(d, &["-f", "6M", "--seek", "1M", "src.img", "out.img"]),
    );
    case("unknown suffix", sc(d, &["-f2Q", "/dev/null", "out.img"]));
    case("--info on a missing image", sc(d, &["--info", "nope.img"]));
    case(
        "bad block size",
        sc(d, &["-b", "1000", "src.img", "out.img"]),
    );
    tool(d, "gzip", &["-kf", "src.img"]);
    let gz = fs::read(d.join("src.img.gz")).unwrap();
    fs::write(d.join("cut.gz"), &gz[..gz.len() / 2]).unwrap();
    case("truncated gzip file", sc(d, &["cut.gz", "out.img"]));
    let mut corrupt = gz.clone();
    let at = corrupt.len() / 3;
    corrupt[at..at + 64].fill(0x55);
    case(
        "corrupt gzip on stdin",
        run_in(d, Command::new(BIN).args(["-", "out.img"]), Some(&corrupt)),
    );
    for (prog, ext) in [("zstd", "zst"), ("xz", "xz")] {
        tool(d, prog, &["-kqf", "src.img"]);
        let data = fs::read(d.join(format!("src.img.{ext}"))).unwrap();
        fs::write(d.join(format!("cut.{ext}")), &data[..data.len() - 40]).unwrap();
        case(
            &format!("truncated {ext} file"),
            sc(d, &[&format!("cut.{ext}"), "out.img"]),
        );
    }
    assert!(
        !d.join("out.img").exists(),
        "a failed copy leaves no DST it created"
    );
    insta::assert_snapshot!("bad_input", lines.join("\n"));
}

/// Flags that would cut an existing DST, copy nothing or be ignored: refused, one line,
/// exit 2, nothing written.
#[test]
fn flags_that_would_lose_data_or_do_nothing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    image(d);
    fs::write(d.join("long.img"), vec![7u8; 2 * MIB as usize]).unwrap();
    let stream = fs::read(d.join("src.img")).unwrap();
    let skip = ["--skip", "7M", "-", "out.img"];
    let lines = [
        (
            "size shorter than an existing DST",
            sc(d, &["-f1M", "/dev/null", "long.img"]),
        ),
        (
            "skip past the end of SRC",
            sc(d, &["--skip", "7M", "src.img", "out.img"]),
        ),
        (
            "skip past the end of a stream",
            run_in(d, Command::new(BIN).args(skip), Some(&stream)),
        ),
        (
            "seek past the largest file offset",
            sc(d, &["--seek", "9000000T", "/dev/null", "out.img"]),
        ),
        (
            "--json without --info",
            sc(d, &["--json", "src.img", "out.img"]),
        ),
        (
            "--info on a pipe",
            run_in(d, Command::new(BIN).args(["--info", "-"]), Some(b"x")),
        ),
    ]
    .map(|(name, out)| format!("{name}: {}", fails(out)));
    assert_eq!(
        fs::read(d.join("long.img")).unwrap(),
        vec![7u8; 2 * MIB as usize]
    );
    assert!(!d.join("out.img").exists());
    insta::assert_snapshot!(lines.join("\n"), @r"
    size shorter than an existing DST: sparsecopy: error: size 1048576 would cut DST short: it has 2097152 bytes (add --truncate to cut it)
    skip past the end of SRC: sparsecopy: error: skip offset 7340032 is past the end of SRC (6291456 bytes) (lower --skip)
    skip past the end of a stream: sparsecopy: error: skip offset 7340032 is past the end of SRC (6291456 bytes) (lower --skip)
    seek past the largest file offset: sparsecopy: error: DST cannot reach byte 9895604649984000000: past the largest file offset, 2^63 - 1
    --json without --info: sparsecopy: error: --json only changes what --info prints: add --info
    --info on a pipe: sparsecopy: error: --info reads a file or a block device, and standard input is a stream: name the image, or redirect it from a file
    ");
}

#[test]
fn size_smaller_than_src_is_allowed_with_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = image(dir.path());
    ok(sc(
        dir.path(),
        &["-q", "-f", "4M", "--truncate", "src.img", "cut.img"],
    ));
    assert_eq!(
        fs::read(dir.path().join("cut.img")).unwrap(),
        &bytes[..4 << 20]
    );
    // --truncate alone makes DST end where the copy ends.
    File::create(dir.path().join("long.img"))
        .unwrap()
        .set_len(64 * MIB)
        .unwrap();
    ok(sc(dir.path(), &["-q", "--truncate", "src.img", "long.img"]));
    assert_eq!(fs::read(dir.path().join("long.img")).unwrap(), bytes);
}

/// A file that may not grow further: RLIMIT_FSIZE makes writes past 1 MiB fail with
/// EFBIG, as a filesystem's largest file does, without root, mounts or loop devices. It
/// is not called a full filesystem.
#[test]
fn a_file_that_may_not_grow_says_where() {
    let dir = tempfile::tempdir().unwrap();
    image(dir.path());
    File::create(dir.path().join("existing.img")).unwrap();
    let script = format!("trap '' XFSZ; ulimit -f 1024; exec {BIN} src.img existing.img");
    let out = run_in(dir.path(), Command::new("bash").args(["-c", &script]), None);
    insta::assert_snapshot!(fails(out), @"sparsecopy: error: DST cannot reach byte 4194304: File too large (os error 27)");
    // An existing DST stays, holding what was written.
    assert_eq!(
        fs::metadata(dir.path().join("existing.img")).unwrap().len(),
        MIB
    );
}
