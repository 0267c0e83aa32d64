/*
 * Inner time loops of the fast BPTT engine (rsnn_deploy/fast_bptt.py), in C.
 *
 * Why: in eager torch, one time step of the neuron is about ten tiny kernels plus one
 * dense matmul, and at batch 256 x 128 neurons the per-kernel overhead and the dense
 * recurrent matmul dominate a training step. Here one call runs a whole block of K
 * steps: the elementwise work of a step is one fused loop, and the recurrent input
 * z[t-1] @ W_rec^T is a sum over the rows of W_rec^T of the neurons that spiked
 * (spikes are binary, so no multiplication is needed, and silent neurons cost nothing).
 *
 * Rounding contract (forward): every operation of rsnn_deploy.neuron.neuron_step is one
 * IEEE float32 operation here, in the same order, compiled with -ffp-contract=off (no
 * fused multiply-add). The recurrent sum adds the rows in increasing neuron order,
 * starting from +0; tests/test_native_kernels.py checks that the spikes are
 * bit-identical to the eager loop (they are, where BLAS accumulates a binary-by-dense
 * product in index order, as MKL does for these shapes).
 *
 * The backward pass only needs float tolerance (gradients), so it may use fmaf.
 *
 * Layout: time-major float32, [K, B, H] blocks, [B, H] states, row-major matrices.
 * Batch rows are independent, so both loops are parallel over the batch (OpenMP).
 *
 * Each entry point returns 0, or 1 when a scratch allocation failed (the outputs are then
 * undefined; rsnn_deploy.native raises MemoryError).
 */
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#else /* built without OpenMP (the loader's fallback): one thread */
static int omp_get_thread_num(void) { return 0; }
static int omp_get_num_threads(void) { return 1; }
#endif
#if defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RSNN_KERNELS_ABI 3

int rsnn_abi_version(void) { return RSNN_KERNELS_ABI; }

/* The vector width this build was compiled for (rsnn_deploy.native checks it matches the variant). */
const char *rsnn_isa(void) {
#if defined(__AVX512F__)
    return "avx512";
#elif defined(__AVX2__)
    return "avx2";
#else
    return "generic";
#endif
}

enum { SG_FAST_SIGMOID = 0, SG_TRIANGLE = 1, SG_ARCTAN = 2, SG_SIGMOID = 3 };
enum { ADAPT_NONE = 0, ADAPT_THRESHOLD = 1, ADAPT_CURRENT = 2 };

/*
 * K steps of the neuron (no refractory period).
 *
 *   i = a_s * i + drive (+ rec)      rec = sum of W_rec^T rows of last step's spikes
 *   m = a_a * n                      (adaptation, decayed)
 *   p = a_m * v + i (+ bias) (- m, current kind), then max(p, v_floor)
 *   z = p > theta (+ m, threshold kind)
 *   v = p * (1 - z)                  n = m + strength * z
 *
 * act/n_act carry, per batch row, the indices of the neurons that spiked at the step
 * before the block (the caller zeroes n_act before the first block). rec_on is 0 when
 * the block starts the sequence and the network has no recurrence input yet.
 * p_out, rc_out (floor mask p >= v_floor), i_out, n_out (n after the jump) and th_out (theta + m,
 * threshold kind) are stored when not NULL.
 */
/* The build's native vector of floats, unaligned (GCC/Clang vector extensions): 16 floats on AVX-512,
 * 8 on AVX/AVX2, 4 otherwise. Wider types than the registers are lowered badly (through the stack, on
 * AVX2), so every explicit vector loop uses this one. Written out because GCC otherwise "vectorises"
 * the loop over rows with gathers. */
#if defined(__AVX512F__)
typedef float vn __attribute__((vector_size(64), aligned(4)));
#define SUM_VECS 4
#elif defined(__AVX__)
typedef float vn __attribute__((vector_size(32), aligned(4)));
#define SUM_VECS 8
#else
typedef float vn __attribute__((vector_size(16), aligned(4)));
#define SUM_VECS 8
#endif
#define VN_LANES ((int)(sizeof(vn) / sizeof(float)))
#define SUM_COLS (VN_LANES * SUM_VECS)

/* rec[0:H] = sum over q of rows[idx[q]][0:H], added in increasing q from +0 (the BLAS order for
 * binary-by-dense products); chunks of SUM_COLS columns stay in registers (the order per column does
 * not depend on the chunk, so every build gives the same bits). */
static void sum_rows(int H, const float *restrict rows, const int32_t *restrict idx, int n, float *restrict rec) {
    int h0 = 0;
    for (; h0 + SUM_COLS <= H; h0 += SUM_COLS) {
        vn a[SUM_VECS];
        for (int c = 0; c < SUM_VECS; c++) a[c] = (vn){0};
        for (int q = 0; q < n; q++) {
            const vn *w = (const vn *)(rows + (size_t)idx[q] * H + h0);
            for (int c = 0; c < SUM_VECS; c++) a[c] += w[c];
        }
        for (int c = 0; c < SUM_VECS; c++) ((vn *)(rec + h0))[c] = a[c];
    }
    for (; h0 + VN_LANES <= H; h0 += VN_LANES) {
        vn a0 = {0};
        for (int q = 0; q < n; q++) a0 += *(const vn *)(rows + (size_t)idx[q] * H + h0);
        *(vn *)(rec + h0) = a0;
    }
    for (int h = h0; h < H; h++) {
        float acc = 0.0f;
        for (int q = 0; q < n; q++) acc += rows[(size_t)idx[q] * H + h];
        rec[h] = acc;
    }
}

