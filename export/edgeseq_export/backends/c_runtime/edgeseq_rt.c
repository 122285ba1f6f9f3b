/*
 * edgeseq_rt: the plan interpreter behind every generated model. The API is documented in
 * edgeseq_rt.h.
 *
 * Each kernel below computes what its Python twin in edgeseq_runtime/kernels computes, with the
 * same equations, gate order and approximations (exp, tanh, sigmoid), so that a model generated to
 * C gives the Python runtime's numbers within 1e-5; it is not a line-by-line port: the matrix
 * products here sum four inputs at a time (Python: fused multiply-add tiles), recurrent cells
 * work one stream at a time in less scratch, softmax uses libm's expf, and sums along a reduced
 * axis are compensated float sums (Python: float64). Records are decoded
 * with the names of edgeseq_plan.h (written from edgeseq_runtime/isa.py, which documents every
 * field): args[EDGESEQ_GRU_W] is the W operand of a GRU record.
 */
#include "edgeseq_rt.h"

#include <math.h>   /* fabsf, sqrtf, fmaf (FPU instructions); the rest through model->libm */
#include <stddef.h> /* NULL */
#include <string.h> /* memcpy */

/* Finite by its exponent bits: immune to -ffinite-math-only, which may fold isfinite() to 1. */
static int is_finite(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits & 0x7f800000u) != 0x7f800000u;
}

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
static void activate(const edgeseq_rt_libm_t *libm, int32_t kind, float alpha, float beta, float *v, int32_t n)
{
    int32_t i;
    switch (kind) {
    case EDGESEQ_ACTIVATION_KIND_SIGMOID:
        for (i = 0; i < n; i++) {
            v[i] = fast_sigmoid(v[i]);
        }
        break;
    case EDGESEQ_ACTIVATION_KIND_TANH:
        for (i = 0; i < n; i++) {
            v[i] = fast_tanh(v[i]);
        }
        break;
    case EDGESEQ_ACTIVATION_KIND_RELU:
        for (i = 0; i < n; i++) {
            v[i] = v[i] > 0.0f ? v[i] : 0.0f;
        }
        break;
    case EDGESEQ_ACTIVATION_KIND_AFFINE:
        for (i = 0; i < n; i++) {
            v[i] = alpha * v[i] + beta;
        }
        break;
    case EDGESEQ_ACTIVATION_KIND_LEAKY_RELU:
        for (i = 0; i < n; i++) {
            v[i] = select_float(v[i] >= 0.0f, v[i], alpha * v[i]);
        }
        break;
    case EDGESEQ_ACTIVATION_KIND_THRESHOLDED_RELU:
        for (i = 0; i < n; i++) {
            v[i] = v[i] > alpha ? v[i] : 0.0f;
        }
        break;
    case EDGESEQ_ACTIVATION_KIND_SCALED_TANH:
        for (i = 0; i < n; i++) {
            v[i] = alpha * fast_tanh(beta * v[i]);
        }
        break;
    case EDGESEQ_ACTIVATION_KIND_HARD_SIGMOID:
        for (i = 0; i < n; i++) {
            const float y = alpha * v[i] + beta;
            v[i] = y < 0.0f ? 0.0f : (y > 1.0f ? 1.0f : y);
        }
        break;
    case EDGESEQ_ACTIVATION_KIND_ELU:
        for (i = 0; i < n; i++) {
            v[i] = select_float(v[i] >= 0.0f, v[i], alpha * fast_expm1(v[i]));
        }
        break;
    case EDGESEQ_ACTIVATION_KIND_SOFTSIGN:
        for (i = 0; i < n; i++) {
            v[i] = v[i] / (1.0f + fabsf(v[i]));
        }
        break;
    case EDGESEQ_ACTIVATION_KIND_SOFTPLUS: /* log(1 + e^x) without overflow for large x */
        for (i = 0; i < n; i++) {
            v[i] = (v[i] > 0.0f ? v[i] : 0.0f) + libm->log1pf(fast_exp(-fabsf(v[i])));
        }
        break;
    default:
        break;
    }
}

/* The activation of a FUNCTION operand; alpha, beta = weights[params], weights[params + 1]. */
static void activate_encoded(const int32_t *function, const edgeseq_rt_model_t *model, float *v, int32_t n)
{
    const int32_t params = function[EDGESEQ_FUNCTION_PARAMS];
    activate(&model->libm, function[EDGESEQ_FUNCTION_KIND], model->weights[params], model->weights[params + 1], v, n);
}

