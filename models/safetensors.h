/* safetensors: the tensor file format of Hugging Face (8-byte little-endian header length, a JSON
 * header naming each tensor's dtype, shape and byte range, then the raw little-endian data).
 * Checkpoints and pretrained weights use it, so trained encoders load elsewhere and HF weights
 * load here. Plain C on host memory: no torch.
 *
 * Reading maps the file read-only; tensor data pointers stay valid until st_close(). Every
 * header field is validated (dtype, shape, offsets inside the file, size = numel * itemsize);
 * a bad file is one line naming the file and the tensor.
 * Writing goes to "<path>.tmp", is fsync'd, renamed over path, and the directory is fsync'd:
 * a reader sees the old file or the new one, never half of one.
 * Functions return 0 or -1 with a message in err. */
#ifndef EMPD_MODELS_SAFETENSORS_H
#define EMPD_MODELS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_F64, ST_BF16, ST_F16, ST_I64, ST_I32, ST_I16, ST_U8, ST_BOOL } st_dtype;

typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} st_tensor;

typedef struct st_file st_file;

int st_open(const char *path, st_file **out, char *err, size_t errlen);
void st_close(st_file *f);
size_t st_count(const st_file *f);
/* Tensors in file order (the order of their data); NULL past the end. */
const st_tensor *st_at(const st_file *f, size_t i);
const st_tensor *st_find(const st_file *f, const char *name);
/* A string from the header's __metadata__, NULL when absent. */
const char *st_metadata(const st_file *f, const char *key);

/* Writes n tensors (data in the given order) and n_meta key/value string pairs
 * (meta[2i], meta[2i+1]) atomically to path. */
int st_write(const char *path, const st_tensor *ts, size_t n, const char *const *meta, size_t n_meta,
             char *err, size_t errlen);

/* Writes n bytes to path atomically, the way st_write publishes a file (a sidecar such as an HF
 * config.json next to the weights). */
int st_write_bytes(const char *path, const void *data, size_t n, char *err, size_t errlen);

size_t st_dtype_size(st_dtype d);
const char *st_dtype_name(st_dtype d);

#endif
