/* Shared parts of test_models: the python references, the comparison against them, and one cmocka
 * group per cases file (safetensors_cases.c, bert_cases.c, text_model_cases.c, layers_cases.c,
 * import_cases.c, wav2vec2_cases.c, video_cases.c, fusion_cases.c). */
#ifndef EMPD_TESTS_MODELS_TEST_H
#define EMPD_TESTS_MODELS_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "models/params.h"
#include "models/safetensors.h"
#include "models/torch_c.h"
#include "tests/common/test_files.h"

/* Runs "/usr/bin/python3 tests/models/SCRIPT ARGS" and returns its stdout (caller frees); NULL when
 * it fails. */
char *tm_run_script(const char *script, const char *args);
/* tm_run_script("ref_models.py", args). */
char *tm_run_reference(const char *args);
/* t's elements as host floats (t must be f32; caller frees). */
float *tm_host_f32(const tc_tensor *t);

/* Adds N(0, std) noise to every parameter (LayerNorm 1/0, zero biases and the like move off their
 * initial values, so each one matters in a comparison). */
void tm_perturb(mp_params *ps, uint64_t seed, double std);
/* A safetensors entry over t's memory (t contiguous on the CPU; f32, i64, u8 or i16). */
st_tensor tm_st_of(const char *name, tc_tensor *t);
/* max |got - ref| and max |ref| over the elements; the shapes must match (a mismatch fails). */
void tm_diff(tc_tensor *got, const st_tensor *ref, double *diff, double *scale);

/* A reference run: the model's parameters and named extra tensors go to DIR/in.safetensors (with
 * metadata pairs), "SCRIPT MODE DIR/in.safetensors DIR/out.safetensors" runs, and the output is
 * opened. */
typedef struct {
    char dir[64];
    st_file *out;
} tm_ref;

void tm_ref_run(tm_ref *r, const char *script, const char *mode, const mp_params *ps, const char *const *names,
                tc_tensor *const *extra, int n_extra, const char *const *meta, int n_meta);
void tm_ref_close(tm_ref *r);
/* Asserts max|got - ref[name]| <= tol * max|ref[name]| and prints "LABEL: NAME max err E"; returns
 * the normalised error. */
double tm_check(const char *label, tc_tensor *got, const tm_ref *r, const char *name, double tol);
/* The same for every parameter's gradient against ref "grad.<name>" (parameters without a gradient
 * in ours must have none, or an all-zero one, in the reference). A gradient whose reference is all
 * rounding noise (exact value 0, e.g. an attention key bias) is held to the model-wide gradient scale
 * instead: names containing one of the NULL-terminated zero_grad_parts. Prints the worst error and
 * returns it. */
double tm_check_grads(const char *label, const mp_params *ps, const tm_ref *r, double tol,
                      const char *const *zero_grad_parts);

/* One cmocka group per cases file; each returns its number of failed tests. */
int tm_safetensors_tests(void);
int tm_bert_tests(void);
int tm_text_model_tests(void);
int tm_layers_tests(void);
int tm_import_tests(void);
int tm_wav2vec2_tests(void);
int tm_video_tests(void);
int tm_fusion_tests(void);

#endif
