#!/usr/bin/env bash
# Run the whole pytest suite as N parts side by side (pytest --shard K/N, tests/sharding.py),
# each in a network namespace of its own: its own loopback, ports, mDNS, iptables rules and PTP
# daemon socket, so the parts cannot disturb each other. Most tests wait on real time (audio
# plays at its rate), so the parts share the cores well. Prints one progress line a minute,
# then every part's output; exits non-zero when any part failed.
# Usage: scripts/pytest_parts.sh PYTHON N [PYTEST-OPTION...]  (options go to every part)
set -uo pipefail
PY="$1"
PARTS="$2"
shift 2
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/pytest-parts.XXXXXX")"
TAG="$$"
NAMESPACES=()
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for ns in "${NAMESPACES[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$LOGS"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for part in $(seq 1 "$PARTS"); do
    ns="aptest${part}p${TAG}"
    ip netns add "$ns" || exit 1
    NAMESPACES+=("$ns")
    ip netns exec "$ns" ip link set lo up || exit 1
    ip netns exec "$ns" "$PY" -m pytest -q -p no:cacheprovider --shard "$part/$PARTS" \
        --basetemp="$LOGS/tmp$part" "$@" \
        >"$LOGS/$part.log" 2>&1 &
    PIDS+=("$!")
done

done_count() {  # tests finished so far in one part's log (pytest -q progress characters)
    grep -E '^[.FEsxX]+ *(\[ *[0-9]+%\])?$' "$1" 2>/dev/null | tr -cd '.FEsxX' | wc -c
}

any_running() {
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done
    return 1
}

started=$SECONDS
while any_running; do
    for _ in $(seq 60); do
        sleep 1
        any_running || break
    done
    any_running || break
    line="pytest parts, $(((SECONDS - started) / 60)) min:"
    for part in $(seq 1 "$PARTS"); do line+=" part $part $(done_count "$LOGS/$part.log") done;"; done
    echo "$line"
done

rc=0
for index in "${!PIDS[@]}"; do
    wait "${PIDS[$index]}"
    code=$?
    part=$((index + 1))
    echo "== pytest part $part/$PARTS (exit $code)"
    cat "$LOGS/$part.log"
    if [ "$code" != 0 ] && [ "$rc" = 0 ]; then rc=$code; fi
done
PIDS=()
exit "$rc"
