#!/usr/bin/env bash
# Builds the OCI image deploy/kubernetes runs, without Docker or any builder:
# one layer holding the minehound binary, the shared libraries it links (as
# ldd finds them on this machine), the CA certificates, and /etc/passwd and
# /etc/group naming the non-root user 65532. The layer tar is deterministic
# (sorted names, fixed mtime, owner 0, numeric ids; gzip -n), so the same
# binary and libraries give the same digests.
#
#   deploy/image/build.sh [BINARY [OUTDIR [REFERENCE]]]
#
#   BINARY     the minehound binary to ship (default target/dist/minehound:
#              `cargo build --profile dist -p minehound-cli`, LTO, stripped)
#   OUTDIR     where the OCI image layout is written (default out/image); it
#              must be absent, empty, or an earlier layout (which is replaced)
#   REFERENCE  if given, `minehound push oci:OUTDIR REFERENCE` scans the image
#              and pushes it only if it is clean; its tag (default latest)
#              names the image in the layout
#
#   SOURCE_DATE_EPOCH  the files' mtime and the image's creation time
#                      (default 0, 1970-01-01)
#   MINEHOUND_IMAGE_DEBUG=keep
#                      ship the binary's debug info; by default it is
#                      stripped (objcopy --strip-debug: symbols stay, so
#                      backtraces keep function names), which makes a
#                      release-profile binary about a fifth of its size and
#                      small enough for minehound's own --max-file-size (the
#                      dist binary has none to strip)
#
# Needs bash, coreutils, GNU tar, gzip, ldd and objcopy (binutils). Prints the
# layout's path, the image digest and its size.
set -euo pipefail

binary="${1:-target/dist/minehound}"
out="${2:-out/image}"
reference="${3:-}"
epoch="${SOURCE_DATE_EPOCH:-0}"

die() {
    echo "build.sh: $*" >&2
    exit 2
}

if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
    die "$binary: not an executable file (build it: cargo build --profile dist -p minehound-cli)"
fi
case "$epoch" in
    '' | *[!0-9]*) die "SOURCE_DATE_EPOCH must be seconds since 1970" ;;
esac
tag=latest
if [ -n "$reference" ]; then
    # The tag of REGISTRY[:PORT]/REPO[:TAG][@DIGEST]: after the last "/".
    last="${reference##*/}"
    last="${last%%@*}"
    case "$last" in
        *:*) tag="${last##*:}" ;;
    esac
fi
case "$tag" in
    *[!A-Za-z0-9_.-]*) die "tag $tag: letters, digits, _ . - only" ;;
esac

if [ -e "$out" ]; then
    [ -d "$out" ] || die "$out exists and is not a directory"
    if [ -f "$out/oci-layout" ]; then
        rm -rf -- "$out/blobs" "$out/index.json" "$out/oci-layout"
    fi
    [ -z "$(ls -A -- "$out")" ] || die "$out is neither empty nor an OCI image layout"
fi
mkdir -p -- "$out/blobs/sha256"
out="$(cd -- "$out" && pwd)"
binary="$(cd -- "$(dirname -- "$binary")" && pwd)/$(basename -- "$binary")"

work="$(mktemp -d "${TMPDIR:-/tmp}/minehound-image.XXXXXX")"
trap 'rm -rf -- "$work"' EXIT
root="$work/rootfs"
umask 022
mkdir -p "$root"

# --- the root filesystem ---------------------------------------------------

# The architecture, from the ELF header's e_machine (little-endian at 18).
machine="$(od -An -tu2 -j18 -N2 --endian=little -- "$binary" | tr -d ' ')"
case "$(head -c4 -- "$binary" | od -An -c | tr -d ' ')$machine" in
    '177ELF62') arch=amd64 ;;
    '177ELF183') arch=arm64 ;;
    '177ELF243') arch=riscv64 ;;
    '177ELF21') arch=ppc64le ;;
    '177ELF22') arch=s390x ;;
    *) die "$binary: not an ELF executable for a known architecture (e_machine $machine)" ;;
esac

install -D -m 0755 -- "$binary" "$root/usr/bin/minehound"
case "${MINEHOUND_IMAGE_DEBUG:-strip}" in
    keep) ;;
    strip)
        command -v objcopy >/dev/null || die "objcopy not found (apt-get install binutils, or MINEHOUND_IMAGE_DEBUG=keep)"
        objcopy --strip-debug -- "$root/usr/bin/minehound"
        ;;
    *) die "MINEHOUND_IMAGE_DEBUG must be keep or strip" ;;
esac

