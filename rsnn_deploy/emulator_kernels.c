/*
 * The integer emulator's time loops (rsnn_deploy/emulator.py) in C; the numpy steps in
 * rsnn_deploy/semantics/ are the definition. rsnn_loihi1_run (profile loihi1) covers the common
 * case in which static bounds prove that no state can wrap, no neuron is refractory and the
 * voltage ceiling never binds (emulator.params_for switches those operations off; skipping them is
 * exact); every other loihi1 case runs the numpy loop. rsnn_loihi2_run (profile loihi2, below)
 * covers Lava's LIF and ATRLIF whole.
 *
 * Per chip step n, with k = n - latency the input step arriving now (the numpy loop's contract):
 *
 *   q = sum of W_rec^T rows of the hidden neurons that spiked at n - 1
 *     + sum of W_in^T rows of the inputs active at step k (none outside 0 <= k < T)
 *   u = trunc(u * (4096 - 1 - du) / 4096) + q
 *   v = max(wrap32(trunc(v * (4096 - dv) / 4096) + u + bias), vmin)   (wrap32 only when wrap_v32)
 *   z = v > vth,  v = 0 where z
 *
 * Integers throughout, so the result is bit-exact by construction: weights and q in int32 (no wrap
 * of q means |q| < 2^21), u and v in int64. Inputs and spikes are binary, so q is a sum over the
 * spikes only. rec_u and rec_v ([B, T, H] or NULL) receive u and v (after the reset) of each trace
 * step. Batch rows are independent (OpenMP). wrap32 is nengo-loihi's int32 voltage
 * (two's complement): it matters for networks without a voltage floor (vmin = -2^31 + 1), where
 * a voltage near the floor plus a negative input leaves int32.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* trunc(x * r / 4096), r < 4096: the magnitude is shifted, the sign restored (truncation toward 0).
 * Branch-free (s = -1 for negative x, else 0), so that the loop over neurons vectorises. */
static inline int64_t decay12(int64_t x, int64_t r) {
    const int64_t s = x >> 63;
    const int64_t mag = (((x ^ s) - s) * r) >> 12;
    return (mag ^ s) - s;
}

/* idx[0:m] = the j with s[j] = 1 (s holds 0/1 bytes), in increasing order; returns m. Eight bytes
 * at a time: an all-zero word (most of them, at chip firing rates) costs one test. */
static int active(int n, const uint8_t *restrict s, int32_t *restrict idx) {
    int m = 0, j = 0;
    for (; j + 8 <= n; j += 8) {
        uint64_t w;
        memcpy(&w, s + j, 8);
        w &= 0x0101010101010101ULL;
        while (w) {
            idx[m++] = j + (__builtin_ctzll(w) >> 3);
            w &= w - 1;
        }
    }
    for (; j < n; j++) {
        idx[m] = j;
        m += s[j] != 0;
    }
    return m;
}

/* q[0:H] += the rows w[idx[a]] for a < m, four rows per pass over q (integer sums: any order is exact). */
static void add_rows(int H, const int32_t *restrict w, const int32_t *restrict idx, int m, int32_t *restrict q) {
    int a = 0;
    for (; a + 4 <= m; a += 4) {
        const int32_t *restrict w0 = w + (size_t)idx[a] * H, *restrict w1 = w + (size_t)idx[a + 1] * H;
        const int32_t *restrict w2 = w + (size_t)idx[a + 2] * H, *restrict w3 = w + (size_t)idx[a + 3] * H;
        for (int h = 0; h < H; h++) q[h] += (w0[h] + w1[h]) + (w2[h] + w3[h]);
    }
    for (; a < m; a++) {
        const int32_t *restrict w0 = w + (size_t)idx[a] * H;
        for (int h = 0; h < H; h++) q[h] += w0[h];
    }
}

/* One step's synaptic input, the same on both chips: the rows of w_rec_t of last step's spikes z plus
   the rows of w_in_t of the active channels of input step k (none before the latency has passed). */
