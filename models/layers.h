/* Basic layers on torch_c. Each *_init registers its parameters in a mp_params under
 * "<prefix>.weight" / "<prefix>.bias" (Hugging Face's names) and returns TC_OK or the params'
 * error; each forward is an op in the cairo sense (NULL in, NULL out). */
#ifndef EMPD_MODELS_LAYERS_H
#define EMPD_MODELS_LAYERS_H

#include "models/params.h"

typedef struct {
    tc_tensor *w, *b; /* w [out, in]; b [out] or NULL */
} ml_linear;

typedef struct {
    tc_tensor *w, *b;
    double eps;
} ml_layer_norm;

typedef struct {
    tc_tensor *w; /* [num, dim] */
} ml_embedding;

/* Weights N(0, std) (BERT's initialiser) and zero bias. */
int ml_linear_init(ml_linear *l, mp_params *ps, const char *prefix, int64_t in, int64_t out, int bias,
                   double std);
tc_tensor *ml_linear_forward(const ml_linear *l, tc_tensor *x);

int ml_layer_norm_init(ml_layer_norm *l, mp_params *ps, const char *prefix, int64_t dim, double eps);
tc_tensor *ml_layer_norm_forward(const ml_layer_norm *l, tc_tensor *x);

int ml_embedding_init(ml_embedding *l, mp_params *ps, const char *prefix, int64_t num, int64_t dim, double std);
tc_tensor *ml_embedding_forward(const ml_embedding *l, tc_tensor *ids);

#endif
