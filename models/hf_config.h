/* hf_config: reading a Hugging Face config.json (BertConfig, Wav2Vec2Config, ...) into a model's own
 * config struct, with one error style for every model; and HF's activation names for the writers.
 *
 * A model starts from its HF class's defaults, opens the file, reads the fields it uses with the typed
 * readers below, and closes it:
 *
 *   hf_config *f = hf_config_open(path, err, errlen);
 *   if (!f)
 *       return -1;
 *   hf_config_int(f, "hidden_size", 1, 1 << 16, &c.hidden);
 *   hf_config_num(f, "layer_norm_eps", 0, 1, HF_OPEN_LO, &c.layer_norm_eps);
 *   if (c.hidden % c.heads)
 *       hf_config_fail(f, "field 'num_attention_heads' is %lld, which does not divide hidden_size %lld", ...);
 *   if (hf_config_close(f))
 *       return -1;
 *
 * A field the file leaves out keeps the value *out already holds (the default); fields nobody reads are
 * ignored. Errors stick, as in a torch_c scope: the first failing reader writes one line into err, and
 * every later reader (and hf_config_fail) does nothing and returns -1, so a model reads its fields in a
 * row and checks once, at hf_config_close. Every line names the file and the field and says what was
 * found:
 *   "x/config.json: field 'hidden_act' is "swish"; expected "gelu", "gelu_new", "gelu_pytorch_tanh" or "relu""
 *   "x/config.json: field 'num_hidden_layers' must be an integer in 1..24, not a string" */
#ifndef EMPD_MODELS_HF_CONFIG_H
#define EMPD_MODELS_HF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "models/layers.h"

typedef struct hf_config hf_config;

/* Reads and parses path (at most 16 MiB), which must hold a JSON object. NULL with one line in err
 * ("<path>: cannot open: ...", "<path>: not valid JSON", "<path>: not a JSON object (expected Hugging
 * Face's config.json)", ...). path and err must outlive the handle. */
hf_config *hf_config_open(const char *path, char *err, size_t errlen);
/* Frees f; returns 0, or -1 when a reader or hf_config_fail failed (err holds the first failure). */
int hf_config_close(hf_config *f);

/* Sets err to "<path>: " and the formatted message (unless an error is already there); returns -1.
 * For checks across fields; the message should start with "field '<key>' ...". */
int hf_config_fail(hf_config *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An integer in lo..hi. */
int hf_config_int(hf_config *f, const char *key, int64_t lo, int64_t hi, int64_t *out);

/* The ends of hf_config_num's range that are excluded. */
#define HF_OPEN_LO 1u
#define HF_OPEN_HI 2u
/* A number in [lo, hi], minus the ends named in open. */
int hf_config_num(hf_config *f, const char *key, double lo, double hi, unsigned open, double *out);

/* true or false, as 1 or 0. */
int hf_config_bool(hf_config *f, const char *key, int *out);

/* A string among the NULL-terminated choices: its index in *out (out may be NULL to check only).
 * note, when not NULL, is added in parentheses to the error ("the only position embedding ..."). */
int hf_config_choice(hf_config *f, const char *key, const char *const *choices, const char *note, int *out);

/* An array of 1..max_n integers, each in lo..hi, into out[0..n-1]. Returns n, 0 when absent (out
 * untouched), or -1. */
int hf_config_int_list(hf_config *f, const char *key, int max_n, int64_t lo, int64_t hi, int64_t *out);

/* The set of activations a model accepts, for hf_config_act: HF_ACT(ML_ACT_RELU) | ...; 0 is all. */
#define HF_ACT(a) (1u << (a))
/* An activation by HF's ACT2FN name that torch_c computes exactly: "gelu" (ML_ACT_GELU), "gelu_new"
 * and "gelu_pytorch_tanh" (ML_ACT_GELU_TANH), "relu", "tanh"; only those in accepted. */
int hf_config_act(hf_config *f, const char *key, unsigned accepted, ml_act *out);
/* The name a config.json writer gives a: "gelu", "gelu_new", "relu", "tanh" ("gelu" for anything else). */
const char *hf_config_act_name(ml_act a);

#endif