/* Whether the model's libm table has what a FUNCTION operand calls (Softplus: log1pf). */
static int function_linked(const edgeseq_rt_model_t *model, const int32_t *function)
{
    return function[EDGESEQ_FUNCTION_KIND] != EDGESEQ_ACTIVATION_KIND_SOFTPLUS || model->libm.log1pf != NULL;
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

/* a * b + c rounded once where the target has a fused multiply-add instruction (the Cortex-M4F's
 * VFMA, x86's FMA3), as the Python runtime's tiles compute it; else rounded twice. (C99's
 * FP_CONTRACT is off under -std=c99 in GCC, so the compiler does not fuse a * b + c itself, and
 * fmaf without the instruction is a slow library call.) */
#if defined(__ARM_FEATURE_FMA) || defined(__FMA__)
#define MULTIPLY_ADD(a, b, c) fmaf((a), (b), (c))
#else
#define MULTIPLY_ADD(a, b, c) ((a) * (b) + (c))
#endif

static void accumulate_f32(const float *restrict vec, int32_t n_in, const float *restrict m,
                           int32_t ld, int32_t col, float *restrict out, int32_t n_out)
{
    int32_t k = 0, j;
    for (; k + 4 <= n_in; k += 4) {
        const float v0 = vec[k], v1 = vec[k + 1], v2 = vec[k + 2], v3 = vec[k + 3];
        const float *r0 = m + (size_t)k * (size_t)ld + (size_t)col;
        const float *r1 = r0 + ld, *r2 = r1 + ld, *r3 = r2 + ld;
        for (j = 0; j < n_out; j++) {
            out[j] = MULTIPLY_ADD(v3, r3[j], MULTIPLY_ADD(v2, r2[j], MULTIPLY_ADD(v1, r1[j],
                                  MULTIPLY_ADD(v0, r0[j], out[j]))));
        }
    }
    for (; k < n_in; k++) {
        const float vk = vec[k];
        const float *row = m + (size_t)k * (size_t)ld + (size_t)col;
        for (j = 0; j < n_out; j++) {
            out[j] = MULTIPLY_ADD(vk, row[j], out[j]);
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
            const float s = MULTIPLY_ADD(v3, r3[j], MULTIPLY_ADD(v2, r2[j], MULTIPLY_ADD(v1, r1[j], v0 * r0[j])));
            out[j] = MULTIPLY_ADD(scale[j], s, out[j]);
        }
    }
    for (; k < n_in; k++) {
        const float vk = vec[k];
        const int8_t *row = m + (size_t)k * (size_t)ld + (size_t)col;
        for (j = 0; j < n_out; j++) {
            out[j] = MULTIPLY_ADD(scale[j], vk * row[j], out[j]);
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
            s = MULTIPLY_ADD(vec[k], row[k], s);
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
            s = MULTIPLY_ADD(vec[k], row[k], s);
        }
        out[j] = MULTIPLY_ADD(scale[j], s, out[j]);
    }
}

/* out += vec @ columns [col, col + n_out) of a MATRIX operand. */
static void accumulate(const int32_t *matrix, const edgeseq_rt_model_t *model, int32_t ld,
                       int32_t col, const float *vec, int32_t n_in, float *out, int32_t n_out)
{
    const int32_t offset = matrix[EDGESEQ_MATRIX_OFFSET], scales = matrix[EDGESEQ_MATRIX_SCALES];
    switch (matrix[EDGESEQ_MATRIX_KIND]) {
    case EDGESEQ_MATRIX_KIND_INT8:
        accumulate_i8(vec, n_in, model->qweights + offset, ld, col, model->weights + scales + col, out, n_out);
        break;
    case EDGESEQ_MATRIX_KIND_FLOAT32_BY_OUTPUT:
        dot_outputs_f32(vec, n_in, model->weights + offset, col, out, n_out);
        break;
    case EDGESEQ_MATRIX_KIND_INT8_BY_OUTPUT:
        dot_outputs_i8(vec, n_in, model->qweights + offset, col, model->weights + scales + col, out, n_out);
        break;
    default:
        accumulate_f32(vec, n_in, model->weights + offset, ld, col, out, n_out);
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

/* v += the values of the bias at weights offset bias, from its start-th on; nothing when bias < 0
 * (absent). Every product takes its bias after its last term, as ONNX Runtime does: carried from a
 * large bias, small terms would lose their low bits at every one. */
static void add_bias(float *v, int32_t n, const float *w, int32_t bias, int32_t start)
{
    int32_t j;
    for (j = 0; bias >= 0 && j < n; j++) {
        v[j] += w[bias + start + j];
    }
}

/* ---- gru_f32.py: one stream at a time, in 6*hidden floats of the record's scratch ----------- */

static int gru_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const float *w = model->weights;
    const int32_t n_in = args[EDGESEQ_GRU_INPUT_SIZE], n_h = args[EDGESEQ_GRU_HIDDEN_SIZE];
    const int32_t batch = args[EDGESEQ_GRU_BATCH], bx = args[EDGESEQ_GRU_BX], bh = args[EDGESEQ_GRU_BH];
    const int32_t clip_off = args[EDGESEQ_GRU_CLIP], linear_before_reset = args[EDGESEQ_GRU_LINEAR_BEFORE_RESET];
    const int32_t width = 3 * n_h; /* z, r, h */
    float *xw = a + args[EDGESEQ_GRU_SCRATCH]; /* Xt*(W^T) of z, r, h (then zt, rt, ht themselves) */
    float *hr = xw + width;                     /* Ht-1*(R^T) of z, r, h */
    float *zr = xw, *zt = xw, *rt = xw + n_h, *ht = xw + 2 * n_h;
    float *hr_zr = hr, *hr_h = hr + 2 * n_h, *rh = hr; /* rh: rt (.) Ht-1, in hr's z, r part once used */
    int32_t b, j;
    if (!function_linked(model, args + EDGESEQ_GRU_ACT_F) || !function_linked(model, args + EDGESEQ_GRU_ACT_G)) {
        return EDGESEQ_RT_MISSING_FUNCTION;
    }
    for (b = 0; b < batch; b++) {
        const float *x = a + args[EDGESEQ_GRU_X] + b * n_in;
        float *h = a + args[EDGESEQ_GRU_H] + b * n_h;
        fill(xw, width, w, -1);
        accumulate(args + EDGESEQ_GRU_W, model, width, 0, x, n_in, xw, width);
        if (linear_before_reset) {
            fill(hr, width, w, -1);
            accumulate(args + EDGESEQ_GRU_R, model, width, 0, h, n_h, hr, width);
            add_bias(hr_h, n_h, w, bh, 0); /* Ht-1*(Rh^T) + Rbh, inside rt (.) (...) */
        } else {
            fill(hr_zr, 2 * n_h, w, -1);
            accumulate(args + EDGESEQ_GRU_R, model, width, 0, h, n_h, hr_zr, 2 * n_h);
        }
        for (j = 0; j < 2 * n_h; j++) {
            zr[j] += hr_zr[j];
        }
        add_bias(zr, 2 * n_h, w, bx, 0);
        if (clip_off >= 0) {
            clip(zr, 2 * n_h, w[clip_off]);
        }
        activate_encoded(args + EDGESEQ_GRU_ACT_F, model, zr, 2 * n_h);
        if (linear_before_reset) {
            for (j = 0; j < n_h; j++) {
                ht[j] += rt[j] * hr_h[j];
            }
        } else {
            for (j = 0; j < n_h; j++) {
                rh[j] = rt[j] * h[j];
            }
            fill(hr_h, n_h, w, -1);
            accumulate(args + EDGESEQ_GRU_R, model, width, 2 * n_h, rh, n_h, hr_h, n_h);
            for (j = 0; j < n_h; j++) {
                ht[j] += hr_h[j];
            }
        }
        add_bias(ht, n_h, w, bx, 2 * n_h);
        if (clip_off >= 0) {
            clip(ht, n_h, w[clip_off]);
        }
        activate_encoded(args + EDGESEQ_GRU_ACT_G, model, ht, n_h);
        for (j = 0; j < n_h; j++) {
            h[j] = (1.0f - zt[j]) * ht[j] + zt[j] * h[j];
        }
    }
    return EDGESEQ_RT_OK;
}

/* ---- lstm_f32.py: one stream at a time, in 4*hidden floats of the record's scratch ---------- */

static int lstm_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const float *w = model->weights;
    const int32_t n_in = args[EDGESEQ_LSTM_INPUT_SIZE], n_h = args[EDGESEQ_LSTM_HIDDEN_SIZE];
    const int32_t batch = args[EDGESEQ_LSTM_BATCH], bias = args[EDGESEQ_LSTM_B], p = args[EDGESEQ_LSTM_P];
    const int32_t clip_off = args[EDGESEQ_LSTM_CLIP], input_forget = args[EDGESEQ_LSTM_INPUT_FORGET];
    const int32_t width = 4 * n_h; /* i, o, f, c */
    float *gates = a + args[EDGESEQ_LSTM_SCRATCH];
    float *it = gates, *ot = gates + n_h, *ft = gates + 2 * n_h, *ct = gates + 3 * n_h;
    float *ft_ct = ft;  /* f and c are adjacent: clipped in one pass */
    float *h_of_c = ct; /* the slot of ct, free once Ct is made, takes h(Ct) */
    int32_t b, j;
    if (!function_linked(model, args + EDGESEQ_LSTM_ACT_F) || !function_linked(model, args + EDGESEQ_LSTM_ACT_G) || !function_linked(model, args + EDGESEQ_LSTM_ACT_H)) {
        return EDGESEQ_RT_MISSING_FUNCTION;
    }
    for (b = 0; b < batch; b++) {
        const float *x = a + args[EDGESEQ_LSTM_X] + b * n_in;
        float *h = a + args[EDGESEQ_LSTM_H] + b * n_h;
        float *c = a + args[EDGESEQ_LSTM_C] + b * n_h;
        fill(gates, width, w, -1);
        accumulate(args + EDGESEQ_LSTM_W, model, width, 0, x, n_in, gates, width);
        accumulate(args + EDGESEQ_LSTM_R, model, width, 0, h, n_h, gates, width);
        if (p >= 0) {
            const float *p_i = w + p, *p_f = w + p + 2 * n_h;
            for (j = 0; j < n_h; j++) {
                it[j] += p_i[j] * c[j];
                ft[j] += p_f[j] * c[j];
            }
        }
        add_bias(it, n_h, w, bias, 0); /* after the peepholes, the gates' last terms */
        add_bias(ft_ct, 2 * n_h, w, bias, 2 * n_h);
        if (clip_off >= 0) {
            clip(it, n_h, w[clip_off]);
            clip(ft_ct, 2 * n_h, w[clip_off]);
        }
        activate_encoded(args + EDGESEQ_LSTM_ACT_F, model, it, n_h);
        if (input_forget) {
            for (j = 0; j < n_h; j++) {
                ft[j] = 1.0f - it[j];
            }
        } else {
            activate_encoded(args + EDGESEQ_LSTM_ACT_F, model, ft, n_h);
        }
        activate_encoded(args + EDGESEQ_LSTM_ACT_G, model, ct, n_h);
        for (j = 0; j < n_h; j++) {
            c[j] = ft[j] * c[j] + it[j] * ct[j];
        }
        if (p >= 0) {
            const float *p_o = w + p + n_h;
            for (j = 0; j < n_h; j++) {
                ot[j] += p_o[j] * c[j];
            }
        }
        add_bias(ot, n_h, w, bias, n_h);
        if (clip_off >= 0) {
            clip(ot, n_h, w[clip_off]);
        }
        activate_encoded(args + EDGESEQ_LSTM_ACT_F, model, ot, n_h);
        for (j = 0; j < n_h; j++) {
            h_of_c[j] = c[j];
        }
        activate_encoded(args + EDGESEQ_LSTM_ACT_H, model, h_of_c, n_h);
        for (j = 0; j < n_h; j++) {
            h[j] = ot[j] * h_of_c[j];
        }
    }
    return EDGESEQ_RT_OK;
}

/* ---- rnn_f32.py ------------------------------------------------------------------------------- */

static int rnn_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const float *w = model->weights;
    const int32_t n_in = args[EDGESEQ_RNN_INPUT_SIZE], n_h = args[EDGESEQ_RNN_HIDDEN_SIZE];
    const int32_t batch = args[EDGESEQ_RNN_BATCH], bias = args[EDGESEQ_RNN_B], clip_off = args[EDGESEQ_RNN_CLIP];
    float *ht = a + args[EDGESEQ_RNN_SCRATCH];
    int32_t b, j;
    if (!function_linked(model, args + EDGESEQ_RNN_ACT_F)) {
        return EDGESEQ_RT_MISSING_FUNCTION;
    }
    for (b = 0; b < batch; b++) {
        const float *x = a + args[EDGESEQ_RNN_X] + b * n_in;
        float *h = a + args[EDGESEQ_RNN_H] + b * n_h;
        fill(ht, n_h, w, -1);
        accumulate(args + EDGESEQ_RNN_W, model, n_h, 0, x, n_in, ht, n_h);
        accumulate(args + EDGESEQ_RNN_R, model, n_h, 0, h, n_h, ht, n_h);
        add_bias(ht, n_h, w, bias, 0);
        if (clip_off >= 0) {
            clip(ht, n_h, w[clip_off]);
        }
        activate_encoded(args + EDGESEQ_RNN_ACT_F, model, ht, n_h);
        for (j = 0; j < n_h; j++) {
            h[j] = ht[j];
        }
    }
    return EDGESEQ_RT_OK;
}

