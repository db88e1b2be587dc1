# shellcheck shell=bash
# A real single-node Slurm cluster on localhost for the tests of this folder, sourced by them:
# cluster_start DIR writes DIR/slurm.conf (free ports of its own; state, spool, TmpFS, logs and pid
# files in DIR, the socket folders in /tmp when DIR is deep; a fresh munge key), starts munged,
# slurmctld and slurmd, exports SLURM_CONF and waits until the node is idle; cluster_stop (run on
# exit) cancels what is left of the cluster's jobs and stops the daemons by their pids. Needs root (slurmd runs jobs as their users) and Debian's munge
# and slurm-wlm packages; any failure to start is an error with the daemons' log, never a skip.

cluster_fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# A TCP port on 127.0.0.1 that nobody listens on, from 20000 + a random offset.
cluster_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# Waits up to $2 seconds for the pid file $1 to name a live process; prints the pid.
cluster_pid() {
  local i pid
  for ((i = 0; i < $2 * 10; i++)); do
    pid=$(cat "$1" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; return 0; fi
    sleep 0.1
  done
  return 1
}

cluster_logs() {
  local f
  for f in "$CLUSTER_DIR"/log/*.log "$CLUSTER_MUNGE"/munged.log; do
    [ -e "$f" ] || continue
    echo "--- $f (last 15 lines)" >&2
    tail -n 15 "$f" >&2
  done
}

# Daemons of an earlier run in DIR that never got to stop them (a killed test), by their pid files.
cluster_stop_stale() {
  local f pid run
  run=$(cat "$CLUSTER_DIR/run.path" 2>/dev/null || echo "$CLUSTER_DIR")
  for f in "$CLUSTER_DIR/slurmd.pid" "$CLUSTER_DIR/slurmctld.pid" "$run/munge/munged.pid"; do
    pid=$(cat "$f" 2>/dev/null || true)
    [ -n "$pid" ] && grep -qE '(slurmd|slurmctld|munged)$' "/proc/$pid/comm" 2>/dev/null || continue
    echo "cluster: stopping pid $pid of an earlier run ($f)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  cluster_kill_strays
  [[ $run != /tmp/empd-slurm.* ]] || rm -rf "$run"
}

# Anything the cluster started that outlived it (job steps and their children: proctrack/linuxproc
# lets them escape) carries this cluster's SLURM_CONF in its environment; so would the commands
# below if SLURM_CONF were still set, and they would find themselves.
cluster_kill_strays() {
  local pid
  unset SLURM_CONF
  for pid in $(grep -lsx --null-data "SLURM_CONF=$CLUSTER_DIR/slurm.conf" /proc/[0-9]*/environ | cut -d/ -f3); do
    [ "$pid" != $$ ] && kill -0 "$pid" 2>/dev/null || continue
    echo "cluster: pid $pid ($(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | cut -c1-80)) outlived its cluster: killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  done
}

