/* AdamW over a module's parameters (torch.optim.AdamW's math, decoupled weight decay), and the
 * learning-rate schedule: linear warmup, then constant or linear decay to zero. The moments live
 * in their own scope, in the parameters' order, named "exp_avg.<param>" / "exp_avg_sq.<param>"
 * in checkpoints. */
#ifndef EMPD_TRAINER_OPTIM_H
#define EMPD_TRAINER_OPTIM_H

#include "models/params.h"
#include "trainer/config.h"

typedef struct {
    tc_scope *scope;
    tc_tensor **exp_avg, **exp_avg_sq;
    int n;
    int64_t step; /* optimizer steps taken */
    float *lr_scale; /* per parameter, the factor of its group's learning rate (NULL: all 1) */
} tr_adamw;

int tr_adamw_init(tr_adamw *o, const mp_params *ps);
void tr_adamw_free(tr_adamw *o);
/* Two parameter groups: parameters named with one of the comma-separated prefixes (e.g.
 * "bert.,wav2vec2.") step at lr * scale, the others at lr. */
int tr_adamw_set_group(tr_adamw *o, const mp_params *ps, const char *prefixes, double scale);
/* One step over every parameter with a gradient, at learning rate lr (times its group's factor). */
int tr_adamw_step(tr_adamw *o, const mp_params *ps, const tr_config *cfg, double lr);
/* The learning rate of optimizer step `step` (counting from 1). */
double tr_lr_at(const tr_config *cfg, int64_t step);

#endif
