/* hf_import: pretrained weights from a Hugging Face `model.safetensors` into a model's parameters.
 *
 * A model registers its encoder's parameters under HF's own names below a prefix ("bert.",
 * "wav2vec2."), so our names and the file's agree up to the spellings real files use:
 *   - with or without the model-type prefix: "bert.embeddings..." (BertForPreTraining exports) and
 *     "embeddings..." (BertModel.save_pretrained) both land on "<prefix>.embeddings...";
 *   - legacy LayerNorm names: "...LayerNorm.gamma" / ".beta" read as ".weight" / ".bias";
 *   - weight norm: "...weight_g" / "...weight_v" and the newer
 *     "...parametrizations.weight.original0" / "original1" are the same tensors;
 *   - pretraining-only parts are skipped by name (rules.ignore) and counted.
 * Every other tensor must match exactly one parameter under the prefix, with the same shape; every
 * parameter under the prefix must be loaded. F32, F16 and BF16 tensors are converted to the
 * parameter's f32. A failure is one line naming the file and the tensor:
 *   "weights/model.safetensors: tensor 'bert.pooler.dense.weight' has shape [768, 768], the model's
 *    'bert.pooler.dense.weight' is [64, 64]", "...: the model's 'X' is missing from the file",
 *   "...: tensor 'X' matches nothing in the model (N unexpected tensors)".
 * Nothing is copied until the whole file has been checked, so a file that does not fit leaves the
 * model as it was; only running out of memory while copying can leave it partly loaded (the caller
 * then discards the model). Returns 0, or -1 with the message in err. */
#ifndef EMPD_MODELS_HF_IMPORT_H
#define EMPD_MODELS_HF_IMPORT_H

#include <stddef.h>

#include "models/params.h"

#define HF_IMPORT_MAX_RULES 16

typedef struct {
    const char *prefix;                        /* our parameters' prefix, e.g. "bert" (no dot) */
    const char *file_prefix;                   /* the prefix the file may carry, e.g. "bert." (NULL: none) */
    const char *ignore[HF_IMPORT_MAX_RULES];   /* file names starting with one of these are skipped
                                                  (matched after file_prefix is removed and as written),
                                                  NULL-terminated */
} hf_import_rules;

typedef struct {
    int loaded;    /* parameters filled */
    int ignored;   /* tensors skipped by rules.ignore */
} hf_import_report;

int hf_import(mp_params *ps, const char *path, const hf_import_rules *rules, hf_import_report *rep, char *err,
              size_t errlen);

#endif
