/*
 * edgeseq_rt: the plan interpreter behind every generated model. The API is documented in
 * edgeseq_rt.h.
 *
 * Each kernel below is a line-by-line port of its Python twin in edgeseq_runtime/kernels (same
 * argument layout, same loop order, same approximations), so that a model generated to C gives
 * the numbers the Python runtime gives. The argument layout of each instruction is documented in
 * the docstring of the Python kernel named in the comment above its port.
 */
#include "edgeseq_rt.h"

#include <math.h>   /* expf, logf, log1pf: softmax and softplus only */
#include <stddef.h> /* NULL */
#include <string.h> /* memcpy */

/*
 * The plan format, with the names and values of edgeseq_runtime.kernels (opcodes.py, matvec.py,
 * activations.py, elementwise_f32.py); tests/test_codegen_python.py checks that they agree.
 */
enum header_slot {
    HEADER_X_OFFSET = 0, HEADER_X_SIZE = 1, HEADER_Y_OFFSET = 2, HEADER_Y_SIZE = 3,
    HEADER_VOCAB = 4, HEADER_START = 5, HEADER_END = 6, HEADER_TABLES = 7, HEADER_STATES = 8,
    HEADER_N_STATES = 9, HEADER_SAVED = 10, HEADER_FAULT = 11
};
enum opcode {
    OP_RNN = 1, OP_GRU = 2, OP_LSTM = 3, OP_DENSE = 4, OP_BINARY = 5, OP_ACTIVATION = 6,
    OP_SOFTMAX = 7, OP_COPY = 8, OP_EMBEDDING = 9
};
enum matrix_kind { FLOAT32 = 0, INT8 = 1, FLOAT32_BY_OUTPUT = 2, INT8_BY_OUTPUT = 3 };
enum activation_kind {
    RELU = 0, TANH = 1, SIGMOID = 2, AFFINE = 3, LEAKY_RELU = 4, THRESHOLDED_RELU = 5,
    SCALED_TANH = 6, HARD_SIGMOID = 7, ELU = 8, SOFTSIGN = 9, SOFTPLUS = 10
};
enum binary_function { ADD = 0, SUB = 1, MUL = 2, DIV = 3 };

/* ---- fastexp.py: exp and expm1 as range reduction + polynomial (see its docstring) ---------- */

#define LOG2E 1.4426950408889634f
#define LN2_HI 0.693145751953125f /* ln 2 split so that n * LN2_HI is exact */
#define LN2_LO 1.4286067653302e-06f
#define EXP_LOW (-87.0f)
#define EXP_HIGH 88.0f

/* a if pick is non-zero, else b, with no branch: GCC does not if-convert a float ?: that feeds
 * a conversion or a division, and would then leave the whole activation loop scalar. */
static inline float select_float(int pick, float a, float b)
{
    const uint32_t mask = (uint32_t)0 - (uint32_t)(pick != 0);
    uint32_t bits_a, bits_b;
    float result;
    memcpy(&bits_a, &a, sizeof bits_a);
    memcpy(&bits_b, &b, sizeof bits_b);
    bits_a = (bits_a & mask) | (bits_b & ~mask);
    memcpy(&result, &bits_a, sizeof result);
    return result;
}

/* (2^n, r*q(r)) for x = n*ln2 + r, |r| <= ln2/2; x is clamped so that 2^n stays normal. */
static inline float exp_parts(float x, float *rq)
{
    float t, fn, r, q, scale;
    int32_t n;
    uint32_t bits;
    x = select_float(x < EXP_LOW, EXP_LOW, x);
    x = select_float(x > EXP_HIGH, EXP_HIGH, x);
    t = x * LOG2E + 0.5f;
    n = (int32_t)t;                  /* floor(t) without a libm call: truncate, */
    n -= (int32_t)((float)n > t);    /* then step down if that rounded up */
    fn = (float)n;
    r = (x - fn * LN2_HI) - fn * LN2_LO;
    q = (((((((1.0f / 5040.0f) * r + (1.0f / 720.0f)) * r + (1.0f / 120.0f)) * r + (1.0f / 24.0f))
           * r + (1.0f / 6.0f)) * r + 0.5f) * r + 1.0f);
    bits = (uint32_t)(n + 127) << 23;
    memcpy(&scale, &bits, sizeof scale);
    *rq = r * q;
    return scale;
}