/* ---- dense_f32.py ----------------------------------------------------------------------------- */

static void dense_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const int32_t rows = args[EDGESEQ_DENSE_ROWS], n_in = args[EDGESEQ_DENSE_N_IN];
    const int32_t n_out = args[EDGESEQ_DENSE_N_OUT], bias = args[EDGESEQ_DENSE_BIAS];
    int32_t r;
    for (r = 0; r < rows; r++) { /* from zero: the bias comes after the last term */
        float *y = a + args[EDGESEQ_DENSE_Y] + r * n_out;
        fill(y, n_out, model->weights, -1);
        accumulate(args + EDGESEQ_DENSE_W, model, n_out, 0, a + args[EDGESEQ_DENSE_X] + r * n_in, n_in, y, n_out);
        add_bias(y, n_out, model->weights, bias, r * n_out);
    }
}

/* ---- elementwise_f32.py ----------------------------------------------------------------------- */

/* The first value of a BROADCAST operand. */
static const float *broadcast_values(const int32_t *operand, const edgeseq_rt_model_t *model, const float *a)
{
    const float *source = operand[EDGESEQ_BROADCAST_SOURCE] == EDGESEQ_SOURCE_ARENA ? a : model->weights;
    return source + operand[EDGESEQ_BROADCAST_OFFSET];
}

/* Comparisons and logic give 1.0 or 0.0: every tensor is float32, booleans too. */
static float truth(int v)
{
    return v ? 1.0f : 0.0f;
}

/* x - floor(x / y) * y, the sign of y (Mod with fmod=0): fmod's remainder moved by y where their
 * signs differ; exact for integers (|values| <= 2^24). */
static float floor_mod(float (*fmod_f)(float, float), float x, float y)
{
    const float r = fmod_f(x, y);
    return r != 0.0f && (r < 0.0f) != (y < 0.0f) ? r + y : r;
}

/* Whether the libm functions that a record's function calls are in the model's table (a plan
 * that calls one its table leaves NULL is refused: EDGESEQ_RT_MISSING_FUNCTION). */
static int binary_linked(const edgeseq_rt_libm_t *libm, int32_t fn)
{
    switch (fn) {
    case EDGESEQ_BINARY_FUNCTION_POW: return libm->powf != NULL;
    case EDGESEQ_BINARY_FUNCTION_MOD:
    case EDGESEQ_BINARY_FUNCTION_FMOD: return libm->fmodf != NULL;
    default: return 1;
    }
}

static int binary_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const float *xa = broadcast_values(args + EDGESEQ_BINARY_A, model, a);
    const float *xb = broadcast_values(args + EDGESEQ_BINARY_B, model, a);
    const int32_t period_a = args[EDGESEQ_BINARY_A + EDGESEQ_BROADCAST_PERIOD];
    const int32_t period_b = args[EDGESEQ_BINARY_B + EDGESEQ_BROADCAST_PERIOD];
    const int32_t fn = args[EDGESEQ_BINARY_FUNCTION], n = args[EDGESEQ_BINARY_N];
    float *out = a + args[EDGESEQ_BINARY_C];
    const edgeseq_rt_libm_t *libm = &model->libm;
    int32_t i;
    if (!binary_linked(libm, fn)) {
        return EDGESEQ_RT_MISSING_FUNCTION;
    }
    for (i = 0; i < n; i++) {
        const float x = xa[i % period_a], y = xb[i % period_b];
        switch (fn) {
        case EDGESEQ_BINARY_FUNCTION_ADD: out[i] = x + y; break;
        case EDGESEQ_BINARY_FUNCTION_SUB: out[i] = x - y; break;
        case EDGESEQ_BINARY_FUNCTION_MUL: out[i] = x * y; break;
        case EDGESEQ_BINARY_FUNCTION_DIV: out[i] = x / y; break;
        case EDGESEQ_BINARY_FUNCTION_POW: out[i] = libm->powf(x, y); break;
        case EDGESEQ_BINARY_FUNCTION_MIN: out[i] = y < x ? y : x; break;
        case EDGESEQ_BINARY_FUNCTION_MAX: out[i] = y > x ? y : x; break;
        case EDGESEQ_BINARY_FUNCTION_PRELU: out[i] = x >= 0.0f ? x : y * x; break;
        case EDGESEQ_BINARY_FUNCTION_MOD: out[i] = floor_mod(libm->fmodf, x, y); break;
        case EDGESEQ_BINARY_FUNCTION_FMOD: out[i] = libm->fmodf(x, y); break;
        case EDGESEQ_BINARY_FUNCTION_EQUAL: out[i] = truth(x == y); break;
        case EDGESEQ_BINARY_FUNCTION_LESS: out[i] = truth(x < y); break;
        case EDGESEQ_BINARY_FUNCTION_LESS_OR_EQUAL: out[i] = truth(x <= y); break;
        case EDGESEQ_BINARY_FUNCTION_GREATER: out[i] = truth(x > y); break;
        case EDGESEQ_BINARY_FUNCTION_GREATER_OR_EQUAL: out[i] = truth(x >= y); break;
        case EDGESEQ_BINARY_FUNCTION_AND: out[i] = truth(x != 0.0f && y != 0.0f); break;
        case EDGESEQ_BINARY_FUNCTION_OR: out[i] = truth(x != 0.0f || y != 0.0f); break;
        default: out[i] = truth((x != 0.0f) != (y != 0.0f)); break; /* XOR */
        }
    }
    return EDGESEQ_RT_OK;
}

