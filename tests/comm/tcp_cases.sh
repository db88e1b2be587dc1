#!/bin/bash
# Process-level tests of the TCP backend and the watchdog: ranks started as plain processes (as torchrun
# would), strangers, duplicates, a rank that never comes, one that stops and one that dies.
#
#   tcp_cases.sh launch N PROGRAM [ARGS...]   N ranks of PROGRAM; fails unless every rank exits 0 (the
#                                             port comes from comm_node beside PROGRAM, or $COMM_NODE)
#   tcp_cases.sh CASE COMM_NODE [MPIEXEC]     CASE: token duplicate timeout kill watchdog watchdog_mpi
#
# Each case picks its own free port, so ctest may run them in parallel; every process runs under
# `timeout`, so a bug shows as a failure, never as a hang.
set -u
what=$1
shift
tmp=$(mktemp -d)
cleanup() {
    for p in $(jobs -p); do
        pkill -KILL -P "$p" 2>/dev/null
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
unset OMPI_COMM_WORLD_SIZE PMIX_RANK PMI_RANK PMI_SIZE EMPD_COMM SLURM_PROCID SLURM_NTASKS SLURM_LOCALID \
    SLURM_JOB_ID EMPD_JOB_TOKEN EMPD_COMM_TIMEOUT EMPD_RENDEZVOUS_TIMEOUT LOCAL_WORLD_SIZE
export MASTER_ADDR=127.0.0.1

fail() {
    echo "FAIL ($what): $*"
    for f in "$tmp"/*.log; do
        [ -e "$f" ] && { echo "--- $(basename "$f")"; cat "$f"; }
    done
    exit 1
}

# start NAME RANK WORLD PROGRAM [ARGS...]: a rank in the background, its output in $tmp/NAME.log, its
# pid in pid[NAME].
declare -A pid
start() {
    local name=$1 rank=$2 world=$3
    shift 3
    RANK=$rank WORLD_SIZE=$world LOCAL_RANK=$rank timeout -s KILL 60 "$@" >"$tmp/$name.log" 2>&1 &
    pid[$name]=$!
}

# finish NAME: waits for it; its exit status in $?.
finish() { wait "${pid[$1]}"; }

expect_line() { grep -qF -- "$2" "$tmp/$1.log" || fail "$1 did not print: $2"; }

now() { date +%s.%N; }
elapsed_below() { awk -v a="$1" -v b="$(now)" -v lim="$2" 'BEGIN { exit !(b - a < lim) }'; }

if [ "$what" = launch ]; then
    n=$1
    shift
    node=${COMM_NODE:-$(dirname "$1")/comm_node}
else
    node=$1
fi
MASTER_PORT=$("$node" free-port) || fail "no free port"
export MASTER_PORT
t0=$(now)

case $what in
launch)
    for ((r = 0; r < n; r++)); do start "rank$r" $r "$n" "$@"; done
    for ((r = 0; r < n; r++)); do finish "rank$r" || fail "rank $r exited with status $?"; done
    cat "$tmp/rank0.log"
    ;;
token)
    # A process with another job's token arrives first; rank 0 refuses it and the real job completes.
    start rank0 0 2 "$node" run
    EMPD_JOB_TOKEN=another-job start stranger 1 2 "$node" run
    finish stranger && fail "the stranger was let in"
    expect_line stranger "refused rank 1: wrong job token"
    start rank1 1 2 "$node" run
    finish rank0 || fail "rank 0 failed"
    finish rank1 || fail "rank 1 failed"
    expect_line rank0 "comm: rendezvous: refused a connection from 127.0.0.1:"
    expect_line rank0 ": wrong job token"
    expect_line rank1 "comm_node: rank 1 of 2 ok (tcp)"
    ;;
duplicate)
    # Two processes claim rank 1 of 3: the second is refused with its line; the job completes with the first.
    start rank0 0 3 "$node" run
    start first 1 3 "$node" run
    sleep 0.2
    start second 1 3 "$node" run
    wait -n "${pid[first]}" "${pid[second]}" && fail "a duplicate rank 1 exited 0"
    refused=second
    kill -0 "${pid[second]}" 2>/dev/null && refused=first
    expect_line "$refused" "comm: rendezvous: rank 1 is already taken (a second process with RANK=1?)"
    start rank2 2 3 "$node" run
    finish rank0 || fail "rank 0 failed"
    finish rank2 || fail "rank 2 failed"
    [ $refused = second ] && kept=first || kept=second
    finish "$kept" || fail "the rank 1 that was let in failed"
    expect_line rank0 "rank 1 is already taken"
    ;;
timeout)
    # Rank 1 never comes: rank 0 gives up after EMPD_RENDEZVOUS_TIMEOUT and names it. Meanwhile a rank
    # whose rank 0 never comes names the address it could not reach.
    EMPD_RENDEZVOUS_TIMEOUT=2 start rank0 0 2 "$node" run
    lone_port=$("$node" free-port)
    MASTER_PORT=$lone_port EMPD_RENDEZVOUS_TIMEOUT=1 start lone 1 2 "$node" run
    finish lone && fail "a rank with no rank 0 exited 0"
    finish rank0 && fail "rank 0 without rank 1 exited 0"
    elapsed_below "$t0" 6 || fail "took more than 6 s"
    expect_line rank0 "but rank 1 never arrived (WORLD_SIZE=2;"
    expect_line lone "rank 1 could not reach rank 0 at 127.0.0.1:$lone_port (MASTER_ADDR:MASTER_PORT) within 1 s"
    ;;
kill)
    # Rank 2 of 4 dies (SIGKILL) before an all-reduce: every other rank fails at once and names it, rank
    # 0 too, which is not its ring neighbour.
    for r in 0 1 2 3; do start "rank$r" $r 4 "$node" run --die 2; done
    for r in 0 1 3; do finish "rank$r" && fail "rank $r exited 0 after rank 2 died"; done
    elapsed_below "$t0" 5 || fail "took more than 5 s"
    # (A slow rank may still be in the barrier before it, which rank 2 had passed: it fails there.)
    for r in 0 1 3; do
        expect_line rank$r "failed on rank $r: rank 2 closed its connection (did it die?)"
    done
    ;;
watchdog)
    # Rank 1 stops (SIGSTOP) before an all-reduce: rank 0's watchdog ends it after 2 s. Rank 1, once
    # resumed, fails at once and knows that rank 0 ended the job.
    start rank0 0 2 "$node" run --timeout 2 --stop 1
    start rank1 1 2 "$node" run --timeout 2 --stop 1
    finish rank0 && fail "rank 0 exited 0"
    elapsed_below "$t0" 10 || fail "took more than 10 s"
    expect_line rank0 "comm: rank 0: all-reduce of 1000 floats has not completed after 2 s: another rank died or hangs; ending the job"
    pkill -CONT -P "${pid[rank1]}"
    finish rank1 && fail "rank 1 exited 0 after rank 0 ended the job"
    expect_line rank1 "comm: all-reduce of 1000 floats failed on rank 1: rank 0 failed (its own line says why)"
    ;;
watchdog_mpi)
    # The same under mpirun: the watchdog's MPI_Abort ends both ranks, the stopped one included.
    mpiexec=$2
    timeout -s KILL 30 "$mpiexec" -n 2 --oversubscribe "$node" run --timeout 2 --stop 1 >"$tmp/mpirun.log" 2>&1 &&
        fail "mpirun exited 0"
    elapsed_below "$t0" 10 || fail "took more than 10 s"
    expect_line mpirun "comm: rank 0: all-reduce of 1000 floats has not completed after 2 s: another rank died or hangs; ending the job"
    ;;
*)
    fail "unknown case"
    ;;
esac
echo "ok: $what ($(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'))"
