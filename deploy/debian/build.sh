#!/usr/bin/env bash
# Builds the minehound Debian package with cargo-deb
# (`cargo install --locked cargo-deb`): the binary from a Cargo profile, the
# man pages and bash/zsh/fish completions that binary prints, the systemd
# unit, /etc/minehound/config.toml and serve.env (conffiles), and the
# maintainer scripts that make the minehound system user. Prints the path of
# the .deb on its last line.
#
#   deploy/debian/build.sh [PROFILE]
#
#   PROFILE  the Cargo profile to build (default dist: LTO, stripped; about
#            20 minutes from scratch on two cores). CI packages the release
#            binary its tests already built: same contents, quicker.
#
#   MINEHOUND_DEB_NO_BUILD=1  package target/PROFILE/minehound as it is
#                             (it must exist) instead of building it
#
# Needs cargo, cargo-deb, dpkg-deb; strip and objcopy (binutils).
set -euo pipefail
cd "$(dirname "$0")/../.."

profile="${1:-dist}"
case "$profile" in
    '' | *[!A-Za-z0-9_-]*) echo "build.sh: bad profile name ${profile@Q}" >&2; exit 2 ;;
esac
target="${CARGO_TARGET_DIR:-target}"
# Cargo puts the `dev` profile in target/debug; every other one in its name.
out="$target/$profile"
[ "$profile" = dev ] && out="$target/debug"

if [ -z "${MINEHOUND_DEB_NO_BUILD:-}" ]; then
    cargo build --locked --profile "$profile" -p minehound-cli
fi
binary="$out/minehound"
[ -x "$binary" ] || { echo "build.sh: $binary is missing (build it, or unset MINEHOUND_DEB_NO_BUILD)" >&2; exit 2; }

# The assets Cargo.toml's [package.metadata.deb] lists under
# target/release/package/ (cargo-deb maps target/release to the profile's
# directory).
assets="$out/package"
rm -rf -- "$assets"
mkdir -p -- "$assets/man" "$assets/completions"
"$binary" man --dir "$assets/man"
gzip -9n -- "$assets"/man/*.1
"$binary" completions bash >"$assets/completions/minehound.bash"
"$binary" completions zsh >"$assets/completions/_minehound"
"$binary" completions fish >"$assets/completions/minehound.fish"

# --strip: the release profile keeps line tables for backtraces during
# development; a package ships without them.
cargo deb --locked -p minehound-cli --no-build --profile "$profile" --strip \
    --output "$target/debian/" >"$assets/cargo-deb.log" 2>&1 ||
    { cat "$assets/cargo-deb.log" >&2; exit 2; }
deb="$(tail -n1 "$assets/cargo-deb.log")"
[ -f "$deb" ] || { cat "$assets/cargo-deb.log" >&2; echo "build.sh: no package at ${deb@Q}" >&2; exit 2; }
echo "$deb"