static int activation_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const int32_t n = args[EDGESEQ_ACTIVATION_N];
    float *y = a + args[EDGESEQ_ACTIVATION_Y];
    if (!function_linked(model, args + EDGESEQ_ACTIVATION_ACT)) {
        return EDGESEQ_RT_MISSING_FUNCTION;
    }
    if (args[EDGESEQ_ACTIVATION_X] != args[EDGESEQ_ACTIVATION_Y]) {
        memmove(y, a + args[EDGESEQ_ACTIVATION_X], (size_t)n * sizeof *y);
    }
    activate_encoded(args + EDGESEQ_ACTIVATION_ACT, model, y, n);
    return EDGESEQ_RT_OK;
}

static int softmax_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const int32_t outer = args[EDGESEQ_SOFTMAX_OUTER], n = args[EDGESEQ_SOFTMAX_N];
    const int32_t inner = args[EDGESEQ_SOFTMAX_INNER], log_softmax = args[EDGESEQ_SOFTMAX_LOG];
    const edgeseq_rt_libm_t *libm = &model->libm;
    int32_t o, k, i;
    if (libm->expf == NULL || (log_softmax && libm->logf == NULL)) {
        return EDGESEQ_RT_MISSING_FUNCTION;
    }
    for (o = 0; o < outer; o++) {
        const float *x = a + args[EDGESEQ_SOFTMAX_X] + o * n * inner;
        float *y = a + args[EDGESEQ_SOFTMAX_Y] + o * n * inner;
        for (k = 0; k < inner; k++) {
            float top = x[k], total = 0.0f;
            for (i = 1; i < n; i++) {
                top = x[i * inner + k] > top ? x[i * inner + k] : top;
            }
            for (i = 0; i < n; i++) {
                total += libm->expf(x[i * inner + k] - top);
            }
            if (log_softmax) { /* (x - max) - log(sum): top + log(sum) would round away low bits */
                const float log_total = libm->logf(total);
                for (i = 0; i < n; i++) {
                    y[i * inner + k] = (x[i * inner + k] - top) - log_total;
                }
            } else {
                for (i = 0; i < n; i++) {
                    y[i * inner + k] = libm->expf(x[i * inner + k] - top) / total;
                }
            }
        }
    }
    return EDGESEQ_RT_OK;
}

/* ---- conv_f32.py: `rows` output positions at a time, their patches times each group's filters */

/* Output position r's patch of channel `first` where it is a run of X as it lies (one channel per
 * group, one row of taps, no dilation, inside the input), else NULL. x is X of one stream. */
static const float *conv_patch_in_place(const int32_t *args, const float *x, int32_t first, int32_t r)
{
    const int32_t in_h = args[EDGESEQ_CONV_IN_H], in_w = args[EDGESEQ_CONV_IN_W];
    const int32_t out_w = args[EDGESEQ_CONV_OUT_W];
    const int32_t h = (r / out_w) * args[EDGESEQ_CONV_STRIDE_H] - args[EDGESEQ_CONV_PAD_TOP];
    const int32_t left = (r % out_w) * args[EDGESEQ_CONV_STRIDE_W] - args[EDGESEQ_CONV_PAD_LEFT];
    if (args[EDGESEQ_CONV_C_IN] != args[EDGESEQ_CONV_GROUP] || args[EDGESEQ_CONV_K_H] != 1 ||
        args[EDGESEQ_CONV_DILATION_W] != 1 || h < 0 || h >= in_h || left < 0 ||
        left + args[EDGESEQ_CONV_K_W] > in_w) {
        return NULL;
    }
    return x + (size_t)(first * in_h + h) * (size_t)in_w + (size_t)left;
}

/* row[(ci*k_h + i)*k_w + j] = X[first + ci] at tap (i, j) of output position r, 0 in the padding,
 * for `channels` channels; x is X of one stream, (c_in * in_h, in_w). Every column and row read
 * is tested against the input's extent, so no pad or stride of the record reads outside it. */
static void conv_gather(const int32_t *args, const float *x, int32_t first, int32_t channels, int32_t r,
                        float *row)
{
    const int32_t in_h = args[EDGESEQ_CONV_IN_H], in_w = args[EDGESEQ_CONV_IN_W];
    const int32_t k_h = args[EDGESEQ_CONV_K_H], k_w = args[EDGESEQ_CONV_K_W];
    const int32_t out_w = args[EDGESEQ_CONV_OUT_W];
    const int32_t dilation_h = args[EDGESEQ_CONV_DILATION_H], dilation_w = args[EDGESEQ_CONV_DILATION_W];
    const int32_t top = (r / out_w) * args[EDGESEQ_CONV_STRIDE_H] - args[EDGESEQ_CONV_PAD_TOP];
    const int32_t left = (r % out_w) * args[EDGESEQ_CONV_STRIDE_W] - args[EDGESEQ_CONV_PAD_LEFT];
    int32_t ci, i, j;
    for (ci = 0; ci < channels; ci++) {
        for (i = 0; i < k_h; i++) {
            const int32_t h = top + i * dilation_h;
            float *tap = row + (ci * k_h + i) * k_w;
            const float *src;
            if (h < 0 || h >= in_h) {
                for (j = 0; j < k_w; j++) {
                    tap[j] = 0.0f;
                }
                continue;
            }
            src = x + (size_t)((first + ci) * in_h + h) * (size_t)in_w; /* a row of the input */
            if (dilation_w == 1 && left >= 0 && left + k_w <= in_w) {
                memcpy(tap, src + left, (size_t)k_w * sizeof *tap); /* the common case */
            } else {
                for (j = 0; j < k_w; j++) {
                    const int32_t col = left + j * dilation_w;
                    tap[j] = col >= 0 && col < in_w ? src[col] : 0.0f;
                }
            }
        }
    }
}

#define CONV_BLOCK 4 /* output positions whose patches are read in place at once */

/* The output positions [first, first + count) (count <= CONV_BLOCK) of one stream straight into Y
 * when every patch of theirs is a run of X as it lies and the filters are an input-major int8
 * matrix: each weight is loaded and converted to float once for all of them, where the product
 * row by row would do it once for each (the STFT's four frames in a lean plan; converting is
 * half of that product's instructions on a Cortex-M4). The sums run in the order of the Python
 * runtime's tiles. Returns 0, having written nothing, when it does not apply. */