/* out_r[0:H] = init_r[0:H] + g_r[0:J] M[0:J, 0:H] for R <= 4 rows r (M row-major): each load of M
 * serves every row, and independent accumulators hide the FMA latency. The column chunk is sized to
 * the vector registers the build has (2 x 4 accumulators plus 2 loads of M must fit): 64 columns in
 * 16 zmm on AVX-512, 16 columns in 8 ymm on AVX2 (64 columns there need 32 ymm, and GCC spilled them
 * to the stack: a step ran 3x slower, see /work/shared/MEASURED.md), 8 columns in 8 xmm otherwise.
 * Every column is summed over j in increasing order with one FMA per term, so the AVX2 and AVX-512
 * builds give identical bits; the generic x86-64 build has no FMA instruction and rounds the product
 * separately. Fused multiply-adds are allowed here (gradients need no bit-exactness). */
#define GEMV_ROWS 4
#if defined(__AVX512F__)
#define GEMV_VECS 4
#else
#define GEMV_VECS 2
#endif
#define GEMV_COLS (VN_LANES * GEMV_VECS)
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=fast")))
#endif
static inline __attribute__((always_inline)) void gemv_body(int R, int J, int H, const float *const *g,
                                                          const float *restrict m, const float *const *init,
                                                          float *const *out) {
    int h0 = 0;
    for (; h0 + GEMV_COLS <= H; h0 += GEMV_COLS) {
        vn a[GEMV_ROWS][GEMV_VECS];
        for (int r = 0; r < GEMV_ROWS; r++)
            for (int c = 0; c < GEMV_VECS; c++) a[r][c] = r < R ? ((const vn *)(init[r] + h0))[c] : (vn){0};
        for (int j = 0; j < J; j++) {
            const vn *w = (const vn *)(m + (size_t)j * H + h0);
            vn wc[GEMV_VECS];
            for (int c = 0; c < GEMV_VECS; c++) wc[c] = w[c];
            for (int r = 0; r < GEMV_ROWS; r++) {
                const float gj = r < R ? g[r][j] : 0.0f;
                for (int c = 0; c < GEMV_VECS; c++) a[r][c] = gj * wc[c] + a[r][c];
            }
        }
        for (int r = 0; r < R; r++)
            for (int c = 0; c < GEMV_VECS; c++) ((vn *)(out[r] + h0))[c] = a[r][c];
    }
    for (int r = 0; r < R; r++)
        for (int h = h0; h < H; h++) {
            float acc = init[r][h];
#ifdef __FMA__
            for (int j = 0; j < J; j++) acc = fmaf(g[r][j], m[(size_t)j * H + h], acc);
#else /* as the vector chunks round without FMA (and a software fmaf would be slow) */
            for (int j = 0; j < J; j++) acc = g[r][j] * m[(size_t)j * H + h] + acc;
#endif
            out[r][h] = acc;
        }
}

/* z = p > th (1.0 or 0.0), v = p (1 - z): the same IEEE operations as the scalar loop, written with
 * vector compares so that no build branches on the (unpredictable) spikes; GCC's AVX2 cost model
 * left the scalar loop branchy, 3x slower than its AVX-512 masked version. */
static void spike_reset(int H, const float *restrict p, const float *restrict th, float *restrict z,
                        float *restrict v) {
    typedef int32_t vi __attribute__((vector_size(sizeof(vn)), aligned(4)));
    const vn one = (vn){0} + 1.0f;
    int h = 0;
    for (; h + VN_LANES <= H; h += VN_LANES) {
        const vn ph = *(const vn *)(p + h);
        const vi fire = ph > *(const vn *)(th + h); /* -1 where p > th, else 0 */
        const vn zh = (vn)(fire & (vi)one);
        *(vn *)(z + h) = zh;
        *(vn *)(v + h) = ph * (one - zh);
    }
    for (; h < H; h++) {
        const float zh = p[h] > th[h] ? 1.0f : 0.0f;
        z[h] = zh;
        v[h] = p[h] * (1.0f - zh);
    }
}

/* The full 4-row groups (all but the batch's last) with R a constant: no per-row tests inside the loop. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=fast")))
#endif
static void gemv_rows(int R, int J, int H, const float *const *g, const float *restrict m, const float *const *init,
                      float *const *out) {
    if (R == GEMV_ROWS)
        gemv_body(GEMV_ROWS, J, H, g, m, init, out);
    else
        gemv_body(R, J, H, g, m, init, out);
}

#if defined(__AVX2__) && !defined(__AVX512F__)
/* compress_lut[m]: the set bits of the 8-bit mask m, as byte indices in increasing order (AVX2 has no
 * compress instruction; a permutation from this table does it). Filled when the library loads. */
