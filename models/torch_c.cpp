/* torch_c: the C binding of libtorch (see torch_c.h for the contract).
 *
 * Every entry point catches every C++ exception: errors become an int code (calls) or a NULL
 * plus a status recorded in the current scope (ops), with the message in a thread-local buffer.
 * Tensors are heap wrappers linked into their scope's list, so moving one between scopes and
 * freeing a scope are O(1) per tensor. */
#include "models/torch_c.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/util/FunctionRef.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/version.h>

#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

struct tc_tensor {
    at::Tensor t;
    tc_scope *owner = nullptr;
    tc_tensor *prev = nullptr;
    tc_tensor *next = nullptr;
    /* Gradient hooks hold this flag, not the handle, so a hook still in a graph after its
     * handle died does nothing instead of touching freed memory. */
    std::shared_ptr<std::atomic<bool>> alive;
    /* The accumulator keeps the hooks; autograd itself holds it only weakly. */
    std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
    ~tc_tensor() {
        if (alive) *alive = false;
    }
};

struct tc_scope {
    tc_tensor *head = nullptr;
    int status = TC_OK;
};
struct tc_generator {
    at::Generator g;
};

namespace {

struct op_error {
    int code;
    std::string msg;
};

thread_local std::vector<tc_scope *> scope_stack;
thread_local char last_error[512];

[[noreturn]] void fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fail(int code, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    throw op_error{code, buf};
}

/* Keeps the first line of msg (libtorch appends context and backtraces); returns code. */
int set_error(int code, const char *where, const char *msg) {
    snprintf(last_error, sizeof last_error, "%s: %.*s", where, (int)strcspn(msg, "\n"), msg);
    return code;
}

/* Maps the exception in flight to a code and the thread's message. */
int catch_current(const char *where) {
    try {
        throw;
    } catch (const op_error &e) {
        return set_error(e.code, where, e.msg.c_str());
    } catch (const c10::OutOfMemoryError &e) {
        return set_error(TC_ENOMEM, where, e.what_without_backtrace());
    } catch (const c10::Error &e) {
        return set_error(TC_ETORCH, where, e.what_without_backtrace());
    } catch (const std::bad_alloc &) {
        return set_error(TC_ENOMEM, where, "out of memory");
    } catch (const std::exception &e) {
        return set_error(TC_ETORCH, where, e.what());
    } catch (...) {
        return set_error(TC_ETORCH, where, "unknown C++ exception");
    }
}

tc_scope *top() { return scope_stack.empty() ? nullptr : scope_stack.back(); }

void link(tc_scope *s, tc_tensor *t) {
    t->owner = s;
    t->prev = nullptr;
    t->next = s->head;
    if (s->head) s->head->prev = t;
    s->head = t;
}

void unlink(tc_tensor *t) {
    if (t->prev) t->prev->next = t->next;
    else t->owner->head = t->next;
    if (t->next) t->next->prev = t->prev;
    t->owner = nullptr;
    t->prev = t->next = nullptr;
}

void record(tc_scope *s, int code) {
    if (s && s->status == TC_OK) s->status = code;
}

/* Runs an op: NULL when no scope, when the scope already failed, or when a required input is
 * NULL; otherwise the result lives in the scope on top of the stack. An undefined result (an
 * absent gradient) is NULL without an error. Not a template, so this code exists once rather
 * than once per op, which keeps the compile of this file short. */
tc_tensor *run_op(const char *name, std::initializer_list<const tc_tensor *> inputs,
                  c10::function_ref<at::Tensor()> f) {
    tc_scope *s = top();
    if (!s) {
        set_error(TC_ESTATE, name, "no scope entered (tc_scope_begin or tc_scope_enter first)");
        return nullptr;
    }
    if (s->status != TC_OK) return nullptr;
    try {
        int i = 0;
        for (const tc_tensor *in : inputs)
            if (!in) fail(TC_EINVAL, "input %d is NULL", i);
            else i++;
        at::Tensor r = f();
        if (!r.defined()) return nullptr;
        tc_tensor *t = new tc_tensor;
        t->t = std::move(r);
        link(s, t);
        return t;
    } catch (...) {
        s->status = catch_current(name);
        return nullptr;
    }
}

/* The body of an op that is one expression; the listed inputs must not be NULL. */
#define TC_OP(expr, ...) return run_op(__func__, {__VA_ARGS__}, [&] { return (expr); })

/* Runs a call that returns a code. */
int run_call(const char *name, c10::function_ref<void()> f) {
    try {
        f();
        return TC_OK;
    } catch (...) {
        return catch_current(name);
    }
}

const at::Tensor &need(const tc_tensor *t, const char *what) {
    if (!t) fail(TC_EINVAL, "%s is NULL", what);
    return t->t;
}

c10::optional<at::Tensor> opt(const tc_tensor *t) {
    if (!t) return c10::optional<at::Tensor>();
    return c10::optional<at::Tensor>(t->t);
}

at::IntArrayRef dims(const int64_t *shape, int ndim) {
    if (ndim < 0 || ndim > TC_MAX_DIMS) fail(TC_EINVAL, "ndim %d outside 0..%d", ndim, TC_MAX_DIMS);
    if (ndim > 0 && !shape) fail(TC_EINVAL, "shape is NULL with ndim %d", ndim);
    return at::IntArrayRef(shape, (size_t)ndim);
}

/* Indexed by tc_dtype. */
const at::ScalarType scalar_types[] = {at::kFloat, at::kBFloat16, at::kHalf, at::kLong,
                                       at::kInt,   at::kShort,    at::kByte, at::kBool};
const int n_dtypes = (int)(sizeof scalar_types / sizeof scalar_types[0]);

at::ScalarType scalar_type(tc_dtype d) {
    if ((int)d < 0 || (int)d >= n_dtypes) fail(TC_EINVAL, "unknown dtype %d", (int)d);
    return scalar_types[d];
}

int cuda_count() { return at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0; }

at::Device device(tc_device d) {
    if (d.type == TC_CPU) return at::Device(at::kCPU);
    if (d.type != TC_CUDA) fail(TC_EINVAL, "unknown device type %d", (int)d.type);
    int n = cuda_count();
    if (d.index < 0 || d.index >= n)
        fail(TC_ENODEV, "CUDA device %d does not exist (libtorch sees %d)", d.index, n);
    return at::Device(at::kCUDA, (c10::DeviceIndex)d.index);
}

at::TensorOptions options(tc_dtype dt, tc_device dev) {
    return at::TensorOptions().dtype(scalar_type(dt)).device(device(dev));
}
at::Tensor bool_mask(const at::Tensor &m) { return m.scalar_type() == at::kBool ? m : m.ne(0); }

std::vector<at::Tensor> tensor_list(tc_tensor *const *ts, int n) {
    if (n < 1 || !ts) fail(TC_EINVAL, "needs at least one tensor (n = %d)", n);
    std::vector<at::Tensor> v;
    v.reserve((size_t)n);
    for (int i = 0; i < n; i++) {
        if (!ts[i]) fail(TC_EINVAL, "tensor %d of %d is NULL", i, n);
        v.push_back(ts[i]->t);
    }
    return v;
}

struct grad_ready_hook : torch::autograd::FunctionPostHook {
    tc_grad_ready_fn fn;
    void *user;
    tc_tensor *param;
    std::shared_ptr<std::atomic<bool>> alive;
    grad_ready_hook(tc_grad_ready_fn f, void *u, tc_tensor *p, std::shared_ptr<std::atomic<bool>> a)
        : fn(f), user(u), param(p), alive(std::move(a)) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list &outputs,
                                              const torch::autograd::variable_list &) override {
        if (*alive) fn(user, param);
        return outputs;
    }
};

} // namespace