static int conv_in_place_block(const int32_t *args, const edgeseq_rt_model_t *model, const float *x,
                               int32_t first, int32_t count, float *y)
{
    const int32_t *matrix = args + EDGESEQ_CONV_W;
    const int32_t group = args[EDGESEQ_CONV_GROUP];
    const int32_t c_out = args[EDGESEQ_CONV_C_OUT], c_out_g = c_out / group, c_in_g = args[EDGESEQ_CONV_C_IN] / group;
    const int32_t taps = c_in_g * args[EDGESEQ_CONV_K_H] * args[EDGESEQ_CONV_K_W];
    const int32_t width = args[EDGESEQ_CONV_Y_WIDTH], bias = args[EDGESEQ_CONV_B];
    const float *patch[CONV_BLOCK];
    int32_t g, r, co, k;
    if (matrix[EDGESEQ_MATRIX_KIND] != EDGESEQ_MATRIX_KIND_INT8) {
        return 0;
    }
    for (g = 0; g < group; g++) {
        for (r = 0; r < count; r++) {
            if (conv_patch_in_place(args, x, g * c_in_g, first + r) == NULL) {
                return 0;
            }
        }
    }
    for (g = 0; g < group; g++) {
        for (r = 0; r < CONV_BLOCK; r++) { /* past count: the first again, computed and dropped */
            patch[r] = conv_patch_in_place(args, x, g * c_in_g, first + (r < count ? r : 0));
        }
        for (co = g * c_out_g; co < (g + 1) * c_out_g; co++) {
            const int8_t *column = model->qweights + matrix[EDGESEQ_MATRIX_OFFSET] + co;
            const float scale = model->weights[matrix[EDGESEQ_MATRIX_SCALES] + co];
            const float start = bias < 0 ? 0.0f : model->weights[bias + co];
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            for (k = 0; k < taps; k++) {
                const float w = column[(size_t)k * (size_t)c_out];
                s0 = MULTIPLY_ADD(patch[0][k], w, s0);
                s1 = MULTIPLY_ADD(patch[1][k], w, s1);
                s2 = MULTIPLY_ADD(patch[2][k], w, s2);
                s3 = MULTIPLY_ADD(patch[3][k], w, s3);
            }
            s0 = MULTIPLY_ADD(s0, scale, 0.0f) + start;
            s1 = MULTIPLY_ADD(s1, scale, 0.0f) + start;
            s2 = MULTIPLY_ADD(s2, scale, 0.0f) + start;
            s3 = MULTIPLY_ADD(s3, scale, 0.0f) + start;
            y[co * width + first] = s0;
            if (count > 1) {
                y[co * width + first + 1] = s1;
            }
            if (count > 2) {
                y[co * width + first + 2] = s2;
            }
            if (count > 3) {
                y[co * width + first + 3] = s3;
            }
        }
    }
    if (args[EDGESEQ_CONV_ACTIVATE]) {
        for (co = 0; co < c_out; co++) {
            activate_encoded(args + EDGESEQ_CONV_ACT, model, y + co * width + first, count);
        }
    }
    return 1;
}

static int conv_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const int32_t batch = args[EDGESEQ_CONV_BATCH], c_in = args[EDGESEQ_CONV_C_IN];
    const int32_t c_out = args[EDGESEQ_CONV_C_OUT], group = args[EDGESEQ_CONV_GROUP];
    const int32_t positions = args[EDGESEQ_CONV_OUT_H] * args[EDGESEQ_CONV_OUT_W];
    const int32_t c_in_g = c_in / group, c_out_g = c_out / group, rows = args[EDGESEQ_CONV_ROWS];
    const int32_t taps = c_in_g * args[EDGESEQ_CONV_K_H] * args[EDGESEQ_CONV_K_W];
    const int32_t image = c_in * args[EDGESEQ_CONV_IN_H] * args[EDGESEQ_CONV_IN_W];
    const int32_t width = args[EDGESEQ_CONV_Y_WIDTH], bias = args[EDGESEQ_CONV_B];
    float *product = a + args[EDGESEQ_CONV_SCRATCH]; /* (rows, c_out) */
    float *gathered = product + (size_t)rows * (size_t)c_out; /* (rows, taps) where patches are gathered */
    int32_t n, g, first, count, r, co;
    if (args[EDGESEQ_CONV_ACTIVATE] && !function_linked(model, args + EDGESEQ_CONV_ACT)) {
        return EDGESEQ_RT_MISSING_FUNCTION;
    }
    for (n = 0; n < batch; n++) {
        const float *x = a + args[EDGESEQ_CONV_X] + n * image;
        float *y = a + args[EDGESEQ_CONV_Y] + n * c_out * width;
        for (first = 0; first < positions; first += count) {
            count = positions - first < CONV_BLOCK ? positions - first : CONV_BLOCK;
            if (rows == 1 && conv_in_place_block(args, model, x, first, count, y)) {
                continue;
            }
            count = positions - first < rows ? positions - first : rows;
            for (r = 0; r < count; r++) { /* from zero: the bias comes after the last tap */
                fill(product + r * c_out, c_out, model->weights, -1);
            }
            for (g = 0; g < group; g++) {
                for (r = 0; r < count; r++) {
                    const float *patch = rows == 1 ? conv_patch_in_place(args, x, g * c_in_g, first) : NULL;
                    if (patch == NULL) {
                        float *row = gathered + (size_t)r * (size_t)taps;
                        conv_gather(args, x, g * c_in_g, c_in_g, first + r, row);
                        patch = row;
                    }
                    accumulate(args + EDGESEQ_CONV_W, model, c_out, g * c_out_g, patch, taps,
                               product + r * c_out + g * c_out_g, c_out_g);
                }
            }
            for (r = 0; r < count; r++) {
                add_bias(product + r * c_out, c_out, model->weights, bias, 0);
                if (args[EDGESEQ_CONV_ACTIVATE]) {
                    activate_encoded(args + EDGESEQ_CONV_ACT, model, product + r * c_out, c_out);
                }
                for (co = 0; co < c_out; co++) {
                    y[co * width + first + r] = product[r * c_out + co];
                }
            }
        }
    }
    return EDGESEQ_RT_OK;
}

/* ---- math_f32.py: unary functions, Where ------------------------------------------------------ */

