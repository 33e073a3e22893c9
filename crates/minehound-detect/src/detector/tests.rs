//! The rules and detectors on hand-made inputs: each family rule on what
//! its upstream source defines, and ordinary text and binaries that must
//! not match.

use super::*;
use crate::SignaturesBuilder;

const GENERAL_FUND: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

fn rules_matching(text: &str) -> Vec<String> {
    let signatures = SignaturesBuilder::new().build().unwrap();
    let mut detector = Detector::new(&signatures);
    detector
        .check(FileKind::Text, text.as_bytes())
        .unwrap()
        .into_iter()
        .map(|d| d.rule)
        .collect()
}

#[test]
fn a_wallet_counts_only_when_its_checksum_holds() {
    let env = |wallet: &str| format!("POOL=pool.supportxmr.com:443\nWALLET={wallet}\n");
    let found = rules_matching(&env(GENERAL_FUND));
    assert!(found.iter().any(|r| r == "MH-MONERO-WALLET"), "{found:?}");

    let mut mutated = GENERAL_FUND.to_string();
    mutated.replace_range(40..41, "z");
    assert_ne!(mutated, GENERAL_FUND);
    let found = rules_matching(&env(&mutated));
    assert!(!found.iter().any(|r| r == "MH-MONERO-WALLET"), "{found:?}");

    let random = "4".to_string() + &"Ab3".repeat(31) + "x";
    assert_eq!(random.len(), 95);
    // Not an address; the pool and a wallet key still make a miner config.
    assert_eq!(rules_matching(&env(&random)), ["MH-MINER-CONFIG-TEXT"]);
}

#[test]
fn a_launcher_is_found_by_its_argument_list_in_every_language() {
    let launchers = [
        (
            "python",
            "import subprocess\nPOOL = \"gulf.moneroocean.stream:10128\"\n\
             subprocess.Popen([path, \"-o\", POOL, \"-u\", wallet, \"-k\"])\n",
        ),
        (
            "javascript",
            "const { spawn } = require('child_process');\n\
             spawn('./worker', ['--url', 'stratum+tcp://203.0.113.9:3333', '--user', id, '--donate-level', '1']);\n",
        ),
        (
            "go",
            "cmd := exec.Command(bin, \"-a\", \"rx/0\", \"-o\", \"xmr.pool.example.net:443\", \"-u\", w)\n",
        ),
        (
            "powershell",
            "Start-Process -FilePath $m -ArgumentList \"-o\",\"pool.hashvault.pro:443\",\"-u\",$w\n",
        ),
        (
            "java",
            &format!(
                "new ProcessBuilder(bin, \"--randomx-mode=fast\", \"-o\", \"stratum+ssl://203.0.113.9:443\", \"-u\", \"{GENERAL_FUND}\").start();\n"
            ),
        ),
    ];
    for (language, code) in launchers {
        let found = rules_matching(code);
        assert!(
            found.iter().any(|r| r == "MH-MINER-LAUNCHER"),
            "{language}: {found:?}"
        );
    }
    // Without a process call, without a miner's options or without
    // anywhere the coins go, it is not a launcher.
    // "-o" and "-u" far apart: a compiler call and a ps call.
    let far_apart = format!(
        "subprocess.run([\"gcc\", \"-o\", out, src])\n{}\nsubprocess.run([\"ps\", \"-u\", user])\n# see pool.supportxmr.com:443\n",
        "# ".repeat(150)
    );
    for code in [
        "OPTS = [\"-o\", \"pool.supportxmr.com:443\", \"-u\", w]\n",
        "subprocess.run([\"ssh\", \"-o\", \"BatchMode=yes\", \"-u\", user, \"build.example.com:22\"])\n",
        "subprocess.run([\"xmrig\", \"--version\"]); HOST = \"pool.supportxmr.com:443\"\n",
        far_apart.as_str(),
    ] {
        let found = rules_matching(code);
        assert!(
            !found.iter().any(|r| r == "MH-MINER-LAUNCHER"),
            "{code}: {found:?}"
        );
    }
}

