/* torch_c: the C binding of libtorch, the project's only door to torch.
 *
 * Handles
 *   tc_tensor    a tensor (or a view). Always owned by exactly one scope; never freed by hand.
 *   tc_scope     owns tensors. Scopes form a per-thread stack: every op puts its result into the
 *                scope on top of the stack. Model parameters live in a module's own scope, made
 *                with tc_scope_new() and kept for the module's life.
 *   tc_generator a seeded random generator (dropout, init) whose state can be saved and restored.
 *
 * Errors
 *   Calls that can fail on their own return an int: TC_OK (0) or a negative TC_E* code, and
 *   tc_last_error() holds a one-line message for the calling thread.
 *   Ops (everything returning tc_tensor *) follow the cairo rule instead: an op that fails records
 *   its error in the current scope and returns NULL; every later op in that scope, and every op
 *   given a NULL input, returns NULL and does nothing. The caller checks once, with
 *   tc_scope_status() or the return of tc_scope_end(). No C++ exception ever leaves this binding.
 *   A NULL input given to an op in a scope without an error records TC_EINVAL there, so a NULL
 *   that comes from elsewhere (a failed inner scope) is not lost. An op called with no scope on
 *   the stack returns NULL and only sets tc_last_error().
 *
 * Threads
 *   Scopes and the error message are per thread. A tensor may be read from several threads, but
 *   ops on it must come from the thread whose scope stack owns the result.
 *
 * Compatibility: libtorch 1.13 (Debian, CPU) and 2.x (CUDA builds).
 */
#ifndef EMPD_MODELS_TORCH_C_H
#define EMPD_MODELS_TORCH_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_tensor tc_tensor;
typedef struct tc_scope tc_scope;
typedef struct tc_generator tc_generator;

/* Return codes. */
#define TC_OK 0
#define TC_EINVAL (-1)   /* bad argument: shape, dtype, dimension, NULL where a tensor is required */
#define TC_ETORCH (-2)   /* libtorch raised an error; the message is libtorch's first line */
#define TC_ENOMEM (-3)
#define TC_ESTATE (-4)   /* wrong call order: scope not on top of the stack, no scope entered */
#define TC_ENODEV (-5)   /* the device asked for does not exist (no CUDA) */

const char *tc_last_error(void);
const char *tc_strerror(int rc);

typedef enum { TC_F32, TC_BF16, TC_F16, TC_I64, TC_I32, TC_I16, TC_U8, TC_BOOL } tc_dtype;
typedef enum { TC_CPU, TC_CUDA } tc_device_type;
typedef struct {
    tc_device_type type;
    int index;
} tc_device;

#define TC_MAX_DIMS 8

/* ---- Scopes ---------------------------------------------------------------------------- */
/* New scope, pushed on this thread's stack. */
tc_scope *tc_scope_begin(void);
/* Pops s (must be on top), frees every tensor in it, and returns its first error (TC_OK if none). */
int tc_scope_end(tc_scope *s);
/* A scope not on the stack, for a module's parameters or optimizer state. Enter it to create
 * tensors in it; leave it to return to the previous scope; free it when the module dies. */
tc_scope *tc_scope_new(void);
int tc_scope_enter(tc_scope *s);
int tc_scope_leave(tc_scope *s);
void tc_scope_free(tc_scope *s); /* removes s from this thread's stack first if it is there */
/* The scope's first recorded error, TC_OK when none. */
int tc_scope_status(const tc_scope *s);
/* Clears the error of s so it can be used again (the message stays in tc_last_error()). */
void tc_scope_clear_error(tc_scope *s);
/* Fails the chain for a reason of the caller's own (a bad input shape, host memory): records code
 * (TC_EINVAL when given TC_OK) and the one-line message in the scope on top of this thread's stack, as
 * a failed op would (a scope that already failed keeps its first error). Returns NULL, so an op-style
 * function can end with `return tc_scope_fail(...)`. */