static inline float fast_exp(float x)
{
    float rq;
    const float scale = exp_parts(x, &rq);
    return scale + scale * rq;
}

static inline float fast_expm1(float x)
{
    float rq;
    const float scale = exp_parts(x, &rq);
    return (scale - 1.0f) + scale * rq;
}

static inline float fast_sigmoid(float x)
{
    return 1.0f / (1.0f + fast_exp(-x));
}

/* tanh(|x|) = -expm1(-2|x|) / (2 + expm1(-2|x|)), with the sign of x restored. */
static inline float fast_tanh(float x)
{
    const float e = fast_expm1(-2.0f * fabsf(x));
    const float t = -e / (2.0f + e);
    return select_float(x >= 0.0f, t, -t);
}

/* ---- activations.py --------------------------------------------------------------------------- */

/* v = activation(v), in place; alpha and beta follow the ONNX definitions. The branch on the
 * kind sits outside the element loops, so that each loop is a simple one a compiler vectorises. */
static void activate(int32_t kind, float alpha, float beta, float *v, int32_t n)
{
    int32_t i;
    switch (kind) {
    case SIGMOID:
        for (i = 0; i < n; i++) {
            v[i] = fast_sigmoid(v[i]);
        }
        break;
    case TANH:
        for (i = 0; i < n; i++) {
            v[i] = fast_tanh(v[i]);
        }
        break;
    case RELU:
        for (i = 0; i < n; i++) {
            v[i] = v[i] > 0.0f ? v[i] : 0.0f;
        }
        break;
    case AFFINE:
        for (i = 0; i < n; i++) {
            v[i] = alpha * v[i] + beta;
        }
        break;
    case LEAKY_RELU:
        for (i = 0; i < n; i++) {
            v[i] = select_float(v[i] >= 0.0f, v[i], alpha * v[i]);
        }
        break;
    case THRESHOLDED_RELU:
        for (i = 0; i < n; i++) {
            v[i] = v[i] > alpha ? v[i] : 0.0f;
        }
        break;
    case SCALED_TANH:
        for (i = 0; i < n; i++) {
            v[i] = alpha * fast_tanh(beta * v[i]);
        }
        break;
    case HARD_SIGMOID:
        for (i = 0; i < n; i++) {
            const float y = alpha * v[i] + beta;
            v[i] = y < 0.0f ? 0.0f : (y > 1.0f ? 1.0f : y);
        }
        break;
    case ELU:
        for (i = 0; i < n; i++) {
            v[i] = select_float(v[i] >= 0.0f, v[i], alpha * fast_expm1(v[i]));
        }
        break;
    case SOFTSIGN:
        for (i = 0; i < n; i++) {
            v[i] = v[i] / (1.0f + fabsf(v[i]));
        }
        break;
    case SOFTPLUS: /* log(1 + e^x) without overflow for large x */
        for (i = 0; i < n; i++) {
            v[i] = (v[i] > 0.0f ? v[i] : 0.0f) + log1pf(fast_exp(-fabsf(v[i])));
        }
        break;
    default:
        break;
    }
}

/* The activation encoded as [kind, parameter offset]; alpha, beta = w[offset], w[offset + 1]. */
static void activate_encoded(const int32_t *activation, const float *w, float *v, int32_t n)
{
    activate(activation[0], w[activation[1]], w[activation[1] + 1], v, n);
}

/* v = clamp(v, -limit, limit): the ONNX `clip` attribute. */
static void clip(float *v, int32_t n, float limit)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        const float x = select_float(v[i] > -limit, v[i], -limit);
        v[i] = select_float(x < limit, x, limit);
    }
}

/* ---- matvec.py: out += vec @ M[:, col:col+n_out], M input-major (n_in, ld) or output-major --- */