static uint64_t compress_lut[256];
__attribute__((constructor)) static void init_compress_lut(void) {
    for (int m = 0; m < 256; m++) {
        uint64_t v = 0;
        for (int b = 0, k = 0; b < 8; b++)
            if (m >> b & 1) v |= (uint64_t)b << (8 * k++);
        compress_lut[m] = v;
    }
}
#endif

/* idx[0:n] = the h with z[h] != 0, in increasing order; returns n. idx must hold H entries (the
 * vector paths store a full vector at idx + n, n <= h). */
static int compact_spikes(int H, const float *restrict z, int32_t *restrict idx) {
    int n = 0, h = 0;
#ifdef __AVX512F__
    const __m512i step = _mm512_set1_epi32(16);
    __m512i ids = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; h + 16 <= H; h += 16) {
        const __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(z + h), _mm512_setzero_ps(), _CMP_NEQ_UQ);
        /* compress in a register, then a full store (n <= h, so it stays in bounds): a compressing
         * store to memory is microcoded and slow on AMD Zen 4 */
        _mm512_storeu_si512(idx + n, _mm512_maskz_compress_epi32(m, ids));
        n += __builtin_popcount(m);
        ids = _mm512_add_epi32(ids, step);
    }
#elif defined(__AVX2__)
    for (; h + 8 <= H; h += 8) {
        const int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(z + h), _mm256_setzero_ps(), _CMP_NEQ_UQ));
        const __m256i perm = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)compress_lut[m]));
        _mm256_storeu_si256((__m256i *)(idx + n), _mm256_add_epi32(perm, _mm256_set1_epi32(h)));
        n += __builtin_popcount((unsigned)m);
    }
#endif
    for (; h < H; h++) { /* branch-free: spikes are unpredictable */
        idx[n] = h;
        n += z[h] != 0.0f;
    }
    return n;
}

/* One step of one batch row without adaptation, in one pass: the same IEEE operations per element, in the
 * same order, as the separate passes of rsnn_forward_block (so the same bits). The flags are constants at
 * each call site (one vector loop per case); outputs not asked for go to a scratch row. */
static inline __attribute__((always_inline)) void fwd_row(int H, const float *restrict d, const float *restrict rec,
                                                          const float *restrict a_syn, const float *restrict a_mem,
                                                          const float *restrict bias, float theta, float v_floor,
                                                          float *restrict ib, float *restrict vb, float *restrict io,
                                                          float *restrict po, float *restrict rco, float *restrict zr,
                                                          int syn, int rec_on, int has_bias, int floor) {
    typedef int32_t vi __attribute__((vector_size(sizeof(vn)), aligned(4)));
    /* vector compares and masks, as spike_reset: GCC left the scalar selects branchy on AVX2 */
    const vn one = (vn){0} + 1.0f, vth = (vn){0} + theta, vfl = (vn){0} + v_floor;
#define LD(a) (*(const vn *)((a) + h))
#define ST(a, x) (*(vn *)((a) + h) = (x))
    int h = 0;
    for (; h + VN_LANES <= H; h += VN_LANES) {
        vn i = syn ? LD(a_syn) * LD(ib) + LD(d) : LD(d);
        if (rec_on) i = i + LD(rec);
        ST(ib, i);
        ST(io, i);
        vn pv = LD(a_mem) * LD(vb) + i;
        if (has_bias) pv = pv + LD(bias);
        if (floor) {
            ST(rco, (vn)((pv >= vfl) & (vi)one));
            const vi below = pv < vfl;
            pv = (vn)((below & (vi)vfl) | (~below & (vi)pv));
        }
        ST(po, pv);
        const vn zh = (vn)((pv > vth) & (vi)one);
        ST(zr, zh);
        ST(vb, pv * (one - zh));
    }
#undef LD
#undef ST
    for (; h < H; h++) {
        float i = syn ? a_syn[h] * ib[h] + d[h] : d[h];
        if (rec_on) i = i + rec[h];
        ib[h] = i;
        io[h] = i;
        float pv = a_mem[h] * vb[h] + i;
        if (has_bias) pv = pv + bias[h];
        if (floor) {
            rco[h] = pv >= v_floor ? 1.0f : 0.0f;
            pv = pv < v_floor ? v_floor : pv;
        }
        po[h] = pv;
        const float zh = pv > theta ? 1.0f : 0.0f;
        zr[h] = zh;
        vb[h] = pv * (1.0f - zh);
    }
}

static void fwd_row_any(int H, const float *d, const float *rec, const float *a_syn, const float *a_mem,
                        const float *bias, float theta, int has_floor, float v_floor, float *ib, float *vb, float *io,
                        float *po, float *rco, float *zr, int rec_on) {
    const int syn = a_syn != NULL, has_bias = bias != NULL;
#define FWD(S, R, B, F)                                                                                            \
    if (syn == S && rec_on == R && has_bias == B && has_floor == F) {                                              \
        fwd_row(H, d, rec, a_syn, a_mem, bias, theta, v_floor, ib, vb, io, po, rco, zr, S, R, B, F);               \
        return;                                                                                                    \
    }
    FWD(0, 0, 0, 0) FWD(0, 0, 0, 1) FWD(0, 0, 1, 0) FWD(0, 0, 1, 1)
    FWD(0, 1, 0, 0) FWD(0, 1, 0, 1) FWD(0, 1, 1, 0) FWD(0, 1, 1, 1)
    FWD(1, 0, 0, 0) FWD(1, 0, 0, 1) FWD(1, 0, 1, 0) FWD(1, 0, 1, 1)
    FWD(1, 1, 0, 0) FWD(1, 1, 0, 1) FWD(1, 1, 1, 0) FWD(1, 1, 1, 1)
#undef FWD
}

