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
 * Rounding contract (forward): every operation of rsnn_deploy.model.neuron_step is one
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
 */
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#else /* built without OpenMP (the loader's fallback): one thread */
static int omp_get_thread_num(void) { return 0; }
static int omp_get_num_threads(void) { return 1; }
#endif
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RSNN_KERNELS_ABI 2

int rsnn_abi_version(void) { return RSNN_KERNELS_ABI; }

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
/* 16 floats, unaligned: GCC/Clang vector extensions, lowered to AVX-512, 2 x AVX2 or SSE as the CPU has.
 * Written out because GCC otherwise "vectorises" the loop over rows with gathers. */
typedef float v16 __attribute__((vector_size(64), aligned(4)));

/* rec[0:H] = sum over q of rows[idx[q]][0:H], added in increasing q from +0 (the BLAS order for
 * binary-by-dense products); chunks of 64 stay in registers. */
static void sum_rows(int H, const float *restrict rows, const int32_t *restrict idx, int n, float *restrict rec) {
    int h0 = 0;
    for (; h0 + 64 <= H; h0 += 64) {
        v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int q = 0; q < n; q++) {
            const v16 *w = (const v16 *)(rows + (size_t)idx[q] * H + h0);
            a0 += w[0];
            a1 += w[1];
            a2 += w[2];
            a3 += w[3];
        }
        v16 *out = (v16 *)(rec + h0);
        out[0] = a0;
        out[1] = a1;
        out[2] = a2;
        out[3] = a3;
    }
    for (int h = h0; h < H; h++) {
        float acc = 0.0f;
        for (int q = 0; q < n; q++) acc += rows[(size_t)idx[q] * H + h];
        rec[h] = acc;
    }
}

/* out_r[0:H] = init_r[0:H] + g_r[0:J] M[0:J, 0:H] for R <= 4 rows r (M row-major): each load of M
 * serves every row, and 16 independent accumulators hide the FMA latency. Fused multiply-adds are
 * allowed here (gradients need no bit-exactness). */
#define GEMV_ROWS 4
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=fast")))
#endif
static void gemv_rows(int R, int J, int H, const float *const *g, const float *restrict m, const float *const *init,
                      float *const *out) {
    int h0 = 0;
    for (; h0 + 64 <= H; h0 += 64) {
        v16 a[GEMV_ROWS][4];
        for (int r = 0; r < GEMV_ROWS; r++)
            for (int c = 0; c < 4; c++) a[r][c] = r < R ? ((const v16 *)(init[r] + h0))[c] : (v16){0};
        for (int j = 0; j < J; j++) {
            const v16 *w = (const v16 *)(m + (size_t)j * H + h0);
            const v16 w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
            for (int r = 0; r < GEMV_ROWS; r++) {
                const float gj = r < R ? g[r][j] : 0.0f;
                a[r][0] = gj * w0 + a[r][0];
                a[r][1] = gj * w1 + a[r][1];
                a[r][2] = gj * w2 + a[r][2];
                a[r][3] = gj * w3 + a[r][3];
            }
        }
        for (int r = 0; r < R; r++)
            for (int c = 0; c < 4; c++) ((v16 *)(out[r] + h0))[c] = a[r][c];
    }
    for (int r = 0; r < R; r++)
        for (int h = h0; h < H; h++) {
            float acc = init[r][h];
            for (int j = 0; j < J; j++) acc = fmaf(g[r][j], m[(size_t)j * H + h], acc);
            out[r][h] = acc;
        }
}

/* idx[0:n] = the h with z[h] != 0, in increasing order; returns n. */
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
#endif
    for (; h < H; h++) { /* branch-free: spikes are unpredictable */
        idx[n] = h;
        n += z[h] != 0.0f;
    }
    return n;
}

void rsnn_forward_block(int K, int B, int H, int nthreads, const float *restrict drive, int C,
                        const float *restrict x, const float *restrict w_in_t, const float *restrict w_rec_t, const float *restrict a_syn,
                        const float *restrict a_mem, const float *restrict bias, float theta, int has_floor,
                        float v_floor, int first_block, float *restrict i_state, float *restrict v_state,
                        int32_t *restrict act, int32_t *restrict n_act, float *restrict z_out,
                        float *restrict p_out, float *restrict rc_out, float *restrict i_out, int adapt_kind,
                        const float *restrict a_adapt, float strength, float *restrict n_state,
                        float *restrict n_out, float *restrict th_out) {
#pragma omp parallel num_threads(nthreads)
    {
        float *th = (float *)malloc(sizeof(float) * (size_t)H);
        float *rec = (float *)malloc(sizeof(float) * (size_t)H);
        float *pv = (float *)malloc(sizeof(float) * (size_t)H);
        float *dr = (float *)malloc(sizeof(float) * (size_t)H);
        int32_t *xi = (int32_t *)malloc(sizeof(int32_t) * (size_t)(C > 0 ? C : 1));
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            float *restrict ib = i_state + (size_t)b * H;
            float *restrict vb = v_state + (size_t)b * H;
            float *restrict nb = n_state + (size_t)b * H;
            int32_t *restrict ab = act + (size_t)b * H;
            int na = n_act[b];
            for (int k = 0; k < K; k++) {
                const size_t row = ((size_t)k * B + b) * H;
                const float *restrict d = dr;
                if (drive != NULL) {
                    d = drive + row;
                } else { /* binary inputs: W_in x is a sum of the rows of W_in^T of the active inputs */
                    const int nx = compact_spikes(C, x + ((size_t)k * B + b) * C, xi);
                    sum_rows(H, w_in_t, xi, nx, dr);
                }
                float *restrict zr = z_out + row;
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
                for (int h = 0; h < H; h++) {
                    const float z = pv[h] > th[h] ? 1.0f : 0.0f;
                    zr[h] = z;
                    vb[h] = pv[h] * (1.0f - z);
                }
                if (adapt_kind != ADAPT_NONE) {
                    for (int h = 0; h < H; h++) nb[h] = nb[h] + strength * zr[h];
                    if (n_out != NULL) memcpy(n_out + row, nb, sizeof(float) * (size_t)H);
                }
                na = compact_spikes(H, zr, ab);
            }
            n_act[b] = na;
        }
        free(xi);
        free(dr);
        free(pv);
        free(rec);
        free(th);
    }
}

