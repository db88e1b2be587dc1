/* A module's parameters: named tensors that live in the module's own scope, in creation order.
 * The order is the same on every rank and in every run, so broadcasts, gradient all-reduces and
 * checkpoints can walk the list without names. Initialisation is seeded. */
#ifndef EMPD_MODELS_PARAMS_H
#define EMPD_MODELS_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "models/torch_c.h"

typedef struct {
    char *name;
    tc_tensor *t;
    int buffer; /* state saved with the weights but never trained (BatchNorm's running statistics) */
} mp_param;

typedef struct {
    tc_scope *scope;      /* owns every parameter tensor */
    tc_generator *gen;    /* initialisation */
    mp_param *v;
    int n, cap;
    int status;           /* first error while creating parameters (TC_OK when none) */
} mp_params;

int mp_params_init(mp_params *ps, uint64_t seed);
void mp_params_free(mp_params *ps);

/* New trainable parameters (requires_grad on). NULL (and ps->status set) on failure. */
tc_tensor *mp_normal(mp_params *ps, const char *name, const int64_t *shape, int ndim, double std);
tc_tensor *mp_uniform(mp_params *ps, const char *name, const int64_t *shape, int ndim, double bound);
tc_tensor *mp_constant(mp_params *ps, const char *name, const int64_t *shape, int ndim, double value);

/* A buffer: no gradient, filled with value, listed with the parameters (checkpoints and exports
 * carry it) but never trained or averaged. */
tc_tensor *mp_buffer(mp_params *ps, const char *name, const int64_t *shape, int ndim, double value);

/* Freezes (on = 0) or unfreezes (on = 1) every parameter whose name starts with prefix (buffers stay
 * as they are): a frozen parameter gets no gradient, and the trainer neither averages nor updates it.
 * Returns how many parameters matched. */
int mp_set_trainable(mp_params *ps, const char *prefix, int on);
/* Whether p takes gradients and optimizer steps: not a buffer and not frozen. */
int mp_trainable(const mp_param *p);

const mp_param *mp_find(const mp_params *ps, const char *name);
size_t mp_numel(const mp_params *ps);

#endif