int rsnn_forward_block(int K, int B, int H, int nthreads, const float *restrict drive, int C,
                        const float *restrict x, const float *restrict w_in_t, const float *restrict w_rec_t, const float *restrict a_syn,
                        const float *restrict a_mem, const float *restrict bias, float theta, int has_floor,
                        float v_floor, int first_block, float *restrict i_state, float *restrict v_state,
                        int32_t *restrict act, int32_t *restrict n_act, float *restrict z_out,
                        float *restrict p_out, float *restrict rc_out, float *restrict i_out, int adapt_kind,
                        const float *restrict a_adapt, float strength, float *restrict n_state,
                        float *restrict n_out, float *restrict th_out) {
    int failed = 0;
#pragma omp parallel num_threads(nthreads)
    {
        float *th = (float *)malloc(sizeof(float) * (size_t)H);
        float *rec = (float *)malloc(sizeof(float) * (size_t)H);
        float *pv = (float *)malloc(sizeof(float) * (size_t)H);
        float *dr = (float *)malloc(sizeof(float) * (size_t)H);
        float *junk = (float *)malloc(sizeof(float) * (size_t)H * 3); /* outputs not asked for */
        int32_t *xi = (int32_t *)malloc(sizeof(int32_t) * (size_t)(C > 0 ? C : 1));
        const int ok = th && rec && pv && dr && xi && junk;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            if (!ok) continue;
            float *restrict ib = i_state + (size_t)b * H;
            float *restrict vb = v_state + (size_t)b * H;
            float *restrict nb = n_state + (size_t)b * H;
            int32_t *restrict ab = act + (size_t)b * H;
            int na = n_act[b];
            for (int k = 0; k < K; k++) {
                const size_t row = ((size_t)k * B + b) * H;
                if (k + 1 < K) { /* the next step's rows lie B rows on: prefetch what it reads and writes */
                    const size_t nrow = row + (size_t)B * H;
                    for (int h = 0; h < H; h += 16) {
                        __builtin_prefetch(z_out + nrow + h, 1);
                        if (p_out != NULL) __builtin_prefetch(p_out + nrow + h, 1);
                        if (i_out != NULL) __builtin_prefetch(i_out + nrow + h, 1);
                        if (drive != NULL) __builtin_prefetch(drive + nrow + h);
                    }
                    if (drive == NULL)
                        for (int c = 0; c < C; c += 16) __builtin_prefetch(x + ((size_t)(k + 1) * B + b) * C + c);
                }
                const float *restrict d = dr;
                if (drive != NULL) {
                    d = drive + row;
                } else { /* binary inputs: W_in x is a sum of the rows of W_in^T of the active inputs */
                    const int nx = compact_spikes(C, x + ((size_t)k * B + b) * C, xi);
                    sum_rows(H, w_in_t, xi, nx, dr);
                }
                float *restrict zr = z_out + row;
                if (adapt_kind == ADAPT_NONE) {
                    const int rec_on = w_rec_t != NULL && !(first_block && k == 0);
                    if (rec_on) sum_rows(H, w_rec_t, ab, na, rec);
                    fwd_row_any(H, d, rec, a_syn, a_mem, bias, theta, has_floor, v_floor, ib, vb,
                                i_out != NULL ? i_out + row : junk, p_out != NULL ? p_out + row : junk + H,
                                rc_out != NULL ? rc_out + row : junk + 2 * (size_t)H, zr, rec_on);
                    na = compact_spikes(H, zr, ab);
                    continue;
                }
                /* Simple passes over one row (it stays in L1), each a vectorised loop. */
                if (a_syn != NULL)
                    for (int h = 0; h < H; h++) ib[h] = a_syn[h] * ib[h] + d[h];
                else
                    for (int h = 0; h < H; h++) ib[h] = d[h];
                if (w_rec_t != NULL && !(first_block && k == 0)) {
                    sum_rows(H, w_rec_t, ab, na, rec);
                    for (int h = 0; h < H; h++) ib[h] = ib[h] + rec[h];
                }
                if (i_out != NULL) memcpy(i_out + row, ib, sizeof(float) * (size_t)H);
                if (adapt_kind != ADAPT_NONE)
                    for (int h = 0; h < H; h++) nb[h] = a_adapt[h] * nb[h];
                for (int h = 0; h < H; h++) pv[h] = a_mem[h] * vb[h] + ib[h];
                if (bias != NULL)
                    for (int h = 0; h < H; h++) pv[h] = pv[h] + bias[h];
                if (adapt_kind == ADAPT_CURRENT)
                    for (int h = 0; h < H; h++) pv[h] = pv[h] - nb[h];
                if (has_floor) {
                    if (rc_out != NULL)
                        for (int h = 0; h < H; h++) rc_out[row + h] = pv[h] >= v_floor ? 1.0f : 0.0f;
                    for (int h = 0; h < H; h++) pv[h] = pv[h] < v_floor ? v_floor : pv[h];
                }
                if (p_out != NULL) memcpy(p_out + row, pv, sizeof(float) * (size_t)H);
                if (adapt_kind == ADAPT_THRESHOLD) {
                    for (int h = 0; h < H; h++) th[h] = nb[h] + theta;
                    if (th_out != NULL) memcpy(th_out + row, th, sizeof(float) * (size_t)H);
                } else {
                    for (int h = 0; h < H; h++) th[h] = theta;
                }
                spike_reset(H, pv, th, zr, vb);
                if (adapt_kind != ADAPT_NONE) {
                    for (int h = 0; h < H; h++) nb[h] = nb[h] + strength * zr[h];
                    if (n_out != NULL) memcpy(n_out + row, nb, sizeof(float) * (size_t)H);
                }
                na = compact_spikes(H, zr, ab);
            }
            n_act[b] = na;
        }
        free(junk);
        free(xi);
        free(dr);
        free(pv);
        free(rec);
        free(th);
    }
    return failed;
}