/* out[h] = surrogate derivative at u = p[h] - threshold (th[h], or theta when th is NULL), with the
 * formulas of rsnn_deploy.model._surrogate_grad. */
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
 * theta + m (threshold kind; NULL: the constant theta).
 */
void rsnn_backward_block(int K, int B, int H, int nthreads, int has_next, const float *restrict gz_in,
                         const float *restrict p, const float *restrict z, const float *restrict rc, float theta,
                         int kind, float slope, const float *restrict w_rec, const float *restrict a_syn,
                         const float *restrict a_mem, float *restrict gi_carry, float *restrict gp_carry,
                         float *gi_out, float *gp_out, int adapt_kind, const float *restrict th,
                         const float *restrict a_adapt, float strength, float *restrict gm_carry,
                         float *restrict gm_out) {
    const int n_groups = (B + GEMV_ROWS - 1) / GEMV_ROWS;
    const size_t step = (size_t)B * H;
#pragma omp parallel num_threads(nthreads)
    {
        float *gz = (float *)malloc(sizeof(float) * (size_t)H * GEMV_ROWS);
        float *sg = (float *)malloc(sizeof(float) * (size_t)H);
        float *gp = (float *)malloc(sizeof(float) * (size_t)H);
#pragma omp for schedule(static)
        for (int grp = 0; grp < n_groups; grp++) {
            const int b0 = grp * GEMV_ROWS;
            const int R = B - b0 < GEMV_ROWS ? B - b0 : GEMV_ROWS;
            for (int k = K - 1; k >= 0; k--) {
                const int next = k < K - 1 || has_next;
                const float *gi_next[GEMV_ROWS], *init[GEMV_ROWS];
                float *gz_r[GEMV_ROWS];
                for (int r = 0; r < R; r++) {
                    const size_t row = ((size_t)k * B + b0 + r) * H;
                    gi_next[r] = k < K - 1 ? gi_out + row + step : gi_carry + (size_t)(b0 + r) * H;
                    init[r] = gz_in + row;
                    gz_r[r] = gz + (size_t)r * H;
                }
                /* g_z = dL/dz + g_i[t+1] W_rec, for the group's rows at once */
                if (next && w_rec != NULL)
                    gemv_rows(R, H, H, gi_next, w_rec, init, gz_r);
                else
                    for (int r = 0; r < R; r++) memcpy(gz_r[r], init[r], sizeof(float) * (size_t)H);
                for (int r = 0; r < R; r++) {
                    const size_t row = ((size_t)k * B + b0 + r) * H;
                    const size_t brow = (size_t)(b0 + r) * H;
                    const float *gp_next = k < K - 1 ? gp_out + row + step : gp_carry + brow;
                    const float *gm_next = adapt_kind == ADAPT_NONE ? NULL
                                           : k < K - 1                ? gm_out + row + step
                                                                      : gm_carry + brow;
                    float *gzr = gz_r[r];
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
}

/*
 * Weight gradient of a matrix fed by binary spikes, over one block, accumulated transposed:
 *   g_out[n, :] += g_i[k, b, :] for every (k, b, n) with pre[k, b, n] = 1
 * (g_W = sum_t g_i[t]^T pre[t], W_rec with pre = z[t-1], W_in with pre = x[t]: a sum over the
 * spikes only). Thread 0 adds into g_out, each other thread into a private matrix; the private
 * matrices are then added in thread order, so the result does not depend on timing (a seeded
 * run stays reproducible).
 */
void rsnn_spike_outer_block(int K, int B, int N, int H, int nthreads, const float *restrict gi,
                            const float *restrict pre, float *restrict g_out) {
    const size_t size = (size_t)N * H;
    float *priv = nthreads > 1 ? (float *)calloc(size * (size_t)(nthreads - 1), sizeof(float)) : NULL;
    if (nthreads > 1 && priv == NULL) nthreads = 1; /* out of memory: one thread, same result */
#pragma omp parallel num_threads(nthreads)
    {
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
        float *acc = tid == 0 ? g_out : priv + size * (size_t)(tid - 1);
        int32_t *idx = (int32_t *)malloc(sizeof(int32_t) * (size_t)N);
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            for (int k = 0; k < K; k++) {
                const size_t row = (size_t)k * B + b;
                const int n = compact_spikes(N, pre + row * N, idx);
                const float *restrict g = gi + row * H;
                for (int q = 0; q < n; q++) {
                    float *restrict a = acc + (size_t)idx[q] * H;
                    for (int h = 0; h < H; h++) a[h] += g[h];
                }
            }
        } /* implicit barrier */
        free(idx);
#pragma omp for schedule(static)
        for (size_t e = 0; e < size; e++)
            for (int t = 1; t < team; t++) g_out[e] += priv[size * (size_t)(t - 1) + e];
    }
    free(priv);
}
