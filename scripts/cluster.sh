#!/bin/sh
# Starts a local 3-node matchd cluster on 127.0.0.1 with the demo config
# (make cluster):
#   node 1: orders 7001, admin 7002, web 7003, peers 7101
#   node 2: orders 7011, admin 7012, web 7013, peers 7102
#   node 3: orders 7021, admin 7022, web 7023, peers 7103
# with its data under ./data/cluster/nI and its log in ./data/cluster/nI.log.
# Ctrl-C (or SIGTERM) stops all three cleanly.
set -eu
BIN=${MATCHD:-./bin/matchd}
CONFIG=${CONFIG:-configs/demo.json}
PEERS=1=127.0.0.1:7101/127.0.0.1:7001,2=127.0.0.1:7102/127.0.0.1:7011,3=127.0.0.1:7103/127.0.0.1:7021
mkdir -p data/cluster
pids=""
stop() {
	trap - INT TERM
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	wait
	echo "cluster: stopped (logs in data/cluster/n1.log … n3.log)" >&2
}
trap stop INT TERM
for i in 1 2 3; do
	o=$((i - 1))
	"$BIN" --config "$CONFIG" --data "data/cluster/n$i" --cluster "$PEERS" --node-id "$i" \
		--listen "127.0.0.1:70${o}1" --admin "127.0.0.1:70${o}2" --web "127.0.0.1:70${o}3" >"data/cluster/n$i.log" 2>&1 &
	pids="$pids $!"
done
cat >&2 <<MSG
cluster: three nodes, logs in data/cluster/n1.log, n2.log, n3.log
  orders:  --addr 127.0.0.1:7001,127.0.0.1:7011,127.0.0.1:7021
  try:     go run ./cmd/matchctl --addr 127.0.0.1:7001,127.0.0.1:7011,127.0.0.1:7021 --account 1 --token alice-demo buy AAPL 5 99.50
  status:  go run ./cmd/matchctl cluster status --admin 127.0.0.1:7002,127.0.0.1:7012,127.0.0.1:7022
  web:     http://127.0.0.1:7003/ (node 1), :7013, :7023
  Ctrl-C stops them.
MSG
wait