/* out[h] = surrogate derivative at u = p[h] - threshold (th[h], or theta when th is NULL), with the
 * formulas of rsnn_deploy.neuron.surrogate_grad. */
static void surrogate_row(int H, const float *restrict p, const float *restrict th, float theta, int kind, float slope,
                          float *restrict out) {
    if (th != NULL)
        for (int h = 0; h < H; h++) out[h] = p[h] - th[h];
    else
        for (int h = 0; h < H; h++) out[h] = p[h] - theta;
    switch (kind) {
    case SG_FAST_SIGMOID:
        for (int h = 0; h < H; h++) {
            const float r = 1.0f + slope * fabsf(out[h]);
            out[h] = 1.0f / (r * r);
        }
        break;
    case SG_TRIANGLE:
        for (int h = 0; h < H; h++) {
            const float r = 1.0f - slope * fabsf(out[h]);
            out[h] = r > 0.0f ? r : 0.0f;
        }
        break;
    case SG_ARCTAN:
        for (int h = 0; h < H; h++) {
            const float r = 3.14159265358979323846f * slope * out[h];
            out[h] = 1.0f / (1.0f + r * r);
        }
        break;
    default:
        for (int h = 0; h < H; h++) {
            const float e = 1.0f / (1.0f + expf(-slope * out[h]));
            out[h] = slope * e * (1.0f - e);
        }
    }
}

/* One row of the backward step for the common case (fast-sigmoid surrogate, no adaptation) in one pass:
 * the same IEEE operations per element, in the same order, as the separate passes of rsnn_backward_block
 * (so the same bits), without writing and re-reading the surrogate and g_p rows. The flags are constants
 * at each call site, so the compiler emits one branch-free vector loop per case. */
static inline __attribute__((always_inline)) void fused_row(int H, const float *restrict gzr, const float *restrict p,
                                                            float theta, float slope, const float *restrict rc,
                                                            const float *restrict z, const float *restrict a_mem,
                                                            const float *restrict gp_next, const float *restrict a_syn,
                                                            const float *restrict gi_next, float *restrict gi,
                                                            float *restrict gp_o, int has_rc, int next, int syn,
                                                            int store_gp) {
    for (int h = 0; h < H; h++) {
        const float u = p[h] - theta;
        const float r = 1.0f + slope * fabsf(u);
        float g = gzr[h] * (1.0f / (r * r));
        if (has_rc) g = g * rc[h];
        if (next) g += has_rc ? a_mem[h] * (1.0f - z[h]) * rc[h] * gp_next[h] : a_mem[h] * (1.0f - z[h]) * gp_next[h];
        gi[h] = next && syn ? g + a_syn[h] * gi_next[h] : g;
        if (store_gp) gp_o[h] = g;
    }
}

static void fused_row_any(int H, const float *gzr, const float *p, float theta, float slope, const float *rc,
                          const float *z, const float *a_mem, const float *gp_next, const float *a_syn,
                          const float *gi_next, float *gi, float *gp_o, int next) {
    const int has_rc = rc != NULL, syn = a_syn != NULL, store_gp = gp_o != NULL;
#define FUSED(A, N, S, G)                                                                                          \
    if (has_rc == A && next == N && syn == S && store_gp == G) {                                                   \
        fused_row(H, gzr, p, theta, slope, rc, z, a_mem, gp_next, a_syn, gi_next, gi, gp_o, A, N, S, G);            \
        return;                                                                                                    \
    }
    FUSED(0, 0, 0, 0) FUSED(0, 0, 0, 1) FUSED(0, 0, 1, 0) FUSED(0, 0, 1, 1)
    FUSED(0, 1, 0, 0) FUSED(0, 1, 0, 1) FUSED(0, 1, 1, 0) FUSED(0, 1, 1, 1)
    FUSED(1, 0, 0, 0) FUSED(1, 0, 0, 1) FUSED(1, 0, 1, 0) FUSED(1, 0, 1, 1)
    FUSED(1, 1, 0, 0) FUSED(1, 1, 0, 1) FUSED(1, 1, 1, 0) FUSED(1, 1, 1, 1)
#undef FUSED
}

