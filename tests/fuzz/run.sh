#!/bin/sh
# Fuzzes one target for a bounded time: run.sh BINARY TARGET SECONDS (environment EMPD_FUZZ_SECONDS overrides).
# New inputs go to a working corpus next to the binary, never into the source tree; the seeds
# (corpus/TARGET) and kept crashers (crashes/TARGET) are only read. A finding is saved under
# work/TARGET/findings/ and the test fails with the command that replays it.
set -eu
bin=$1 target=$2 seconds=${EMPD_FUZZ_SECONDS:-$3}
src=$(cd "$(dirname "$0")" && pwd)
work=$(dirname "$bin")/work/$target
rm -rf "$work/findings"
mkdir -p "$work/corpus" "$work/findings"
set -- "$src/corpus/$target"
if [ -d "$src/crashes/$target" ]; then
    set -- "$@" "$src/crashes/$target"
fi
rc=0
"$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -dict="$src/$target.dict" -artifact_prefix="$work/findings/" "$work/corpus" "$@" || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "fuzz_$target: failed (exit $rc); findings in $work/findings/ (replay: $bin FILE)" >&2
    ls -l "$work/findings/" >&2
fi
exit "$rc"
