/* tensor_diff.c — for the command-line checks: the largest |a - b| over the
 * tensors two safetensors files share by name, printed; exit status 0 when
 * it is at most TOL and both files hold the same tensors of the same
 * shapes, 1 otherwise, 2 on a file that does not read.
 *   tensor_diff A B TOL */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clora/clora.h"

static clora_safetensors *open_or_die(const char *path)
{
    clora_safetensors *file = NULL;
    if (clora_safetensors_open(&file, path) != CLORA_OK) {
        fprintf(stderr, "tensor_diff: %s\n", clora_last_error());
        exit(2);
    }
    return file;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: tensor_diff A B TOL\n");
        return 2;
    }
    clora_safetensors *a = open_or_die(argv[1]), *b = open_or_die(argv[2]);
    const double tol = strtod(argv[3], NULL);
    int same = clora_safetensors_count(a) == clora_safetensors_count(b);
    double most = 0.0;
    const char *where = "";
    for (size_t i = 0; same && i < clora_safetensors_count(a); ++i) {
        clora_tensor_view va, vb;
        clora_safetensors_get(a, i, &va);
        same = clora_safetensors_find(b, va.name, &vb) == CLORA_OK && va.numel == vb.numel &&
               va.ndim == vb.ndim;
        for (size_t d = 0; same && d < va.ndim; ++d)
            same = va.shape[d] == vb.shape[d];
        float *x = same ? malloc((va.numel + 1) * sizeof *x) : NULL;
        float *y = same ? malloc((va.numel + 1) * sizeof *y) : NULL;
        same = same && x && y && clora_tensor_to_f32(&va, x) == CLORA_OK &&
               clora_tensor_to_f32(&vb, y) == CLORA_OK;
        for (size_t k = 0; same && k < va.numel; ++k)
            if (!(fabs((double)x[k] - (double)y[k]) <= most)) {
                most = fabs((double)x[k] - (double)y[k]);
                where = va.name;
            }
        free(x);
        free(y);
        if (!same)
            fprintf(stderr, "tensor_diff: %s and %s hold different tensors (%s)\n", argv[1],
                    argv[2], va.name);
    }
    if (same)
        printf("largest difference %.3g (%s)\n", most, where);
    clora_safetensors_close(a);
    clora_safetensors_close(b);
    return same && most <= tol ? 0 : 1;
}