static inline void synaptic_input(int H, int C, int T, int k, const int32_t *restrict w_rec_t,
                                  const int32_t *restrict w_in_t, const uint8_t *restrict z,
                                  const uint8_t *restrict xb, int32_t *restrict idx, int32_t *restrict q) {
    for (int h = 0; h < H; h++) q[h] = 0;
    if (w_rec_t != NULL) add_rows(H, w_rec_t, idx, active(H, z, idx), q);
    if (k >= 0 && k < T) add_rows(H, w_in_t, idx, active(C, xb + (size_t)k * C, idx), q);
}

/* Returns 0, or 1 when a scratch allocation failed (spikes then undefined). */
int rsnn_loihi1_run(int B, int T, int H, int C, int latency, int nthreads, const uint8_t *restrict x,
                     const int32_t *restrict w_in_t, const int32_t *restrict w_rec_t,
                     const int64_t *restrict decay_u, const int64_t *restrict decay_v,
                     const int64_t *restrict bias, const int64_t *restrict vth, int64_t vmin,
                     int wrap_v32, uint8_t *restrict spikes, int64_t *restrict rec_u, int64_t *restrict rec_v) {
    int failed = 0;
#pragma omp parallel num_threads(nthreads)
    {
        int64_t *u = (int64_t *)malloc(sizeof(int64_t) * (size_t)H);
        int64_t *v = (int64_t *)malloc(sizeof(int64_t) * (size_t)H);
        int32_t *q = (int32_t *)malloc(sizeof(int32_t) * (size_t)H);
        int64_t *ru = (int64_t *)malloc(sizeof(int64_t) * (size_t)H);
        int64_t *rv = (int64_t *)malloc(sizeof(int64_t) * (size_t)H);
        uint8_t *z = (uint8_t *)malloc((size_t)H);
        int32_t *idx = (int32_t *)malloc(sizeof(int32_t) * (size_t)(H > C ? H : C > 0 ? C : 1));
        const int ok = u && v && q && ru && rv && z && idx;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
        for (int h = 0; ok && h < H; h++) {
            ru[h] = 4096 - 1 - decay_u[h];
            rv[h] = 4096 - decay_v[h];
        }
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            if (!ok) continue;
            memset(u, 0, sizeof(int64_t) * (size_t)H);
            memset(v, 0, sizeof(int64_t) * (size_t)H);
            memset(z, 0, (size_t)H);
            for (int n = 0; n < T + latency; n++) {
                const int k = n - latency;
                synaptic_input(H, C, T, k, w_rec_t, w_in_t, z, x + (size_t)b * T * C, idx, q);
                for (int h = 0; h < H; h++) {
                    u[h] = decay12(u[h], ru[h]) + q[h];
                    int64_t vv = decay12(v[h], rv[h]) + u[h] + bias[h];
                    const int64_t w32 = ((vv + ((int64_t)1 << 31)) & (((int64_t)1 << 32) - 1)) - ((int64_t)1 << 31);
                    vv = wrap_v32 ? w32 : vv;
                    vv = vv < vmin ? vmin : vv;
                    const int64_t fire = vv > vth[h];
                    q[h] = (int32_t)fire; /* q is free again: the spikes, for the narrowing pass below */
                    v[h] = vv & (fire - 1); /* 0 where the neuron fired */
                }
                for (int h = 0; h < H; h++) z[h] = (uint8_t)q[h];
                if (k >= 0) {
                    const size_t at = ((size_t)b * T + k) * H;
                    memcpy(spikes + at, z, (size_t)H);
                    if (rec_u != NULL) memcpy(rec_u + at, u, sizeof(int64_t) * (size_t)H);
                    if (rec_v != NULL) memcpy(rec_v + at, v, sizeof(int64_t) * (size_t)H);
                }
            }
        }
        free(idx);
        free(z);
        free(rv);
        free(ru);
        free(q);
        free(v);
        free(u);
    }
    return failed;
}

/* sign(x) * ((|x| * r) >> bits): decay12 for any decay width (Lava's and nengo-loihi's decay_int). */
static inline int64_t decay_bits(int64_t x, int64_t r, int bits) {
    const int64_t s = x >> 63;
    const int64_t mag = (((x ^ s) - s) * r) >> bits;
    return (mag ^ s) - s;
}