#[test]
fn gpu_miners_started_from_their_usage_lines_are_found() {
    let wallet = "0x5A0b54D5dc17e0AadC383d2db43B0a0D3E029c4c";
    let lines = [
        format!("./lolMiner --algo ETCHASH --pool etc.2miners.com:1010 --user {wallet}.rig0"),
        "./miner --algo kawpow --server rvn.2miners.com:6060 --user RWALLETxyz.rig".to_string(),
        format!(
            "PhoenixMiner.exe -pool ssl://eu1.ethermine.org:5555 -wal {wallet}.Rig001 -coin etc"
        ),
        "./SRBMiner-MULTI --algorithm autolykos2 --pool stratum+tcp://erg.2miners.com:8888 --wallet 9fWALLET --worker rig1"
            .to_string(),
        format!("ethminer -G -P stratum1+tcp://{wallet}.rig@eth-eu1.nanopool.org:9999"),
    ];
    for line in &lines {
        let script = format!("#!/bin/sh\ncd /opt/miner\n{line}\n");
        let found = rules_matching(&script);
        assert!(
            found.iter().any(|r| r == "MH-GPU-MINER-COMMAND"),
            "{line}: {found:?}"
        );
    }
    // Pool-like options of ordinary programs, without a GPU algorithm
    // or miner: no finding.
    for line in [
        "kubectl config set-cluster prod --server=api.example.com:6443 --user=admin\ncp -a etc/ /backup/",
        "rsync --server -logDtpre.iLsfxC . /srv/backup; psql --user app db.example.com:5432",
        "pgbouncer --pool pgpool.internal:6432 --user app --algo round-robin",
        "gunicorn --server 0.0.0.0:8080 -w 4 app:main --worker-class gthread --coin-flip eth0",
        "./t-rex-64 --cfg cfg/trex_cfg.yaml -f cap2/dns.yaml --server 10.0.0.2:4501 --user lab",
    ] {
        let found = rules_matching(&format!("#!/bin/sh\n{line}\n"));
        assert!(
            !found.iter().any(|r| r == "MH-GPU-MINER-COMMAND"),
            "{line}: {found:?}"
        );
    }
}

/// An ELF-magic blob carrying `strings`, NUL-separated as in `.rodata`.
fn elf_with(strings: &[&str]) -> Vec<u8> {
    let mut out = b"\x7fELF\x02\x01\x01\0".to_vec();
    for s in strings {
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(s.as_bytes());
    }
    out.push(0);
    out
}

fn yara_rules(data: &[u8]) -> Vec<(String, Severity)> {
    let signatures = SignaturesBuilder::new().build().unwrap();
    let mut detector = Detector::new(&signatures);
    let mut out: Vec<_> = detector
        .check(FileKind::Elf, data)
        .unwrap()
        .into_iter()
        .filter(|d| d.detector == "yara")
        .map(|d| (d.rule, d.severity))
        .collect();
    out.sort();
    out
}

