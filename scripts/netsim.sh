#!/usr/bin/env bash
# Runs N regtest nodes, each in its own Linux network namespace with its own
# address, measures how the network behaves, prints the figures and writes
# them as one JSON line. Needs root (ip netns, veth, a bridge, tc).
#
#   scripts/netsim.sh 10                     ten nodes, one miner
#   scripts/netsim.sh 100 --miners 2         a hundred nodes, two miners
#   scripts/netsim.sh 30 --rate-limit 2mbit  each node's link held to 2 Mbit/s each way
#   scripts/netsim.sh --clean                remove what an interrupted run left
#
# The network: node i lives in namespace ocsim-i, its interface eth0 a veth
# whose other end is a port of the bridge br0 in namespace ocsim-hub (so the
# host's own network namespace is never touched). Addresses are 10.G.B.C/8,
# with G cycling through 16 values, so the nodes fall into 16 /16 network
# groups (fewer when N < 16); each namespace routes all of 10.0.0.0/8 to the
# bridge and nothing else. The kernel's neighbour table is shared by every
# namespace and garbage-collects learned entries beyond about 1,024, which a
# mesh of 60 nodes exceeds and which silently cuts nodes off; so every
# namespace gets a permanent entry for every other node (the MAC addresses
# are fixed), nothing is ever learned, and the run checks that the table
# never filled. IPv6 is off inside the namespaces. There is no latency
# emulation: the netem qdisc does not exist on these machines. With
# --rate-limit each node's link is shaped with tc tbf in both directions.
#
# Each node listens on its address (port 29733) for peers and on 127.0.0.1
# (port 40000+i, inside its namespace) for ourcoin-cli (a port per node, so
# that a loopback address one node passes on reaches nothing in another
# namespace, rather than that namespace's own node), logs to
# DIR/node.log and has a wallet in its datadir. Node 1 starts alone; each
# later node bootstraps from up to --bootstrap-from earlier nodes chosen at
# random and finds the rest through Kademlia. Nodes 1..M mine (--miners).
#
# Phases, after every node has started:
#   converge  until every node has the first block mined after the last start
#   idle      --idle seconds of blocks and no payments
#   fund      the miners pay --payers other nodes (not measured)
#   load      --load seconds of payments (ourcoin-cli send inside a payer's
#             namespace, to its own node) at about --tx-rate a second
#   after     --idle seconds of blocks and no payments again; a payment's
#             cost per node is its load-phase bytes over the mean rate of
#             the two idle phases (tx_relay_bytes_per_payment_per_node)
#   quiet     the miners stop; --quiet seconds of no blocks and no payments:
#             what an idle network costs a node beside its blocks (measured
#             on the nodes that do not mine)
# Figures: convergence time; peers per node; block propagation (the miner's
# "mined a block" log line against each node's "new best block" line for the
# same hash; all namespaces share one clock; with several miners a block
# that lost a race is not logged by nodes that had its rival first, so the
# share of block-node pairs logged falls); bytes sent and received per
# node (the veth's counters) per second and per block in each phase; gossip
# duplicates per node per block from the gossipsub metrics of --metrics when
# ourcoind has that flag (null otherwise); RSS per node.
#
# With --big-blocks N the run measures blocks of N payments instead (the
# issue's 5,000), compact and full in the same run; ourcoin-cli send is far
# too slow to make them, so examples/netsim_blocks.rs does (`cargo build
# --release --example netsim_blocks`; found in OURCOIN_BIN_DIR/examples
# when that is set). Before the nodes start it writes a funded chain, which
# every node starts on, N payments P1 with a block B1 of them on that
# chain's tip, and N more P2 (the same payers' next nonces) with B2 on B1.
# Nothing mines, so those are the only new blocks. The tool runs in node
# 1's namespace as a peer of node 1 alone (over loopback, so unshaped and
# not on node 1's veth); node 1 then stands where a miner would. Phases:
#   converge  every node at the chain's height with min(8, N-1) peers
#   idle      10 s of nothing: the idle rate, and the gossip meshes settle
#   P1        the tool gossips P1 to node 1, 500 at a time, each window
#             once every node's mempool holds the ones before (a node whose
#             work queue is full ignores gossip); a node whose count has not
#             grown for 20 s is recorded short and no longer waited for
#   B1        5 s for the payments' gossip to die down, then the tool
#             publishes B1 as a compact block; until every node has logged
#             it as its new best block (180 s at most)
#   P2, B2    the same, B2 published as a full block
# Figures per block: propagation from the tool's publish time to each
# node's "new best block" line (p50/p90/max over every node, node 1
# included); bytes each node sent and received on its veth from just
# before the publish until the last node connected it (all traffic,
# nothing subtracted; the idle phase's rate is given beside it); the
# message's size; the nodes' compact_blocks counters (status --json) over
# the block; what the mempools held before it. They go in the JSON line
# under big_blocks, beside the start, convergence, peers, RSS and
# neighbour-table figures. --miners, --blocks, --idle, --load, --quiet,
# --tx-rate and --payers do not apply.
#
# Ctrl-C (or SIGTERM, or any error) stops every process and removes every
# namespace, veth and bridge the run made, and the datadirs; set
# OURCOIN_NETSIM_KEEP=1 to keep the datadirs (with the logs). A run refuses to
# start while namespaces of an earlier one exist (see --clean).
#
# The binaries are built with `cargo build --release --bins`, unless
# OURCOIN_BIN_DIR names a directory that already holds ourcoind and ourcoin-cli.
set -euo pipefail

readonly prefix="ocsim"
readonly hub="$prefix-hub"
readonly p2p_port=29733
readonly query_port_base=40000
readonly metrics_port=9464
readonly max_nodes=250
readonly start_timeout_secs=60

usage() {
    cat >&2 <<EOF
usage: $0 NODES [OPTIONS]      (NODES: 2 to $max_nodes)
       $0 --clean              remove the namespaces and processes of an earlier run

  --miners M            nodes 1..M mine (default 1)
  --bootstrap-from K    each node bootstraps from up to K random earlier nodes (default 2)
  --idle SECS           length of the idle phase, no payments (default 30)
  --load SECS           length of the payment phase (default 60)
  --quiet SECS          length of the phase without blocks, after the miners stop (default 30)
  --tx-rate R           payments a second in the payment phase (default 2)
  --payers P            nodes the miners fund, which then pay others (default 10)
  --rate-limit RATE     shape each node's link with tc tbf, both ways (a tc rate such
                        as 2mbit or 500kbit; env OURCOIN_NETSIM_RATE; default none)
  --blocks MODE         how the miners publish blocks: compact (default) or full
                        (ourcoind's hidden --relay-full-blocks, for comparisons)
  --big-blocks N        instead of the usual phases, two blocks of N payments from a
                        load tool, one compact and one full (see above)
  --converge-timeout S  give up when the network has not converged in S seconds (default 300)
  --out FILE            where the JSON line goes (default \${TMPDIR:-/tmp}/ourcoin-netsim-NODES-TIME.json)
EOF
    exit 2
}

# Kills every process in one of our namespaces (they are ours: nothing else
# runs in a namespace this script made), then deletes the namespace, which
# takes its veth ends and, for the hub, the bridge with it.
remove_namespace() {
    local ns="$1" pid
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in {1..50}; do
        [[ -z "$(ip netns pids "$ns" 2>/dev/null || true)" ]] && break
        sleep 0.1
    done
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns delete "$ns" 2>/dev/null || true
}

leftover_namespaces() {
    ip netns list | awk -v p="^$prefix-" '$1 ~ p { print $1 }'
}

if ((EUID != 0)); then
    echo "error: netsim needs root (network namespaces, veth pairs, a bridge, tc)" >&2
    exit 1
fi