tc_tensor *tc_scope_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Moves t into the parent of its scope (the scope below it on the stack) and returns t; for a
 * scope not on the stack, into the scope on top of the stack. The way results leave a scope.
 * A tensor in the bottom scope has no parent: NULL, and TC_ESTATE is recorded in its scope. */
tc_tensor *tc_keep(tc_tensor *t);
/* Moves t into dst and returns t. */
tc_tensor *tc_move_to(tc_tensor *t, tc_scope *dst);

/* ---- Creation and host memory ------------------------------------------------------- */
/* Zero copy: the tensor uses data until its scope ends; the caller keeps data alive. CPU only. */
tc_tensor *tc_from_blob(void *data, const int64_t *shape, int ndim, tc_dtype dtype);
/* Copies data. */
tc_tensor *tc_from_data(const void *data, const int64_t *shape, int ndim, tc_dtype dtype);
tc_tensor *tc_empty(const int64_t *shape, int ndim, tc_dtype dtype, tc_device dev);
tc_tensor *tc_zeros(const int64_t *shape, int ndim, tc_dtype dtype, tc_device dev);
tc_tensor *tc_ones(const int64_t *shape, int ndim, tc_dtype dtype, tc_device dev);
tc_tensor *tc_full(const int64_t *shape, int ndim, double value, tc_dtype dtype, tc_device dev);
tc_tensor *tc_arange(int64_t n, tc_dtype dtype, tc_device dev);
/* Random fills in f32 from gen (NULL: torch's default generator). */
tc_tensor *tc_rand_uniform(const int64_t *shape, int ndim, double lo, double hi, tc_generator *gen);
tc_tensor *tc_randn(const int64_t *shape, int ndim, double mean, double std, tc_generator *gen);

tc_tensor *tc_to_dtype(tc_tensor *t, tc_dtype dtype);
tc_tensor *tc_to_device(tc_tensor *t, tc_device dev);
tc_tensor *tc_contiguous(tc_tensor *t);
tc_tensor *tc_clone(tc_tensor *t);
tc_tensor *tc_detach(tc_tensor *t);

/* Copies a tensor's elements (any layout or device, same dtype) into host memory of nbytes,
 * which must be numel * tc_dtype_size (TC_EINVAL otherwise). */
int tc_copy_to_host(const tc_tensor *t, void *dst, size_t nbytes);
/* Pointer to the elements of a contiguous CPU tensor (NULL otherwise); writes through it are
 * seen by torch. The way comm/ reduces gradients and checkpoints read parameters without copies. */
void *tc_data_ptr(const tc_tensor *t);
/* dst <- src in place (shapes equal, any dtype/device; autograd not recorded). */
int tc_copy_(tc_tensor *dst, const tc_tensor *src);

/* On a NULL tensor or a dim out of range: -1 (tc_dtype_of: TC_F32, tc_device_of: CPU). */
int tc_ndim(const tc_tensor *t);
int64_t tc_size(const tc_tensor *t, int dim); /* negative dim counts from the end */
int64_t tc_numel(const tc_tensor *t);
tc_dtype tc_dtype_of(const tc_tensor *t);
tc_device tc_device_of(const tc_tensor *t);
size_t tc_dtype_size(tc_dtype dtype); /* 0 for a value outside tc_dtype */
/* The single element of t as double (any dtype); NAN on error. */
double tc_item(const tc_tensor *t);