/* A float32's bits and back (memcpy: the one way C99 defines). */
static uint32_t float_bits(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

static float bits_float(uint32_t bits)
{
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* v with its `dropped` lowest mantissa bits rounded off, ties to even (a carry into the exponent
 * gives the next power of two, or inf); NaN and inf unchanged. */
static float round_bits(float v, int dropped)
{
    const uint32_t half = ((uint32_t)1 << (dropped - 1)) - 1u, low = ((uint32_t)1 << dropped) - 1u;
    uint32_t bits = float_bits(v);
    if (!is_finite(v)) {
        return v;
    }
    bits = (bits + half + ((bits >> dropped) & 1u)) & ~low;
    return bits_float(bits);
}

#define FLOAT16_SMALLEST_NORMAL 6.103515625e-05f /* 2^-14 */
#define FLOAT16_MAX 65504.0f
#define TWO_24 16777216.0f

/* The float16 nearest v, as float32: 10 mantissa bits for normal float16s, multiples of 2^-24
 * below 2^-14 (its subnormals: rintf rounds ties to even in the default rounding mode, and the
 * scalings by 2^24 are exact), inf from 65520 on. */
static float to_float16(float (*rint_f)(float), float v)
{
    float rounded;
    if (fabsf(v) < FLOAT16_SMALLEST_NORMAL) {
        return rint_f(v * TWO_24) / TWO_24;
    }
    rounded = round_bits(v, 13);
    if (fabsf(rounded) <= FLOAT16_MAX || !is_finite(v)) {
        return rounded;
    }
    return v > 0.0f ? INFINITY : -INFINITY;
}

/* Gelu's constants, as ONNX's function body of Gelu writes them. */
#define GELU_SQRT_HALF 0.70710678118654752f
#define GELU_SQRT_2_OVER_PI 0.79788456080286536f
#define GELU_CUBIC 0.044715f

static int unary_linked(const edgeseq_rt_libm_t *libm, int32_t fn)
{
    switch (fn) {
    case EDGESEQ_UNARY_FUNCTION_POW: return libm->powf != NULL;
    case EDGESEQ_UNARY_FUNCTION_EXP: return libm->expf != NULL;
    case EDGESEQ_UNARY_FUNCTION_LOG: return libm->logf != NULL;
    case EDGESEQ_UNARY_FUNCTION_SELU: return libm->expm1f != NULL;
    case EDGESEQ_UNARY_FUNCTION_FLOOR: return libm->floorf != NULL;
    case EDGESEQ_UNARY_FUNCTION_CEIL: return libm->ceilf != NULL;
    case EDGESEQ_UNARY_FUNCTION_ERF:
    case EDGESEQ_UNARY_FUNCTION_GELU: return libm->erff != NULL;
    case EDGESEQ_UNARY_FUNCTION_TO_FLOAT16:
    case EDGESEQ_UNARY_FUNCTION_ROUND: return libm->rintf != NULL;
    case EDGESEQ_UNARY_FUNCTION_SIN: return libm->sinf != NULL;
    case EDGESEQ_UNARY_FUNCTION_COS: return libm->cosf != NULL;
    case EDGESEQ_UNARY_FUNCTION_GELU_TANH: return libm->tanhf != NULL;
    default: return 1;
    }
}

static int unary_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const int32_t n = args[EDGESEQ_UNARY_N], params = args[EDGESEQ_UNARY_PARAMS];
    const float alpha = model->weights[params], beta = model->weights[params + 1];
    const float *x = a + args[EDGESEQ_UNARY_X];
    float *y = a + args[EDGESEQ_UNARY_Y];
    const edgeseq_rt_libm_t *libm = &model->libm;
    int32_t i;
    if (!unary_linked(libm, args[EDGESEQ_UNARY_FUNCTION])) {
        return EDGESEQ_RT_MISSING_FUNCTION;
    }
    switch (args[EDGESEQ_UNARY_FUNCTION]) {
    case EDGESEQ_UNARY_FUNCTION_SQRT:
        for (i = 0; i < n; i++) {
            y[i] = sqrtf(x[i]);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_SQUARE:
        for (i = 0; i < n; i++) {
            y[i] = x[i] * x[i];
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_POW:
        for (i = 0; i < n; i++) {
            y[i] = libm->powf(x[i], alpha);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_EXP:
        for (i = 0; i < n; i++) {
            y[i] = libm->expf(x[i]);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_LOG:
        for (i = 0; i < n; i++) {
            y[i] = libm->logf(x[i]);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_ABS:
        for (i = 0; i < n; i++) {
            y[i] = fabsf(x[i]);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_NEG:
        for (i = 0; i < n; i++) {
            y[i] = -x[i];
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_RECIPROCAL:
        for (i = 0; i < n; i++) {
            y[i] = 1.0f / x[i];
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_CLIP:
        for (i = 0; i < n; i++) {
            const float low = x[i] > alpha ? x[i] : alpha;
            y[i] = low < beta ? low : beta;
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_SELU:
        for (i = 0; i < n; i++) {
            y[i] = beta * (x[i] > 0.0f ? x[i] : alpha * libm->expm1f(x[i]));
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_FLOOR:
        for (i = 0; i < n; i++) {
            y[i] = libm->floorf(x[i]);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_CEIL:
        for (i = 0; i < n; i++) {
            y[i] = libm->ceilf(x[i]);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_ERF:
        for (i = 0; i < n; i++) {
            y[i] = libm->erff(x[i]);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_NOT:
        for (i = 0; i < n; i++) {
            y[i] = x[i] == 0.0f ? 1.0f : 0.0f;
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_TO_FLOAT16:
        for (i = 0; i < n; i++) {
            y[i] = to_float16(libm->rintf, x[i]);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_TO_BFLOAT16:
        for (i = 0; i < n; i++) {
            y[i] = round_bits(x[i], 16);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_SIN:
        for (i = 0; i < n; i++) {
            y[i] = libm->sinf(x[i]);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_COS:
        for (i = 0; i < n; i++) {
            y[i] = libm->cosf(x[i]);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_ROUND: /* rintf: ties to even in the default rounding mode */
        for (i = 0; i < n; i++) {
            y[i] = libm->rintf(x[i]);
        }
        break;
    case EDGESEQ_UNARY_FUNCTION_GELU:
        for (i = 0; i < n; i++) {
            y[i] = 0.5f * x[i] * (1.0f + libm->erff(x[i] * GELU_SQRT_HALF));
        }
        break;
    default: /* GELU_TANH */
        for (i = 0; i < n; i++) {
            const float v = x[i];
            y[i] = 0.5f * v * (1.0f + libm->tanhf(GELU_SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v)));
        }
        break;
    }
    return EDGESEQ_RT_OK;
}

static void where_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const float *condition = broadcast_values(args + EDGESEQ_WHERE_CONDITION, model, a);
    const float *xa = broadcast_values(args + EDGESEQ_WHERE_A, model, a);
    const float *xb = broadcast_values(args + EDGESEQ_WHERE_B, model, a);
    const int32_t period_c = args[EDGESEQ_WHERE_CONDITION + EDGESEQ_BROADCAST_PERIOD];
    const int32_t period_a = args[EDGESEQ_WHERE_A + EDGESEQ_BROADCAST_PERIOD];
    const int32_t period_b = args[EDGESEQ_WHERE_B + EDGESEQ_BROADCAST_PERIOD];
    const int32_t n = args[EDGESEQ_WHERE_N];
    float *y = a + args[EDGESEQ_WHERE_Y];
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = condition[i % period_c] != 0.0f ? xa[i % period_a] : xb[i % period_b];
    }
}

/* ---- reduce_f32.py: reductions along one axis, the norm layers' row normalization, CumSum, TopK */

/* A float sum with Neumaier's compensation: within a rounding or two of the exact sum whatever
 * the number of terms, as the Python runtime's float64 sums are, without double arithmetic
 * (which a Cortex-M4 emulates in software). Do not build with -ffast-math, which folds the
 * compensation away. */
typedef struct {
    float sum, compensation;
} exact_sum_t;

static void add_term(exact_sum_t *s, float v)
{
    const float t = s->sum + v;
    if (fabsf(s->sum) >= fabsf(v)) {
        s->compensation += (s->sum - t) + v;
    } else {
        s->compensation += (v - t) + s->sum;
    }
    s->sum = t;
}

static float total(const exact_sum_t *s)
{
    return s->sum + s->compensation;
}

/* The index of the maximum (ARG_MAX, LAST_ARG_MAX) or minimum of x[0], x[stride], ... (n values):
 * the first of equal ones, or the last (LAST_*). */
static float arg_best(int32_t fn, const float *x, int32_t n, int32_t stride)
{
    const int largest = fn == EDGESEQ_REDUCE_FUNCTION_ARG_MAX || fn == EDGESEQ_REDUCE_FUNCTION_LAST_ARG_MAX;
    const int last = fn == EDGESEQ_REDUCE_FUNCTION_LAST_ARG_MAX || fn == EDGESEQ_REDUCE_FUNCTION_LAST_ARG_MIN;
    float best = x[0];
    int32_t i, at = 0;
    for (i = 1; i < n; i++) {
        const float v = x[i * stride];
        if ((largest ? v > best : v < best) || (last && v == best)) {
            best = v;
            at = i;
        }
    }
    return (float)at;
}

/* The reduction of x[0], x[stride], ... (n values). */
static float reduce_one(const edgeseq_rt_libm_t *libm, int32_t fn, const float *x, int32_t n, int32_t stride)
{
    exact_sum_t s = {0.0f, 0.0f};
    float top = 0.0f, product = 1.0f;
    int32_t i;
    switch (fn) {
    case EDGESEQ_REDUCE_FUNCTION_ARG_MAX:
    case EDGESEQ_REDUCE_FUNCTION_ARG_MIN:
    case EDGESEQ_REDUCE_FUNCTION_LAST_ARG_MAX:
    case EDGESEQ_REDUCE_FUNCTION_LAST_ARG_MIN:
        return arg_best(fn, x, n, stride);
    case EDGESEQ_REDUCE_FUNCTION_MAX:
        top = x[0];
        for (i = 1; i < n; i++) {
            top = x[i * stride] > top ? x[i * stride] : top;
        }
        return top;
    case EDGESEQ_REDUCE_FUNCTION_MIN:
        top = x[0];
        for (i = 1; i < n; i++) {
            top = x[i * stride] < top ? x[i * stride] : top;
        }
        return top;
    case EDGESEQ_REDUCE_FUNCTION_PROD:
        for (i = 0; i < n; i++) {
            product *= x[i * stride];
        }
        return product;
    case EDGESEQ_REDUCE_FUNCTION_L1:
        for (i = 0; i < n; i++) {
            add_term(&s, fabsf(x[i * stride]));
        }
        return total(&s);
    case EDGESEQ_REDUCE_FUNCTION_L2:
    case EDGESEQ_REDUCE_FUNCTION_SUM_SQUARE:
        for (i = 0; i < n; i++) {
            add_term(&s, x[i * stride] * x[i * stride]);
        }
        return fn == EDGESEQ_REDUCE_FUNCTION_L2 ? sqrtf(total(&s)) : total(&s);
    case EDGESEQ_REDUCE_FUNCTION_LOG_SUM_EXP:
        top = n > 0 ? x[0] : 0.0f;
        for (i = 1; i < n; i++) {
            top = x[i * stride] > top ? x[i * stride] : top;
        }
        for (i = 0; i < n; i++) {
            add_term(&s, libm->expf(x[i * stride] - top));
        }
        return top + libm->logf(total(&s));
    default: /* SUM, MEAN, LOG_SUM */
        for (i = 0; i < n; i++) {
            add_term(&s, x[i * stride]);
        }
        if (fn == EDGESEQ_REDUCE_FUNCTION_MEAN) {
            return total(&s) / (float)n;
        }
        return fn == EDGESEQ_REDUCE_FUNCTION_LOG_SUM ? libm->logf(total(&s)) : total(&s);
    }
}

static int reduce_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const int32_t outer = args[EDGESEQ_REDUCE_OUTER], n = args[EDGESEQ_REDUCE_N];
    const int32_t inner = args[EDGESEQ_REDUCE_INNER], fn = args[EDGESEQ_REDUCE_FUNCTION];
    const float *x = a + args[EDGESEQ_REDUCE_X];
    float *y = a + args[EDGESEQ_REDUCE_Y];
    const edgeseq_rt_libm_t *libm = &model->libm;
    int32_t o, k;
    if ((fn == EDGESEQ_REDUCE_FUNCTION_LOG_SUM_EXP && libm->expf == NULL)
        || ((fn == EDGESEQ_REDUCE_FUNCTION_LOG_SUM_EXP || fn == EDGESEQ_REDUCE_FUNCTION_LOG_SUM) && libm->logf == NULL)) {
        return EDGESEQ_RT_MISSING_FUNCTION;
    }
    for (o = 0; o < outer; o++) {
        for (k = 0; k < inner; k++) {
            y[o * inner + k] = reduce_one(libm, fn, x + (size_t)o * (size_t)n * (size_t)inner + k, n, inner);
        }
    }
    return EDGESEQ_RT_OK;
}

/* Running sums along n of x (outer, n, inner), in float32, each the previous one plus the next
 * value (as ONNX Runtime adds them): before the value (exclusive), from the end (reverse). */
static void cumsum_f32(const int32_t *args, float *a)
{
    const int32_t outer = args[EDGESEQ_CUMSUM_OUTER], n = args[EDGESEQ_CUMSUM_N], inner = args[EDGESEQ_CUMSUM_INNER];
    const int32_t exclusive = args[EDGESEQ_CUMSUM_EXCLUSIVE], reverse = args[EDGESEQ_CUMSUM_REVERSE];
    const float *x = a + args[EDGESEQ_CUMSUM_X];
    float *y = a + args[EDGESEQ_CUMSUM_Y];
    int32_t o, k, j;
    for (o = 0; o < outer; o++) {
        for (k = 0; k < inner; k++) {
            const size_t first = (size_t)o * (size_t)n * (size_t)inner + (size_t)k;
            float total = 0.0f;
            for (j = 0; j < n; j++) {
                const size_t at = first + (size_t)(reverse ? n - 1 - j : j) * (size_t)inner;
                const float v = x[at];
                if (exclusive) {
                    y[at] = total;
                    total += v;
                } else {
                    total += v;
                    y[at] = total;
                }
            }
        }
    }
}

static int beats(float v, float other, int32_t largest)
{
    return largest ? v > other : v < other;
}

/* The k best values of each x[o, :, i] and their indices, kept in order as they are found: a
 * value goes in front of those it beats strictly, so of equal values the first comes first. */
static void topk_f32(const int32_t *args, float *a)
{
    const int32_t outer = args[EDGESEQ_TOPK_OUTER], n = args[EDGESEQ_TOPK_N], inner = args[EDGESEQ_TOPK_INNER];
    const int32_t k = args[EDGESEQ_TOPK_K], largest = args[EDGESEQ_TOPK_LARGEST];
    int32_t o, i, j;
    if (k == 0) {
        return;
    }
    for (o = 0; o < outer; o++) {
        for (i = 0; i < inner; i++) {
            const float *x = a + args[EDGESEQ_TOPK_X] + (size_t)o * (size_t)n * (size_t)inner + i;
            float *values = a + args[EDGESEQ_TOPK_VALUES] + (size_t)o * (size_t)k * (size_t)inner + i;
            float *indices = a + args[EDGESEQ_TOPK_INDICES] + (size_t)o * (size_t)k * (size_t)inner + i;
            int32_t count = 0;
            for (j = 0; j < n; j++) {
                const float v = x[(size_t)j * (size_t)inner];
                int32_t at;
                if (count == k && !beats(v, values[(size_t)(k - 1) * (size_t)inner], largest)) {
                    continue;
                }
                if (count < k) {
                    count++;
                }
                for (at = count - 1; at > 0 && beats(v, values[(size_t)(at - 1) * (size_t)inner], largest); at--) {
                    values[(size_t)at * (size_t)inner] = values[(size_t)(at - 1) * (size_t)inner];
                    indices[(size_t)at * (size_t)inner] = indices[(size_t)(at - 1) * (size_t)inner];
                }
                values[(size_t)at * (size_t)inner] = v;
                indices[(size_t)at * (size_t)inner] = (float)j;
            }
        }
    }
}

/* Each row to mean 0 and variance 1 (biased, as LayerNormalization and InstanceNormalization
 * define it). The mean is kept as two floats, mean + residual, so that x - mean loses no more
 * than the Python runtime's float64 does when the mean is large against the spread. */
static void normalize_f32(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const int32_t rows = args[EDGESEQ_NORMALIZE_ROWS], n = args[EDGESEQ_NORMALIZE_N];
    const float epsilon = model->weights[args[EDGESEQ_NORMALIZE_EPSILON]];
    int32_t r, i;
    for (r = 0; r < rows; r++) {
        const float *x = a + args[EDGESEQ_NORMALIZE_X] + r * n;
        float *y = a + args[EDGESEQ_NORMALIZE_Y] + r * n;
        exact_sum_t s = {0.0f, 0.0f}, rest = {0.0f, 0.0f}, spread = {0.0f, 0.0f};
        float mean, residual, inverse;
        for (i = 0; i < n; i++) {
            add_term(&s, x[i]);
        }
        mean = total(&s) / (float)n;
        for (i = 0; i < n; i++) {
            add_term(&rest, x[i] - mean);
        }
        residual = total(&rest) / (float)n;
        for (i = 0; i < n; i++) {
            const float d = (x[i] - mean) - residual;
            add_term(&spread, d * d);
        }
        inverse = 1.0f / sqrtf(total(&spread) / (float)n + epsilon);
        for (i = 0; i < n; i++) {
            y[i] = ((x[i] - mean) - residual) * inverse;
        }
    }
}

/* ---- matmul_f32.py: c[i] = a[i] @ b[i], two run-time tensors -------------------------------- */

static void matmul_f32(const int32_t *args, float *a)
{
    const int32_t count = args[EDGESEQ_MATMUL_COUNT], m = args[EDGESEQ_MATMUL_M];
    const int32_t k = args[EDGESEQ_MATMUL_K], n = args[EDGESEQ_MATMUL_N];
    int32_t i, r, t, j;
    for (i = 0; i < count; i++) {
        const float *x = a + args[EDGESEQ_MATMUL_A] + (size_t)i * (size_t)(m * k);
        const float *y = a + args[EDGESEQ_MATMUL_B] + (size_t)i * (size_t)(k * n);
        float *z = a + args[EDGESEQ_MATMUL_C] + (size_t)i * (size_t)(m * n);
        for (r = 0; r < m; r++) {
            float *row = z + r * n;
            for (j = 0; j < n; j++) {
                row[j] = 0.0f;
            }
            for (t = 0; t < k; t++) {
                const float v = x[r * k + t];
                const float *source = y + t * n;
                for (j = 0; j < n; j++) {
                    row[j] += v * source[j];
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
    const int32_t *index = model->code + model->code[EDGESEQ_HEADER_TABLES] + args[EDGESEQ_COPY_TABLE];
    float *y = a + args[EDGESEQ_COPY_Y];
    int32_t i;
    for (i = 0; i < args[EDGESEQ_COPY_N]; i++) {
        y[i] = a[index[i]];
    }
}

/* EDGESEQ_RT_OK, or EDGESEQ_RT_BAD_INDEX for an id outside this table (computed from the
 * input, so checked here), with the id and the table's rows in the arena's fault slot. */
static int embedding(const int32_t *args, const edgeseq_rt_model_t *model, float *a)
{
    const int32_t count = args[EDGESEQ_EMBEDDING_COUNT], vocab = args[EDGESEQ_EMBEDDING_VOCAB];
    const int32_t dim = args[EDGESEQ_EMBEDDING_DIM];
    const int32_t *matrix = args + EDGESEQ_EMBEDDING_TABLE;
    const int32_t kind = matrix[EDGESEQ_MATRIX_KIND], table = matrix[EDGESEQ_MATRIX_OFFSET];
    const int32_t scales = matrix[EDGESEQ_MATRIX_SCALES];
    int32_t r, j;
    for (r = 0; r < count; r++) {
        const float id = a[args[EDGESEQ_EMBEDDING_IDS] + r];
        int32_t row;
        float *dst = a + args[EDGESEQ_EMBEDDING_Y] + r * dim;
        if (!is_row_index(id, vocab)) {
            float *fault = a + model->code[EDGESEQ_HEADER_FAULT];
            fault[0] = id;
            fault[1] = (float)vocab;
            return EDGESEQ_RT_BAD_INDEX;
        }
        row = (int32_t)id;
        if (row < 0) {
            row += vocab;
        }
        if (kind == EDGESEQ_MATRIX_KIND_INT8) {
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

static int check_inputs(const int32_t *code, const float *x)
{
    const int32_t n = code[EDGESEQ_HEADER_X_SIZE], vocab = code[EDGESEQ_HEADER_VOCAB];
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
    int32_t pc = code[EDGESEQ_HEADER_START];
    while (pc < code[EDGESEQ_HEADER_END]) {
        int status = EDGESEQ_RT_OK;
        const int32_t *args = code + pc + EDGESEQ_RECORD_FIELDS;
        switch (code[pc + EDGESEQ_RECORD_OPCODE]) {
        case EDGESEQ_OPCODE_GRU: status = gru_f32(args, model, a); break;
        case EDGESEQ_OPCODE_LSTM: status = lstm_f32(args, model, a); break;
        case EDGESEQ_OPCODE_RNN: status = rnn_f32(args, model, a); break;
        case EDGESEQ_OPCODE_DENSE: dense_f32(args, model, a); break;
        case EDGESEQ_OPCODE_BINARY: status = binary_f32(args, model, a); break;
        case EDGESEQ_OPCODE_ACTIVATION: status = activation_f32(args, model, a); break;
        case EDGESEQ_OPCODE_SOFTMAX: status = softmax_f32(args, model, a); break;
        case EDGESEQ_OPCODE_COPY: copy_indexed(args, model, a); break;
        case EDGESEQ_OPCODE_EMBEDDING: status = embedding(args, model, a); break;
        case EDGESEQ_OPCODE_CONV: status = conv_f32(args, model, a); break;
        case EDGESEQ_OPCODE_UNARY: status = unary_f32(args, model, a); break;
        case EDGESEQ_OPCODE_WHERE: where_f32(args, model, a); break;
        case EDGESEQ_OPCODE_REDUCE: status = reduce_f32(args, model, a); break;
        case EDGESEQ_OPCODE_NORMALIZE: normalize_f32(args, model, a); break;
        case EDGESEQ_OPCODE_MATMUL: matmul_f32(args, a); break;
        case EDGESEQ_OPCODE_CUMSUM: cumsum_f32(args, a); break;
        case EDGESEQ_OPCODE_TOPK: topk_f32(args, a); break;
        default: break; /* edgeseq codegen refuses plans with other opcodes */
        }
        if (status != EDGESEQ_RT_OK) {
            return status;
        }
        pc += code[pc + EDGESEQ_RECORD_LENGTH];
    }
    return EDGESEQ_RT_OK;
}

/* ---- rollback.py: the state regions copied to the saved region, and back for a refused step */

static void save_state(const int32_t *code, float *a)
{
    const int32_t *table = code + code[EDGESEQ_HEADER_TABLES] + code[EDGESEQ_HEADER_STATES];
    float *saved = a + code[EDGESEQ_HEADER_SAVED];
    int32_t k;
    for (k = 0; k < code[EDGESEQ_HEADER_N_STATES]; k++) {
        const int32_t *entry = table + k * EDGESEQ_SLOTS_STATE_ENTRY;
        memcpy(saved, a + entry[EDGESEQ_STATE_ENTRY_OFFSET], (size_t)entry[EDGESEQ_STATE_ENTRY_SIZE] * sizeof *saved);
        saved += entry[EDGESEQ_STATE_ENTRY_SIZE];
    }
}

static void restore_state(const int32_t *code, float *a)
{
    const int32_t *table = code + code[EDGESEQ_HEADER_TABLES] + code[EDGESEQ_HEADER_STATES];
    const float *saved = a + code[EDGESEQ_HEADER_SAVED];
    int32_t k;
    for (k = 0; k < code[EDGESEQ_HEADER_N_STATES]; k++) {
        const int32_t *entry = table + k * EDGESEQ_SLOTS_STATE_ENTRY;
        memcpy(a + entry[EDGESEQ_STATE_ENTRY_OFFSET], saved, (size_t)entry[EDGESEQ_STATE_ENTRY_SIZE] * sizeof *saved);
        saved += entry[EDGESEQ_STATE_ENTRY_SIZE];
    }
}

/* Whether every state value is finite, in a loop without an early exit, which a compiler
 * vectorises. */
static int state_is_finite(const int32_t *code, const float *a)
{
    const int32_t *table = code + code[EDGESEQ_HEADER_TABLES] + code[EDGESEQ_HEADER_STATES];
    uint32_t not_finite = 0;
    int32_t k, i;
    for (k = 0; k < code[EDGESEQ_HEADER_N_STATES]; k++) {
        const int32_t *entry = table + k * EDGESEQ_SLOTS_STATE_ENTRY;
        const float *region = a + entry[EDGESEQ_STATE_ENTRY_OFFSET];
        for (i = 0; i < entry[EDGESEQ_STATE_ENTRY_SIZE]; i++) {
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
    for (i = 0; i < code[EDGESEQ_HEADER_X_SIZE]; i++) {
        arena[code[EDGESEQ_HEADER_X_OFFSET] + i] = x[i];
    }
    status = run_instructions(model, arena);
    if (status == EDGESEQ_RT_OK && !state_is_finite(code, arena)) {
        status = EDGESEQ_RT_STATE_NOT_FINITE;
    }
    if (status != EDGESEQ_RT_OK) {
        restore_state(code, arena);
        return status;
    }
    for (i = 0; i < code[EDGESEQ_HEADER_Y_SIZE]; i++) {
        y[i] = arena[code[EDGESEQ_HEADER_Y_OFFSET] + i];
    }
    return EDGESEQ_RT_OK;
}