if [[ "${1:-}" == "--clean" ]]; then
    (($# == 1)) || usage
    for ns in $(leftover_namespaces); do
        remove_namespace "$ns"
        echo "removed namespace $ns" >&2
    done
    exit 0
fi

(($# >= 1)) || usage
nodes="$1"
shift
miners=1
bootstrap_from=2
idle_secs=30
quiet_secs=30
load_secs=60
tx_rate=2
payers=10
rate_limit="${OURCOIN_NETSIM_RATE:-}"
converge_timeout=300
block_mode=compact
big_blocks=0
out=""
while (($# > 0)); do
    (($# >= 2)) || usage
    case "$1" in
        --miners) miners="$2" ;;
        --bootstrap-from) bootstrap_from="$2" ;;
        --idle) idle_secs="$2" ;;
        --quiet) quiet_secs="$2" ;;
        --load) load_secs="$2" ;;
        --tx-rate) tx_rate="$2" ;;
        --payers) payers="$2" ;;
        --rate-limit) rate_limit="$2" ;;
        --converge-timeout) converge_timeout="$2" ;;
        --blocks) block_mode="$2" ;;
        --big-blocks) big_blocks="$2" ;;
        --out) out="$2" ;;
        *) usage ;;
    esac
    shift 2
done

if ! [[ "$nodes" =~ ^[0-9]+$ ]] || ((nodes < 2 || nodes > max_nodes)); then
    usage
fi
if [[ "$block_mode" != compact && "$block_mode" != full ]]; then
    echo "error: --blocks is compact or full" >&2
    exit 2
fi
for pair in "miners:$miners" "bootstrap-from:$bootstrap_from" "idle:$idle_secs" "quiet:$quiet_secs" "load:$load_secs" \
    "payers:$payers" "converge-timeout:$converge_timeout" "big-blocks:$big_blocks"; do
    if ! [[ "${pair#*:}" =~ ^[0-9]+$ ]]; then
        echo "error: --${pair%%:*} takes a whole number, not '${pair#*:}'" >&2
        exit 2
    fi
done
# --big-blocks: the tool's blocks are the only ones. The load tool's
# windows of payments, and how long the phases wait (see the header).
readonly big_window=500 big_stall_secs=20 big_window_timeout=300 big_settle_secs=5 big_idle_secs=10 \
    big_block_timeout=180
if ((big_blocks)); then
    miners=0
    if ((big_blocks > 100000)); then
        echo "error: --big-blocks takes at most 100000 payments a block" >&2
        exit 2
    fi
elif ((miners < 1 || miners > nodes)); then
    echo "error: --miners must be between 1 and the number of nodes ($nodes)" >&2
    exit 2
fi
if ((bootstrap_from < 1)); then
    echo "error: --bootstrap-from must be at least 1" >&2
    exit 2
fi
if ((idle_secs < 5 || load_secs < 5)); then
    echo "error: --idle and --load must be at least 5 seconds, or they measure nothing" >&2
    exit 2
fi
if ! [[ "$tx_rate" =~ ^[0-9]+(\.[0-9]+)?$ ]] || [[ "$tx_rate" =~ ^0+(\.0+)?$ ]]; then
    echo "error: --tx-rate takes a positive number of payments a second, not '$tx_rate'" >&2
    exit 2
fi
((payers = payers > nodes - miners ? nodes - miners : payers))
if ((payers < 1)); then
    echo "error: no node is left to pay: use fewer --miners, or more nodes" >&2
    exit 2
fi
if [[ -n "$rate_limit" ]] && ! [[ "$rate_limit" =~ ^[0-9]+(\.[0-9]+)?([kmg]?bit|[kmg]?bps)$ ]]; then
    echo "error: --rate-limit takes a tc rate such as 2mbit or 500kbit, not '$rate_limit'" >&2
    exit 2
fi

for tool in ip tc python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: netsim needs $tool" >&2
        exit 1
    fi
done

leftovers="$(leftover_namespaces)"
if [[ -n "$leftovers" ]]; then
    echo "error: namespaces of an earlier run exist ($(echo "$leftovers" | tr '\n' ' ')); remove them with: $0 --clean" >&2
    exit 1
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/binaries.sh
source "$root/scripts/binaries.sh"
# The metrics endpoint is newer than this script's first version: use it
# when the node has it.
has_metrics=0
if "$ourcoind" --help | grep -q -- '--metrics'; then
    has_metrics=1
fi

if ((big_blocks)); then
    if [[ -z "${OURCOIN_BIN_DIR:-}" ]]; then
        echo "building the load tool (cargo build --release --example netsim_blocks)..." >&2
        (cd "$root" && cargo build --release --example netsim_blocks)
    fi
    readonly blocks_tool="$bin_dir/examples/netsim_blocks"
    if [[ ! -x "$blocks_tool" ]]; then
        echo "error: $blocks_tool is missing; build it with: cargo build --release --example netsim_blocks" >&2
        exit 1
    fi
fi

run_dir="$(mktemp -d "${TMPDIR:-/tmp}/ourcoin-netsim.XXXXXX")"
[[ -n "$out" ]] || out="${TMPDIR:-/tmp}/ourcoin-netsim-$nodes-$(date -u +%Y%m%dT%H%M%SZ).json"

pids=()
payment_pid=""
load_pid=""
payer_ids=()
sleep_pid=""
made_namespaces=()