/* ---- Views and joins ---------------------------------------------------------------- */
tc_tensor *tc_reshape(tc_tensor *t, const int64_t *shape, int ndim);
tc_tensor *tc_permute(tc_tensor *t, const int64_t *dims, int ndim);
tc_tensor *tc_transpose(tc_tensor *t, int d0, int d1);
tc_tensor *tc_slice(tc_tensor *t, int dim, int64_t start, int64_t end, int64_t step);
tc_tensor *tc_select(tc_tensor *t, int dim, int64_t index);
tc_tensor *tc_narrow(tc_tensor *t, int dim, int64_t start, int64_t length);
tc_tensor *tc_cat(tc_tensor *const *ts, int n, int dim);
tc_tensor *tc_stack(tc_tensor *const *ts, int n, int dim);
tc_tensor *tc_expand(tc_tensor *t, const int64_t *shape, int ndim);
tc_tensor *tc_unsqueeze(tc_tensor *t, int dim);
tc_tensor *tc_squeeze(tc_tensor *t, int dim);
tc_tensor *tc_gather(tc_tensor *t, int dim, tc_tensor *index);
tc_tensor *tc_index_select(tc_tensor *t, int dim, tc_tensor *index);
/* A copy of t with the slices index (i64 [n]) along dim replaced by src's n slices (at::index_copy,
 * out of place; gradients flow to t's other slices and to src). */
tc_tensor *tc_index_copy(tc_tensor *t, int dim, tc_tensor *index, tc_tensor *src);

/* ---- Elementwise (broadcasting like torch) ---------------------------------------- */
tc_tensor *tc_add(tc_tensor *a, tc_tensor *b);
tc_tensor *tc_sub(tc_tensor *a, tc_tensor *b);
tc_tensor *tc_mul(tc_tensor *a, tc_tensor *b);
tc_tensor *tc_div(tc_tensor *a, tc_tensor *b);
tc_tensor *tc_add_scalar(tc_tensor *a, double s);
tc_tensor *tc_mul_scalar(tc_tensor *a, double s);
tc_tensor *tc_neg(tc_tensor *a);
tc_tensor *tc_exp(tc_tensor *a);
tc_tensor *tc_log(tc_tensor *a);
tc_tensor *tc_sqrt(tc_tensor *a);
tc_tensor *tc_rsqrt(tc_tensor *a);
tc_tensor *tc_pow(tc_tensor *a, double exponent);
tc_tensor *tc_tanh(tc_tensor *a);
tc_tensor *tc_sigmoid(tc_tensor *a);
tc_tensor *tc_relu(tc_tensor *a);
tc_tensor *tc_abs(tc_tensor *a);
typedef enum { TC_GELU_EXACT, TC_GELU_TANH } tc_gelu_approx;
tc_tensor *tc_gelu(tc_tensor *a, tc_gelu_approx approx);
tc_tensor *tc_clamp(tc_tensor *a, double lo, double hi);
/* mask: bool or u8 (non-zero = fill), broadcast to a. */
tc_tensor *tc_masked_fill(tc_tensor *a, tc_tensor *mask, double value);
tc_tensor *tc_where(tc_tensor *cond, tc_tensor *a, tc_tensor *b);
/* Elementwise comparisons, bool results. */
tc_tensor *tc_eq(tc_tensor *a, tc_tensor *b);
tc_tensor *tc_gt_scalar(tc_tensor *a, double s);
tc_tensor *tc_lt_scalar(tc_tensor *a, double s);

/* ---- Reductions ------------------------------------------------------------------- */
tc_tensor *tc_sum(tc_tensor *t, int dim, int keepdim);
tc_tensor *tc_sum_all(tc_tensor *t);
tc_tensor *tc_mean(tc_tensor *t, int dim, int keepdim);
tc_tensor *tc_mean_all(tc_tensor *t);
tc_tensor *tc_max(tc_tensor *t, int dim, int keepdim); /* values */
tc_tensor *tc_argmax(tc_tensor *t, int dim, int keepdim);
tc_tensor *tc_var(tc_tensor *t, int dim, int unbiased, int keepdim);

