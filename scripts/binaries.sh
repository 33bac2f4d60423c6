# shellcheck shell=bash
# Sourced by the scripts that run nodes: sets `ourcoind` and `cli` to the
# release binaries, built with `cargo build --release --bins` unless
# OURCOIN_BIN_DIR names a directory that already holds them. Needs `root`.
: "${root:?the sourcing script sets root}"
if [[ -n "${OURCOIN_BIN_DIR:-}" ]]; then
    bin_dir="$OURCOIN_BIN_DIR"
else
    echo "building the binaries (cargo build --release --bins)..." >&2
    (cd "$root" && cargo build --release --bins)
    bin_dir="${CARGO_TARGET_DIR:-$root/target}/release"
fi
readonly ourcoind="$bin_dir/ourcoind"
readonly cli="$bin_dir/ourcoin-cli"
for program in "$ourcoind" "$cli"; do
    if [[ ! -x "$program" ]]; then
        echo "error: $program is missing; build it or point OURCOIN_BIN_DIR at the binaries" >&2
        exit 1
    fi
done
