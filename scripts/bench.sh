#!/usr/bin/env bash
# Runs the benchmarks and reports the figures of the performance targets.
#
#   scripts/bench.sh           full run: the criterion benches (core, bls), then
#                              the report, whose markdown section is printed and
#                              written to target/bench-report.md
#   scripts/bench.sh --quick   the report alone, with fewer rounds: under two
#                              minutes once built and the sync fixture cached
#
# The report (benches/report.rs) measures everything in this one run: the
# miner, the block signature checks, mempool admission, and real release
# nodes on 127.0.0.1 syncing a cached 2,020-block chain and passing blocks
# along a line of five. It prints one PASS/MISS line per target, an INFO line
# for a second sync whose payments all have their own sender (not a target),
# and the last line of output is one JSON object with every figure.
#
# The sync fixtures (ten payers in every block; a sender per payment) live in
# target/bench-fixtures/; the report rebuilds one when it cannot open it.
# Delete that folder to force a rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
case "${1:-}" in
    --quick) quick=true ;;
    "") ;;
    *)
        echo "usage: $0 [--quick]" >&2
        exit 2
        ;;
esac

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores)"

# The nodes of the report are the release binaries.
cargo build --release --bins
export OURCOIN_BIN_DIR="$target_dir/release"
# The sync fixture is built once, then reused (the report checks it first).
export OURCOIN_BENCH_FIXTURES="$target_dir/bench-fixtures"

if $quick; then
    report_args=(--quick)
else
    cargo bench --bench core
    cargo bench --bench bls
    report_args=(--markdown "$target_dir/bench-report.md")
fi

output="$(mktemp)"
trap 'rm -f "$output"' EXIT
# The report's stdout ends with its JSON line; nothing is printed after it.
cargo bench --bench report -- "${report_args[@]}" | tee "$output"
last="$(tail -n 1 "$output")"
if [[ "$last" != "{"*"}" ]]; then
    echo "error: the report did not end with its JSON figures" >&2
    exit 1
fi