static void accumulate_f32(const float *restrict vec, int32_t n_in, const float *restrict m,
                           int32_t ld, int32_t col, float *restrict out, int32_t n_out)
{
    int32_t k = 0, j;
    for (; k + 4 <= n_in; k += 4) {
        const float v0 = vec[k], v1 = vec[k + 1], v2 = vec[k + 2], v3 = vec[k + 3];
        const float *r0 = m + (size_t)k * (size_t)ld + (size_t)col;
        const float *r1 = r0 + ld, *r2 = r1 + ld, *r3 = r2 + ld;
        for (j = 0; j < n_out; j++) {
            out[j] += v0 * r0[j] + v1 * r1[j] + v2 * r2[j] + v3 * r3[j];
        }
    }
    for (; k < n_in; k++) {
        const float vk = vec[k];
        const float *row = m + (size_t)k * (size_t)ld + (size_t)col;
        for (j = 0; j < n_out; j++) {
            out[j] += vk * row[j];
        }
    }
}

/* As accumulate_f32 with int8 M and one float scale per output column (scale[j] for out[j]). */
static void accumulate_i8(const float *restrict vec, int32_t n_in, const int8_t *restrict m,
                          int32_t ld, int32_t col, const float *restrict scale,
                          float *restrict out, int32_t n_out)
{
    int32_t k = 0, j;
    for (; k + 4 <= n_in; k += 4) {
        const float v0 = vec[k], v1 = vec[k + 1], v2 = vec[k + 2], v3 = vec[k + 3];
        const int8_t *r0 = m + (size_t)k * (size_t)ld + (size_t)col;
        const int8_t *r1 = r0 + ld, *r2 = r1 + ld, *r3 = r2 + ld;
        for (j = 0; j < n_out; j++) {
            out[j] += scale[j] * (v0 * r0[j] + v1 * r1[j] + v2 * r2[j] + v3 * r3[j]);
        }
    }
    for (; k < n_in; k++) {
        const float vk = vec[k];
        const int8_t *row = m + (size_t)k * (size_t)ld + (size_t)col;
        for (j = 0; j < n_out; j++) {
            out[j] += scale[j] * (vk * row[j]);
        }
    }
}

/* As accumulate_f32 with M stored output-major (ld, n_in), for matrices with few outputs: a dot
 * product with each row. */
static void dot_outputs_f32(const float *restrict vec, int32_t n_in, const float *restrict m,
                            int32_t col, float *restrict out, int32_t n_out)
{
    int32_t k, j;
    for (j = 0; j < n_out; j++) {
        const float *row = m + (size_t)(col + j) * (size_t)n_in;
        float s = 0.0f;
        for (k = 0; k < n_in; k++) {
            s += vec[k] * row[k];
        }
        out[j] += s;
    }
}

/* As dot_outputs_f32 with int8 M and one float scale per output (scale[j] for out[j]). */
static void dot_outputs_i8(const float *restrict vec, int32_t n_in, const int8_t *restrict m,
                           int32_t col, const float *restrict scale, float *restrict out, int32_t n_out)
{
    int32_t k, j;
    for (j = 0; j < n_out; j++) {
        const int8_t *row = m + (size_t)(col + j) * (size_t)n_in;
        float s = 0.0f;
        for (k = 0; k < n_in; k++) {
            s += vec[k] * row[k];
        }
        out[j] += scale[j] * s;
    }
}

/* out += vec @ columns [col, col + n_out) of the matrix operand [kind, offset, scale offset]. */
static void accumulate(const int32_t *operand, const edgeseq_rt_model_t *model, int32_t ld,
                       int32_t col, const float *vec, int32_t n_in, float *out, int32_t n_out)
{
    switch (operand[0]) {
    case INT8:
        accumulate_i8(vec, n_in, model->qweights + operand[1], ld, col,
                      model->weights + operand[2] + col, out, n_out);
        break;
    case FLOAT32_BY_OUTPUT:
        dot_outputs_f32(vec, n_in, model->weights + operand[1], col, out, n_out);
        break;
    case INT8_BY_OUTPUT:
        dot_outputs_i8(vec, n_in, model->qweights + operand[1], col,
                       model->weights + operand[2] + col, out, n_out);
        break;
    default:
        accumulate_f32(vec, n_in, model->weights + operand[1], ld, col, out, n_out);
        break;
    }
}

