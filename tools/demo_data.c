/* demo_data.c — the demo's two tasks: 8x8 images of the digits 0-9 drawn
 * from 5x7 glyphs at random positions with noise; task A shows them
 * upright, task B turned a quarter turn clockwise. */
#include "demo_data.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* '#' is ink. */
static const char *const glyphs[10][7] = {
    {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
    {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
    {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
    {"####.", "....#", "....#", ".###.", "....#", "....#", "####."},
    {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
    {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
    {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
    {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
    {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
    {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
};

/* One 8x8 image of `digit` into out[64]. */
static void draw(int digit, int turned, uint64_t *rng, float *out)
{
    float canvas[DEMO_SIDE][DEMO_SIDE];
    for (int r = 0; r < DEMO_SIDE; ++r)
        for (int c = 0; c < DEMO_SIDE; ++c)
            canvas[r][c] = cli_uniform(rng, 0.0f, 0.25f);
    int dx = (int)cli_uniform(rng, 0.0f, 4.0f), dy = (int)cli_uniform(rng, 0.0f, 2.0f);
    for (int r = 0; r < 7; ++r)
        for (int c = 0; c < 5; ++c)
            if (glyphs[digit][r][c] == '#')
                canvas[r + dy][c + dx] = cli_uniform(rng, 0.6f, 1.0f);
    for (int r = 0; r < DEMO_SIDE; ++r)
        for (int c = 0; c < DEMO_SIDE; ++c) {
            float v = turned ? canvas[DEMO_SIDE - 1 - c][r] : canvas[r][c];
            if (cli_uniform(rng, 0.0f, 1.0f) < 0.03f) /* flipped pixels */
                v = 1.0f - v;
            out[r * DEMO_SIDE + c] = v;
        }
}

int demo_make_dataset(dataset *data, size_t count, int turned, uint64_t seed)
{
    memset(data, 0, sizeof *data);
    data->count = count;
    data->input_dtype = CLORA_DTYPE_F32;
    data->input_ndim = 1;
    data->input_shape[0] = DEMO_SIDE * DEMO_SIDE;
    data->input_width = DEMO_SIDE * DEMO_SIDE;
    data->inputs = malloc(count * data->input_width * sizeof(float));
    data->labels = malloc(count * sizeof *data->labels);
    data->label_width = 1;
    if (!data->inputs || !data->labels) {
        dataset_free(data);
        return 0;
    }
    uint64_t rng = seed;
    for (size_t i = 0; i < count; ++i) {
        int digit = (int)cli_uniform(&rng, 0.0f, 10.0f);
        digit = digit > 9 ? 9 : digit;
        data->labels[i] = digit;
        draw(digit, turned, &rng, (float *)data->inputs + i * data->input_width);
    }
    return 1;
}
