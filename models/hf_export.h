/* hf_export: one encoder of a trained model as a Hugging Face model folder, so the weights load
 * elsewhere: dir/config.json (given) and dir/model.safetensors holding the parameters named
 * "<prefix>.*" with the prefix removed, the layout save_pretrained writes (BertModel, Wav2Vec2Model),
 * in f32. Buffers go with them. Both files are written atomically (safetensors.h); dir and its parent
 * are created when missing. Returns 0, or -1 with one line in err. The folder loads back through
 * hf_import (no file prefix needed). */
#ifndef EMPD_MODELS_HF_EXPORT_H
#define EMPD_MODELS_HF_EXPORT_H

#include <stddef.h>

#include "models/params.h"

int hf_export(const mp_params *ps, const char *prefix, const char *dir, const char *config_json, char *err,
              size_t errlen);

#endif
