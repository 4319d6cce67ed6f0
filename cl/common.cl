/* common.cl - helpers every clora program starts with (the library
 * prepends this file to each program's source).
 *
 * The dropout keep mask: a pure function of (seed, row, column), defined in
 * clora/reference.h, so backward regenerates what forward drew.
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

static uint seed_key(const uint seed_lo, const uint seed_hi)
{
    return mix32(seed_lo ^ mix32(seed_hi ^ 0x85ebca6bu));
}

/* v * scale if element (row, col) is kept, else 0. */
static float dropped(const float v, const uint key, const uint row, const uint col,
                     const uint threshold, const float scale)
{
    const uint bits = mix32(mix32(col ^ 0x9e3779b9u) ^ mix32(row ^ key));
    return (bits >> 8) >= threshold ? v * scale : 0.0f;
}
