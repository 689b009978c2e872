/* Crop, bilinear resize, uint8 -> float and mean subtraction of a clip, in one pass.

   The frames are channels-last uint8 (T, H, W, C); the square crop (top, left, side) of each
   frame is resized to size x size with the coordinates of torch's bilinear interpolation
   (align_corners=False, no antialiasing), minus a per-channel mean, into float32
   (T, size, size, C). The values are the exact bilinear ones (no rounding to grey levels).

   Each output row is made from its two source rows: first blended vertically into a float
   row of the crop's width (contiguous, vectorised), then horizontally. With AVX2, the
   horizontal pass takes 8 output values at a time from 8 consecutive row values by a lane
   permutation (vpermps) where those 8 outputs read no more than 8 consecutive values, as they
   do when the clip is scaled up (the paper's Jester frames, 100 -> 112); otherwise it is a
   plain loop. The AVX2 code is chosen at import where the CPU has AVX2 and FMA. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_PATH 1
#include <immintrin.h>
#else
#define HAVE_AVX2_PATH 0
#endif

/* Where each output row and value reads, and with what weights. */
typedef struct {
    int channels, size, width, row_len, out_len, blocks;
    int *row0, *row1;          /* per output row: the two source rows (within the crop) */
    float *row_weight;         /* per output row: weight of row1 */
    int *at;                   /* per output value: offset of its first tap in a crop row */
    float *weight;             /* per output value: weight of its second tap, one pixel on
                                  (0 where the last pixel has no right neighbour) */
    float *mean;               /* per output value: the mean of its channel */
    int *block_base;           /* per block of 8 output values: its first row offset read */
    int *block_lanes;          /* per block: each value's tap offset from block_base */
    int permutable;            /* every block reads within 8 consecutive row values */
    float *row;                /* the vertically blended row, padded for the vector reads */
} Plan;

/* torch's bilinear source coordinate (align_corners=False), in float as torch computes it. */
static void source_index(int out, int in_size, int out_size, int *i0, int *i1, float *w) {
    float scale = (float)in_size / (float)out_size;
    float src = scale * ((float)out + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    int lo = (int)src;
    if (lo > in_size - 1) lo = in_size - 1;
    float lambda = src - (float)lo;
    if (lambda < 0.0f) lambda = 0.0f;
    if (lambda > 1.0f) lambda = 1.0f;
    *i0 = lo;
    *i1 = lo < in_size - 1 ? lo + 1 : lo;
    *w = *i1 == lo ? 0.0f : lambda;
}

static void plan_free(Plan *p) {
    free(p->row0); free(p->row1); free(p->row_weight); free(p->at);
    free(p->weight); free(p->mean); free(p->block_base); free(p->block_lanes); free(p->row);
}

static int plan_make(Plan *p, int channels, int side, int size, int width, const float *mean) {
    memset(p, 0, sizeof(*p));
    p->channels = channels; p->size = size; p->width = width;
    p->row_len = side * channels;
    p->out_len = size * channels;
    p->blocks = p->out_len / 8;
    p->row0 = malloc(sizeof(int) * size);
    p->row1 = malloc(sizeof(int) * size);
    p->row_weight = malloc(sizeof(float) * size);
    p->at = malloc(sizeof(int) * p->out_len);
    p->weight = malloc(sizeof(float) * p->out_len);
    p->mean = malloc(sizeof(float) * p->out_len);
    p->block_base = malloc(sizeof(int) * (p->blocks + 1)); /* + 1: never malloc(0) */
    p->block_lanes = malloc(sizeof(int) * 8 * (p->blocks + 1));
    /* 8 + channels floats of zeros after the row: second taps are read one pixel on from the
       first, also where the last pixel has no right neighbour (weight 0), and 8 at a time. */
    p->row = calloc((size_t)p->row_len + 8 + channels, sizeof(float));
    if (!p->row0 || !p->row1 || !p->row_weight || !p->at || !p->weight ||
        !p->mean || !p->block_base || !p->block_lanes || !p->row) {
        plan_free(p);
        return -1;
    }
    for (int y = 0; y < size; y++)
        source_index(y, side, size, &p->row0[y], &p->row1[y], &p->row_weight[y]);
    for (int x = 0; x < size; x++) {
        int i0, i1;
        float w;
        source_index(x, side, size, &i0, &i1, &w); /* i1 is i0 + 1, or i0 with w = 0 */
        for (int c = 0; c < channels; c++) {
            int j = x * channels + c;
            p->at[j] = i0 * channels + c;
            p->weight[j] = w;
            p->mean[j] = mean ? mean[c] : 0.0f;
        }
    }
    p->permutable = 1;
    for (int b = 0; b < p->blocks; b++) {
        int lo = p->at[8 * b], hi = lo;
        for (int k = 1; k < 8; k++) {
            int a = p->at[8 * b + k];
            lo = a < lo ? a : lo;
            hi = a > hi ? a : hi;
        }
        if (hi - lo > 7) p->permutable = 0;
        p->block_base[b] = lo;
        for (int k = 0; k < 8; k++) p->block_lanes[8 * b + k] = p->at[8 * b + k] - lo;
    }
    return 0;
}

/* Source rows a and b blended with weight w into p->row, from value `from` on. */
static void blend_rows(const Plan *p, const uint8_t *a, const uint8_t *b, float w, int from) {
    float *row = p->row;
    for (int k = from; k < p->row_len; k++) row[k] = (float)a[k] + w * ((float)b[k] - (float)a[k]);
}

/* The output values of a row from `from` on, from the blended row's two taps. */
static void taps(const Plan *p, int from, float *out) {
    const float *row = p->row;
    for (int j = from; j < p->out_len; j++) {
        float e = row[p->at[j]], f = row[p->at[j] + p->channels];
        out[j] = e + p->weight[j] * (f - e) - p->mean[j];
    }
}

static void frame_generic(const Plan *p, const uint8_t *crop, float *out) {
    size_t stride = (size_t)p->width * p->channels;
    for (int y = 0; y < p->size; y++) {
        blend_rows(p, crop + p->row0[y] * stride, crop + p->row1[y] * stride, p->row_weight[y], 0);
        taps(p, 0, out + (size_t)y * p->out_len);
    }
}

#if HAVE_AVX2_PATH
__attribute__((target("avx2,fma"))) static void frame_avx2(const Plan *p, const uint8_t *crop,
                                                           float *out) {
    size_t stride = (size_t)p->width * p->channels;
    float *row = p->row;
    for (int y = 0; y < p->size; y++) {
        const uint8_t *a = crop + p->row0[y] * stride, *b = crop + p->row1[y] * stride;
        __m256 w = _mm256_set1_ps(p->row_weight[y]);
        int k = 0;
        for (; k + 8 <= p->row_len; k += 8) {
            __m256 va = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(a + k))));
            __m256 vb = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + k))));
            _mm256_storeu_ps(row + k, _mm256_fmadd_ps(w, _mm256_sub_ps(vb, va), va));
        }
        blend_rows(p, a, b, p->row_weight[y], k);
        float *o = out + (size_t)y * p->out_len;
        if (!p->permutable) {
            taps(p, 0, o);
            continue;
        }
        const int *bases = p->block_base, *lanes_at = p->block_lanes;
        const float *weights = p->weight, *means = p->mean;
        const int blocks = p->blocks, channels = p->channels;
        /* Stored past the caches where the row is aligned for it: the clip is read next by
           the batching, long after, and writing it through the caches evicts the frames. */
        const int streamed = ((uintptr_t)o & 31) == 0;
        for (int j = 0; j < blocks; j++) {
            const float *base = row + bases[j];
            __m256i lanes = _mm256_loadu_si256((const __m256i *)(lanes_at + 8 * j));
            __m256 e = _mm256_permutevar8x32_ps(_mm256_loadu_ps(base), lanes);
            __m256 f = _mm256_permutevar8x32_ps(_mm256_loadu_ps(base + channels), lanes);
            __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(weights + 8 * j), _mm256_sub_ps(f, e), e);
            v = _mm256_sub_ps(v, _mm256_loadu_ps(means + 8 * j));
            if (streamed)
                _mm256_stream_ps(o + 8 * j, v);
            else
                _mm256_storeu_ps(o + 8 * j, v);
        }
        taps(p, 8 * p->blocks, o);
    }
    _mm_sfence(); /* the streamed stores are seen before the frame is handed on */
}