# What the binary links, by the paths the loader resolves here: libc,
# libgcc_s, libm, the loader itself (by its PT_INTERP path)... Each file is
# copied to the path ldd names, its symlinks resolved, so the loader finds it
# in its built-in directories without an ld.so.cache.
libs="$work/libs"
if ! ldd -- "$binary" >"$work/ldd" 2>&1; then
    grep -qE 'not a dynamic executable|statically linked' "$work/ldd" ||
        die "ldd $binary: $(cat "$work/ldd")"
    : >"$libs"
else
    if grep -q 'not found' "$work/ldd"; then
        die "ldd $binary: missing libraries: $(grep 'not found' "$work/ldd" | tr -s ' \t' ' ')"
    fi
    # "name => /path (0x…)" and "/path (0x…)"; the vDSO has no path.
    sed -nE 's/^[[:space:]]*([^[:space:]]+ => )?(\/[^[:space:]]+) \(0x[0-9a-f]+\)$/\2/p' "$work/ldd" |
        LC_ALL=C sort -u >"$libs"
    [ -s "$libs" ] || die "ldd $binary named no libraries: $(cat "$work/ldd")"
fi
while IFS= read -r lib; do
    [ -f "$lib" ] || die "$lib (linked by the binary) is missing"
    install -D -m 0755 -- "$(readlink -f -- "$lib")" "$root$lib"
done <"$libs"

certs=/etc/ssl/certs/ca-certificates.crt
[ -s "$certs" ] || die "$certs is missing (apt-get install ca-certificates)"
install -D -m 0644 -- "$certs" "$root$certs"

install -d -m 0755 "$root/etc"
# The user the image runs as; no home directory (the service gets its
# directories from flags), no shell.
printf '%s\n' \
    'root:x:0:0:root:/root:/usr/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$root/etc/group"
# Host names from /etc/hosts (Kubernetes writes it), then DNS.
printf '%s\n' 'hosts: files dns' >"$root/etc/nsswitch.conf"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"
# TMPDIR for runtimes that mount nothing there (the Deployment mounts an
# emptyDir); every other writable place comes from a volume.
install -d -m 1777 "$root/tmp"

# --- the layer -------------------------------------------------------------

# Moves FILE into the blobs; sets blob_digest and blob_size.
put_blob() {
    blob_digest="$(sha256sum <"$1" | cut -d' ' -f1)"
    blob_size="$(stat -c %s -- "$1")"
    mv -- "$1" "$out/blobs/sha256/$blob_digest"
}

layer_tar="$work/layer.tar"
(cd "$root" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) >"$work/entries"
tar --create --file="$layer_tar" --directory="$root" \
    --format=gnu --no-recursion --verbatim-files-from --files-from="$work/entries" \
    --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    --no-acls --no-xattrs --no-selinux
diff_id="$(sha256sum <"$layer_tar" | cut -d' ' -f1)"
unpacked_size="$(stat -c %s -- "$layer_tar")"
gzip -n -c -- "$layer_tar" >"$work/layer.tar.gz"
put_blob "$work/layer.tar.gz"
layer_digest="$blob_digest" layer_size="$blob_size"

# --- config, manifest, index -----------------------------------------------

created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
version="$("$binary" --version | head -n1 | cut -d' ' -f2)" || die "$binary --version failed"
case "$version" in
    '' | *[!A-Za-z0-9.+-]*) die "$binary --version: unexpected version ${version@Q}" ;;
esac
printf '{"created":"%s","architecture":"%s","os":"linux","config":{"User":"65532:65532","ExposedPorts":{"8443/tcp":{}},"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","SSL_CERT_FILE=%s"],"Entrypoint":["/usr/bin/minehound"],"Cmd":["serve"],"WorkingDir":"/","Labels":{"org.opencontainers.image.title":"minehound","org.opencontainers.image.version":"%s"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"deploy/image/build.sh: minehound %s, the libraries it links, CA certificates, user 65532"}]}' \
    "$created" "$arch" "$certs" "$version" "$diff_id" "$created" "$version" >"$work/config.json"
put_blob "$work/config.json"
config_digest="$blob_digest" config_size="$blob_size"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$work/manifest.json"
put_blob "$work/manifest.json"
manifest_digest="$blob_digest" manifest_size="$blob_size"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$manifest_size" "$arch" "$tag" >"$out/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"

mib() {
    awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'
}
total=$((layer_size + config_size + manifest_size))
echo "layout: $out"
echo "image:  sha256:$manifest_digest (linux/$arch, tag $tag)"
echo "size:   $(mib "$total") compressed, $(mib "$unpacked_size") unpacked ($total bytes)"

if [ -n "$reference" ]; then
    # Scans first; pushes only if clean (exit 1 and nothing uploaded otherwise).
    "$binary" push "oci:$out" "$reference"
    echo "pushed: $reference"
fi
