#!/bin/sh
# Starts a local 3-node matchd cluster on 127.0.0.1 with the demo config
# (make cluster):
#   node 1: orders 7001, admin 7002, web 7003, peers 7101
#   node 2: orders 7011, admin 7012, web 7013, peers 7102
#   node 3: orders 7021, admin 7022, web 7023, peers 7103
# with its data under ./data/cluster/nI. Ctrl-C stops all three.
# Clients take every order address: --addr 127.0.0.1:7001,127.0.0.1:7011,127.0.0.1:7021
set -eu
BIN=${MATCHD:-./bin/matchd}
CONFIG=${CONFIG:-configs/demo.json}
PEERS=1=127.0.0.1:7101/127.0.0.1:7001,2=127.0.0.1:7102/127.0.0.1:7011,3=127.0.0.1:7103/127.0.0.1:7021
stop() {
	trap - INT TERM
	kill -TERM 0 2>/dev/null || true # the whole group: every matchd gets SIGTERM and stops cleanly
	wait
}
trap stop INT TERM
for i in 1 2 3; do
	o=$((i - 1))
	mkdir -p data/cluster
	"$BIN" --config "$CONFIG" --data "data/cluster/n$i" --cluster "$PEERS" --node-id "$i" \
		--listen "127.0.0.1:70${o}1" --admin "127.0.0.1:70${o}2" --web "127.0.0.1:70${o}3" 2>&1 | sed -u "s/^/n$i | /" &
done
echo "cluster: orders at 127.0.0.1:7001,127.0.0.1:7011,127.0.0.1:7021; status: curl -s 127.0.0.1:7002/api/cluster" >&2
wait
