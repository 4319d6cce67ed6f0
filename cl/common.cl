/* common.cl - helpers every clora program starts with (the library
 * prepends this file to each program's source).
 *
 * The dropout keep mask: a pure function of (seed, row, column), defined in
 * clora/reference.h, so backward regenerates what forward drew; the row is
 * the element's row in the whole batch.
 */

/* The 32-bit mixer of the dropout hash. */
static uint mix32(uint v)
{
    v ^= v >> 16;
    v *= 0x7feb352du;
    v ^= v >> 15;
    v *= 0x846ca68bu;
    v ^= v >> 16;
    return v;
}

/* A mask's key: the seed's hash, and row0, the first row's place in the
 * whole batch (a micro-batch's rows are keyed as the whole batch's). */
typedef struct drop_key {
    uint hash;
    uint row0;
} drop_key;

static drop_key seed_key(const uint seed_lo, const uint seed_hi, const uint row0)
{
    const drop_key key = {mix32(seed_lo ^ mix32(seed_hi ^ 0x85ebca6bu)), row0};
    return key;
}

/* v * scale if element (row, col) is kept, else 0. */
static float dropped(const float v, const drop_key key, const uint row, const uint col,
                     const uint threshold, const float scale)
{
    const uint bits = mix32(mix32(col ^ 0x9e3779b9u) ^ mix32((key.row0 + row) ^ key.hash));
    return (bits >> 8) >= threshold ? v * scale : 0.0f;
}

/* Eight consecutive floats from p + at, of n: lanes past n repeat the last
 * element. Elementwise kernels work on one float8 per work-item, which
 * CPUs run as one vector operation. */
static float8 load8_tail(__global const float *p, const uint at, const uint n)
{
    if (at + 8 <= n)
        return vload8(0, p + at);
    const uint last = n - 1;
    return (float8)(p[at], p[min(at + 1, last)], p[min(at + 2, last)], p[min(at + 3, last)],
                    p[min(at + 4, last)], p[min(at + 5, last)], p[min(at + 6, last)],
                    p[min(at + 7, last)]);
}

/* Stores the lanes of v that fall before n at p + at. */
static void store8_tail(const float8 v, __global float *p, const uint at, const uint n)
{
    if (at + 8 <= n) {
        vstore8(v, 0, p + at);
        return;
    }
    const float lanes[8] = {v.s0, v.s1, v.s2, v.s3, v.s4, v.s5, v.s6, v.s7};
    for (uint j = 0; at + j < n; ++j)
        p[at + j] = lanes[j];
}

/* The sum and the largest of v's lanes. (Lane-by-lane sums of a vector held
 * in registers compile to shuffles with undefined lanes, which crash
 * oclgrind 21.10's uninitialised-value check; dot and halving do not.) */
static float sum8(const float8 v)
{
    return dot(v.lo + v.hi, (float4)(1.0f));
}

static float max8(const float8 v)
{
    const float4 m4 = fmax(v.lo, v.hi);
    const float2 m2 = fmax(m4.lo, m4.hi);
    return fmax(m2.x, m2.y);
}