/*
 * Reverse-time adjoints over one block (see fast_bptt's module docstring):
 *
 *   g_z = dL/dz + g_i[t+1] W_rec + strength a_a g_m[t+1]
 *   g_u = g_z sg(p - threshold)
 *   g_p = rc g_u + a_m (1 - z) rc g_p[t+1]
 *   g_m = a_a g_m[t+1] - g_u (threshold kind) or - g_p (current kind)
 *   g_i = g_p + a_s g_i[t+1]
 *
 * The carries hold the adjoints of the step after the block when has_next, and on return those
 * of the block's first step. gp_out may alias gi_out (no synapse). th is the stored threshold
 * theta + m (threshold kind; NULL: the constant theta). dL/dz is gz_in [K, B, H], or, when gz_in is
 * NULL, gz_w[k] * gz_sum[b] (the gradient of a time-weighted spike sum, formed here rather than
 * written to and read back from a [K, B, H] buffer; the same single rounding as the torch product).
 */
int rsnn_backward_block(int K, int B, int H, int nthreads, int has_next, const float *restrict gz_in,
                         const float *restrict p, const float *restrict z, const float *restrict rc, float theta,
                         int kind, float slope, const float *restrict w_rec, const float *restrict a_syn,
                         const float *restrict a_mem, float *restrict gi_carry, float *restrict gp_carry,
                         float *gi_out, float *gp_out, int adapt_kind, const float *restrict th,
                         const float *restrict a_adapt, float strength, float *restrict gm_carry,
                         float *restrict gm_out, const float *restrict gz_w, const float *restrict gz_sum) {
    const int n_groups = (B + GEMV_ROWS - 1) / GEMV_ROWS;
    const size_t step = (size_t)B * H;
    int failed = 0;
#pragma omp parallel num_threads(nthreads)
    {
        float *gz = (float *)malloc(sizeof(float) * (size_t)H * GEMV_ROWS);
        float *sg = (float *)malloc(sizeof(float) * (size_t)H);
        float *gp = (float *)malloc(sizeof(float) * (size_t)H);
        const int ok = gz && sg && gp;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int grp = 0; grp < n_groups; grp++) {
            if (!ok) continue;
            const int b0 = grp * GEMV_ROWS;
            const int R = B - b0 < GEMV_ROWS ? B - b0 : GEMV_ROWS;
            for (int k = K - 1; k >= 0; k--) {
                const int next = k < K - 1 || has_next;
                if (k > 0) /* the step before's saved rows: at T = 784 they come from DRAM, and the hardware
                            * prefetcher does not follow the group's jumps back by B rows (the loads of p
                            * stalled the elementwise passes); the group's g_i W_rec hides the latency */
                    for (int r = 0; r < R; r++) {
                        const size_t prow = ((size_t)(k - 1) * B + b0 + r) * H;
                        for (int h = 0; h < H; h += 16) {
                            __builtin_prefetch(p + prow + h);
                            __builtin_prefetch(z + prow + h);
                            if (rc != NULL) __builtin_prefetch(rc + prow + h);
                            if (th != NULL && adapt_kind == ADAPT_THRESHOLD) __builtin_prefetch(th + prow + h);
                            if (gz_in != NULL) __builtin_prefetch(gz_in + prow + h);
                        }
                    }
                const float *gi_next[GEMV_ROWS], *init[GEMV_ROWS];
                float *gz_r[GEMV_ROWS];
                for (int r = 0; r < R; r++) {
                    const size_t row = ((size_t)k * B + b0 + r) * H;
                    gi_next[r] = k < K - 1 ? gi_out + row + step : gi_carry + (size_t)(b0 + r) * H;
                    gz_r[r] = gz + (size_t)r * H;
                    if (gz_in != NULL) {
                        init[r] = gz_in + row;
                    } else { /* formed in the scratch row, which gemv_rows then updates in place */
                        const float wk = gz_w[k], *restrict gs = gz_sum + (size_t)(b0 + r) * H;
                        for (int h = 0; h < H; h++) gz_r[r][h] = wk * gs[h];
                        init[r] = gz_r[r];
                    }
                }
                /* g_z = dL/dz + g_i[t+1] W_rec, for the group's rows at once */
                if (next && w_rec != NULL)
                    gemv_rows(R, H, H, gi_next, w_rec, init, gz_r);
                else
                    for (int r = 0; r < R; r++)
                        if (init[r] != gz_r[r]) memcpy(gz_r[r], init[r], sizeof(float) * (size_t)H);
                for (int r = 0; r < R; r++) {
                    const size_t row = ((size_t)k * B + b0 + r) * H;
                    const size_t brow = (size_t)(b0 + r) * H;
                    const float *gp_next = k < K - 1 ? gp_out + row + step : gp_carry + brow;
                    const float *gm_next = adapt_kind == ADAPT_NONE ? NULL
                                           : k < K - 1                ? gm_out + row + step
                                                                      : gm_carry + brow;
                    float *gzr = gz_r[r];
                    if (adapt_kind == ADAPT_NONE && kind == SG_FAST_SIGMOID) {
                        fused_row_any(H, gzr, p + row, theta, slope, rc != NULL ? rc + row : NULL, z + row, a_mem,
                                      gp_next, a_syn, gi_next[r], gi_out + row, gp_out != gi_out ? gp_out + row : NULL,
                                      next);
                        continue;
                    }
                    if (next && gm_next != NULL)
                        for (int h = 0; h < H; h++) gzr[h] += a_adapt[h] * strength * gm_next[h];
                    surrogate_row(H, p + row, adapt_kind == ADAPT_THRESHOLD ? th + row : NULL, theta, kind, slope,
                                  sg);
                    for (int h = 0; h < H; h++) gp[h] = gzr[h] * sg[h]; /* g_u */
                    if (adapt_kind == ADAPT_THRESHOLD) {
                        if (next)
                            for (int h = 0; h < H; h++) gm_out[row + h] = a_adapt[h] * gm_next[h] - gp[h];
                        else
                            for (int h = 0; h < H; h++) gm_out[row + h] = -gp[h];
                    }
                    if (rc != NULL)
                        for (int h = 0; h < H; h++) gp[h] = gp[h] * rc[row + h];
                    if (next) {
                        if (rc != NULL)
                            for (int h = 0; h < H; h++)
                                gp[h] += a_mem[h] * (1.0f - z[row + h]) * rc[row + h] * gp_next[h];
                        else
                            for (int h = 0; h < H; h++) gp[h] += a_mem[h] * (1.0f - z[row + h]) * gp_next[h];
                    }
                    if (adapt_kind == ADAPT_CURRENT) {
                        if (next)
                            for (int h = 0; h < H; h++) gm_out[row + h] = a_adapt[h] * gm_next[h] - gp[h];
                        else
                            for (int h = 0; h < H; h++) gm_out[row + h] = -gp[h];
                    }
                    if (next && a_syn != NULL)
                        for (int h = 0; h < H; h++) gi_out[row + h] = gp[h] + a_syn[h] * gi_next[r][h];
                    else
                        memcpy(gi_out + row, gp, sizeof(float) * (size_t)H);
                    if (gp_out != gi_out) memcpy(gp_out + row, gp, sizeof(float) * (size_t)H);
                }
            }
            for (int r = 0; r < R; r++) {
                const size_t brow = (size_t)(b0 + r) * H;
                memcpy(gi_carry + brow, gi_out + brow, sizeof(float) * (size_t)H);
                memcpy(gp_carry + brow, gp_out + brow, sizeof(float) * (size_t)H);
                if (adapt_kind != ADAPT_NONE) memcpy(gm_carry + brow, gm_out + brow, sizeof(float) * (size_t)H);
            }
        }
        free(gp);
        free(sg);
        free(gz);
    }
    return failed;
}