/*
 * The loihi2 chip loop (semantics lava-lif-atrlif, rsnn_deploy/semantics/loihi2.py, whose numpy step
 * is the definition): Lava 0.10's PyLifModelBitAcc, or PyATRLIFModelFixed when atrlif. Per chip step
 * n (k = n - latency, q summed as in rsnn_loihi1_run), with fu, fv, ft, fr the decay factors
 * 2^bits - offset - decay:
 *
 *   count q outside [-2^q_bits, 2^q_bits)                                   (Lava does not wrap q)
 *   u = wrap_lava(decay(u, fu) + q, u_bits)                                 (counted where it wraps)
 *   v = clip(decay(v, fv) + u + bias, vmin, vmax)
 *   LIF:    z = v > vth;  v = 0 where z
 *   ATRLIF: th = decay(theta, ft) + vth;  r = decay(r, fr);  z = v - r >= th;
 *           r += 2 th where z;  th += theta_step where z;  count th > tlim, r > tlim;  theta = th - vth
 *
 * Unlike the loihi1 loop this one needs no proof that nothing wraps: the wrap of u is Lava's and in
 * the loop, the other two are counted only. The caller proves that every sum of weights fits int32.
 * overflow[0:3] receives the counts of (q, u, theta) over all samples and chip steps. rec_u, rec_v,
 * rec_theta, rec_r (each [B, T, H] or NULL) receive the states after each trace step.
 */