extern "C" {

const char *tc_last_error(void) { return last_error; }

const char *tc_strerror(int rc) {
    static const char *const text[] = {"success",       "invalid argument", "libtorch error",
                                       "out of memory", "wrong call order", "no such device"};
    return rc <= 0 && rc > -(int)(sizeof text / sizeof text[0]) ? text[-rc] : "unknown error code";
}

/* ---- Scopes ---- */

tc_scope *tc_scope_begin(void) {
    tc_scope *s = tc_scope_new();
    if (s && tc_scope_enter(s) != TC_OK) {
        delete s;
        return nullptr;
    }
    return s;
}

static void free_tensors(tc_scope *s) {
    while (s->head) {
        tc_tensor *t = s->head;
        unlink(t);
        delete t;
    }
}

int tc_scope_end(tc_scope *s) {
    int rc = tc_scope_leave(s);
    if (rc != TC_OK) return rc;
    rc = s->status;
    free_tensors(s);
    delete s;
    return rc;
}

tc_scope *tc_scope_new(void) {
    tc_scope *s = new (std::nothrow) tc_scope;
    if (!s) set_error(TC_ENOMEM, __func__, "out of memory");
    return s;
}

int tc_scope_enter(tc_scope *s) {
    return run_call(__func__, [&] {
        if (!s) fail(TC_EINVAL, "scope is NULL");
        for (tc_scope *o : scope_stack)
            if (o == s) fail(TC_ESTATE, "scope is already on this thread's stack");
        scope_stack.push_back(s);
    });
}

int tc_scope_leave(tc_scope *s) {
    return run_call(__func__, [&] {
        if (!s) fail(TC_EINVAL, "scope is NULL");
        if (top() != s) fail(TC_ESTATE, "scope is not on top of this thread's stack");
        scope_stack.pop_back();
    });
}

void tc_scope_free(tc_scope *s) {
    if (!s) return;
    for (size_t i = scope_stack.size(); i-- > 0;)
        if (scope_stack[i] == s) scope_stack.erase(scope_stack.begin() + (long)i);
    free_tensors(s);
    delete s;
}

int tc_scope_status(const tc_scope *s) { return s ? s->status : TC_EINVAL; }
void tc_scope_clear_error(tc_scope *s) {
    if (s) s->status = TC_OK;
}

tc_tensor *tc_scope_fail(int code, const char *fmt, ...) {
    char msg[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tc_scope *s = top();
    /* The first error of a scope is the one kept, as with a failed op. */
    if (!s || s->status == TC_OK) {
        snprintf(last_error, sizeof last_error, "%s", msg);
        record(s, code == TC_OK ? TC_EINVAL : code);
    }
    return nullptr;
}

tc_tensor *tc_keep(tc_tensor *t) {
    if (!t) return nullptr;
    tc_scope *from = t->owner, *dst = nullptr;
    size_t i = scope_stack.size();
    while (i > 0 && scope_stack[i - 1] != from) i--;
    if (i > 1) dst = scope_stack[i - 2];
    else if (i == 0) dst = top();
    if (!dst) {
        record(from, set_error(TC_ESTATE, __func__,
                               i == 1 ? "the tensor's scope has no parent on the stack"
                                      : "no scope on the stack to receive the tensor"));
        return nullptr;
    }
    return tc_move_to(t, dst);
}

tc_tensor *tc_move_to(tc_tensor *t, tc_scope *dst) {
    if (!t || !dst) return nullptr;
    unlink(t);
    link(dst, t);
    return t;
}

/* ---- Creation and host memory ---- */

tc_tensor *tc_from_blob(void *data, const int64_t *shape, int ndim, tc_dtype dtype) {
    return run_op(__func__, {}, [&] {
        if (!data) fail(TC_EINVAL, "data is NULL");
        return at::from_blob(data, dims(shape, ndim), at::dtype(scalar_type(dtype)));
    });
}

tc_tensor *tc_from_data(const void *data, const int64_t *shape, int ndim, tc_dtype dtype) {
    return run_op(__func__, {}, [&] {
        if (!data) fail(TC_EINVAL, "data is NULL");
        return at::from_blob(const_cast<void *>(data), dims(shape, ndim),
                             at::dtype(scalar_type(dtype)))
            .clone();
    });
}

tc_tensor *tc_empty(const int64_t *shape, int ndim, tc_dtype dtype, tc_device dev) {
    TC_OP(at::empty(dims(shape, ndim), options(dtype, dev)));
}
tc_tensor *tc_zeros(const int64_t *shape, int ndim, tc_dtype dtype, tc_device dev) {
    TC_OP(at::zeros(dims(shape, ndim), options(dtype, dev)));
}
tc_tensor *tc_ones(const int64_t *shape, int ndim, tc_dtype dtype, tc_device dev) {
    TC_OP(at::ones(dims(shape, ndim), options(dtype, dev)));
}
tc_tensor *tc_full(const int64_t *shape, int ndim, double value, tc_dtype dtype, tc_device dev) {
    TC_OP(at::full(dims(shape, ndim), value, options(dtype, dev)));
}
tc_tensor *tc_arange(int64_t n, tc_dtype dtype, tc_device dev) {
    TC_OP(at::arange(n, options(dtype, dev)));
}
static at::TensorOptions random_options(tc_generator *gen) {
    return at::TensorOptions().dtype(at::kFloat).device(gen ? gen->g.device() : at::kCPU);
}
static c10::optional<at::Generator> gen_of(tc_generator *gen) {
    return gen ? c10::optional<at::Generator>(gen->g) : c10::optional<at::Generator>();
}

tc_tensor *tc_rand_uniform(const int64_t *shape, int ndim, double lo, double hi,
                           tc_generator *gen) {
    TC_OP(at::empty(dims(shape, ndim), random_options(gen)).uniform_(lo, hi, gen_of(gen)));
}
tc_tensor *tc_randn(const int64_t *shape, int ndim, double mean, double std, tc_generator *gen) {
    TC_OP(at::empty(dims(shape, ndim), random_options(gen)).normal_(mean, std, gen_of(gen)));
}
tc_tensor *tc_to_dtype(tc_tensor *t, tc_dtype dtype) { TC_OP(t->t.to(scalar_type(dtype)), t); }
tc_tensor *tc_to_device(tc_tensor *t, tc_device dev) { TC_OP(t->t.to(device(dev)), t); }
tc_tensor *tc_contiguous(tc_tensor *t) { TC_OP(t->t.contiguous(), t); }
tc_tensor *tc_clone(tc_tensor *t) { TC_OP(t->t.clone(), t); }
tc_tensor *tc_detach(tc_tensor *t) { TC_OP(t->t.detach(), t); }

int tc_copy_to_host(const tc_tensor *t, void *dst, size_t nbytes) {
    return run_call(__func__, [&] {
        const at::Tensor &x = need(t, "tensor");
        if (!dst) fail(TC_EINVAL, "destination is NULL");
        size_t want = (size_t)x.numel() * x.element_size();
        if (nbytes != want) fail(TC_EINVAL, "buffer has %zu bytes, tensor needs %zu", nbytes, want);
        at::Tensor c = x.detach().to(at::kCPU).contiguous();
        if (want) memcpy(dst, c.data_ptr(), want);
    });
}

void *tc_data_ptr(const tc_tensor *t) {
    if (!t || !t->t.defined() || !t->t.is_cpu() || !t->t.is_contiguous()) return nullptr;
    return t->t.data_ptr();
}

int tc_copy_(tc_tensor *dst, const tc_tensor *src) {
    return run_call(__func__, [&] {
        const at::Tensor &d = need(dst, "destination"), &s = need(src, "source");
        if (d.sizes() != s.sizes()) fail(TC_EINVAL, "shapes differ");
        at::NoGradGuard no_grad;
        d.copy_(s);
    });
}

int tc_ndim(const tc_tensor *t) { return t ? (int)t->t.dim() : -1; }

int64_t tc_size(const tc_tensor *t, int dim) {
    if (!t) return -1;
    int64_t n = t->t.dim();
    int64_t d = dim < 0 ? dim + n : dim;
    return d >= 0 && d < n ? t->t.size(d) : -1;
}

int64_t tc_numel(const tc_tensor *t) { return t ? t->t.numel() : -1; }

tc_dtype tc_dtype_of(const tc_tensor *t) {
    for (int d = 0; t && d < n_dtypes; d++)
        if (t->t.scalar_type() == scalar_types[d]) return (tc_dtype)d;
    return TC_F32;
}

tc_device tc_device_of(const tc_tensor *t) {
    if (t && t->t.is_cuda()) return tc_device{TC_CUDA, (int)t->t.get_device()};
    return tc_device{TC_CPU, 0};
}

size_t tc_dtype_size(tc_dtype dtype) {
    return (int)dtype >= 0 && (int)dtype < n_dtypes ? c10::elementSize(scalar_types[dtype]) : 0;
}

double tc_item(const tc_tensor *t) {
    double v = NAN;
    run_call(__func__, [&] { v = need(t, "tensor").item<double>(); });
    return v;
}

#include "models/torch_c_ops.inc"

/* ---- Autograd ---- */

int tc_set_requires_grad(tc_tensor *t, int on) {
    return run_call(__func__, [&] { need(t, "tensor").set_requires_grad(on != 0); });
}
int tc_requires_grad(const tc_tensor *t) { return t && t->t.requires_grad(); }
int tc_backward(tc_tensor *loss) {
    return run_call(__func__, [&] { need(loss, "loss").backward(); });
}
tc_tensor *tc_grad(tc_tensor *t) { TC_OP(t->t.grad(), t); }

int tc_zero_grad(tc_tensor *t) {
    return run_call(__func__, [&] {
        const at::Tensor &x = need(t, "tensor");
        at::Tensor &g = x.mutable_grad();
        at::NoGradGuard no_grad;
        if (g.defined()) g.zero_();
        else g = at::zeros_like(x, LEGACY_CONTIGUOUS_MEMORY_FORMAT);
    });
}

int tc_grad_enabled_set(int enabled) {
    bool prev = at::GradMode::is_enabled();
    at::GradMode::set_enabled(enabled != 0);
    return prev;
}

int tc_grad_ready_hook(tc_tensor *param, tc_grad_ready_fn fn, void *user) {
    return run_call(__func__, [&] {
        const at::Tensor &p = need(param, "param");
        if (!fn) fail(TC_EINVAL, "callback is NULL");
        if (!p.requires_grad() || !p.is_leaf())
            fail(TC_EINVAL, "param must be a leaf tensor that requires grad");
        std::shared_ptr<torch::autograd::Node> acc = torch::autograd::impl::grad_accumulator(p);
        if (!acc) fail(TC_EINVAL, "param has no gradient accumulator");
        if (!param->alive) param->alive = std::make_shared<std::atomic<bool>>(true);
        acc->add_post_hook(std::make_unique<grad_ready_hook>(fn, user, param, param->alive));
        param->accumulators.push_back(std::move(acc));
    });
}

/* The steps and their order are torch 1.13's _single_tensor_adamw, so results match it. */
int tc_adamw_step(tc_tensor *param, const tc_tensor *grad, tc_tensor *exp_avg,
                  tc_tensor *exp_avg_sq, int64_t step, double lr, double beta1, double beta2,
                  double eps, double weight_decay) {
    return run_call(__func__, [&] {
        const at::Tensor &p = need(param, "param"), &g = need(grad, "grad");
        const at::Tensor &m = need(exp_avg, "exp_avg"), &v = need(exp_avg_sq, "exp_avg_sq");
        if (step < 1) fail(TC_EINVAL, "step %ld < 1", (long)step);
        if (g.sizes() != p.sizes() || m.sizes() != p.sizes() || v.sizes() != p.sizes())
            fail(TC_EINVAL, "param, grad, exp_avg and exp_avg_sq differ in shape");
        at::NoGradGuard no_grad;
        double bias_correction1 = 1 - std::pow(beta1, (double)step);
        double bias_correction2 = 1 - std::pow(beta2, (double)step);
        p.mul_(1 - lr * weight_decay);
        m.mul_(beta1).add_(g, 1 - beta1);
        v.mul_(beta2).addcmul_(g, g, 1 - beta2);
        double step_size = lr / bias_correction1;
        at::Tensor denom = (v.sqrt() / std::sqrt(bias_correction2)).add_(eps);
        p.addcdiv_(m, denom, -step_size);
    });
}

/* ---- Random generators ---- */

tc_generator *tc_generator_new(uint64_t seed, tc_device dev) {
    tc_generator *out = nullptr;
    run_call(__func__, [&] {
        at::Device d = device(dev);
        at::Generator g;
        if (d.is_cpu()) {
            g = at::make_generator<at::CPUGeneratorImpl>(seed);
        } else {
            g = at::globalContext().defaultGenerator(d).clone();
            g.set_current_seed(seed);
        }
        out = new tc_generator{std::move(g)};
    });
    return out;
}

void tc_generator_free(tc_generator *g) { delete g; }

int tc_generator_get_state(tc_generator *g, void *buf, size_t *len) {
    return run_call(__func__, [&] {
        if (!g || !len) fail(TC_EINVAL, "generator or len is NULL");
        at::Tensor st;
        {
            std::lock_guard<std::mutex> lock(g->g.mutex());
            st = g->g.get_state();
        }
        size_t need_bytes = (size_t)st.numel();
        size_t cap = *len;
        *len = need_bytes;
        if (!buf) return;
        if (cap < need_bytes)
            fail(TC_EINVAL, "buffer has %zu bytes, state needs %zu", cap, need_bytes);
        memcpy(buf, st.contiguous().data_ptr(), need_bytes);
    });
}

int tc_generator_set_state(tc_generator *g, const void *buf, size_t len) {
    return run_call(__func__, [&] {
        if (!g || !buf) fail(TC_EINVAL, "generator or buffer is NULL");
        at::Tensor st = at::empty({(int64_t)len}, at::kByte);
        memcpy(st.data_ptr(), buf, len);
        std::lock_guard<std::mutex> lock(g->g.mutex());
        g->g.set_state(st);
    });
}

void tc_manual_seed(uint64_t seed) { at::manual_seed(seed); }

/* ---- Threads and devices ---- */

int tc_set_num_threads(int n) {
    return run_call(__func__, [&] {
        if (n < 1) fail(TC_EINVAL, "thread count %d < 1", n);
        at::set_num_threads(n);
    });
}

int tc_get_num_threads(void) { return at::get_num_threads(); }

int tc_cuda_device_count(void) {
    int n = 0;
    run_call(__func__, [&] { n = cuda_count(); });
    return n;
}

int tc_param_to_device(tc_tensor *t, tc_device dev) {
    return run_call(__func__, [&] {
        if (!t || !t->t.defined()) fail(TC_EINVAL, "tensor is NULL");
        at::Tensor &x = t->t;
        at::NoGradGuard no_grad;
        x.set_data(x.data().to(device(dev)));
        x.mutable_grad() = at::Tensor();
    });
}

void *tc_device_ptr(const tc_tensor *t) {
    if (!t || !t->t.defined() || !t->t.is_contiguous()) return nullptr;
    return t->t.data_ptr();
}

int tc_autocast_cuda(int enabled, tc_dtype dtype, int *was) {
    return run_call(__func__, [&] {
        if (enabled && dtype != TC_BF16 && dtype != TC_F16) fail(TC_EINVAL, "autocast to dtype %d (bf16 or f16)", (int)dtype);
        if (!cuda_count()) fail(TC_ENODEV, "autocast on CUDA needs a libtorch with CUDA and a GPU");
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
        if (was) *was = at::autocast::is_autocast_enabled(at::kCUDA);
        if (enabled) at::autocast::set_autocast_dtype(at::kCUDA, scalar_types[dtype]);
        at::autocast::set_autocast_enabled(at::kCUDA, enabled != 0);
#else
        if (was) *was = at::autocast::is_enabled();
        if (enabled) at::autocast::set_autocast_gpu_dtype(scalar_types[dtype]);
        at::autocast::set_enabled(enabled != 0);
#endif
        if (!enabled) at::autocast::clear_cache();
    });
}

int tc_synchronize(tc_device dev) {
    return run_call(__func__, [&] {
        if (dev.type == TC_CUDA) at::detail::getCUDAHooks().deviceSynchronize(dev.index);
    });
}

const char *tc_version(void) { return TORCH_VERSION; }

/* ---- Host memory ---- */

/* Each block is the storage of a byte tensor, kept here by its address until freed: libtorch's CPU
 * allocator aligns to 64 bytes, and its pinned allocator (CUDA builds) page-locks. */
namespace {
std::mutex host_mu;
std::unordered_map<void *, at::Tensor> host_blocks;
}

void *tc_host_alloc(size_t bytes, int pinned) {
    void *p = nullptr;
    int rc = run_call(__func__, [&] {
        if (pinned && !at::hasCUDA()) fail(TC_ENODEV, "pinned memory needs CUDA (this libtorch has none or sees no GPU)");
        at::Tensor t = at::empty({(int64_t)(bytes ? bytes : 1)}, at::TensorOptions().dtype(at::kByte).pinned_memory(pinned != 0));
        p = t.data_ptr();
        std::lock_guard<std::mutex> g(host_mu);
        host_blocks.emplace(p, std::move(t));
    });
    return rc == TC_OK ? p : nullptr;
}

void tc_host_free(void *p) {
    if (!p) return;
    std::lock_guard<std::mutex> g(host_mu);
    host_blocks.erase(p);
}

} /* extern "C" */
