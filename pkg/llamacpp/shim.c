#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "shim.h"
#include "_cgo_export.h"

static bool ld_cb_eval(struct ggml_tensor *t, bool ask, void *user_data) {
    uintptr_t handle = (uintptr_t)user_data;
    if (ask) {
        return layerdiffWant(handle, (char *)t->name) != 0;
    }
    ld_node n;
    memset(&n, 0, sizeof(n));
    n.name = t->name;
    n.op = ggml_op_desc(t);
    n.type = (int32_t)t->type;
    for (int i = 0; i < 4; i++) { n.ne[i] = t->ne[i]; n.nb[i] = t->nb[i]; }
    for (int i = 0; i < GGML_MAX_SRC; i++) {
        if (t->src[i] == NULL) break;
        n.src[i] = t->src[i]->name;
        n.n_src = i + 1;
    }
    n.view_src = t->view_src ? t->view_src->name : NULL;
    n.view_offs = t->view_offs;
    n.is_view = t->view_src != NULL || t->op == GGML_OP_VIEW || t->op == GGML_OP_RESHAPE ||
                t->op == GGML_OP_PERMUTE || t->op == GGML_OP_TRANSPOSE;
    n.nbytes = ggml_nbytes(t);
    void *buf = NULL;
    if (t->buffer != NULL && t->data != NULL && n.nbytes > 0) {
        if (ggml_backend_buffer_is_host(t->buffer)) {
            buf = t->data;
        } else {
            buf = malloc(n.nbytes);
            if (buf != NULL) ggml_backend_tensor_get(t, buf, 0, n.nbytes);
        }
    }
    n.data = buf;
    int keep = layerdiffNode(handle, &n);
    if (buf != NULL && buf != t->data) free(buf);
    return keep != 0;
}

// ld_init_from_model creates a context whose eval callback reports to the
// Go state behind handle. The handle (a small integer) goes into the void*
// user data here, in C: a Go-side struct holding it would look to Go's
// stack copier like an invalid pointer.
struct llama_context *ld_init_from_model(struct llama_model *model, struct llama_context_params p, uintptr_t handle) {
    p.cb_eval = ld_cb_eval;
    p.cb_eval_user_data = (void *)handle;
    return llama_init_from_model(model, p);
}

int ld_eval(struct llama_context *ctx, const llama_token *tokens, int n_tokens, int n_batch, uintptr_t handle) {
    (void)handle;
    if (n_batch <= 0) n_batch = n_tokens;
    struct llama_batch batch = llama_batch_init(n_batch, 0, 1);
    int rc = 0;
    for (int start = 0; start < n_tokens && rc == 0; start += n_batch) {
        int n = n_tokens - start < n_batch ? n_tokens - start : n_batch;
        batch.n_tokens = n;
        for (int i = 0; i < n; i++) {
            batch.token[i] = tokens[start + i];
            batch.pos[i] = start + i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = 1;
        }
        rc = llama_decode(ctx, batch);
    }
    llama_batch_free(batch);
    return rc;
}

static bool ld_quiet = true;

// The error lines llama.cpp logged since ld_errors_clear, for Go's error
// messages (llama_model_load_from_file only returns NULL).
static char ld_err[2048];
static size_t ld_err_len;

void ld_errors_clear(void) {
    ld_err_len = 0;
    ld_err[0] = 0;
}

const char *ld_errors(void) { return ld_err; }

static void ld_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR && text != NULL) {
        size_t n = strlen(text);
        if (n > sizeof ld_err - 1 - ld_err_len) n = sizeof ld_err - 1 - ld_err_len;
        memcpy(ld_err + ld_err_len, text, n);
        ld_err_len += n;
        ld_err[ld_err_len] = 0;
    }
    if (ld_quiet && level != GGML_LOG_LEVEL_ERROR) return;
    fputs(text, stderr);
}

void ld_log_quiet(bool quiet) {
    ld_quiet = quiet;
    llama_log_set(ld_log, NULL);
}

// ld_extra_bufts stores in names (up to cap) the names of the CPU device's
// extra buffer types, asked as llama.cpp's make_cpu_buft_list asks, and
// returns how many there are.
int ld_extra_bufts(const char **names, int cap) {
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_reg_t reg = cpu ? ggml_backend_dev_backend_reg(cpu) : NULL;
    void *fn = reg ? ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts") : NULL;
    if (fn == NULL) {
        return 0;
    }
    ggml_backend_dev_get_extra_bufts_t get;
    memcpy(&get, &fn, sizeof get);
    ggml_backend_buffer_type_t *bufts = get(cpu);
    int n = 0;
    for (; bufts != NULL && bufts[n] != NULL; n++) {
        if (n < cap) {
            const char *name = ggml_backend_buft_name(bufts[n]);
            names[n] = name ? name : "";
        }
    }
    return n;
}