/* dst = w[offset:offset+n], or zeros when offset < 0 (an absent bias). */
static void fill(float *dst, int32_t n, const float *w, int32_t offset)
{
    int32_t j;
    if (offset < 0) {
        for (j = 0; j < n; j++) {
            dst[j] = 0.0f;
        }
    } else {
        for (j = 0; j < n; j++) {
            dst[j] = w[offset + j];
        }
    }
}

/* ---- gru_f32.py ------------------------------------------------------------------------------- */

static void gru_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const float *w = model->weights;
    const int32_t n_in = args[2], n_h = args[3], batch = args[4];
    const int32_t bx = args[11], bh = args[12], clip_off = args[17];
    const int32_t linear_before_reset = args[18];
    const int32_t g3 = 3 * n_h;
    float *gx = a + args[19];  /* input projections of z, r, h (then the gates themselves) */
    float *gh = gx + g3;       /* recurrent projections of z, r, h */
    float *zr = gx, *z = gx, *r = gx + n_h, *hc = gx + 2 * n_h;
    float *gh_zr = gh, *gh_h = gh + 2 * n_h, *rh = gh;
    int32_t b, j;
    for (b = 0; b < batch; b++) {
        const float *x = a + args[0] + b * n_in;
        float *h = a + args[1] + b * n_h;
        fill(gx, g3, w, bx);
        accumulate(args + 5, model, g3, 0, x, n_in, gx, g3);
        fill(gh_zr, 2 * n_h, w, -1);
        if (linear_before_reset) {
            fill(gh_h, n_h, w, bh);
            accumulate(args + 8, model, g3, 0, h, n_h, gh, g3);
        } else {
            accumulate(args + 8, model, g3, 0, h, n_h, gh_zr, 2 * n_h);
        }
        for (j = 0; j < 2 * n_h; j++) {
            zr[j] += gh_zr[j];
        }
        if (clip_off >= 0) {
            clip(zr, 2 * n_h, w[clip_off]);
        }
        activate_encoded(args + 13, w, zr, 2 * n_h);
        if (linear_before_reset) {
            for (j = 0; j < n_h; j++) {
                hc[j] += r[j] * gh_h[j];
            }
        } else {
            for (j = 0; j < n_h; j++) {
                rh[j] = r[j] * h[j];
            }
            fill(gh_h, n_h, w, -1);
            accumulate(args + 8, model, g3, 2 * n_h, rh, n_h, gh_h, n_h);
            for (j = 0; j < n_h; j++) {
                hc[j] += gh_h[j];
            }
        }
        if (clip_off >= 0) {
            clip(hc, n_h, w[clip_off]);
        }
        activate_encoded(args + 15, w, hc, n_h);
        for (j = 0; j < n_h; j++) {
            h[j] = (1.0f - z[j]) * hc[j] + z[j] * h[j];
        }
    }
}

/* ---- lstm_f32.py ------------------------------------------------------------------------------ */

