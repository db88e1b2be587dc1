/* How many threads a process of empd should run by default. */
#ifndef EMPD_TRAINER_CPUS_H
#define EMPD_TRAINER_CPUS_H

/* The CPUs this process may run on, shared with `local_ranks` processes of its job on the host: when the
 * process is bound to fewer CPUs than the host has online (mpirun binds each rank to a core, Slurm to
 * its --cpus-per-task, taskset, a cgroup cpuset), its own CPUs are its share and are all used; otherwise
 * the online CPUs divided by local_ranks. At least 1. */
int tr_default_threads(int local_ranks);

#endif