/// Each family rule on the tables its upstream source defines, and only
/// on those together.
#[test]
fn family_rules_key_on_option_protocol_and_algorithm_tables() {
    let xmrig_options = [
        "donate-level",
        "cpu-max-threads-hint",
        "randomx-1gb-pages",
        "randomx-wrmsr",
        "huge-pages-jit",
        "self-select",
        "rig-id",
        "tls-fingerprint",
    ];
    let xmrig_protocol = ["stratum+tcp://", "stratum+ssl://", "keepalived", "job_id"];
    let xmrig_algos = [
        "rx/0",
        "rx/wow",
        "cn/r",
        "cn/0",
        "cn-lite/1",
        "argon2/chukwa",
    ];
    let all: Vec<&str> = xmrig_options
        .iter()
        .chain(&xmrig_protocol)
        .chain(&xmrig_algos)
        .copied()
        .collect();
    let found = yara_rules(&elf_with(&all));
    assert!(
        found.contains(&("MH-XMRIG-ELF".into(), Severity::Critical)),
        "{found:?}"
    );
    // Algorithm names without the protocol are no miner.
    let no_protocol: Vec<&str> = xmrig_options.iter().chain(&xmrig_algos).copied().collect();
    assert!(yara_rules(&elf_with(&no_protocol)).is_empty());

    let xmr_stak_cpu = elf_with(&[
        "pool_address",
        "wallet_address",
        "pool_password",
        "use_tls",
        "tls_secure_algo",
        "giveup_limit",
        "h_print_time",
        "use_slow_memory",
        "nicehash_nonce",
        "aes_override",
        "cpu_threads_conf",
        "low_power_mode",
        "no_prefetch",
        "affine_to_cpu",
        "{\"method\":\"login\",\"params\":{\"login\":\"%s\",\"pass\":\"%s\",\"agent\":\"xmr-stak-cpu/1.3.0-1.5.0\"},\"id\":1}",
        "keepalived",
        "job_id",
    ]);
    let found = yara_rules(&xmr_stak_cpu);
    assert!(
        found.contains(&("MH-XMR-STAK-ELF".into(), Severity::Critical)),
        "{found:?}"
    );

    let cpuminer = elf_with(&[
        "no-longpoll",
        "no-getwork",
        "no-stratum",
        "retry-pause",
        "coinbase-addr",
        "cpu-affinity",
        "mining.subscribe",
        "mining.notify",
        "mining.authorize",
        "X-Long-Polling",
        "getblocktemplate",
        "stratum+tcp://",
    ]);
    let found = yara_rules(&cpuminer);
    assert!(
        found.contains(&("MH-CPUMINER-ELF".into(), Severity::Critical)),
        "{found:?}"
    );

    let kinsing = elf_with(&[
        "Go build ID: \"x\"",
        "runtime.gopanic",
        "main.minerRunningCheck",
        "main.getMinerPid",
        "main.downloadAndExecute",
        "main.masscan",
        "main.backconnect",
    ]);
    assert_eq!(
        yara_rules(&kinsing),
        [("MH-KINSING-LOADER-ELF".to_string(), Severity::Critical)]
    );
    // A Go program that merely mentions the name is nothing.
    assert!(yara_rules(&elf_with(&["Go build ID: \"x\"", "kinsing"])).is_empty());

    // RandomX code alone (nodes, p2pool, librandomx) is low, never a miner.
    let mut randomx = elf_with(&["cryptonight", "rx/0"]);
    randomx.extend_from_slice(b"RandomX\x03");
    assert_eq!(
        yara_rules(&randomx),
        [("MH-RANDOMX-CODE-ELF".to_string(), Severity::Low)]
    );
}

#[test]
fn gpu_miner_binaries_need_a_pool_protocol_gpu_algorithms_and_a_gpu_api() {
    let gpu_miner = MH_GPU_MINER_ELF;
    let cases: &[(&[&str], bool)] = &[
        // A closed-source GPU miner's shape: what it cannot do without.
        (
            &[
                "mining.subscribe",
                "mining.authorize",
                "kawpow",
                "autolykos2",
                "cuLaunchKernel",
            ],
            true,
        ),
        (
            &[
                "eth_submitLogin",
                "eth_submitWork",
                "ethash_search",
                "clBuildProgram",
            ],
            true,
        ),
        (
            &[
                "stratum+ssl://",
                "etchash",
                "kheavyhash",
                "hipModuleLaunchKernel",
            ],
            true,
        ),
        // An Ethereum node: getwork and ethash, no GPU.
        (
            &["eth_submitWork", "eth_getWork", "ethash", "etchash"],
            false,
        ),
        // GPU software that knows hash algorithms but no pool.
        (
            &["cuLaunchKernel", "clBuildProgram", "ethash", "equihash"],
            false,
        ),
        // A pool server with GPU monitoring but no GPU algorithm.
        (
            &[
                "mining.subscribe",
                "mining.submit",
                "sha256d",
                "cuLaunchKernel",
            ],
            false,
        ),
    ];
    for (strings, expected) in cases {
        let found = yara_rules(&elf_with(strings));
        assert_eq!(
            found.iter().any(|(rule, _)| rule == gpu_miner),
            *expected,
            "{strings:?}: {found:?}"
        );
    }
}