/* ---- Linear algebra and neural-network ops ---------------------------------------- */
tc_tensor *tc_matmul(tc_tensor *a, tc_tensor *b);
tc_tensor *tc_bmm(tc_tensor *a, tc_tensor *b);
/* x @ w^T + b, w [out, in]; b may be NULL. */
tc_tensor *tc_linear(tc_tensor *x, tc_tensor *w, tc_tensor *b);
tc_tensor *tc_softmax(tc_tensor *t, int dim);
tc_tensor *tc_log_softmax(tc_tensor *t, int dim);
/* Normalised over the last dimension; w and b may be NULL. */
tc_tensor *tc_layer_norm(tc_tensor *x, tc_tensor *w, tc_tensor *b, double eps);
tc_tensor *tc_group_norm(tc_tensor *x, int groups, tc_tensor *w, tc_tensor *b, double eps);
/* In training mode running_mean/var (may be NULL) are updated in place with momentum. */
tc_tensor *tc_batch_norm(tc_tensor *x, tc_tensor *w, tc_tensor *b, tc_tensor *running_mean,
                         tc_tensor *running_var, int training, double momentum, double eps);
/* Weight normalisation as torch.nn.utils.weight_norm computes it: g * v / ||v||, the norm taken over
 * every dimension but dim (torch's _weight_norm, differentiable in v and g). */
tc_tensor *tc_weight_norm(tc_tensor *v, tc_tensor *g, int dim);
/* ids: i64 of any shape; result ids.shape + [dim]. */
tc_tensor *tc_embedding(tc_tensor *weight, tc_tensor *ids);
tc_tensor *tc_conv1d(tc_tensor *x, tc_tensor *w, tc_tensor *b, int64_t stride, int64_t padding,
                     int64_t dilation, int64_t groups);
tc_tensor *tc_conv2d(tc_tensor *x, tc_tensor *w, tc_tensor *b, const int64_t stride[2],
                     const int64_t padding[2]);
tc_tensor *tc_conv3d(tc_tensor *x, tc_tensor *w, tc_tensor *b, const int64_t stride[3],
                     const int64_t padding[3]);
/* Identity when !training or p == 0; zeros when p == 1; TC_EINVAL outside [0, 1]. The mask comes
 * from gen (NULL: torch's default), drawn as torch.nn.functional.dropout draws it on CPU, so a
 * generator seeded s gives the mask F.dropout gives after torch.manual_seed(s). */
tc_tensor *tc_dropout(tc_tensor *x, double p, int training, tc_generator *gen);
/* Multi-layer LSTM over x [B, T, I] (batch first). lengths: B valid lengths (NULL = all T);
 * positions past a sequence's length do not influence any output and come out as zeros.
 * params: PyTorch's flat weight order: for each layer, for each direction (forward, then
 * reverse): w_ih [4H, in], w_hh [4H, H], b_ih [4H], b_hh [4H]. Result [B, T, dirs*H].
 * Every length must be in 1..T. Dropout between layers (training only) uses torch's default
 * generator. Matches torch.nn.LSTM(batch_first=True) on pack_padded_sequence(enforce_sorted=False)
 * followed by pad_packed_sequence(total_length=T). */
tc_tensor *tc_lstm(tc_tensor *x, const int64_t *lengths, tc_tensor *const *params, int num_layers,
                   int bidirectional, int64_t hidden, double dropout, int training);
/* Mean cross-entropy of logits [N, C] against i64 targets [N]; weight [C] may be NULL. */
tc_tensor *tc_cross_entropy(tc_tensor *logits, tc_tensor *target, tc_tensor *weight);
/* Mean negative log-likelihood from log-probabilities [N, C]; weight [C] may be NULL. */
tc_tensor *tc_nll_loss(tc_tensor *logp, tc_tensor *target, tc_tensor *weight);

/* ---- Autograd --------------------------------------------------------------------- */
int tc_set_requires_grad(tc_tensor *t, int on);
int tc_requires_grad(const tc_tensor *t);
/* Backpropagates from a scalar. */
int tc_backward(tc_tensor *loss);
/* The accumulated gradient of t as a tensor in the current scope (sharing memory with it), or
 * NULL with TC_OK in tc_scope_status when t has no gradient yet. */
tc_tensor *tc_grad(tc_tensor *t);
/* Sets t's gradient to zeros of its shape, allocating it when absent (so its data pointer stays
 * stable across steps, which the reducer relies on). */