static int cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
static int cpu_has_avx2(void) { return 0; }
#endif

static int use_avx2 = 0;

static PyObject *crop_resize(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"frames", "shape", "crop", "mean", "out", "generic", NULL};
    Py_buffer frames, mean, out;
    int t, h, w, c, top, left, side, size, generic = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*(iiii)(iiii)y*w*|p", keywords, &frames,
                                     &t, &h, &w, &c, &top, &left, &side, &size, &mean, &out,
                                     &generic))
        return NULL;
    PyObject *result = NULL;
    const char *error = NULL;
    if (t < 1 || h < 1 || w < 1 || c < 1 || side < 1 || size < 1)
        error = "shape and crop must be positive";
    else if (top < 0 || left < 0 || top + side > h || left + side > w)
        error = "the crop lies outside the frames";
    else if (frames.len != (Py_ssize_t)t * h * w * c)
        error = "frames hold T*H*W*C bytes, not as the shape says";
    else if (mean.len != (Py_ssize_t)(sizeof(float) * c))
        error = "mean must hold one float32 a channel";
    else if (out.len != (Py_ssize_t)(sizeof(float) * t * size * size * c))
        error = "out must hold T*size*size*C float32 values";
    if (error) {
        PyErr_SetString(PyExc_ValueError, error);
        goto done;
    }
    Plan plan;
    if (plan_make(&plan, c, side, size, w, (const float *)mean.buf) != 0) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    size_t frame_in = (size_t)h * w * c, frame_out = (size_t)size * size * c;
    for (int i = 0; i < t; i++) {
        const uint8_t *crop = (const uint8_t *)frames.buf + i * frame_in + ((size_t)top * w + left) * c;
        float *o = (float *)out.buf + i * frame_out;
#if HAVE_AVX2_PATH
        if (use_avx2 && !generic) {
            frame_avx2(&plan, crop, o);
            continue;
        }
#endif
        frame_generic(&plan, crop, o);
    }
    Py_END_ALLOW_THREADS
    plan_free(&plan);
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyBuffer_Release(&frames);
    PyBuffer_Release(&mean);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"crop_resize", (PyCFunction)(void (*)(void))crop_resize, METH_VARARGS | METH_KEYWORDS,
     "crop_resize(frames, (T, H, W, C), (top, left, side, size), mean, out, generic=False)\n"
     "uint8 frames -> float32 out: crop, bilinear resize, minus mean (see the module)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cropresize",
    "Crop, bilinear resize, float conversion and mean subtraction of uint8 clips in one pass.",
    -1, methods,
};

PyMODINIT_FUNC PyInit__cropresize(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    use_avx2 = cpu_has_avx2();
    if (PyModule_AddStringConstant(m, "ISA", use_avx2 ? "AVX2" : "generic") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
