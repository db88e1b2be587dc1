/* Default thread counts from the CPU affinity mask (see cpus.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "trainer/cpus.h"

#include <sched.h>
#include <unistd.h>

int tr_default_threads(int local_ranks)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    int mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    if (mine > 0 && (online <= 0 || mine < online))
        return mine;
    long n = (online > 0 ? online : 1) / (local_ranks > 0 ? local_ranks : 1);
    return n > 0 ? (int)n : 1;
}