# Stops every node: SIGTERM, ten seconds for all to flush, then SIGKILL.
stop_nodes() {
    local pid running
    for pid in ${pids[@]+"${pids[@]}"}; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in {1..100}; do
        running=0
        for pid in ${pids[@]+"${pids[@]}"}; do
            if kill -0 "$pid" 2>/dev/null; then
                running=1
                break
            fi
        done
        ((running)) || break
        sleep 0.1
    done
    for pid in ${pids[@]+"${pids[@]}"}; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local ns
    if [[ -n "$sleep_pid" ]]; then
        kill -TERM "$sleep_pid" 2>/dev/null || true
    fi
    if [[ -n "$payment_pid" ]]; then
        kill -TERM "$payment_pid" 2>/dev/null || true
        wait "$payment_pid" 2>/dev/null || true
    fi
    if [[ -n "$load_pid" ]]; then
        kill -TERM "$load_pid" 2>/dev/null || true
        wait "$load_pid" 2>/dev/null || true
    fi
    stop_nodes
    for ns in ${made_namespaces[@]+"${made_namespaces[@]}"}; do
        remove_namespace "$ns"
    done
    if [[ -n "${OURCOIN_NETSIM_KEEP:-}" ]]; then
        echo "kept $run_dir" >&2
    else
        rm -rf -- "$run_dir"
    fi
    echo "netsim stopped; its namespaces, veths and bridge are gone" >&2
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() {
    date +%s.%N
}

# Sleeps in a way a signal interrupts at once (bash runs a trap only after
# the foreground command ends; `wait` returns as soon as a signal comes).
pause() {
    sleep "$1" &
    sleep_pid="$!"
    wait "$sleep_pid"
    sleep_pid=""
}

# Node i's address: 10.G.B.C with G = 1 + (i-1) mod 16, so consecutive nodes
# fall in different /16 groups.
node_ip() {
    local k=$(($1 - 1))
    echo "10.$((1 + k % 16)).$((k / 16 / 250)).$((1 + (k / 16) % 250))"
}

# Node i's MAC address, fixed so every neighbour entry can be pinned.
node_mac() {
    printf '02:6f:63:00:%02x:%02x' $(($1 / 256)) $(($1 % 256))
}

# Runs ourcoin-cli inside node i's namespace, against node i, with node i's wallet.
cli_at() {
    local i="$1"
    shift
    ip netns exec "$prefix-$i" timeout 30 "$cli" --network regtest --node "${query_addrs[i]}" \
        --wallet "$run_dir/node-$i/wallet.json" "$@"
}

# The height of the best block node i has logged (0 before the first).
logged_height() {
    local line
    line="$(tac "$run_dir/node-$1/node.log" 2>/dev/null | grep -m 1 'new best block' || true)"
    if [[ "$line" =~ height=([0-9]+) ]]; then
        echo "${BASH_REMATCH[1]}"
    else
        echo 0
    fi
}

# Stops the run when a node has exited.
check_nodes_running() {
    local i
    for ((i = 1; i <= nodes; i++)); do
        if ! kill -0 "${pids[i - 1]}" 2>/dev/null; then
            echo "error: node $i stopped; the end of $run_dir/node-$i/node.log:" >&2
            tail -n 20 "$run_dir/node-$i/node.log" >&2
            exit 1
        fi
    done
}

# Interface counters of every node's link, seen from the hub: what the hub
# end receives the node sent. Prints "i sent received" lines.
link_counters() {
    ip -n "$hub" -s -o link show | awk '
        {
            if (match($0, /^[0-9]+: n[0-9]+@/)) {
                name = substr($0, RSTART, RLENGTH); sub(/^[0-9]+: n/, "", name); sub(/@$/, "", name)
                # -o puts the statistics on the same line: "RX: bytes packets ... \    N P ..."
                split($0, parts, /\\/)
                for (p in parts) {
                    if (parts[p] ~ /RX: *bytes/) rxi = p + 1
                    if (parts[p] ~ /TX: *bytes/) txi = p + 1
                }
                split(parts[rxi], rx, " "); split(parts[txi], tx, " ")
                print name, rx[1], tx[1]
            }
        }' | sort -n
}

# Gossip counters of every node from its metrics endpoint: prints lines of
# "i block_received_with_duplicates block_received_first
# tx_received_with_duplicates tx_received_first tx_sent tx_received_bytes
# iwant_requests" (the tx bytes are those of the messages received first).
gossip_counters() {
    local i body
    for ((i = 1; i <= nodes; i++)); do
        body="$(ip netns exec "$prefix-$i" timeout 5 bash -c \
            "exec 3<>/dev/tcp/127.0.0.1/$metrics_port && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3" \
            2>/dev/null || true)"
        awk -v i="$i" '
            /^#/ { next }
            /gossipsub_topic_msg_recv_counts_unfiltered/ && /\/block\// { all += $NF }
            /gossipsub_topic_msg_recv_counts(_total)?[{ ]/ && /\/block\// { first += $NF }
            /gossipsub_topic_msg_recv_counts_unfiltered/ && /\/tx\// { tx_all += $NF }
            /gossipsub_topic_msg_recv_counts(_total)?[{ ]/ && /\/tx\// { tx_first += $NF }
            /gossipsub_topic_msg_sent_counts(_total)?[{ ]/ && /\/tx\// { tx_sent += $NF }
            /gossipsub_topic_msg_recv_bytes(_total)?[{ ]/ && /\/tx\// { tx_bytes += $NF }
            /gossipsub_topic_iwant_msgs(_total)?[{ ]/ { iwant += $NF }
            END { print i, all + 0, first + 0, tx_all + 0, tx_first + 0, tx_sent + 0, tx_bytes + 0, iwant + 0 }' <<<"$body"
    done
}

# Records that a phase starts or ends now, with the link (and gossip) counters.
mark() {
    local name="$1"
    echo "$name $(now)" >>"$run_dir/phases"
    link_counters >"$run_dir/links-$name"
    if ((has_metrics)); then
        gossip_counters >"$run_dir/gossip-$name"
    fi
}

arp_stats() {
    ip -s ntable show name arp_cache | awk '
        /entries/ { for (f = 1; f < NF; f++) if ($f == "entries") e = $(f + 1) }
        /forced_gc_runs/ { for (f = 1; f < NF; f++) if ($f == "forced_gc_runs") g = $(f + 1) }
        /table_fulls/ { for (f = 1; f < NF; f++) if ($f == "table_fulls") t = $(f + 1) }
        END { print e + 0, g + 0, t + 0 }' | head -n 1
}

# --- the network ---------------------------------------------------------

echo "netsim: $nodes nodes, $miners miner(s), run directory $run_dir" >&2
echo "netsim: no latency emulation (the netem qdisc does not exist on these machines)" >&2
read -r arp_entries_before arp_forced_gc_before arp_fulls_before <<<"$(arp_stats)"

ip netns add "$hub"
made_namespaces+=("$hub")
ip -n "$hub" link set lo up
ip -n "$hub" link add br0 type bridge
ip -n "$hub" link set br0 up
ip netns exec "$hub" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1

for ((i = 1; i <= nodes; i++)); do
    ns="$prefix-$i"
    ip netns add "$ns"
    made_namespaces+=("$ns")
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$hub" link add "n$i" type veth peer name eth0 netns "$ns"
    ip -n "$hub" link set "n$i" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 address "$(node_mac "$i")"
    # A /8 on eth0 is the route to every node and to nothing else.
    ip -n "$ns" addr add "$(node_ip "$i")/8" dev eth0
    ip -n "$ns" link set eth0 up
    if [[ -n "$rate_limit" ]]; then
        # tbf's burst must hold at least one packet at the rate; 64 KiB does
        # for any rate, and 200 ms of queue before drops.
        tc -n "$ns" qdisc add dev eth0 root tbf rate "$rate_limit" burst 64kb latency 200ms
        tc -n "$hub" qdisc add dev "n$i" root tbf rate "$rate_limit" burst 64kb latency 200ms
    fi
done
# Every namespace knows every other node's MAC address for good: the shared
# neighbour table then learns nothing, so it cannot overflow.
for ((i = 1; i <= nodes; i++)); do
    for ((j = 1; j <= nodes; j++)); do
        ((i == j)) || echo "neigh replace $(node_ip "$j") lladdr $(node_mac "$j") dev eth0 nud permanent"
    done >"$run_dir/neigh-$i"
    ip -n "$prefix-$i" -batch "$run_dir/neigh-$i"
    rm -f -- "$run_dir/neigh-$i"
done
groups="$(for ((i = 1; i <= nodes; i++)); do node_ip "$i"; done | cut -d. -f1-2 | sort -u | wc -l)"
echo "netsim: $nodes namespaces on bridge br0 (in $hub), addresses 10.1.0.1 to $(node_ip "$nodes") in $groups /16 groups, neighbours pinned${rate_limit:+, links shaped to $rate_limit each way}" >&2

# --- the nodes -------------------------------------------------------------

# Waits until node $1 (pid $2) logs its listen address on $4 with its peer
# id, and prints that address.
wait_for_listen_addr() {
    local index="$1" pid="$2" log="$3" ip="$4" port="$5" addr
    local deadline=$((SECONDS + start_timeout_secs))
    while ((SECONDS < deadline)); do
        # "listening on /ip4/IP/tcp/PORT/p2p/PEER_ID" (peer ids are base58).
        addr="$(grep -oE "/ip4/${ip//./\\.}/tcp/$port/p2p/[1-9A-HJ-NP-Za-km-z]+" "$log" 2>/dev/null | head -n 1 || true)"
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

if ((big_blocks)); then
    echo "netsim: preparing a funded chain and two blocks of $big_blocks payments..." >&2
    "$blocks_tool" prepare "$run_dir/big" --payments "$big_blocks"
    template_height="$(awk '$1 == "template_height" { print $2 }' "$run_dir/big/prepared")"
    big_hashes=("" "$(awk '$1 == "block" && $2 == 1 { print $3 }' "$run_dir/big/prepared")"
        "$(awk '$1 == "block" && $2 == 2 { print $3 }' "$run_dir/big/prepared")")
fi

addrs=("")
query_addrs=("")
wallets=("")
: >"$run_dir/nodes"
for ((i = 1; i <= nodes; i++)); do
    dir="$run_dir/node-$i"
    mkdir -p "$dir"
    if ((big_blocks)); then
        cp -R -- "$run_dir/big/chain" "$dir/chain"
    fi
    address="$("$cli" --network regtest --wallet "$dir/wallet.json" wallet new | tail -n 1)"
    wallets+=("$address")
    ip="$(node_ip "$i")"
    args=(--network regtest --datadir "$dir"
        --listen "/ip4/$ip/tcp/$p2p_port" --listen "/ip4/127.0.0.1/tcp/$((query_port_base + i))")
    if ((has_metrics)); then
        args+=(--metrics "127.0.0.1:$metrics_port")
    fi
    if ((i <= miners)); then
        args+=(--mine --miner-address "$address")
        if [[ "$block_mode" == full ]]; then
            args+=(--relay-full-blocks)
        fi
    fi
    bootstraps=""
    if ((i > 1)); then
        # Up to K distinct earlier nodes, at random.
        for j in $(shuf -i 1-$((i - 1)) -n "$bootstrap_from"); do
            args+=(--bootstrap "${addrs[j]}")
            bootstraps+="$j "
        done
    fi
    # No colours in the log files.
    NO_COLOR=1 ip netns exec "$prefix-$i" "$ourcoind" "${args[@]}" >"$dir/node.log" 2>&1 &
    pid="$!"
    pids+=("$pid")
    addr="$(wait_for_listen_addr "$i" "$pid" "$dir/node.log" "$ip" "$p2p_port")"
    addrs+=("$addr")
    query_addrs+=("/ip4/127.0.0.1/tcp/$((query_port_base + i))/p2p/${addr##*/p2p/}")
    echo "$i $pid $ip $((i <= miners ? 1 : 0)) ${addr##*/p2p/}" >>"$run_dir/nodes"
    role=""
    ((i <= miners)) && role=", mining"
    echo "node $i: $addr${bootstraps:+ (bootstrap: nodes ${bootstraps% })}$role" >&2
done
echo "last_start $(now)" >>"$run_dir/phases"

# --- big blocks (--big-blocks) -------------------------------------------------

# Every node's `status --json`, asked of all at once: the replies go to
# $run_dir/$1 as "i JSON" lines ("i {}" for a node that did not answer),
# and "i height peers mempool" lines (-1 for no answer) to stdout.
node_statuses() {
    local name="$1" i batch=()
    for ((i = 1; i <= nodes; i++)); do
        (cli_at "$i" --json status 2>/dev/null | tr -d '\n' >"$run_dir/$name-$i" || true) &
        batch+=("$!")
    done
    wait "${batch[@]}" || true
    for ((i = 1; i <= nodes; i++)); do
        echo "$i $(cat "$run_dir/$name-$i")"
        rm -f -- "$run_dir/$name-$i"
    done >"$run_dir/$name"
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    i, _, text = line.partition(" ")
    try:
        s = json.loads(text)
        print(i, s["height"], s["peers"], s["mempool"])
    except (ValueError, KeyError, TypeError):
        print(i, -1, -1, -1)' "$run_dir/$name"
}

# Sends a line to the load tool and reads its answer, which must start with
# $2; the answer is left in tool_reply.
tool_reply=""
tool_command() {
    echo "$1" >&"${blocks_load[1]}"
    if ! read -r -t 120 tool_reply <&"${blocks_load[0]}"; then
        echo "error: the load tool did not answer '$1' within 120 s; the end of $run_dir/tool.log:" >&2
        tail -n 20 "$run_dir/tool.log" >&2
        exit 1
    fi
    if [[ "$tool_reply" != "$2"* ]]; then
        echo "error: the load tool answered '$1' with '$tool_reply'" >&2
        exit 1
    fi
}

# Waits until every node's mempool holds at least $1 payments, with the
# per-node counts in $run_dir/mempools. Gives up (returns 1) when no count
# has grown for big_stall_secs, or after big_window_timeout.
wait_for_mempools() {
    local want="$1" short before="" counts
    local deadline=$((SECONDS + big_window_timeout)) grew=$SECONDS
    while true; do
        node_statuses statuses | awk '{ print $1, $4 }' >"$run_dir/mempools"
        counts="$(cat "$run_dir/mempools")"
        short="$(awk -v w="$want" '$2 < w' "$run_dir/mempools" | wc -l)"
        ((short == 0)) && return 0
        [[ "$counts" != "$before" ]] && grew=$SECONDS
        before="$counts"
        if ((SECONDS - grew >= big_stall_secs || SECONDS >= deadline)); then
            echo "netsim: warning: $short node(s) hold fewer than $want payments:" \
                "$(awk -v w="$want" '$2 < w { printf "node %s %s; ", $1, $2 }' "$run_dir/mempools")" >&2
            return 1
        fi
        check_nodes_running
        sleep 1
    done
}

# Gossips block $1's payments to node 1 through the tool, big_window at a
# time, each window once every node holds the ones before: a node whose
# work queue (1,024 messages) is full ignores gossip, and gossip ignored is
# not sent again. The counts each node held at the end go to
# $run_dir/big-mempool-$1.
relay_payments() {
    local k="$1" from=0 to deadline
    if ((k == 1)); then
        # One payment until node 1 holds it: the tool's gossip reaches the node.
        deadline=$((SECONDS + start_timeout_secs))
        until tool_command "payments 1 0 1" "sent 1" && [[ "$(node_statuses statuses | awk '$1 == 1 { print $4 }')" -ge 1 ]]; do
            if ((SECONDS >= deadline)); then
                echo "error: node 1 admitted none of the load tool's payments within ${start_timeout_secs}s" >&2
                exit 1
            fi
            sleep 0.5
        done
        from=1
    fi
    echo "netsim: gossiping the $big_blocks payments of block $k, $big_window at a time..." >&2
    while ((from < big_blocks)); do
        to=$((from + big_window < big_blocks ? from + big_window : big_blocks))
        tool_command "payments $k $from $to" "sent $k $from $to"
        wait_for_mempools "$to" || true
        from=$to
    done
    cp -- "$run_dir/mempools" "$run_dir/big-mempool-$k"
    echo "payments_${k}_relayed $(now)" >>"$run_dir/phases"
    # The payments' gossip advertisements die down before the block's window.
    pause "$big_settle_secs"
}

# Publishes block $1 as a $2 (compact or full) message and waits until
# every node has logged it as its new best block; the tool's publish time
# goes to $run_dir/big-blocks, the nodes' counters before and after to
# $run_dir/big-status-$1-before and -after.
relay_block() {
    local k="$1" kind="$2" hash="${big_hashes[$1]}" missing i deadline
    node_statuses "big-status-$k-before" >/dev/null
    # As mark does, but the link counters last before the publish and first
    # after the last node connected it: the gossip counters take a while.
    if ((has_metrics)); then
        gossip_counters >"$run_dir/gossip-big${k}_start"
    fi
    echo "big${k}_start $(now)" >>"$run_dir/phases"
    link_counters >"$run_dir/links-big${k}_start"
    tool_command "block $k $kind" "published $k $kind "
    read -r _ _ _ published_at published_hash bytes <<<"$tool_reply"
    if [[ "$published_hash" != "$hash" ]]; then
        echo "error: the load tool published $published_hash as block $k, not $hash" >&2
        exit 1
    fi
    echo "$k $kind $published_at $hash $bytes" >>"$run_dir/big-blocks"
    echo "netsim: block $k ($big_blocks payments) published as a $kind message of $bytes bytes; waiting for every node..." >&2
    deadline=$((SECONDS + big_block_timeout))
    while true; do
        missing=()
        for ((i = 1; i <= nodes; i++)); do
            grep -F "$hash" "$run_dir/node-$i/node.log" | grep -qF 'new best block' || missing+=("$i")
        done
        ((${#missing[@]} == 0)) && break
        if ((SECONDS >= deadline)); then
            echo "netsim: warning: ${#missing[@]} node(s) did not connect block $k within ${big_block_timeout}s: ${missing[*]}" >&2
            break
        fi
        check_nodes_running
        sleep 0.1
    done
    echo "big${k}_end $(now)" >>"$run_dir/phases"
    link_counters >"$run_dir/links-big${k}_end"
    if ((has_metrics)); then
        gossip_counters >"$run_dir/gossip-big${k}_end"
    fi
    node_statuses "big-status-$k-after" >/dev/null
}

# The --big-blocks phases, instead of the usual ones.
run_big_blocks() {
    local want_peers=$((nodes - 1 < 8 ? nodes - 1 : 8)) behind deadline
    echo "netsim: waiting until every node is at height $template_height with $want_peers or more peers (timeout ${converge_timeout}s)..." >&2
    deadline=$((SECONDS + converge_timeout))
    while true; do
        behind="$(node_statuses statuses | awk -v h="$template_height" -v p="$want_peers" '$2 != h || $3 < p' | wc -l)"
        ((behind == 0)) && break
        if ((SECONDS >= deadline)); then
            echo "error: $behind node(s) not at height $template_height with $want_peers peers after ${converge_timeout}s" >&2
            exit 1
        fi
        check_nodes_running
        sleep 1
    done
    echo "converged $(now)" >>"$run_dir/phases"
    echo "netsim: converged; ${big_idle_secs}s idle (the idle rate, and the gossip meshes settle)..." >&2
    mark big_idle_start
    pause "$big_idle_secs"
    mark big_idle_end

    coproc blocks_load {
        exec ip netns exec "$prefix-1" "$blocks_tool" run "$run_dir/big" --connect "${addrs[1]}" 2>"$run_dir/tool.log"
    }
    load_pid="$blocks_load_PID"
    relay_payments 1
    relay_block 1 compact
    relay_payments 2
    relay_block 2 full
    # The end of its input stops the tool.
    local input="${blocks_load[1]}"
    exec {input}>&-
    wait "$load_pid" || true
    load_pid=""
}

if ((big_blocks)); then
    run_big_blocks
else
    # --- converge ----------------------------------------------------------------

    # The first block mined after the last start must reach every node.
    target_height=$(($(logged_height 1) + 1))
    for ((m = 2; m <= miners; m++)); do
        h=$(($(logged_height "$m") + 1))
        ((h > target_height)) && target_height=$h
    done
    echo "netsim: waiting until every node has height $target_height (timeout ${converge_timeout}s)..." >&2
    deadline=$((SECONDS + converge_timeout))
    while true; do
        behind=0
        for ((i = 1; i <= nodes; i++)); do
            if (($(logged_height "$i") < target_height)); then
                behind=$((behind + 1))
            fi
        done
        ((behind == 0)) && break
        if ((SECONDS >= deadline)); then
            echo "error: $behind node(s) still below height $target_height after ${converge_timeout}s" >&2
            exit 1
        fi
        check_nodes_running
        sleep 1
    done
    echo "converged $(now)" >>"$run_dir/phases"
    echo "netsim: converged" >&2

    # --- idle ----------------------------------------------------------------------

    echo "netsim: idle phase, ${idle_secs}s (blocks, no payments, no queries)..." >&2
    mark idle_start
    pause "$idle_secs"
    mark idle_end

    # --- fund ----------------------------------------------------------------------

    # Payers are the nodes after the miners; each miner pays its share of them.
    payer_ids=()
    for ((p = 0; p < payers; p++)); do
        payer_ids+=($((miners + 1 + p)))
    done
    echo "netsim: the miners fund ${#payer_ids[@]} payers..." >&2
    for p in "${payer_ids[@]}"; do
        miner=$((1 + p % miners))
        sent=0
        # The miner's rewards mature after 10 blocks, and a sender may have only
        # so many payments pending: retry for a while.
        for _ in {1..60}; do
            if cli_at "$miner" send --to "${wallets[p]}" --amount 10 >/dev/null 2>"$run_dir/send.err"; then
                sent=1
                break
            fi
            sleep 1
        done
        if ((!sent)); then
            echo "error: miner $miner could not fund node $p: $(tail -n 1 "$run_dir/send.err")" >&2
            exit 1
        fi
    done
    for p in "${payer_ids[@]}"; do
        deadline=$((SECONDS + 120))
        until [[ "$(cli_at "$p" --json balance 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["confirmed"] > 0)' 2>/dev/null)" == True ]]; do
            if ((SECONDS >= deadline)); then
                echo "error: node $p's funding was not confirmed within 120 s" >&2
                exit 1
            fi
            sleep 1
        done
    done

    # --- load ------------------------------------------------------------------------

    echo "netsim: payment phase, ${load_secs}s at about $tx_rate payment(s) a second..." >&2
    mark load_start
    interval_us="$(awk -v r="$tx_rate" 'BEGIN { printf "%d", 1000000 / r }')"
    # One payment every interval, each in the background so that a slow send
    # (on a loaded machine one takes seconds) does not slow the rate. Payers
    # take turns, so no two sends from one wallet overlap (they would pick the
    # same nonce); when every payer is still busy, the turn waits.
    pay() {
        local from="$1" to="$2" started_us result
        started_us="${EPOCHREALTIME/./}"
        if cli_at "$from" --json send --to "${wallets[to]}" --amount 0.001 >/dev/null 2>>"$run_dir/payments.err"; then
            result=ok
        else
            result=failed
        fi
        echo "$result $started_us ${EPOCHREALTIME/./} $from $to" >>"$run_dir/payments"
    }
    (
        trap - EXIT
        trap 'exit 0' TERM
        declare -A busy=()
        turn=0
        next_us="${EPOCHREALTIME/./}"
        end=$((SECONDS + load_secs))
        while ((SECONDS < end)); do
            from="${payer_ids[turn % ${#payer_ids[@]}]}"
            if [[ -n "${busy[$from]:-}" ]] && kill -0 "${busy[$from]}" 2>/dev/null; then
                sleep 0.05
                continue
            fi
            turn=$((turn + 1))
            pay "$from" $((1 + RANDOM % nodes)) &
            busy[$from]="$!"
            next_us=$((next_us + interval_us))
            rest_us=$((next_us - ${EPOCHREALTIME/./}))
            if ((rest_us > 0)); then
                sleep "$(printf '%d.%06d' $((rest_us / 1000000)) $((rest_us % 1000000)))"
            fi
        done
        wait
    ) &
    payment_pid="$!"
    pause "$load_secs"
    wait "$payment_pid" || true
    payment_pid=""
    mark load_end

    # The same as the idle phase, after the payments: what a node carries
    # without payments drifts (its lookups and refreshes settle after the
    # start), so a payment's cost is the load phase over both idle phases.
    echo "netsim: idle phase after the payments, ${idle_secs}s..." >&2
    mark after_start
    pause "$idle_secs"
    mark after_end
fi

# --- figures ---------------------------------------------------------------------

echo "netsim: collecting peers and RSS..." >&2
# Eight queries at a time: one after another, a hundred loaded nodes take
# minutes. (A bare `wait` would wait for the nodes too.)
batch=()
for ((i = 1; i <= nodes; i++)); do
    (
        status="$(cli_at "$i" --json status 2>/dev/null || echo '{}')"
        rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/${pids[i - 1]}/status" 2>/dev/null || echo 0)"
        hwm="$(awk '/^VmHWM:/ { print $2 }' "/proc/${pids[i - 1]}/status" 2>/dev/null || echo 0)"
        echo "$i $rss $hwm $(tr -d '\n' <<<"$status")" >"$run_dir/final-$i"
    ) &
    batch+=("$!")
    if ((${#batch[@]} == 8 || i == nodes)); then
        wait "${batch[@]}" || true
        batch=()
    fi
done
for ((i = 1; i <= nodes; i++)); do
    cat "$run_dir/final-$i"
done >"$run_dir/final"
read -r arp_entries_after arp_forced_gc_after arp_fulls_after <<<"$(arp_stats)"
learned=0
for ((i = 1; i <= nodes; i++)); do
    learned=$((learned + $(ip -n "$prefix-$i" neigh show | grep -vc PERMANENT || true)))
done
# --- quiet -------------------------------------------------------------------------

if ((!big_blocks)); then
    echo "netsim: quiet phase, ${quiet_secs}s (the miners stop: no blocks, no payments)..." >&2
    for ((i = 1; i <= miners; i++)); do
        kill -TERM "${pids[i - 1]}" 2>/dev/null || true
    done
    pause 5
    mark quiet_start
    pause "$quiet_secs"
    mark quiet_end
fi

cat >"$run_dir/machine" <<EOF
cpu $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
cores $(nproc)
memory_gib $(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
kernel $(uname -r)
commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
binaries $bin_dir
version $("$ourcoind" --version | head -n 1)
arp $arp_entries_before $arp_forced_gc_before $arp_fulls_before $arp_entries_after $arp_forced_gc_after $arp_fulls_after $learned
settings $nodes $miners $bootstrap_from $idle_secs $load_secs $tx_rate ${#payer_ids[@]} ${rate_limit:-none} $has_metrics
blocks $block_mode
big_blocks $big_blocks
EOF

# The figures need only the files: stop the nodes first, so the analysis
# does not wait for a share of a machine a hundred nodes keep busy.
stop_nodes

python3 - "$run_dir" "$out" <<'PYTHON'
"""Turns a netsim run directory into figures: a table for people and one JSON line."""
import json
import os
import re
import statistics
import sys
from datetime import datetime

run_dir, out = sys.argv[1], sys.argv[2]


def read_lines(name):
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def percentile(values, q):
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def spread(values):
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": min(values), "median": round(statistics.median(values), 1), "max": max(values)}


def stamp(text):
    # tracing writes RFC 3339 in UTC with microseconds: 2026-12-03T12:04:09.123456Z
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


phases = {name: float(t) for name, t in (line.split() for line in read_lines("phases"))}
nodes = []
for line in read_lines("nodes"):
    index, pid, ip, miner, peer_id = line.split()
    nodes.append({"index": int(index), "ip": ip, "miner": miner == "1", "peer_id": peer_id})
n = len(nodes)
machine = dict(line.split(" ", 1) for line in read_lines("machine"))

line_re = re.compile(r"^(\S+)\s+INFO\s.*?(new best block|mined a block)(.*)$")
field_re = re.compile(r"(\w+)=(\S+)")
best = {}  # node -> [(time, height, hash)]
mined = []  # (time, node, hash)
listened = {}
for node in nodes:
    i = node["index"]
    best[i] = []
    with open(os.path.join(run_dir, f"node-{i}", "node.log"), errors="replace") as f:
        for raw in f:
            if i not in listened and "listening on" in raw:
                listened[i] = stamp(raw.split()[0])
            m = line_re.match(raw)
            if not m:
                continue
            # Fields come before or after the message depending on the formatter.
            fields = dict(field_re.findall(raw))
            t = stamp(m.group(1))
            if m.group(2) == "mined a block":
                mined.append((t, i, fields.get("hash")))
            else:
                best[i].append((t, int(fields.get("height", 0)), fields.get("hash")))

final = {}
for line in read_lines("final"):
    i, rss, hwm, status = line.split(" ", 3)
    try:
        status = json.loads(status)
    except json.JSONDecodeError:
        status = {}
    final[int(i)] = (int(rss), int(hwm), status)
peers = [s.get("peers") for _, _, s in final.values() if isinstance(s.get("peers"), int)]
rss_mib = [round(r / 1024, 1) for r, _, _ in final.values() if r]
hwm_mib = [round(h / 1024, 1) for _, h, _ in final.values() if h]
arp = [int(x) for x in machine["arp"].split()]
settings = machine["settings"].split()


def links(name):
    return {int(i): (int(s), int(r)) for i, s, r in (line.split() for line in read_lines(f"links-{name}"))}


def gossip(name):
    return {int(fields[0]): [int(x) for x in fields[1:]] for fields in (line.split() for line in read_lines(f"gossip-{name}"))}


def header(when):
    """The fields every JSON line starts with."""
    return {
        "netsim": 1,
        "date": datetime.utcfromtimestamp(when).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpu": machine["cpu"], "cores": int(machine["cores"]), "memory_gib": int(machine["memory_gib"]),
                    "kernel": machine["kernel"]},
        # The script's commit; the binaries may come from elsewhere (OURCOIN_BIN_DIR).
        "commit": machine["commit"],
        "binaries": machine["binaries"],
        "ourcoind_version": machine["version"],
        "nodes": n,
    }


def neighbour_table():
    # Pinned entries are many more than the ~1,024 learned ones the kernel
    # keeps, but they never count against that limit.
    return {"entries": arp[3], "learned_entries": arp[6], "table_fulls": arp[5] - arp[2], "forced_gc_runs": arp[4] - arp[1]}


def show(value, unit=""):
    return "n/a" if value is None else f"{value}{unit}"


def machine_row():
    return ("machine", f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, kernel {machine['kernel']}")


def rss_row():
    rss = spread(rss_mib)
    return ("RSS per node min/median/max (peak max)",
            f"{rss['min']} / {rss['median']} / {rss['max']} MiB ({show(max(hwm_mib) if hwm_mib else None)})")


def neighbour_row():
    return ("neighbour table", f"{arp[3]} entries (all namespaces), {arp[6]} learned, table full {arp[5] - arp[2]} times, "
                               f"forced gc {arp[4] - arp[1]} times")


def emit(result, rows):
    """Prints the table and the JSON line, and writes the line to the output file."""
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print()
    line = json.dumps(result, separators=(",", ":"))
    with open(out, "w") as f:
        f.write(line + "\n")
    print(f"written to {out}", file=sys.stderr)
    print(line)


# Convergence: the first block mined after the last node started, until every
# node had it or a higher block as its best.
last_start = phases["last_start"]
after = sorted(m for m in mined if m[0] > last_start)
convergence_s = None
if after:
    first_time, _, first_hash = after[0]
    height = None
    for entries in best.values():
        for t, h, hsh in entries:
            if hsh == first_hash:
                height = h
    if height is not None:
        reached = []
        for i, entries in best.items():
            times = [t for t, h, _ in entries if h >= height]
            reached.append(min(times) if times else None)
        if all(r is not None for r in reached):
            convergence_s = max(reached) - last_start
startup_s = last_start - min(listened.values()) if listened else None


def statuses(name):
    """`status --json` replies saved as "i JSON" lines, by node ({} for no answer)."""
    replies = {}
    for line in read_lines(name):
        i, _, text = line.partition(" ")
        try:
            replies[int(i)] = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            replies[int(i)] = {}
    return replies


def big_block(k, kind, published, hsh, size):
    """A --big-blocks block: its propagation, bytes per node and the nodes' counters over it."""
    delays = [(entry[0] - published) * 1000 for entries in best.values() for entry in entries if entry[2] == hsh]
    a, b = links(f"big{k}_start"), links(f"big{k}_end")
    sent = [b[i][0] - a[i][0] for i in b if i in a]
    received = [b[i][1] - a[i][1] for i in b if i in a]
    before, after = statuses(f"big-status-{k}-before"), statuses(f"big-status-{k}-after")

    def compact(key):
        return [after[i].get("compact_blocks", {}).get(key, 0) - before.get(i, {}).get("compact_blocks", {}).get(key, 0)
                for i in after if after[i]]

    held = [int(count) for _, count in (line.split() for line in read_lines(f"big-mempool-{k}"))]
    duplicates = None
    if machine["settings"].split()[-1] == "1":
        g0, g1 = gossip(f"big{k}_start"), gossip(f"big{k}_end")
        per_node = [(g1[i][0] - g0[i][0]) - (g1[i][1] - g0[i][1]) for i in g1 if i in g0]
        duplicates = statistics.median(per_node) if per_node and any(g1[i][0] for i in g1) else None
    rounded = lambda value: None if value is None else round(value, 1)
    middle = lambda values: round(statistics.median(values)) if values else None
    return {
        "kind": kind,
        "hash": hsh,
        "message_bytes": size,
        "propagation_ms": {"p50": rounded(percentile(delays, 50)), "p90": rounded(percentile(delays, 90)),
                           "max": rounded(max(delays) if delays else None), "nodes": len(delays)},
        "window_s": round(phases[f"big{k}_end"] - phases[f"big{k}_start"], 2),
        "sent_bytes_per_node": {"median": middle(sent), "max": max(sent) if sent else None},
        "received_bytes_per_node": {"median": middle(received), "max": max(received) if received else None},
        "block_message_bytes_per_node": middle(compact("block_message_bytes")),
        "gossip_duplicates_per_node": duplicates,
        # Sums over the nodes (each node counts a block once).
        "compact_blocks": {key: sum(compact(key)) for key in
                           ("received", "rebuilt_without_roundtrip", "rebuilt_with_roundtrip", "fallen_back")},
        "mempool_before": {"min": min(held) if held else None, "median": middle(held),
                           "nodes_short": sum(1 for h in held if h < payments)},
    }


if int(machine.get("big_blocks", "0")):
    payments = int(machine["big_blocks"])
    prepared = dict(line.split(" ", 1) for line in read_lines("big/prepared") if not line.startswith("block "))
    published = [line.split() for line in read_lines("big-blocks")]
    blocks = {kind: big_block(int(k), kind, float(t), hsh, int(size)) for k, kind, t, hsh, size in published}
    a, b = links("big_idle_start"), links("big_idle_end")
    idle_secs = phases["big_idle_end"] - phases["big_idle_start"]
    idle_rate = lambda side: round(statistics.median(b[i][side] - a[i][side] for i in b if i in a) / idle_secs)
    p50 = {kind: blocks.get(kind, {}).get("propagation_ms", {}).get("p50") for kind in ("compact", "full")}
    result = {
        **header(phases.get("big2_end", phases["last_start"])),
        "big_blocks_mode": True,
        "rate_limit": None if settings[7] == "none" else settings[7],
        "latency_emulation": None,
        "network_groups": len({".".join(node["ip"].split(".")[:2]) for node in nodes}),
        "startup_s": round(startup_s, 2) if startup_s is not None else None,
        "convergence_s": round(phases["converged"] - last_start, 2) if "converged" in phases else None,
        "peers": spread(peers),
        "big_blocks": {
            "payments": payments,
            "template_height": int(prepared["template_height"]),
            "origin": "a load tool, a peer of node 1 alone over loopback",
            "bytes": "veth counters from just before the publish until the last node connected the block; nothing subtracted",
            "idle_bytes_per_s": {"sent": idle_rate(0), "received": idle_rate(1)},
            "compact": blocks.get("compact"),
            "full": blocks.get("full"),
            "compact_over_full_p50": round(p50["compact"] / p50["full"], 3) if p50["compact"] and p50["full"] else None,
        },
        "rss_mib": spread(rss_mib),
        "rss_peak_mib_max": max(hwm_mib) if hwm_mib else None,
        "neighbour_table": neighbour_table(),
    }
    rows = [
        machine_row(),
        ("nodes", f"{n} in {result['network_groups']} /16 groups, no miner, links {result['rate_limit'] or 'unshaped'}, "
                  f"blocks of {payments} payments from a load tool at node 1"),
        ("start of all nodes", show(result["startup_s"], " s")),
        ("convergence after the last start", show(result["convergence_s"], " s")),
        ("peers per node min/median/max", f"{result['peers']['min']} / {result['peers']['median']} / {result['peers']['max']}"),
        ("idle: bytes/s per node, sent / received (median)",
         f"{result['big_blocks']['idle_bytes_per_s']['sent']} / {result['big_blocks']['idle_bytes_per_s']['received']}"),
    ]
    for kind, block in blocks.items():
        pm, cb, mp = block["propagation_ms"], block["compact_blocks"], block["mempool_before"]
        rows += [
            (f"{kind}: message, propagation p50/p90/max",
             f"{block['message_bytes']} B; {show(pm['p50'])} / {show(pm['p90'])} / {show(pm['max'])} ms ({pm['nodes']} of {n} nodes)"),
            (f"{kind}: bytes per node sent / received, median (max)",
             f"{show(block['sent_bytes_per_node']['median'])} ({show(block['sent_bytes_per_node']['max'])}) / "
             f"{show(block['received_bytes_per_node']['median'])} ({show(block['received_bytes_per_node']['max'])}) "
             f"over {block['window_s']} s"),
            (f"{kind}: rebuilt without / with round trip, fallen back",
             f"{cb['rebuilt_without_roundtrip']} / {cb['rebuilt_with_roundtrip']} / {cb['fallen_back']} "
             f"({cb['received']} compact received)"),
            (f"{kind}: payments in the mempools before, min / median",
             f"{show(mp['min'])} / {show(mp['median'])} ({mp['nodes_short']} nodes short of {payments})"),
        ]
    rows += [
        ("propagation p50, compact / full", show(result["big_blocks"]["compact_over_full_p50"])),
        rss_row(),
        neighbour_row(),
    ]
    emit(result, rows)
    sys.exit(0)

# Propagation: every block mined from the idle phase on, to every other node
# that logged it as its new best block (blocks that came in a sync batch are
# logged only as its last, so a few pairs may be missing; coverage says how many).
window_start, window_end = phases["idle_start"], phases["load_end"]
seen = {i: {hsh: t for t, _, hsh in entries} for i, entries in best.items()}
delays = []
last_node_delays = []
pairs = 0
for t0, miner, hsh in mined:
    if not (window_start <= t0 <= window_end):
        continue
    block_delays = []
    for node in nodes:
        if node["index"] == miner:
            continue
        pairs += 1
        t = seen[node["index"]].get(hsh)
        if t is not None:
            block_delays.append((t - t0) * 1000)
    delays.extend(block_delays)
    if len(block_delays) == n - 1:
        last_node_delays.append(max(block_delays))


def blocks_between(start, end):
    return len({hsh for t, _, hsh in mined if phases[start] <= t < phases[end]})


def traffic(start, end, skip=()):
    a, b = links(start), links(end)
    a = {i: v for i, v in a.items() if i not in skip}
    secs = phases[end] - phases[start]
    blocks = blocks_between(start, end)
    sent = [b[i][0] - a[i][0] for i in b if i in a]
    received = [b[i][1] - a[i][1] for i in b if i in a]
    total = [s + r for s, r in zip(sent, received)]
    per_s = lambda values: round(statistics.median(values) / secs) if values else None
    per_block = lambda values: round(statistics.median(values) / blocks) if values and blocks else None
    return {
        "seconds": round(secs, 1),
        "blocks": blocks,
        "sent_bytes_per_s": per_s(sent),
        "received_bytes_per_s": per_s(received),
        "bytes_per_s": per_s(total),
        "bytes_per_s_max": round(max(total) / secs) if total else None,
        "sent_bytes_per_block": per_block(sent),
        "received_bytes_per_block": per_block(received),
        "bytes_per_block": per_block(total),
    }


idle = traffic("idle_start", "idle_end")
quiet = traffic("quiet_start", "quiet_end", skip=set(range(1, int(machine["settings"].split()[1]) + 1)))
load = traffic("load_start", "load_end")
payments = [line.split() for line in read_lines("payments")]
payments_ok = sum(1 for p in payments if p[0] == "ok")
load["payments_sent"] = payments_ok
load["payments_failed"] = len(payments) - payments_ok
load["payments_per_s"] = round(payments_ok / load["seconds"], 2)
confirmed = 0
# Payments confirmed by 5 s after the phase (the figures are collected
# after it, so the logs reach that far). txs= on the miners' own "new best block" lines counts the payments (not the coinbase).
for node in nodes:
    if node["miner"]:
        mined_hashes = {hsh for t, i, hsh in mined if i == node["index"]}
        with open(os.path.join(run_dir, f"node-{node['index']}", "node.log"), errors="replace") as f:
            for raw in f:
                if "new best block" not in raw:
                    continue
                fields = dict(field_re.findall(raw))
                t = stamp(raw.split()[0])
                if fields.get("hash") in mined_hashes and phases["load_start"] <= t < phases["load_end"] + 5:
                    confirmed += int(fields.get("txs", 0))
load["payments_in_blocks"] = confirmed
after = traffic("after_start", "after_end")


def node_totals(start, end):
    a, b = links(start), links(end)
    return {i: sum(b[i]) - sum(a[i]) for i in b if i in a}


if payments_ok:
    # What a payment adds, per node: its bytes in the load phase over its
    # own rate in the idle phases before and after (their mean), then the
    # median over nodes.
    load_total, before, later = node_totals("load_start", "load_end"), node_totals("idle_start", "idle_end"), node_totals("after_start", "after_end")
    extra = [load_total[i] - (before[i] / idle["seconds"] + later[i] / after["seconds"]) / 2 * load["seconds"]
             for i in load_total if i in before and i in later]
    load["extra_bytes_per_payment"] = round(statistics.median(extra) / payments_ok) if extra else None

duplicates = None
tx_gossip = None
duplicates_note = "ourcoind has no --metrics"
if machine["settings"].split()[-1] == "1":
    duplicates_note = "the metrics endpoint serves no gossipsub_topic_msg_recv_counts_unfiltered"
    start, end = gossip("load_start"), gossip("load_end")
    delta = {i: [b - a for a, b in zip(start[i], end[i])] for i in end if i in start}
    # Payments as gossip: copies received per payment received first, sent
    # per payment, the size of one (its gossip payload) and IWANTs.
    firsts = [d[3] for d in delta.values() if d[3]]
    if firsts:
        tx_gossip = {
            "received_per_payment": round(statistics.median(d[2] / d[3] for d in delta.values() if d[3]), 2),
            "sent_per_payment": round(statistics.median(d[4] / d[3] for d in delta.values() if d[3]), 2),
            "payment_bytes": round(sum(d[5] for d in delta.values()) / sum(firsts)),
            "iwant_per_payment": round(statistics.median(d[6] / d[3] for d in delta.values() if d[3]), 2),
        }
    blocks = load["blocks"]
    per_node = [(d[0] - d[1]) / blocks for d in delta.values() if blocks]
    if per_node and any(end[i][0] for i in end):
        duplicates = round(statistics.median(per_node), 2)
        duplicates_note = "gossipsub metrics, received with duplicates minus received first, block topic"

result = {
    **header(phases["load_end"]),
    "blocks": machine["blocks"],
    "miners": int(settings[1]),
    "bootstrap_from": int(settings[2]),
    "rate_limit": None if settings[7] == "none" else settings[7],
    "latency_emulation": None,
    "network_groups": len({".".join(node["ip"].split(".")[:2]) for node in nodes}),
    "startup_s": round(startup_s, 2) if startup_s is not None else None,
    "convergence_s": round(convergence_s, 2) if convergence_s is not None else None,
    "peers": spread(peers),
    "propagation_ms": {"p50": percentile(delays, 50), "p90": percentile(delays, 90), "p99": percentile(delays, 99),
                       "coverage": round(len(delays) / pairs, 3) if pairs else None},
    "propagation_to_last_node_ms_p50": percentile(last_node_delays, 50),
    "gossip_duplicates_per_node_per_block": duplicates,
    "gossip_duplicates_source": duplicates_note,
    # What one payment costs a node on its interface (sent + received), over
    # the idle rate; and its gossip, from gossipsub's metrics.
    "tx_relay_bytes_per_payment_per_node": load.get("extra_bytes_per_payment"),
    "tx_gossip": tx_gossip,
    "idle": idle,
    "load": load,
    "idle_after": after,
    "quiet": quiet,
    "rss_mib": spread(rss_mib),
    "rss_peak_mib_max": max(hwm_mib) if hwm_mib else None,
    "neighbour_table": neighbour_table(),
}
for key in ("p50", "p90", "p99"):
    if result["propagation_ms"][key] is not None:
        result["propagation_ms"][key] = round(result["propagation_ms"][key], 1)
if result["propagation_to_last_node_ms_p50"] is not None:
    result["propagation_to_last_node_ms_p50"] = round(result["propagation_to_last_node_ms_p50"], 1)


pm = result["propagation_ms"]
rows = [
    machine_row(),
    ("nodes", f"{n} in {result['network_groups']} /16 groups, {result['miners']} miner(s), "
              f"bootstrap from up to {result['bootstrap_from']}, links "
              f"{result['rate_limit'] or 'unshaped'}, no latency emulation"),
    ("start of all nodes", show(result["startup_s"], " s")),
    ("convergence after the last start", show(result["convergence_s"], " s")),
    ("peers per node min/median/max", f"{result['peers']['min']} / {result['peers']['median']} / {result['peers']['max']}"),
    ("propagation p50/p90/p99", f"{show(pm['p50'])} / {show(pm['p90'])} / {show(pm['p99'])} ms "
                                f"({show(pm['coverage'])} of block-node pairs logged)"),
    ("propagation to the last node, p50", show(result["propagation_to_last_node_ms_p50"], " ms")),
    ("gossip duplicates per node per block", f"{show(duplicates)} ({duplicates_note})"),
    ("idle: bytes/s per node (sent+received), median / max", f"{show(idle['bytes_per_s'])} / {show(idle['bytes_per_s_max'])}"),
    ("idle: bytes per node per block, sent / received", f"{show(idle['sent_bytes_per_block'])} / {show(idle['received_bytes_per_block'])} ({idle['blocks']} blocks)"),
    ("load: payments sent (failed), confirmed by 5 s after", f"{load['payments_sent']} ({load['payments_failed']}), {load['payments_in_blocks']}; {load['blocks']} blocks in the phase"),
    ("idle after the payments: bytes/s per node, median / max", f"{show(after['bytes_per_s'])} / {show(after['bytes_per_s_max'])}"),
    ("quiet (no blocks): bytes/s per node (sent+received), median / max", f"{show(quiet['bytes_per_s'])} / {show(quiet['bytes_per_s_max'])}"),
    ("load: bytes/s per node (sent+received), median / max", f"{show(load['bytes_per_s'])} / {show(load['bytes_per_s_max'])}"),
    ("load: bytes per node per block, sent / received", f"{show(load['sent_bytes_per_block'])} / {show(load['received_bytes_per_block'])}"),
    ("load: extra bytes per node per payment", show(load.get("extra_bytes_per_payment"))),
    ("payments' gossip per node: copies received / sent, bytes, IWANTs",
     "n/a" if tx_gossip is None else f"{tx_gossip['received_per_payment']} / {tx_gossip['sent_per_payment']} per payment, "
     f"{tx_gossip['payment_bytes']} B each, {tx_gossip['iwant_per_payment']} IWANTs per payment"),
    rss_row(),
    neighbour_row(),
]
emit(result, rows)
PYTHON
