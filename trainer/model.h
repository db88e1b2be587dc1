/* The model a run trains, chosen by model.kind: the skeleton's text + metadata model or one of the seed's
 * two fusion models (models/fusion.h), built from the configuration and the shards' manifest (label
 * space, metadata vocabularies, media), optionally starting its encoders from Hugging Face weights. */
#ifndef EMPD_TRAINER_MODEL_H
#define EMPD_TRAINER_MODEL_H

#include "dataset/loader.h"
#include "models/fusion.h"
#include "models/hf_import.h"
#include "models/text_model.h"
#include "trainer/config.h"

typedef struct {
    int kind; /* enum tr_model_kind */
    tm_model text;
    mf_model fusion;
    hf_import_report bert_import, audio_import; /* what model.*.weights filled (loaded 0: not asked) */
} tr_model;

/* Builds the model (parameters seeded with seed) and loads model.bert.weights / model.audio.weights
 * when set. -1 with one line in err: a shard folder without the medium the model reads, a
 * configuration that does not fit together, a weights file that does not match (hf_import.h). */
int tr_model_build(tr_model *m, const tr_config *c, const ds_manifest *man, uint64_t seed, char *err, size_t errlen);
void tr_model_free(tr_model *m);
mp_params *tr_model_params(tr_model *m);
/* The loader batch the model reads: train.batch_size rows, the model's modalities and lengths. */
ds_batch_shape tr_model_batch_shape(const tr_config *c, const ds_manifest *man);
/* Logits [B, classes] over b's buffers (no copies on the CPU); gen drives dropout. */
tc_tensor *tr_model_forward(tr_model *m, const ds_batch *b, int training, tc_generator *gen);

#endif