static void lstm_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const float *w = model->weights;
    const int32_t n_in = args[3], n_h = args[4], batch = args[5];
    const int32_t bias = args[12], peep = args[13], clip_off = args[20];
    const int32_t input_forget = args[21];
    const int32_t g4 = 4 * n_h;
    float *gates = a + args[22];
    float *i = gates, *o = gates + n_h, *f = gates + 2 * n_h, *cc = gates + 3 * n_h;
    float *fc = f; /* f and the cell candidate, clipped together */
    int32_t b, j;
    for (b = 0; b < batch; b++) {
        const float *x = a + args[0] + b * n_in;
        float *h = a + args[1] + b * n_h;
        float *c = a + args[2] + b * n_h;
        fill(gates, g4, w, bias);
        accumulate(args + 6, model, g4, 0, x, n_in, gates, g4);
        accumulate(args + 9, model, g4, 0, h, n_h, gates, g4);
        if (peep >= 0) {
            const float *p_i = w + peep, *p_f = w + peep + 2 * n_h;
            for (j = 0; j < n_h; j++) {
                i[j] += p_i[j] * c[j];
                f[j] += p_f[j] * c[j];
            }
        }
        if (clip_off >= 0) {
            clip(i, n_h, w[clip_off]);
            clip(fc, 2 * n_h, w[clip_off]);
        }
        activate_encoded(args + 14, w, i, n_h);
        if (input_forget) {
            for (j = 0; j < n_h; j++) {
                f[j] = 1.0f - i[j];
            }
        } else {
            activate_encoded(args + 14, w, f, n_h);
        }
        activate_encoded(args + 16, w, cc, n_h);
        for (j = 0; j < n_h; j++) {
            c[j] = f[j] * c[j] + i[j] * cc[j];
        }
        if (peep >= 0) {
            const float *p_o = w + peep + n_h;
            for (j = 0; j < n_h; j++) {
                o[j] += p_o[j] * c[j];
            }
        }
        if (clip_off >= 0) {
            clip(o, n_h, w[clip_off]);
        }
        activate_encoded(args + 14, w, o, n_h);
        for (j = 0; j < n_h; j++) {
            cc[j] = c[j];
        }
        activate_encoded(args + 18, w, cc, n_h);
        for (j = 0; j < n_h; j++) {
            h[j] = o[j] * cc[j];
        }
    }
}

/* ---- rnn_f32.py ------------------------------------------------------------------------------- */

static void rnn_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const float *w = model->weights;
    const int32_t n_in = args[2], n_h = args[3], batch = args[4];
    const int32_t bias = args[11], clip_off = args[14];
    float *pre = a + args[15];
    int32_t b, j;
    for (b = 0; b < batch; b++) {
        const float *x = a + args[0] + b * n_in;
        float *h = a + args[1] + b * n_h;
        fill(pre, n_h, w, bias);
        accumulate(args + 5, model, n_h, 0, x, n_in, pre, n_h);
        accumulate(args + 8, model, n_h, 0, h, n_h, pre, n_h);
        if (clip_off >= 0) {
            clip(pre, n_h, w[clip_off]);
        }
        activate_encoded(args + 12, w, pre, n_h);
        for (j = 0; j < n_h; j++) {
            h[j] = pre[j];
        }
    }
}

/* ---- dense_f32.py ----------------------------------------------------------------------------- */

static void dense_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const int32_t rows = args[2], n_in = args[3], n_out = args[4], bias = args[8];
    int32_t r;
    for (r = 0; r < rows; r++) {
        float *out = a + args[1] + r * n_out;
        fill(out, n_out, model->weights, bias >= 0 ? bias + r * n_out : -1);
        accumulate(args + 5, model, n_out, 0, a + args[0] + r * n_in, n_in, out, n_out);
    }
}

/* ---- elementwise_f32.py ----------------------------------------------------------------------- */

static void binary_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const float *xa = (args[1] == 0 ? a : model->weights) + args[2];
    const float *xb = (args[4] == 0 ? a : model->weights) + args[5];
    const int32_t fn = args[0], period_a = args[3], period_b = args[6], n = args[8];
    float *out = a + args[7];
    int32_t i;
    for (i = 0; i < n; i++) {
        const float x = xa[i % period_a], y = xb[i % period_b];
        switch (fn) {
        case ADD: out[i] = x + y; break;
        case SUB: out[i] = x - y; break;
        case MUL: out[i] = x * y; break;
        default: out[i] = x / y; break;
        }
    }
}

static void activation_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const float *w = model->weights;
    const int32_t params = args[1], n = args[4];
    float *out = a + args[3];
    if (args[2] != args[3]) {
        memmove(out, a + args[2], (size_t)n * sizeof *out);
    }
    activate(args[0], w[params], w[params + 1], out, n);
}