const MH_GPU_MINER_ELF: &str = "MH-GPU-MINER-ELF";

#[test]
fn xmrig_cuda_plugin_is_its_api_with_cuda() {
    // The plugin API of xmrig-cuda 6.22.0 (src/xmrig-cuda.h).
    let api = [
        "alloc",
        "cnHash",
        "deviceCount",
        "deviceInfo",
        "deviceInit",
        "deviceInt",
        "deviceName",
        "deviceUint",
        "deviceUlong",
        "init",
        "kawPowHash",
        "kawPowPrepare_v2",
        "kawPowStopHash",
        "lastError",
        "pluginVersion",
        "release",
        "rxHash",
        "rxPrepare",
        "setJob",
        "version",
    ];
    let mut plugin = api.to_vec();
    plugin.extend([
        "cudaMalloc",
        "cudaMemcpyAsync",
        "nvrtcCompileProgram",
        "xmrig-cuda",
    ]);
    assert_eq!(
        yara_rules(&elf_with(&plugin)),
        [("MH-XMRIG-CUDA-ELF".to_string(), Severity::Critical)]
    );
    // XMRig's loader names the API but does not use CUDA itself.
    assert!(yara_rules(&elf_with(&api)).is_empty());
}

#[test]
fn miner_configs_in_key_value_text_are_found() {
    let wallet = GENERAL_FUND;
    let configs = [
        "[BitCoin]\nMiningAddress = stratum+tcp://cn.ss.btc.com:1800\nUsername = kepdter.002\nPassword = x\n".to_string(),
        format!("pool:\n  url: stratum+ssl://gulf.moneroocean.stream:20128\n  wallet: {wallet}\n  pass: rig1\n"),
        format!("[pool]\nurl = \"stratum+tcp://xmr.example.net:3333\"\nuser = \"{wallet}\"\n"),
        format!("WALLET={wallet}\nWORKER=rig7\nPOOL_URL=stratum+tcp://rx.unmineable.com:3333\n"),
        "pool = eth.2miners.com:2020\nwallet = 0x5A0b54D5dc17e0AadC383d2db43B0a0D3E029c4c\n".to_string(),
        "POOL: eth-eu1.nanopool.org:9999, WALLET: 0x5A0b54D5dc17e0AadC383d2db43B0a0D3E029c4c, PSW: x\n".to_string(),
        "[Ethash]\nwallet = 0x5A0b54D5dc17e0AadC383d2db43B0a0D3E029c4c\nrigName = rig1\npool1 = eth-eu1.nanopool.org:9999\n".to_string(),
    ];
    for config in &configs {
        let found = rules_matching(config);
        assert!(
            found.iter().any(|r| r == "MH-MINER-CONFIG-TEXT"),
            "{config}: {found:?}"
        );
    }
    for text in [
        // Documentation of the scheme, a pool's own settings, a login page.
        "Connect your miner to stratum+tcp://pool.example.org:3333 and use your wallet as the user name.\n",
        "[stratum]\nlisten = 0.0.0.0:3333\nupstream = stratum+tcp://node.internal:3334\ndifficulty = 10000\n",
        "[database]\nhost = db.example.com:5432\nuser = app\npassword = secret\n",
        "server: https://api.example.com:443\nusername: deploy\n",
    ] {
        let found = rules_matching(text);
        assert!(
            !found.iter().any(|r| r == "MH-MINER-CONFIG-TEXT"),
            "{text}: {found:?}"
        );
    }
}
