/* Stop requests: SIGTERM (Slurm's preemption and time limit, `scancel`, `kill`) and SIGUSR1 (sbatch
 * --signal=USR1@T) ask the run to stop at the next optimizer step with a checkpoint, then exit 0 so the
 * job can be requeued and resumed with --resume auto. The ranks agree on it (any rank's request stops
 * all), so a signal delivered to one process stops the job cleanly. */
#ifndef EMPD_TRAINER_STOP_H
#define EMPD_TRAINER_STOP_H

/* Installs the handlers (SA_RESTART: interrupted reads and writes continue). */
void tr_stop_install(void);
/* The signal number received so far, 0 for none. Async-signal-safe reads only. */
int tr_stop_requested(void);

#endif