static void softmax_f32(const int32_t *args, float *a)
{
    const int32_t outer = args[2], n = args[3], inner = args[4], log_softmax = args[5];
    int32_t o, k, i;
    for (o = 0; o < outer; o++) {
        const float *x = a + args[0] + o * n * inner;
        float *y = a + args[1] + o * n * inner;
        for (k = 0; k < inner; k++) {
            float top = x[k], total = 0.0f;
            for (i = 1; i < n; i++) {
                top = x[i * inner + k] > top ? x[i * inner + k] : top;
            }
            for (i = 0; i < n; i++) {
                total += expf(x[i * inner + k] - top);
            }
            if (log_softmax) { /* (x - max) - log(sum): top + log(sum) would round away low bits */
                const float log_total = logf(total);
                for (i = 0; i < n; i++) {
                    y[i * inner + k] = (x[i * inner + k] - top) - log_total;
                }
            } else {
                for (i = 0; i < n; i++) {
                    y[i * inner + k] = expf(x[i * inner + k] - top) / total;
                }
            }
        }
    }
}

/* ---- movement.py ------------------------------------------------------------------------------ */

/* An integer in [-vocab, vocab), a row of a table of vocab rows (negative ids count from the
 * end), decided exactly (as the Python runtime's float64 test) with no double arithmetic, which
 * a Cortex-M4 would emulate in software: within the int32 range the truncated value is exact, so
 * v is an integer if and only if it equals its truncation. NaN fails the range test. */
static int is_row_index(float v, int32_t vocab)
{
    int32_t id;
    if (!(v >= -2147483648.0f && v < 2147483648.0f)) {
        return 0;
    }
    id = (int32_t)v;
    return (float)id == v && id >= -vocab && id < vocab;
}

static void copy_indexed(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const int32_t *index = model->code + model->code[HEADER_TABLES] + args[2];
    float *dst = a + args[0];
    int32_t i;
    for (i = 0; i < args[1]; i++) {
        dst[i] = a[index[i]];
    }
}

/* EDGESEQ_RT_OK, or EDGESEQ_RT_BAD_INDEX for an id outside this table (computed from the
 * input, so checked here), with the id and the table's rows in the arena's fault slot. */
static int embedding(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const int32_t count = args[2], vocab = args[3], dim = args[4];
    const int32_t kind = args[5], table = args[6], scales = args[7];
    int32_t r, j;
    for (r = 0; r < count; r++) {
        const float id = a[args[0] + r];
        int32_t row;
        float *dst = a + args[1] + r * dim;
        if (!is_row_index(id, vocab)) {
            float *fault = a + model->code[HEADER_FAULT];
            fault[0] = id;
            fault[1] = (float)vocab;
            return EDGESEQ_RT_BAD_INDEX;
        }
        row = (int32_t)id;
        if (row < 0) {
            row += vocab;
        }
        if (kind == INT8) {
            const int8_t *src = model->qweights + table + row * dim;
            const float scale = model->weights[scales + row];
            for (j = 0; j < dim; j++) {
                dst[j] = src[j] * scale;
            }
        } else {
            const float *src = model->weights + table + row * dim;
            for (j = 0; j < dim; j++) {
                dst[j] = src[j];
            }
        }
    }
    return EDGESEQ_RT_OK;
}

/* ---- interpreter.py --------------------------------------------------------------------------- */

/* Finite by its exponent bits: immune to -ffinite-math-only, which may fold isfinite() to 1. */
static int is_finite(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits & 0x7f800000u) != 0x7f800000u;
}

static int check_inputs(const int32_t *code, const float *x)
{
    const int32_t n = code[HEADER_X_SIZE], vocab = code[HEADER_VOCAB];
    int32_t i;
    for (i = 0; i < n; i++) {
        if (!is_finite(x[i])) {
            return EDGESEQ_RT_NOT_FINITE;
        }
        if (vocab > 0 && !is_row_index(x[i], vocab)) {
            return EDGESEQ_RT_BAD_TOKEN;
        }
    }
    return EDGESEQ_RT_OK;
}

