#!/bin/sh
# peers.sh: matchd's engine against other Go order books, on the engine
# benchmarks' workloads A, B and C, one process per (workload, book), books
# interleaved, ROUNDS rounds (default 3). See docs/BENCHMARKS.md.
#
# The peers are not in the module proxy this project can use, so their
# sources come from the environment:
#   PEERS_GESEQ      a checkout of github.com/geseq/orderbook, or
#   PEERS_GESEQ_GIT  a git directory of it (its HEAD is extracted);
#   PEERS_FMSTEPHE, PEERS_FMSTEPHE_GIT  the same for
#                    github.com/fmstephe/matching_engine
#   PEERS_I25959341, PEERS_I25959341_GIT  for github.com/i25959341/orderbook
#   PEERS_X5487, PEERS_X5487_GIT  for github.com/0x5487/matching-engine
# (the last two are optional: BOOKS lists the books to run, by default
# those whose sources are given). Their copies get a go.mod of the
# harness's own (i25959341's names its module "orderbook"; 0x5487's
# requires its linters as tools), and 0x5487's a shim file
# (bench/_peers/x5487) that drives one of its books directly.
# The harness (bench/_peers) is built in a module of its own under a
# temporary directory, so the main module never depends on the peers.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-3}
workloads=${WORKLOADS:-A B C}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cache=${MATCHD_WORKLOAD_CACHE:-$work/wl}
mkdir -p "$cache"

# source NAME VAR GITVAR: the directory of a peer's sources.
source() {
	dir=$(eval echo "\${$2:-}")
	gitdir=$(eval echo "\${$3:-}")
	if [ -z "$dir" ]; then
		if [ -z "$gitdir" ]; then
			echo "peers.sh: set $2 (a checkout of $1) or $3" >&2
			exit 2
		fi
		dir=$work/src/$1
		mkdir -p "$dir"
		git --git-dir="$gitdir" archive HEAD | tar -x -C "$dir"
		echo "$1 at $(git --git-dir="$gitdir" rev-parse --short HEAD)" >&2
	fi
	echo "$dir"
}
geseq=$(source github.com/geseq/orderbook PEERS_GESEQ PEERS_GESEQ_GIT)
fmstephe=$(source github.com/fmstephe/matching_engine PEERS_FMSTEPHE PEERS_FMSTEPHE_GIT)
books="matchd matchd-noprefetch geseq fmstephe"
extra_req=""
extra_rep=""
if [ -n "${PEERS_I25959341:-}${PEERS_I25959341_GIT:-}" ]; then
	i25959341=$(source github.com/i25959341/orderbook PEERS_I25959341 PEERS_I25959341_GIT)
	src=$work/own/i25959341
	mkdir -p "$src" && cp -R "$i25959341"/. "$src"/ && chmod -R u+w "$src"
	printf 'module github.com/i25959341/orderbook\n\ngo 1.22\n\nrequire (\n\tgithub.com/emirpasic/gods v1.18.1\n\tgithub.com/shopspring/decimal v1.4.0\n)\n' >"$src/go.mod"
	rm -f "$src/go.sum"
	books="$books i25959341"
	extra_req="$extra_req
	github.com/i25959341/orderbook v0.0.0"
	extra_rep="$extra_rep
replace github.com/i25959341/orderbook => $src
"
fi
if [ -n "${PEERS_X5487:-}${PEERS_X5487_GIT:-}" ]; then
	x5487=$(source github.com/0x5487/matching-engine PEERS_X5487 PEERS_X5487_GIT)
	src=$work/own/x5487
	mkdir -p "$src" && cp -R "$x5487"/. "$src"/ && chmod -R u+w "$src"
	printf 'module github.com/0x5487/matching-engine\n\ngo 1.25\n\nrequire (\n\tgithub.com/igrmk/treemap/v2 v2.0.1\n\tgithub.com/quagmt/udecimal v1.10.0\n)\n' >"$src/go.mod"
	rm -f "$src/go.sum"
	cp "$root"/bench/_peers/x5487/peers_shim.go "$src"/
	books="$books x5487"
	extra_req="$extra_req
	github.com/0x5487/matching-engine v0.0.0"
	extra_rep="$extra_rep