int rsnn_loihi2_run(int B, int T, int H, int C, int latency, int nthreads, const uint8_t *restrict x,
                     const int32_t *restrict w_in_t, const int32_t *restrict w_rec_t, const int64_t *restrict fu,
                     const int64_t *restrict fv, const int64_t *restrict ft, const int64_t *restrict fr, int bits,
                     const int64_t *restrict bias, const int64_t *restrict vth, const int64_t *restrict theta_step,
                     int64_t vmin, int64_t vmax, int q_bits, int u_bits, int theta_bits, int atrlif,
                     uint8_t *restrict spikes, int64_t *restrict rec_u, int64_t *restrict rec_v,
                     int64_t *restrict rec_theta, int64_t *restrict rec_r, int64_t *restrict overflow) {
    int failed = 0;
    int64_t over_q = 0, over_u = 0, over_t = 0;
    const int64_t qlim = (int64_t)1 << q_bits, m = (int64_t)1 << u_bits, tlim = ((int64_t)1 << theta_bits) - 1;
#pragma omp parallel num_threads(nthreads) reduction(+ : over_q, over_u, over_t)
    {
        int64_t *u = (int64_t *)malloc(sizeof(int64_t) * (size_t)H);
        int64_t *v = (int64_t *)malloc(sizeof(int64_t) * (size_t)H);
        int64_t *th = (int64_t *)malloc(sizeof(int64_t) * (size_t)H);
        int64_t *rs = (int64_t *)malloc(sizeof(int64_t) * (size_t)H);
        int32_t *q = (int32_t *)malloc(sizeof(int32_t) * (size_t)H);
        uint8_t *z = (uint8_t *)malloc((size_t)H);
        int32_t *idx = (int32_t *)malloc(sizeof(int32_t) * (size_t)(H > C ? H : C > 0 ? C : 1));
        const int ok = u && v && th && rs && q && z && idx;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            if (!ok) continue;
            memset(u, 0, sizeof(int64_t) * (size_t)H);
            memset(v, 0, sizeof(int64_t) * (size_t)H);
            memset(th, 0, sizeof(int64_t) * (size_t)H);
            memset(rs, 0, sizeof(int64_t) * (size_t)H);
            memset(z, 0, (size_t)H);
            for (int n = 0; n < T + latency; n++) {
                const int k = n - latency;
                synaptic_input(H, C, T, k, w_rec_t, w_in_t, z, x + (size_t)b * T * C, idx, q);
                int64_t cq = 0, cu = 0, ct = 0;
                if (!atrlif) {
                    for (int h = 0; h < H; h++) {
                        const int64_t qq = q[h];
                        cq += (qq >= qlim) | (qq < -qlim);
                        const int64_t uu = decay_bits(u[h], fu[h], bits) + qq;
                        int64_t w = uu > m ? uu - 2 * m : uu; /* wrap_lava, literally */
                        w = w <= -m ? uu + 2 * m : w;
                        cu += w != uu;
                        u[h] = w;
                        int64_t vv = decay_bits(v[h], fv[h], bits) + w + bias[h];
                        vv = vv < vmin ? vmin : vv;
                        vv = vv > vmax ? vmax : vv;
                        const int64_t fire = vv > vth[h];
                        q[h] = (int32_t)fire;
                        v[h] = vv & (fire - 1);
                    }
                } else {
                    for (int h = 0; h < H; h++) {
                        const int64_t qq = q[h];
                        cq += (qq >= qlim) | (qq < -qlim);
                        const int64_t uu = decay_bits(u[h], fu[h], bits) + qq;
                        int64_t w = uu > m ? uu - 2 * m : uu;
                        w = w <= -m ? uu + 2 * m : w;
                        cu += w != uu;
                        u[h] = w;
                        int64_t vv = decay_bits(v[h], fv[h], bits) + w + bias[h];
                        vv = vv < vmin ? vmin : vv;
                        vv = vv > vmax ? vmax : vv;
                        v[h] = vv;
                        int64_t t_abs = decay_bits(th[h], ft[h], bits) + vth[h];
                        int64_t rr = decay_bits(rs[h], fr[h], bits);
                        const int64_t fire = vv - rr >= t_abs;
                        rr += (2 * t_abs) & -fire;
                        t_abs += theta_step[h] & -fire;
                        ct += (t_abs > tlim) + (rr > tlim);
                        rs[h] = rr;
                        th[h] = t_abs - vth[h];
                        q[h] = (int32_t)fire;
                    }
                }
                over_q += cq;
                over_u += cu;
                over_t += ct;
                for (int h = 0; h < H; h++) z[h] = (uint8_t)q[h];
                if (k >= 0) {
                    const size_t at = ((size_t)b * T + k) * H;
                    memcpy(spikes + at, z, (size_t)H);
                    if (rec_u != NULL) memcpy(rec_u + at, u, sizeof(int64_t) * (size_t)H);
                    if (rec_v != NULL) memcpy(rec_v + at, v, sizeof(int64_t) * (size_t)H);
                    if (rec_theta != NULL) memcpy(rec_theta + at, th, sizeof(int64_t) * (size_t)H);
                    if (rec_r != NULL) memcpy(rec_r + at, rs, sizeof(int64_t) * (size_t)H);
                }
            }
        }
        free(idx);
        free(z);
        free(q);
        free(rs);
        free(th);
        free(v);
        free(u);
    }
    overflow[0] = over_q;
    overflow[1] = over_u;
    overflow[2] = over_t;
    return failed;
}

/*
 * The host readout's leaky integration (rsnn_deploy.trace.host_readout), float64, per sample b and
 * step t, with exactly the numpy loop's operations and rounding (built with -ffp-contract=off):
 *
 *   y = y * decay;  y = y + drive[b, t];  y = y + bias;  readout[b, t] = (float)y;  total = total + y
 *
 * y and total are [B, K] and hold the final state and the sum over steps on return (zeroed here).
 */
void rsnn_readout_scan(int B, int T, int K, const double *restrict drive, const double *restrict bias, double decay,
                       float *restrict readout, double *restrict y, double *restrict total) {
    for (int b = 0; b < B; b++) {
        double *restrict yb = y + (size_t)b * K, *restrict sb = total + (size_t)b * K;
        for (int k = 0; k < K; k++) yb[k] = sb[k] = 0.0;
        for (int t = 0; t < T; t++) {
            const double *restrict d = drive + ((size_t)b * T + t) * K;
            float *restrict r = readout + ((size_t)b * T + t) * K;
            for (int k = 0; k < K; k++) {
                double v = yb[k] * decay;
                v = v + d[k];
                v = v + bias[k];
                yb[k] = v;
                r[k] = (float)v;
                sb[k] = sb[k] + v;
            }
        }
    }
}