/* EDGESEQ_RT_OK, or the status of the instruction that refused the step (it stops there). */
static int run_instructions(const edgeseq_rt_model_t *model, float *a)
{
    const int32_t *code = model->code;
    int32_t pc = code[HEADER_START];
    while (pc < code[HEADER_END]) {
        int status = EDGESEQ_RT_OK;
        const int32_t *args = code + pc + 2;
        switch (code[pc]) {
        case OP_GRU: gru_f32(args, model, a); break;
        case OP_LSTM: lstm_f32(args, model, a); break;
        case OP_RNN: rnn_f32(args, model, a); break;
        case OP_DENSE: dense_f32(args, model, a); break;
        case OP_BINARY: binary_f32(args, model, a); break;
        case OP_ACTIVATION: activation_f32(args, model, a); break;
        case OP_SOFTMAX: softmax_f32(args, a); break;
        case OP_COPY: copy_indexed(args, model, a); break;
        case OP_EMBEDDING: status = embedding(args, model, a); break;
        default: break; /* edgeseq codegen refuses plans with other opcodes */
        }
        if (status != EDGESEQ_RT_OK) {
            return status;
        }
        pc += code[pc + 1];
    }
    return EDGESEQ_RT_OK;
}

/* ---- rollback.py: the state regions copied to the saved region, and back for a refused step */

static void save_state(const int32_t *code, float *a)
{
    const int32_t *table = code + code[HEADER_TABLES] + code[HEADER_STATES];
    float *saved = a + code[HEADER_SAVED];
    int32_t k;
    for (k = 0; k < code[HEADER_N_STATES]; k++) {
        memcpy(saved, a + table[2 * k], (size_t)table[2 * k + 1] * sizeof *saved);
        saved += table[2 * k + 1];
    }
}

static void restore_state(const int32_t *code, float *a)
{
    const int32_t *table = code + code[HEADER_TABLES] + code[HEADER_STATES];
    const float *saved = a + code[HEADER_SAVED];
    int32_t k;
    for (k = 0; k < code[HEADER_N_STATES]; k++) {
        memcpy(a + table[2 * k], saved, (size_t)table[2 * k + 1] * sizeof *saved);
        saved += table[2 * k + 1];
    }
}

/* Whether every state value is finite, in a loop without an early exit, which a compiler
 * vectorises. */
static int state_is_finite(const int32_t *code, const float *a)
{
    const int32_t *table = code + code[HEADER_TABLES] + code[HEADER_STATES];
    uint32_t not_finite = 0;
    int32_t k, i;
    for (k = 0; k < code[HEADER_N_STATES]; k++) {
        const float *region = a + table[2 * k];
        for (i = 0; i < table[2 * k + 1]; i++) {
            not_finite |= (uint32_t)!is_finite(region[i]);
        }
    }
    return not_finite == 0;
}

void edgeseq_rt_reset(const edgeseq_rt_model_t *model, float *arena)
{
    const float *values = model->initial_values;
    int32_t run, i;
    for (i = 0; i < model->arena_size; i++) {
        arena[i] = 0.0f;
    }
    for (run = 0; run < model->n_initial_runs; run++) {
        const int32_t offset = model->initial_runs[2 * run], count = model->initial_runs[2 * run + 1];
        for (i = 0; i < count; i++) {
            arena[offset + i] = *values++;
        }
    }
}

int edgeseq_rt_step(const edgeseq_rt_model_t *model, float *arena, const float *x, float *y)
{
    const int32_t *code;
    int32_t i;
    int status;
    if (model == NULL || arena == NULL || x == NULL || y == NULL) {
        return EDGESEQ_RT_NULL_POINTER;
    }
    code = model->code;
    status = check_inputs(code, x);
    if (status != EDGESEQ_RT_OK) {
        return status;
    }
    save_state(code, arena);
    for (i = 0; i < code[HEADER_X_SIZE]; i++) {
        arena[code[HEADER_X_OFFSET] + i] = x[i];
    }
    status = run_instructions(model, arena);
    if (status == EDGESEQ_RT_OK && !state_is_finite(code, arena)) {
        status = EDGESEQ_RT_STATE_NOT_FINITE;
    }
    if (status != EDGESEQ_RT_OK) {
        restore_state(code, arena);
        return status;
    }
    for (i = 0; i < code[HEADER_Y_SIZE]; i++) {
        y[i] = arena[code[HEADER_Y_OFFSET] + i];
    }
    return EDGESEQ_RT_OK;
}
