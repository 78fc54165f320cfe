// imatrix.h declares the importance-matrix layer (imatrix.cpp): collecting
// one from llama.cpp's eval callback as llama-imatrix does, and quantizing
// a model with one (llama_model_quantize_params.imatrix is a C++
// std::unordered_map<std::string, std::vector<float>>).
#ifndef LAYERDIFF_IMATRIX_H
#define LAYERDIFF_IMATRIX_H

#include <stdint.h>
#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ld_imatrix ld_imatrix;

ld_imatrix *ld_imatrix_new(void);
void ld_imatrix_free(ld_imatrix *im);

// ld_imatrix_collect evaluates tokens (one batch, every position an output,
// as llama-imatrix asks) on model and adds, for
// every MUL_MAT whose weight is named "blk.*", the squares of src1's values
// per column to the sums and the rows to the counts. Returns llama_decode's
// result, or -1 when no context could be made.
int ld_imatrix_collect(struct llama_model *model, const llama_token *tokens, int n_tokens, int threads, ld_imatrix *im);

// The entries, in no particular order: name, length, and the per-column
// means sum/count (ld_imatrix_means writes len floats).
int ld_imatrix_count(const ld_imatrix *im);
const char *ld_imatrix_name(const ld_imatrix *im, int i);
int64_t ld_imatrix_len(const ld_imatrix *im, int i);
void ld_imatrix_means(const ld_imatrix *im, int i, float *dst);

// ld_quantize runs llama_model_quantize with p and, when n > 0, the
// importance matrix of the n weights names[i] (values[i], lens[i] floats).
uint32_t ld_quantize(const char *in, const char *out, const struct llama_model_quantize_params *p,
                     const char **names, const float **values, const int64_t *lens, int n);

#ifdef __cplusplus
}
#endif

#endif