replace github.com/0x5487/matching-engine => $src
"
fi
books=${BOOKS:-$books}

# The workload files, written once by the engine benchmarks.
if [ ! -f "$cache/C.cmds" ]; then
	(cd "$root" && MATCHD_WORKLOAD_CACHE=$cache go test -run '^$' -bench 'Workload(A|B|C)$' -benchtime 1x ./engine >/dev/null)
fi

mod=$work/peers
mkdir -p "$mod"
cp "$root"/bench/_peers/main.go "$root"/bench/_peers/geseq.go "$root"/bench/_peers/fmstephe.go "$mod"/
for b in i25959341 x5487; do
	case " $books " in *" $b "*) cp "$root/bench/_peers/$b.go" "$mod"/ ;; esac
done
cat >"$mod/go.mod" <<MOD
module github.com/matchd/matchd/bench/peers

go 1.26

require (
	github.com/matchd/matchd v0.0.0
	github.com/geseq/orderbook v0.0.0
	github.com/fmstephe/matching_engine v0.0.0$extra_req
)

replace github.com/matchd/matchd => $root

replace github.com/geseq/orderbook => $geseq

replace github.com/fmstephe/matching_engine => $fmstephe
$extra_rep
MOD
(cd "$mod" && go mod tidy >/dev/null && go build -o "$work/peers.bin" .)

out=$work/runs.txt
for r in $(seq 1 "$rounds"); do
	for w in $workloads; do
		for e in $books; do
			"$work/peers.bin" -cache "$cache" -engine $e -workload $w | grep -v ' n/a: ' | tee -a "$out" || true
		done
		if [ "$w" = A ] && [ "$r" = 1 ]; then # the self-trade-free check of A
			for e in matchd geseq; do
				"$work/peers.bin" -cache "$cache" -engine $e -workload A -distinct | sed 's/^/distinct accounts: /'
			done
		fi
	done
done
echo "medians of $rounds rounds (ns per command; matchd / geseq below 1 means matchd is faster):"
awk '{v[$1" "$2]=v[$1" "$2]" "$3; c[$1" "$2]=$5" "$6} END {for (k in v) print k, v[k], "|", c[k]}' "$out" | sort -k2,2 -k1,1 |
	awk '{n=0; for (i=3; i<=NF && $i!="|"; i++) a[n++]=$i+0
		for (i=1; i<n; i++) for (j=i; j>0 && a[j]<a[j-1]; j--) { t=a[j]; a[j]=a[j-1]; a[j-1]=t }
		printf "%s %s median %.1f  runs", $1, $2, a[int((n-1)/2)]; for (i=3; i<3+n; i++) printf " %s", $i
		printf "  check %s %s\n", $(NF-1), $NF}'
# Per round, matchd's time over the best peer's in that round: the goal
# (issue 14) is a ratio, and a busy minute moves both sides of a round.
grep -v '^distinct' "$out" | awk '
	{
		k = $1 " " $2; r = ++n[k]; t[$2 " " r " " $1] = $3; ws[$2] = 1
		if (r > R) R = r
		if ($1 !~ /^matchd/ && (!(($2 " " r) in best) || $3 < best[$2 " " r])) { best[$2 " " r] = $3; who[$2 " " r] = $1 }
	}
	END {
		for (w in ws) {
			m = 0; line = ""
			for (r = 1; r <= R; r++) {
				if (!((w " " r) in best) || !((w " " r " matchd") in t)) continue
				x = t[w " " r " matchd"] / best[w " " r]; a[m++] = x
				line = line sprintf(" %.2f (%s)", x, who[w " " r])
			}
			if (m == 0) continue
			for (i = 1; i < m; i++) for (j = i; j > 0 && a[j] < a[j-1]; j--) { s = a[j]; a[j] = a[j-1]; a[j-1] = s }
			printf "%s matchd / best peer, per round:%s  median %.2f\n", w, line, a[int((m-1)/2)]
		}
	}' | sort
