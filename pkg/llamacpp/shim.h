// shim.h declares the small C layer between Go and llama.cpp. It uses only
// the public llama.h / ggml.h / ggml-backend.h API, so it compiles against any
// llama.cpp build (CPU, CUDA, Metal).
#ifndef LAYERDIFF_SHIM_H
#define LAYERDIFF_SHIM_H

#include <stdbool.h>
#include <stdint.h>
#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"

// ld_node describes one computed graph node handed to Go.
typedef struct {
    const char *name;
    const char *op;       // ggml_op_desc: includes unary / GLU sub-op
    int32_t     type;     // enum ggml_type
    int64_t     ne[4];
    size_t      nb[4];
    const char *src[GGML_MAX_SRC];
    int         n_src;
    const char *view_src; // name of view source, or NULL
    size_t      view_offs;
    bool        is_view;  // op is VIEW/RESHAPE/PERMUTE/TRANSPOSE or has view_src
    void       *data;     // host copy of the nbytes bytes of the tensor
    size_t      nbytes;
} ld_node;

// ld_eval runs tokens through ctx with every position requested as output,
// calling back into Go (layerdiffNode) for each computed node.
int ld_eval(struct llama_context *ctx, const llama_token *tokens, int n_tokens, int n_batch, uintptr_t handle);

// ld_init_from_model creates a context with the eval callback installed.
struct llama_context *ld_init_from_model(struct llama_model *model, struct llama_context_params p, uintptr_t handle);

void ld_log_quiet(bool quiet);
void ld_errors_clear(void);
const char *ld_errors(void);

// ld_extra_bufts stores in names (up to cap) the names of the CPU device's
// extra buffer types and returns how many there are.
int ld_extra_bufts(const char **names, int cap);

#endif