int tc_zero_grad(tc_tensor *t);
/* Enables or disables gradient recording for this thread; returns the previous state. */
int tc_grad_enabled_set(int enabled);
/* Called once per backward, after t's gradient has been accumulated into t.grad, from the
 * thread that runs the backward. A post-hook on t's gradient accumulator, as DDP's reducer uses.
 * Several hooks per tensor are allowed; they fire in registration order. A hook lives as long
 * as the handle it was registered on; it does not fire once that handle's scope is freed.
 * On CUDA libtorch runs it on its own device thread, which has no scope: the callback must not
 * create tensors there; take gradient pointers before backward (tc_zero_grad, then
 * tc_data_ptr(tc_grad(p)) stays valid). */
typedef void (*tc_grad_ready_fn)(void *user, tc_tensor *param);
int tc_grad_ready_hook(tc_tensor *param, tc_grad_ready_fn fn, void *user);

/* One AdamW step in place, as torch.optim.AdamW (decoupled weight decay, bias correction,
 * non-amsgrad): param, exp_avg, exp_avg_sq same shape; step counts from 1. No autograd. */
int tc_adamw_step(tc_tensor *param, const tc_tensor *grad, tc_tensor *exp_avg,
                  tc_tensor *exp_avg_sq, int64_t step, double lr, double beta1, double beta2,
                  double eps, double weight_decay);

/* ---- Random generators ------------------------------------------------------------ */
tc_generator *tc_generator_new(uint64_t seed, tc_device dev);
void tc_generator_free(tc_generator *g);
/* The state as bytes: *len in = capacity of buf, out = bytes needed (call with buf NULL to ask);
 * TC_EINVAL when buf is too small. */
int tc_generator_get_state(tc_generator *g, void *buf, size_t *len);
int tc_generator_set_state(tc_generator *g, const void *buf, size_t len);
/* Seeds torch's default generator(s) for ops given no generator. */
void tc_manual_seed(uint64_t seed);

/* ---- Threads and devices ---------------------------------------------------------- */
int tc_set_num_threads(int n);
int tc_get_num_threads(void);
int tc_cuda_device_count(void);
/* Moves a parameter to dev in place, as `param.data = param.data.to(dev)`: its handle, requires_grad,
 * name and gradient hooks stay (its gradient, if any, is dropped: call tc_zero_grad after). */
int tc_param_to_device(tc_tensor *t, tc_device dev);
/* The address of t's first element on its own device (a device pointer for a CUDA tensor; the reducer
 * hands it to NCCL), NULL unless t is contiguous. tc_data_ptr is the host-only form. */
void *tc_device_ptr(const tc_tensor *t);
/* Autocast of CUDA ops on this thread to dtype (TC_BF16 or TC_F16) while enabled, as
 * torch.autocast("cuda", dtype); *was (may be NULL) receives the previous state. Turning it off clears
 * autocast's cast cache. TC_ENODEV on a libtorch without CUDA or a machine without a GPU. */
int tc_autocast_cuda(int enabled, tc_dtype dtype, int *was);
/* Waits until every queued operation on dev has finished (CUDA); no-op on the CPU. */
int tc_synchronize(tc_device dev);
/* libtorch's version as its headers state it (TORCH_VERSION), e.g. "1.13.0". */
const char *tc_version(void);

/* ---- Host memory ------------------------------------------------------------------ */
/* bytes of host memory, 64-byte aligned, contents undefined; with pinned, page-locked by libtorch's CUDA
 * host allocator, so that copies from it to a CUDA device run asynchronously (the data loader's batches).
 * NULL, with tc_last_error() set, when out of memory or when pinned memory is asked of a libtorch without
 * CUDA or a machine without a GPU ("pinned memory needs CUDA"). Any thread. */
void *tc_host_alloc(size_t bytes, int pinned);
/* Frees a block of tc_host_alloc (either kind). NULL and pointers it did not return are ignored. Any thread. */
void tc_host_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