cluster_start() {
  CLUSTER_DIR=$1
  CLUSTER_PIDS=()
  [ "$(id -u)" = 0 ] || cluster_fail "the Slurm test needs root: slurmd starts jobs as their users, and munged runs as user munge"
  local b
  for b in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd sbatch srun squeue scontrol sinfo scancel runuser; do
    command -v "$b" >/dev/null 2>&1 || cluster_fail "$b is missing: install the Debian packages munge slurm-wlm slurmctld slurmd slurm-client (launch/setup)"
  done
  getent passwd munge >/dev/null || cluster_fail "no user munge: install Debian's munge package (launch/setup)"
  cluster_stop_stale
  rm -rf "$CLUSTER_DIR"
  mkdir -p "$CLUSTER_DIR"/{state,log}
  # PMIx's per-step folders go to TmpFS (else /tmp/spmix_appdir_UID_JOB.STEP, where a step of
  # another cluster with the same job id would collide with ours).
  # The sockets of munged, slurmstepd and PMIx live under munge/, spool/ and tmp/, and a Unix socket's
  # path holds at most 107 bytes: a deep build folder puts them in a short folder in /tmp instead.
  CLUSTER_RUN=$CLUSTER_DIR
  if [ ${#CLUSTER_RUN} -ge 50 ]; then
    CLUSTER_RUN=$(mktemp -d /tmp/empd-slurm.XXXXXX)
    chmod 755 "$CLUSTER_RUN"
  fi
  echo "$CLUSTER_RUN" >"$CLUSTER_DIR/run.path"
  CLUSTER_MUNGE=$CLUSTER_RUN/munge
  mkdir -p "$CLUSTER_RUN/spool" "$CLUSTER_RUN/tmp"
  install -d -o munge -g munge -m 755 "$CLUSTER_MUNGE"
  install -d -o munge -g munge -m 700 "$CLUSTER_MUNGE/key"
  head -c 1024 /dev/urandom >"$CLUSTER_MUNGE/key/munge.key"
  chown munge:munge "$CLUSTER_MUNGE/key/munge.key"
  chmod 400 "$CLUSTER_MUNGE/key/munge.key"
  local ctld_port d_port
  ctld_port=$(cluster_port)
  d_port=$(cluster_port)
  [ "$d_port" != "$ctld_port" ] || d_port=$((ctld_port + 1))
  cat >"$CLUSTER_DIR/slurm.conf" <<EOF
ClusterName=empdtest
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$CLUSTER_MUNGE/munge.socket
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=30
MinJobAge=600
MailProg=/bin/true
PlugStackConfig=$CLUSTER_DIR/plugstack.conf
SlurmctldPidFile=$CLUSTER_DIR/slurmctld.pid
SlurmdPidFile=$CLUSTER_DIR/slurmd.pid
SlurmctldLogFile=$CLUSTER_DIR/log/slurmctld.log
SlurmdLogFile=$CLUSTER_DIR/log/slurmd.log
StateSaveLocation=$CLUSTER_DIR/state
SlurmdSpoolDir=$CLUSTER_RUN/spool
TmpFS=$CLUSTER_RUN/tmp
NodeName=localhost CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$CLUSTER_DIR/plugstack.conf"
  export SLURM_CONF=$CLUSTER_DIR/slurm.conf
  trap cluster_stop EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  runuser -u munge -- /usr/sbin/munged --socket="$CLUSTER_MUNGE/munge.socket" --key-file="$CLUSTER_MUNGE/key/munge.key" \
    --pid-file="$CLUSTER_MUNGE/munged.pid" --log-file="$CLUSTER_MUNGE/munged.log" --seed-file="$CLUSTER_MUNGE/key/munged.seed" ||
    { cluster_logs; cluster_fail "munged did not start"; }
  CLUSTER_PIDS+=("$(cluster_pid "$CLUSTER_MUNGE/munged.pid" 10)") || { cluster_logs; cluster_fail "munged wrote no pid file"; }
  /usr/sbin/slurmctld || { cluster_logs; cluster_fail "slurmctld did not start"; }
  CLUSTER_PIDS+=("$(cluster_pid "$CLUSTER_DIR/slurmctld.pid" 10)") || { cluster_logs; cluster_fail "slurmctld exited at start"; }
  /usr/sbin/slurmd -N localhost || { cluster_logs; cluster_fail "slurmd did not start"; }
  CLUSTER_PIDS+=("$(cluster_pid "$CLUSTER_DIR/slurmd.pid" 10)") || { cluster_logs; cluster_fail "slurmd exited at start"; }
  local i state=
  for ((i = 0; i < 300; i++)); do
    state=$(sinfo -h -o %T 2>/dev/null || true)
    [ "$state" != idle ] || break
    sleep 0.1
  done
  [ "$state" = idle ] || { cluster_logs; cluster_fail "the node is '$state', not idle, 30 s after slurmd started"; }
  echo "cluster: munged, slurmctld, slurmd up (pids ${CLUSTER_PIDS[*]}), ports $ctld_port/$d_port, node idle"
}

cluster_stop() {
  local rc=$? pid i
  trap - EXIT
  trap "" INT TERM
  if [ -n "${SLURM_CONF:-}" ] && [ ${#CLUSTER_PIDS[@]} -ge 3 ]; then
    scancel --quiet --user=root 2>/dev/null || true
    for ((i = 0; i < 400; i++)); do
      [ -n "$(squeue -h 2>/dev/null)" ] || break
      sleep 0.1
    done
  fi
  # Daemons in reverse order of their start, each awaited.
  for ((i = ${#CLUSTER_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${CLUSTER_PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "cluster: pid $pid ignored SIGTERM for 10 s: killing it" >&2; kill -KILL "$pid"; }
  done
  cluster_kill_strays
  [[ $CLUSTER_RUN != /tmp/empd-slurm.* ]] || rm -rf "$CLUSTER_RUN"
  echo "cluster: stopped"
  exit "$rc"
}