/*
 * Weight gradient of a matrix fed by binary spikes, over one block, accumulated transposed:
 *   g_out[n, :] += g_i[k, b, :] for every (k, b, n) with pre[k, b, n] = 1
 * (g_W = sum_t g_i[t]^T pre[t], W_rec with pre = z[t-1], W_in with pre = x[t]: a sum over the
 * spikes only). Every element is summed from its g_out value in one fixed order, b outer and k inner,
 * whatever the thread count or the build: a seeded run is reproducible.
 *
 * Why this loop order: adding each spike's g_i row into its g_out row (load, add, store) was bound by
 * the stores and by g_out (64 kB at 128 x 128) evicting L1 (about 8 ns a spike on AVX2, Zen 5). Here the
 * rows are taken OUTER_ROWS at a time (their g_i stays in L1); for each n, 32-bit masks (vector compares,
 * no scatter) say which of them spiked, and g_out[n, :] is held in registers while their g_i rows are
 * added (loads and adds only). Threads split the n (each owns its rows of g_out: no private copies, no
 * reduction).
 */
#define OUTER_ROWS 64
#define OUTER_VECS 8 /* accumulators: 128 columns in zmm, 64 in ymm, 32 in xmm (plus the 1.0 of add2) */
#define OUTER_COLS (VN_LANES * OUTER_VECS)
#define OUTER_SLICE 128 /* n per pass over a chunk's rows (the row masks live on the stack) */

/* acc + g, rounded once, on the FMA units: fma(g, 1, acc) is exactly the sum (g * 1 is exact). Sums over
 * spikes alternate add and add2 so that the adds can issue on both the adders and the FMA units (Zen has
 * two of each). Without FMA, a plain add. */
static inline __attribute__((always_inline)) vn add2(vn acc, vn g, vn one) {
#if defined(__AVX512F__)
    return (vn)_mm512_fmadd_ps((__m512)g, (__m512)one, (__m512)acc);
#elif defined(__FMA__)
    return (vn)_mm256_fmadd_ps((__m256)g, (__m256)one, (__m256)acc);
#else
    (void)one;
    return acc + g;
#endif
}

