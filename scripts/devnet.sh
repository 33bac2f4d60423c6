#!/usr/bin/env bash
# Starts a private regtest network of N local nodes (default 3) in one command.
#
#   scripts/devnet.sh        three nodes
#   scripts/devnet.sh 5      five nodes
#
# Node i listens on 127.0.0.1, port BASE+i (BASE: $OURCOIN_DEVNET_BASE_PORT,
# default 29733, regtest's default port, which stays free for a node of your
# own). Each node bootstraps only from the one before it, so the later ones
# must find the rest through Kademlia. Node 1 mines to the wallet in its
# datadir; every node's datadir has a wallet, so payments can go between them.
# Each node runs in a fresh temporary datadir and logs to DIR/node.log.
#
# Ctrl-C (or SIGTERM) stops every node and removes the datadirs; set
# OURCOIN_DEVNET_KEEP=1 to keep them (with the logs).
#
# The binaries are built with `cargo build --release --bins`, unless
# OURCOIN_BIN_DIR names a directory that already holds ourcoind and ourcoin-cli.
set -euo pipefail

readonly nodes="${1:-3}"
readonly base_port="${OURCOIN_DEVNET_BASE_PORT:-29733}"
readonly start_timeout_secs=60

if ! [[ "$nodes" =~ ^[0-9]+$ ]] || ((nodes < 1 || nodes > 50)); then
    echo "usage: $0 [NODES]   (NODES: 1 to 50, default 3)" >&2
    exit 2
fi
if ! [[ "$base_port" =~ ^[0-9]+$ ]] || ((base_port < 1024 || base_port + nodes > 65535)); then
    echo "error: OURCOIN_DEVNET_BASE_PORT=$base_port leaves no room for $nodes ports below 65536" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/binaries.sh
source "$root/scripts/binaries.sh"

# Whether something already accepts connections on a local port.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

for ((i = 1; i <= nodes; i++)); do
    port=$((base_port + i))
    if port_in_use "$port"; then
        echo "error: port $port on 127.0.0.1 is taken; stop what uses it or set OURCOIN_DEVNET_BASE_PORT" >&2
        exit 1
    fi
done

pids=()
dirs=()
addrs=()
wallets=()

cleanup() {
    trap - EXIT INT TERM
    local pid dir
    for pid in ${pids[@]+"${pids[@]}"}; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # A node flushes its database on SIGTERM; give each a few seconds.
    for pid in ${pids[@]+"${pids[@]}"}; do
        for _ in {1..100}; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${OURCOIN_DEVNET_KEEP:-}" ]]; then
        for dir in ${dirs[@]+"${dirs[@]}"}; do
            echo "kept $dir" >&2
        done
    else
        for dir in ${dirs[@]+"${dirs[@]}"}; do
            rm -rf -- "$dir"
        done
    fi
    echo "devnet stopped" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until node $1 (pid $2) logs its listen address with its peer id, and
# prints that address.
wait_for_listen_addr() {
    local index="$1" pid="$2" log="$3" port="$4" addr
    local deadline=$((SECONDS + start_timeout_secs))
    while ((SECONDS < deadline)); do
        # The node logs each listen address as a complete multiaddr:
        # "listening on /ip4/127.0.0.1/tcp/PORT/p2p/PEER_ID" (peer ids are base58).
        addr="$(grep -oE "/ip4/127\.0\.0\.1/tcp/$port/p2p/[1-9A-HJ-NP-Za-km-z]+" "$log" 2>/dev/null | head -n 1 || true)"
        if [[ -n "$addr" ]]; then
            echo "$addr"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "error: node $index exited while starting; the end of $log:" >&2
            tail -n 20 "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "error: node $index did not log its listen address within ${start_timeout_secs}s; the end of $log:" >&2
    tail -n 20 "$log" >&2
    return 1
}

for ((i = 1; i <= nodes; i++)); do
    dir="$(mktemp -d "${TMPDIR:-/tmp}/ourcoin-devnet-$i.XXXXXX")"
    dirs+=("$dir")
    wallet="$dir/wallet.json"
    wallets+=("$wallet")
    # Throwaway regtest wallets: their recovery phrases (on stderr) are not shown;
    # `wallet mnemonic` prints one if wanted.
    address="$("$cli" --network regtest --wallet "$wallet" wallet new 2>/dev/null | tail -n 1)"

    port=$((base_port + i))
    args=(--network regtest --datadir "$dir" --listen "/ip4/127.0.0.1/tcp/$port")
    if ((i == 1)); then
        args+=(--mine --miner-address "$address")
    else
        args+=(--bootstrap "${addrs[i - 2]}")
    fi
    # No colours in the log files.
    NO_COLOR=1 "$ourcoind" "${args[@]}" >"$dir/node.log" 2>&1 &
    pid="$!"
    pids+=("$pid")
    addr="$(wait_for_listen_addr "$i" "$pid" "$dir/node.log" "$port")"
    addrs+=("$addr")
    echo "node $i: ${addrs[i - 1]}" >&2
done

to_address="$("$cli" --network regtest --wallet "${wallets[nodes - 1]}" wallet address | tail -n 1)"
cat <<EOF

OurCoin devnet: $nodes regtest node(s) on 127.0.0.1; node 1 mines.

EOF
for ((i = 1; i <= nodes; i++)); do
    cat <<EOF
node $i
  address  ${addrs[i - 1]}
  datadir  ${dirs[i - 1]}   (log: ${dirs[i - 1]}/node.log)
  wallet   ${wallets[i - 1]}
EOF
done
cli_1="$cli --network regtest --node ${addrs[0]} --wallet ${wallets[0]}"
cli_n="$cli --network regtest --node ${addrs[nodes - 1]} --wallet ${wallets[nodes - 1]}"
cat <<EOF

Try (mining rewards mature after 10 blocks, about 10 seconds):
  $cli_1 status
  $cli_1 balance
  $cli_1 send --to $to_address --amount 1.5
  $cli_n balance
  $cli_n history
  $cli_n peers

Press Ctrl-C to stop every node and remove the datadirs.
EOF

# Runs until Ctrl-C, or until a node stops by itself.
while true; do
    status=0
    wait -n || status=$?
    # A signal interrupts `wait` and runs its trap first, which exits.
    for ((i = 1; i <= nodes; i++)); do
        if ! kill -0 "${pids[i - 1]}" 2>/dev/null; then
            echo "error: node $i stopped (status $status); the end of ${dirs[i - 1]}/node.log:" >&2
            tail -n 20 "${dirs[i - 1]}/node.log" >&2
            exit 1
        fi
    done
done
