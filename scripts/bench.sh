#!/usr/bin/env bash
# Runs the criterion benchmarks of the consensus core.
#   scripts/bench.sh           full run
#   scripts/bench.sh --quick   shorter measurement, for a first look
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
if [[ "${1:-}" == "--quick" ]]; then
    args=(--warm-up-time 1 --measurement-time 3)
fi
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores)"
cargo bench --bench core -- "${args[@]}"