/* a[0:H] += the rows gi + rows[q] * H, q = 0..n-1, in increasing q (per column, whatever the chunking). */
static void add_rows(int H, float *restrict a, const float *restrict gi, const int32_t *restrict rows, int n) {
    const vn one = (vn){0} + 1.0f;
    int h0 = 0;
    for (; h0 + OUTER_COLS <= H; h0 += OUTER_COLS) {
        vn acc[OUTER_VECS];
        for (int c = 0; c < OUTER_VECS; c++) acc[c] = ((const vn *)(a + h0))[c];
        for (int q = 0; q < n; q++) {
            const vn *g = (const vn *)(gi + (size_t)rows[q] * H + h0);
            for (int c = 0; c < OUTER_VECS; c += 2) {
                acc[c] += g[c];
                acc[c + 1] = add2(acc[c + 1], g[c + 1], one);
            }
        }
        for (int c = 0; c < OUTER_VECS; c++) ((vn *)(a + h0))[c] = acc[c];
    }
    for (; h0 + VN_LANES <= H; h0 += VN_LANES) {
        vn acc = *(const vn *)(a + h0);
        for (int q = 0; q < n; q++) acc += *(const vn *)(gi + (size_t)rows[q] * H + h0);
        *(vn *)(a + h0) = acc;
    }
    for (int h = h0; h < H; h++) {
        float acc = a[h];
        for (int q = 0; q < n; q++) acc += gi[(size_t)rows[q] * H + h];
        a[h] = acc;
    }
}

int rsnn_spike_outer_block(int K, int B, int N, int H, int nthreads, const float *restrict gi,
                            const float *restrict pre, float *restrict g_out) {
    typedef int32_t vi __attribute__((vector_size(sizeof(vn)), aligned(4)));
    enum { W = OUTER_ROWS / 32 }; /* 32-bit row masks per n */
    const int64_t n_rows = (int64_t)K * B;
    if (nthreads > N) nthreads = N > 0 ? N : 1;
#pragma omp parallel num_threads(nthreads)
    {
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
        /* this thread's n: [n0, n1), split in multiples of 8 where N allows */
        const int per = ((N + team - 1) / team + 7) & ~7;
        const int n0 = tid * per < N ? tid * per : N, n1 = n0 + per < N ? n0 + per : N, nn = n1 - n0;
        uint32_t bits[W][OUTER_SLICE];
        int32_t rows[OUTER_ROWS], list[OUTER_ROWS];
        for (int64_t l0 = 0; nn > 0 && l0 < n_rows; l0 += OUTER_ROWS) {
            const int64_t l1 = l0 + OUTER_ROWS < n_rows ? l0 + OUTER_ROWS : n_rows;
            const int nr = (int)(l1 - l0);
            for (int r = 0; r < nr; r++) rows[r] = (int32_t)(((l0 + r) % K) * B + (l0 + r) / K); /* b outer, k inner */
            /* the next chunk's rows jump by B rows, which the hardware prefetcher does not follow: ask for
             * them now (the loads of pre stalled the mask loop), this chunk's sums hide the latency */
            for (int64_t l = l1; l < l1 + OUTER_ROWS && l < n_rows; l++) {
                const size_t row = (size_t)((l % K) * B + l / K);
                for (int n = n0; n < n1; n += 16) __builtin_prefetch(pre + row * N + n);
                for (int h = 0; h < H; h += 16) __builtin_prefetch(gi + row * H + h);
            }
            for (int s0 = 0; s0 < nn; s0 += OUTER_SLICE) { /* n in [n0 + s0, n0 + s1) */
                const int s1 = s0 + OUTER_SLICE < nn ? s0 + OUTER_SLICE : nn;
                /* bits[w][j] bit r: pre[rows[32 w + r], n0 + s0 + j] != 0 (vector compares, no scatter) */
                int j = 0;
                for (; j + VN_LANES <= s1 - s0; j += VN_LANES)
                    for (int w = 0; w < W; w++) {
                        vi m = (vi){0};
                        for (int r = 0; r < 32 && 32 * w + r < nr; r++) {
                            const vn v = *(const vn *)(pre + (size_t)rows[32 * w + r] * N + n0 + s0 + j);
                            m |= (v != (vn){0}) & (vi)((vi){0} + (int32_t)(1u << r));
                        }
                        *(vi *)(&bits[w][j]) = m;
                    }
                for (; j < s1 - s0; j++)
                    for (int w = 0; w < W; w++) {
                        uint32_t m = 0;
                        for (int r = 0; r < 32 && 32 * w + r < nr; r++)
                            m |= (uint32_t)(pre[(size_t)rows[32 * w + r] * N + n0 + s0 + j] != 0.0f) << r;
                        bits[w][j] = m;
                    }
                for (j = 0; j < s1 - s0; j++) {
                    int n = 0;
                    for (int w = 0; w < W; w++)
                        for (uint32_t m = bits[w][j]; m != 0; m &= m - 1) list[n++] = rows[32 * w + __builtin_ctz(m)];
                    if (n > 0) add_rows(H, g_out + (size_t)(n0 + s0 + j) * H, gi, list, n);
                }
            }
        }
    }
    return 0;
}

/* 1 when every x[i] is 0.0 or 1.0 (the engine then sums weight rows over the active inputs). */
int rsnn_is_binary(int64_t n, const float *restrict x) {
    int ok = 1;
    for (int64_t i0 = 0; i0 < n && ok; i0 += 4096) { /* chunks: stop early on the first graded value */
        const int64_t i1 = i0 + 4096 < n ? i0 + 4096 : n;
        int c = 1;
        for (int64_t i = i0; i < i1; i++) c &= (x[i] == 0.0f) | (x[i] == 1.0f);
        ok = c;
    }
    return ok;
}
