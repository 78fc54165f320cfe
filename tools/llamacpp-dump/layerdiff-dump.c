/*
 * layerdiff-dump.c - dump every activation llama.cpp computes for a prompt.
 *
 * Loads a GGUF model in your own llama.cpp build (CPU, CUDA, Metal, ...),
 * evaluates a prompt with every position requested as an output, and writes
 * the full tensor of every graph node into a directory in the layerdiff dump
 * format (docs/dump-format.md in the layerdiff repository): manifest.json
 * plus one .npy file per stored node. `layerdiff` then compares such a dump
 * with any other engine's activations.
 *
 * It is one C11 file that uses only the public API of llama.h, ggml.h and
 * ggml-backend.h, so it builds against any llama.cpp build tree:
 *
 *   cc -O2 -std=c11 layerdiff-dump.c -I$LLAMA/include -I$LLAMA/ggml/include \
 *      -L$LLAMA/build/bin -Wl,-rpath,$LLAMA/build/bin \
 *      -lllama -lggml -lggml-base -o layerdiff-dump
 *
 * Optional compile-time definitions recorded in the manifest:
 *   -DLAYERDIFF_LLAMACPP_COMMIT='"abc1234"'  llama.cpp commit of the build
 *   -DLAYERDIFF_LLAMACPP_SOURCE='"..."'      where that llama.cpp came from
 *
 * The output is the same as `layerdiff dump` writes for the same model,
 * tokens and settings (same node keys, file names, deduplication, statistics
 * and bytes); tools/llamacpp-dump/README.md explains the details.
 *
 * Do not compile with -ffast-math: the statistics must add up in float32
 * exactly as llama.cpp's eval callback does.
 */

#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* fsync, lstat, opendir, sysconf */
#endif
#if defined(__MINGW32__) && !defined(__USE_MINGW_ANSI_STDIO)
#define __USE_MINGW_ANSI_STDIO 1 /* C99 printf (%zu, %lld) on MinGW */
#endif

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <direct.h>
#include <io.h>
#include <windows.h>
#else
#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#endif

#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"

#if defined(__FAST_MATH__)
#error "layerdiff-dump.c must not be compiled with -ffast-math (float32 sums must be sequential)"
#endif

#ifndef LAYERDIFF_LLAMACPP_COMMIT
#define LAYERDIFF_LLAMACPP_COMMIT ""
#endif
#ifndef LAYERDIFF_LLAMACPP_SOURCE
#define LAYERDIFF_LLAMACPP_SOURCE ""
#endif

/* Written to the manifest's layerdiff_version: this tool's name and version. */
#define LD_TOOL_VERSION "layerdiff-dump.c 3"

#define LD_FORMAT_NAME "layerdiff-dump"
#define LD_FORMAT_VERSION 1
#define LD_MANIFEST "manifest.json"

#if defined(__MINGW32__) && defined(__MINGW_PRINTF_FORMAT)
#define LD_PRINTF(f, a) __attribute__((format(__MINGW_PRINTF_FORMAT, f, a)))
#elif defined(__GNUC__) || defined(__clang__)
#define LD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LD_PRINTF(f, a)
#endif

/* ------------------------------------------------------------------------ */
/* Errors and memory                                                         */
/* ------------------------------------------------------------------------ */

/* ld_err holds the first error of an operation, as a message for the user. */
typedef struct {
    char msg[1024];
} ld_err;

/* ld_fail records a message in e (unless one is already there) and returns
 * false, so that `return ld_fail(e, ...)` reports and fails in one step. */
static bool ld_fail(ld_err *e, const char *fmt, ...) LD_PRINTF(2, 3);
static bool ld_fail(ld_err *e, const char *fmt, ...) {
    if (e->msg[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        if (e->msg[0] == '\0') {
            snprintf(e->msg, sizeof e->msg, "unknown error");
        }
    }
    return false;
}

/* ld_wrap puts a formatted prefix before the message in e. */
static void ld_wrap(ld_err *e, const char *fmt, ...) LD_PRINTF(2, 3);
static void ld_wrap(ld_err *e, const char *fmt, ...) {
    char msg[512 + sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, 512, fmt, ap);
    va_end(ap);
    size_t a = strlen(msg), b = strlen(e->msg);
    memcpy(msg + a, e->msg, b + 1);
    size_t n = a + b < sizeof e->msg ? a + b : sizeof e->msg - 1;
    memcpy(e->msg, msg, n);
    e->msg[n] = '\0';
}

/* ld_mul reports whether a*b fits a size_t, storing it in *out. */
static bool ld_mul(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) {
        return false;
    }
    *out = a * b;
    return true;
}

/* ld_reserve grows *buf (of *cap elements of size elem) to hold need elements. */
static bool ld_reserve(void **buf, size_t *cap, size_t need, size_t elem, ld_err *e, const char *what) {
    if (need <= *cap) {
        return true;
    }
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    }
    size_t bytes;
    if (!ld_mul(ncap, elem, &bytes)) {
        return ld_fail(e, "%s: %zu elements of %zu bytes do not fit in memory", what, need, elem);
    }
    void *p = realloc(*buf, bytes);
    if (p == NULL) {
        return ld_fail(e, "%s: out of memory allocating %zu bytes", what, bytes);
    }
    *buf = p;
    *cap = ncap;
    return true;
}

static char *ld_strdup(const char *s, ld_err *e) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p == NULL) {
        ld_fail(e, "out of memory copying a %zu-byte string", n);
        return NULL;
    }
    memcpy(p, s, n);
    return p;
}

/* ld_join returns the newly allocated path dir/name. */
static char *ld_join(const char *dir, const char *name, ld_err *e) {
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (p == NULL) {
        ld_fail(e, "out of memory building a path");
        return NULL;
    }
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* to_little_endian byte-swaps n elements of size elsize in place on a
 * big-endian host (.npy files are written little-endian). */
static void to_little_endian(unsigned char *p, size_t n, size_t elsize) {
    if (host_is_little_endian() || elsize < 2) {
        return;
    }
    for (size_t i = 0; i < n; i++, p += elsize) {
        for (size_t a = 0, b = elsize - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* SHA-256 (FIPS 180-4)                                                      */
/* ------------------------------------------------------------------------ */

typedef struct {
    uint32_t h[8];
    uint64_t nbytes;
    unsigned char block[64];
    size_t nblock;
} sha256_ctx;

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr32(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_init(sha256_ctx *c) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->nbytes = 0;
    c->nblock = 0;
}

/* sha256_compress processes one 64-byte block. */
static void sha256_compress(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr32(w[i - 15], 7) ^ rotr32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr32(w[i - 2], 17) ^ rotr32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25)) + ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
        uint32_t t2 = (rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

static void sha256_update(sha256_ctx *c, const void *data, size_t n) {
    const unsigned char *p = data;
    c->nbytes += n;
    if (c->nblock > 0) {
        size_t take = 64 - c->nblock < n ? 64 - c->nblock : n;
        memcpy(c->block + c->nblock, p, take);
        c->nblock += take;
        p += take;
        n -= take;
        if (c->nblock < 64) {
            return;
        }
        sha256_compress(c->h, c->block);
        c->nblock = 0;
    }
    for (; n >= 64; p += 64, n -= 64) {
        sha256_compress(c->h, p);
    }
    memcpy(c->block, p, n);
    c->nblock = n;
}

static void sha256_final(sha256_ctx *c, unsigned char out[32]) {
    uint64_t bits = c->nbytes * 8;
    unsigned char pad[72] = {0x80};
    size_t npad = (c->nblock < 56 ? 56 : 120) - c->nblock;
    for (int i = 0; i < 8; i++) {
        pad[npad + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
    }
    sha256_update(c, pad, npad + 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(c->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)c->h[i];
    }
}

static void hex_encode(const unsigned char *p, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* file_sha256 hashes a whole file: hex digest into hex (65 bytes) and its size. */
static bool file_sha256(const char *path, char hex[65], uint64_t *size, ld_err *e) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return ld_fail(e, "opening %s: %s", path, strerror(errno));
    }
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (buf == NULL) {
        fclose(f);
        return ld_fail(e, "hashing %s: out of memory", path);
    }
    sha256_ctx c;
    sha256_init(&c);
    size_t n;
    while ((n = fread(buf, 1, CHUNK, f)) > 0) {
        sha256_update(&c, buf, n);
    }
    bool ok = !ferror(f);
    free(buf);
    fclose(f);
    if (!ok) {
        return ld_fail(e, "hashing %s: read error after %" PRIu64 " bytes", path, c.nbytes);
    }
    *size = c.nbytes;
    unsigned char digest[32];
    sha256_final(&c, digest);
    hex_encode(digest, 32, hex);
    return true;
}

/* ------------------------------------------------------------------------ */
/* UTF-8, JSON and a growable string buffer                                  */
/* ------------------------------------------------------------------------ */

/* utf8_rune_len returns the length (1-4) of the valid UTF-8 sequence at s (of
 * n bytes), or 0 if it is not valid UTF-8 (a stray continuation byte, an
 * overlong form, a surrogate, a code point past U+10FFFF, or a truncated
 * sequence). These are the rules of Go's unicode/utf8, which layerdiff's file
 * names and JSON follow: an invalid byte counts as one character. */
static size_t utf8_rune_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) {
        return 1;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0xC2) {
        return 0;
    } else if (c < 0xE0) {
        need = 2;
    } else if (c < 0xF0) {
        need = 3;
        if (c == 0xE0) {
            lo = 0xA0;
        } else if (c == 0xED) {
            hi = 0x9F;
        }
    } else if (c < 0xF5) {
        need = 4;
        if (c == 0xF0) {
            lo = 0x90;
        } else if (c == 0xF4) {
            hi = 0x8F;
        }
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) {
            return 0;
        }
    }
    return need;
}

/* sbuf is a growable NUL-terminated string; after an allocation failure it
 * stops growing and sets oom. */
typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->oom) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->len + n + 1) {
            ncap *= 2;
        }
        char *p = realloc(b->p, ncap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) LD_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        sb_putn(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_putn(b, big, (size_t)n);
    free(big);
}

/* sb_json_strn writes the n bytes at s as a JSON string. Invalid UTF-8 bytes
 * become U+FFFD, as Go's encoder writes them. */
static void sb_json_strn(sbuf *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    sb_putn(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_putn(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': sb_puts(b, "\\n"); break;
            case '\r': sb_puts(b, "\\r"); break;
            case '\t': sb_puts(b, "\\t"); break;
            default: sb_printf(b, "\\u%04x", c); break;
            }
            i++;
        } else if (c < 0x80) {
            sb_putn(b, (const char *)p + i, 1);
            i++;
        } else {
            size_t k = utf8_rune_len(p + i, n - i);
            if (k == 0) {
                sb_puts(b, "\\ufffd");
                i++;
            } else {
                sb_putn(b, (const char *)p + i, k);
                i += k;
            }
        }
    }
    sb_putn(b, "\"", 1);
}

static void sb_json_str(sbuf *b, const char *s) { sb_json_strn(b, s, strlen(s)); }

/* sb_json_nonfinite writes NaN and infinities as the strings layerdiff's
 * readers accept (JSON numbers cannot express them); it returns false for a
 * finite v. */
static bool sb_json_nonfinite(sbuf *b, double v) {
    if (isnan(v)) {
        sb_puts(b, "\"NaN\"");
    } else if (isinf(v)) {
        sb_puts(b, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    } else {
        return false;
    }
    return true;
}

/* sb_json_shortest writes the shortest decimal that reads back as exactly v
 * (as exactly the float v when is_float), without an exponent when
 * 1e-6 <= |v| < 1e21, as Go's encoding/json does. */
static void sb_json_shortest(sbuf *b, double v, bool is_float) {
    if (sb_json_nonfinite(b, v)) {
        return;
    }
    char buf[48];
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
        if (is_float ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v) {
            break;
        }
    }
    snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
    const char *ep = strchr(buf, 'e');
    int exp10 = ep != NULL ? atoi(ep + 1) : 0;
    if (ep == NULL || exp10 < -6 || exp10 >= 21) {
        sb_puts(b, buf);
        return;
    }
    /* The same digits in fixed notation: "-d.ddde+X" -> "-ddd.d" or "-0.000ddd". */
    char digits[24];
    int nd = 0;
    for (const char *p = buf; p < ep; p++) {
        if (*p >= '0' && *p <= '9' && nd < (int)sizeof digits) {
            digits[nd++] = *p;
        }
    }
    if (buf[0] == '-') {
        sb_puts(b, "-");
    }
    if (exp10 < 0) {
        sb_puts(b, "0.");
        for (int i = 0; i < -exp10 - 1; i++) {
            sb_puts(b, "0");
        }
        sb_putn(b, digits, (size_t)nd);
        return;
    }
    for (int i = 0; i <= exp10; i++) {
        sb_putn(b, i < nd ? &digits[i] : "0", 1);
    }
    if (nd > exp10 + 1) {
        sb_puts(b, ".");
        sb_putn(b, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
    }
}

static void sb_json_f64(sbuf *b, double v) { sb_json_shortest(b, v, false); }
static void sb_json_f32(sbuf *b, float v) { sb_json_shortest(b, v, true); }

/* ------------------------------------------------------------------------ */
/* String map                                                                */
/* ------------------------------------------------------------------------ */

/* strmap maps strings to longs (open addressing, FNV-1a). */
typedef struct {
    char *key;
    long val;
} sm_entry;

typedef struct {
    sm_entry *e;
    size_t cap, len; /* cap is 0 or a power of two */
} strmap;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h;
}

static sm_entry *sm_slot(sm_entry *e, size_t cap, const char *key) {
    size_t i = (size_t)fnv1a(key) & (cap - 1);
    while (e[i].key != NULL && strcmp(e[i].key, key) != 0) {
        i = (i + 1) & (cap - 1);
    }
    return &e[i];
}

/* sm_get returns the entry for key, or NULL. */
static sm_entry *sm_get(strmap *m, const char *key) {
    if (m->cap == 0) {
        return NULL;
    }
    sm_entry *s = sm_slot(m->e, m->cap, key);
    return s->key ? s : NULL;
}

/* sm_put returns the entry for key, adding it with value 0 if absent. */
static sm_entry *sm_put(strmap *m, const char *key, ld_err *err) {
    if (2 * (m->len + 1) > m->cap) {
        size_t ncap = m->cap ? 2 * m->cap : 64;
        sm_entry *ne = calloc(ncap, sizeof *ne);
        if (ne == NULL) {
            ld_fail(err, "out of memory growing a table to %zu entries", ncap);
            return NULL;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->e[i].key != NULL) {
                *sm_slot(ne, ncap, m->e[i].key) = m->e[i];
            }
        }
        free(m->e);
        m->e = ne;
        m->cap = ncap;
    }
    sm_entry *s = sm_slot(m->e, m->cap, key);
    if (s->key == NULL) {
        s->key = ld_strdup(key, err);
        if (s->key == NULL) {
            return NULL;
        }
        s->val = 0;
        m->len++;
    }
    return s;
}

static void sm_free(strmap *m) {
    for (size_t i = 0; i < m->cap; i++) {
        free(m->e[i].key);
    }
    free(m->e);
    m->e = NULL;
    m->cap = m->len = 0;
}

/* ------------------------------------------------------------------------ */
/* GGUF metadata (for the manifest's hparams)                                */
/* ------------------------------------------------------------------------ */

/* GGUF value types (gguf.h, GGUF_TYPE_*). */
enum {
    GV_UINT8, GV_INT8, GV_UINT16, GV_INT16, GV_UINT32, GV_INT32, GV_FLOAT32,
    GV_BOOL, GV_STRING, GV_ARRAY, GV_UINT64, GV_INT64, GV_FLOAT64, GV_COUNT
};

/* LD_KEY_ALIGNMENT is the metadata key that sets the data alignment
 * (GGUF_KEY_GENERAL_ALIGNMENT); LD_DEFAULT_ALIGNMENT applies without it. */
#define LD_KEY_ALIGNMENT "general.alignment"
#define LD_DEFAULT_ALIGNMENT 32

/* Encoded size of a scalar GGUF value; 0 for strings and arrays. */
static const size_t gv_size[GV_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* Names of the GGUF value types, for messages. */
static const char *const gv_name[GV_COUNT] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                               "bool", "string", "array", "u64", "i64", "f64"};

/* gguf_kv is one scalar metadata value (arrays are skipped). */
typedef struct {
    char *key;   /* NUL-terminated, but may hold NUL bytes: see key_len */
    size_t key_len;
    int type;
    uint64_t u;  /* unsigned types */
    int64_t i;   /* signed types */
    double f;    /* GV_FLOAT64 */
    float f32;   /* GV_FLOAT32 */
    bool b;      /* GV_BOOL */
    char *s;     /* GV_STRING, s_len bytes */
    size_t s_len;
} gguf_kv;

/* gguf_meta is what gguf_read_meta keeps of a GGUF header: the scalar
 * metadata, and where the tensor infos that follow the metadata start. */
typedef struct {
    gguf_kv *kv;
    size_t n, cap;
    uint64_t n_tensors;   /* tensor count from the header */
    uint64_t tensors_off; /* file offset of the first tensor info */
    size_t n_alignment;   /* entries keyed general.alignment, of any type */
} gguf_meta;

/* gguf_reader reads a GGUF header sequentially, checking every length
 * against the bytes left in the file. Values are in host byte order, as
 * ggml reads them. */
typedef struct {
    FILE *f;
    const char *path;
    uint64_t off, size;
    ld_err *e;
} gguf_reader;

static bool gr_read(gguf_reader *r, void *dst, size_t n) {
    if (n > r->size - r->off || fread(dst, 1, n, r->f) != n) {
        return ld_fail(r->e, "%s: unexpected end of file reading %zu bytes at offset %" PRIu64, r->path, n, r->off);
    }
    r->off += n;
    return true;
}

static bool gr_skip(gguf_reader *r, uint64_t n) {
    unsigned char buf[4096];
    if (n > r->size - r->off) {
        return ld_fail(r->e, "%s: a value of %" PRIu64 " bytes at offset %" PRIu64 " runs past the end of the file", r->path, n, r->off);
    }
    while (n > 0) {
        size_t k = n < sizeof buf ? (size_t)n : sizeof buf;
        if (!gr_read(r, buf, k)) {
            return false;
        }
        n -= k;
    }
    return true;
}

static bool gr_u32(gguf_reader *r, uint32_t *v) { return gr_read(r, v, sizeof *v); }
static bool gr_u64(gguf_reader *r, uint64_t *v) { return gr_read(r, v, sizeof *v); }

/* gr_string reads a GGUF string (u64 length, bytes) into a new NUL-terminated
 * buffer of *len bytes (the string itself may hold NUL bytes). */
static bool gr_string(gguf_reader *r, char **out, size_t *len) {
    uint64_t n;
    uint64_t at = r->off;
    if (!gr_u64(r, &n)) {
        return false;
    }
    if (n > r->size - r->off || n >= SIZE_MAX) {
        return ld_fail(r->e, "%s: string of %" PRIu64 " bytes at offset %" PRIu64 " runs past the end of the file", r->path, n, at);
    }
    char *s = malloc((size_t)n + 1);
    if (s == NULL) {
        return ld_fail(r->e, "%s: out of memory reading a %" PRIu64 "-byte string", r->path, n);
    }
    if (!gr_read(r, s, (size_t)n)) {
        free(s);
        return false;
    }
    s[n] = '\0';
    *out = s;
    *len = (size_t)n;
    return true;
}

static void gguf_meta_free(gguf_meta *m) {
    for (size_t i = 0; i < m->n; i++) {
        free(m->kv[i].key);
        free(m->kv[i].s);
    }
    free(m->kv);
    memset(m, 0, sizeof *m);
}

/* gguf_read_meta reads the scalar metadata of a GGUF v2/v3 file of size
 * bytes, and notes the tensor count and where the tensor infos start. */
static bool gguf_read_meta(const char *path, uint64_t size, gguf_meta *m, ld_err *e) {
    gguf_reader r = {fopen(path, "rb"), path, 0, size, e};
    if (r.f == NULL) {
        return ld_fail(e, "opening %s: %s", path, strerror(errno));
    }
    bool ok = false;
    char magic[4];
    uint32_t version;
    uint64_t n_tensors, n_kv;
    if (!gr_read(&r, magic, 4) || !gr_u32(&r, &version) || !gr_u64(&r, &n_tensors) || !gr_u64(&r, &n_kv)) {
        goto done;
    }
    if (memcmp(magic, "GGUF", 4) != 0) {
        ld_fail(e, "%s: not a GGUF file (magic %02x %02x %02x %02x)", path,
                (unsigned char)magic[0], (unsigned char)magic[1], (unsigned char)magic[2], (unsigned char)magic[3]);
        goto done;
    }
    if (version < 2 || version > 3) {
        ld_fail(e, "%s: GGUF version %" PRIu32 " is not supported (2 and 3 are)", path, version);
        goto done;
    }
    /* Each KV takes at least 8 (key length) + 4 (type) + 1 bytes. */
    if (n_kv > (size - r.off) / 13) {
        ld_fail(e, "%s: %" PRIu64 " metadata entries cannot fit in the file", path, n_kv);
        goto done;
    }
    for (uint64_t k = 0; k < n_kv; k++) {
        gguf_kv kv;
        memset(&kv, 0, sizeof kv);
        uint32_t type;
        uint64_t at = r.off;
        if (!gr_string(&r, &kv.key, &kv.key_len)) {
            goto done;
        }
        if (!gr_u32(&r, &type)) {
            free(kv.key);
            goto done;
        }
        if (kv.key_len == sizeof LD_KEY_ALIGNMENT - 1 && memcmp(kv.key, LD_KEY_ALIGNMENT, kv.key_len) == 0) {
            m->n_alignment++;
        }
        if (type >= GV_COUNT) {
            ld_fail(e, "%s: metadata entry %" PRIu64 " %s at offset %" PRIu64 " has unknown type %" PRIu32, path, k, kv.key, at, type);
            free(kv.key);
            goto done;
        }
        kv.type = (int)type;
        bool keep = true;
        if (type == GV_ARRAY) {
            keep = false;
            uint32_t et;
            uint64_t count;
            if (!gr_u32(&r, &et) || !gr_u64(&r, &count)) {
                free(kv.key);
                goto done;
            }
            if (et >= GV_COUNT || et == GV_ARRAY) {
                ld_fail(e, "%s: metadata array %s has element type %" PRIu32 ", which ggml does not read", path, kv.key, et);
                free(kv.key);
                goto done;
            }
            if (et == GV_STRING) {
                if (count > (size - r.off) / 8) {
                    ld_fail(e, "%s: string array %s of %" PRIu64 " entries cannot fit in the file", path, kv.key, count);
                    free(kv.key);
                    goto done;
                }
                for (uint64_t j = 0; j < count; j++) {
                    uint64_t len;
                    if (!gr_u64(&r, &len) || !gr_skip(&r, len)) {
                        free(kv.key);
                        goto done;
                    }
                }
            } else {
                if (count > (size - r.off) / gv_size[et]) {
                    ld_fail(e, "%s: array %s of %" PRIu64 " entries cannot fit in the file", path, kv.key, count);
                    free(kv.key);
                    goto done;
                }
                if (!gr_skip(&r, count * gv_size[et])) {
                    free(kv.key);
                    goto done;
                }
            }
        } else if (type == GV_STRING) {
            if (!gr_string(&r, &kv.s, &kv.s_len)) {
                free(kv.key);
                goto done;
            }
        } else {
            unsigned char v[8];
            if (!gr_read(&r, v, gv_size[type])) {
                free(kv.key);
                goto done;
            }
            switch (type) {
            case GV_UINT8: kv.u = v[0]; break;
            case GV_INT8: { int8_t x; memcpy(&x, v, 1); kv.i = x; break; }
            case GV_UINT16: { uint16_t x; memcpy(&x, v, 2); kv.u = x; break; }
            case GV_INT16: { int16_t x; memcpy(&x, v, 2); kv.i = x; break; }
            case GV_UINT32: { uint32_t x; memcpy(&x, v, 4); kv.u = x; break; }
            case GV_INT32: { int32_t x; memcpy(&x, v, 4); kv.i = x; break; }
            case GV_FLOAT32: memcpy(&kv.f32, v, 4); break;
            case GV_BOOL: kv.b = v[0] != 0; break;
            case GV_UINT64: memcpy(&kv.u, v, 8); break;
            case GV_INT64: memcpy(&kv.i, v, 8); break;
            case GV_FLOAT64: memcpy(&kv.f, v, 8); break;
            }
        }
        if (!keep) {
            free(kv.key);
            continue;
        }
        if (!ld_reserve((void **)&m->kv, &m->cap, m->n + 1, sizeof *m->kv, e, "GGUF metadata")) {
            free(kv.key);
            free(kv.s);
            goto done;
        }
        m->kv[m->n++] = kv;
    }
    m->n_tensors = n_tensors;
    m->tensors_off = r.off;
    ok = true;
done:
    fclose(r.f);
    return ok;
}

/* key_is reports whether the metadata key of kv is exactly key. */
static bool key_is(const gguf_kv *kv, const char *key) {
    return kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0;
}

static const gguf_kv *gguf_find(const gguf_meta *m, const char *key) {
    for (size_t i = 0; i < m->n; i++) {
        if (key_is(&m->kv[i], key)) {
            return &m->kv[i];
        }
    }
    return NULL;
}

static void sb_json_gguf_value(sbuf *b, const gguf_kv *kv) {
    switch (kv->type) {
    case GV_UINT8: case GV_UINT16: case GV_UINT32: case GV_UINT64:
        sb_printf(b, "%" PRIu64, kv->u);
        break;
    case GV_INT8: case GV_INT16: case GV_INT32: case GV_INT64:
        sb_printf(b, "%" PRId64, kv->i);
        break;
    case GV_FLOAT32: sb_json_f32(b, kv->f32); break;
    case GV_FLOAT64: sb_json_f64(b, kv->f); break;
    case GV_BOOL: sb_puts(b, kv->b ? "true" : "false"); break;
    case GV_STRING: sb_json_strn(b, kv->s, kv->s_len); break;
    default: sb_puts(b, "null"); break;
    }
}

static int cmp_kv_ptr(const void *a, const void *b) {
    const gguf_kv *x = *(const gguf_kv *const *)a, *y = *(const gguf_kv *const *)b;
    int c = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);
    return c != 0 ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* sb_json_hparams writes the hparams object: the scalar metadata of the
 * architecture ("<arch>.*" keys) and general.file_type, sorted by key. */
static bool sb_json_hparams(sbuf *b, const gguf_meta *m, const char *arch, size_t la, ld_err *e) {
    const gguf_kv **sel = malloc((m->n ? m->n : 1) * sizeof *sel);
    if (sel == NULL) {
        return ld_fail(e, "out of memory listing hyperparameters");
    }
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++) {
        const gguf_kv *kv = &m->kv[i];
        if ((kv->key_len > la && memcmp(kv->key, arch, la) == 0 && kv->key[la] == '.') || key_is(kv, "general.file_type")) {
            sel[n++] = &m->kv[i];
        }
    }
    qsort(sel, n, sizeof *sel, cmp_kv_ptr);
    sb_puts(b, "{");
    for (size_t i = 0; i < n; i++) {
        sb_puts(b, i ? ",\n      " : "\n      ");
        sb_json_strn(b, sel[i]->key, sel[i]->key_len);
        sb_puts(b, ": ");
        sb_json_gguf_value(b, sel[i]);
    }
    sb_puts(b, n ? "\n    }" : "}");
    free(sel);
    return true;
}

/* ------------------------------------------------------------------------ */
/* Model fingerprint (reference.ModelFingerprint)                            */
/* ------------------------------------------------------------------------ */

/* LD_FP_VERSION prefixes every fingerprint (reference.FingerprintVersion);
 * LD_FP_SAMPLE is the size of each data sample (reference.FingerprintSample). */
#define LD_FP_VERSION "v1"
#define LD_FP_SAMPLE 4096
/* LD_FP_LEN is the size of a fingerprint string: "v1:", 64 hex digits, NUL. */
#define LD_FP_LEN (sizeof LD_FP_VERSION + 1 + 64)
/* LD_MAX_NAME is the longest tensor name ggml accepts (GGML_MAX_NAME - 1,
 * model.MaxTensorNameLen). */
#define LD_MAX_NAME 63
/* LD_MIN_TENSOR_INFO is the fewest bytes a tensor info takes: name length,
 * n_dims, one ne, type, offset. */
#define LD_MIN_TENSOR_INFO (8 + 4 + 8 + 4 + 8)

/* ld_seek positions f at the absolute byte offset off. */
static bool ld_seek(FILE *f, uint64_t off) {
#ifdef _WIN32
    if (off > (uint64_t)INT64_MAX) {
        return false;
    }
    return _fseeki64(f, (__int64)off, SEEK_SET) == 0;
#else
    off_t o = (off_t)off;
    if (o < 0 || (uint64_t)o != off) {
        errno = EOVERFLOW;
        return false;
    }
    return fseeko(f, o, SEEK_SET) == 0;
#endif
}

/* ld_file_size returns in *size the size of the regular file at path. */
static bool ld_file_size(const char *path, uint64_t *size, ld_err *e) {
#ifdef _WIN32
    WIN32_FILE_ATTRIBUTE_DATA fa;
    if (!GetFileAttributesExA(path, GetFileExInfoStandard, &fa)) {
        return ld_fail(e, "opening %s: cannot read its attributes (error %lu)", path, (unsigned long)GetLastError());
    }
    if (fa.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) {
        return ld_fail(e, "%s is a directory, not a GGUF file", path);
    }
    *size = (uint64_t)fa.nFileSizeHigh << 32 | fa.nFileSizeLow;
#else
    struct stat st;
    if (stat(path, &st) != 0) {
        return ld_fail(e, "opening %s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return ld_fail(e, "%s is %s, not a GGUF file", path, S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
    }
    if (st.st_size < 0) {
        return ld_fail(e, "%s: negative file size", path);
    }
    *size = (uint64_t)st.st_size;
#endif
    return true;
}

/* fp_tensor is one tensor info as the fingerprint hashes it. */
typedef struct {
    char name[LD_MAX_NAME + 1];
    size_t name_len;
    uint32_t n_dims;
    int64_t ne[4];
    uint32_t type;
    uint64_t offset; /* relative to the data section */
    uint64_t nbytes; /* ggml_nbytes, without padding */
    uint64_t at;     /* file offset of the info record, for errors */
} fp_tensor;

/* fp_quote writes the n bytes of s as a C string for messages: printable
 * ASCII as is, other bytes as \xNN. out holds at least 4 * n + 1 bytes. */
static void fp_quote(const char *s, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *out++ = (char)c;
        } else {
            *out++ = '\\';
            *out++ = 'x';
            *out++ = digits[c >> 4];
            *out++ = digits[c & 15];
        }
    }
    *out = '\0';
}

/* fp_tensor_fail records a message about tensor i of the file r reads and
 * returns false. */
static bool fp_tensor_fail(gguf_reader *r, uint64_t i, const fp_tensor *t, const char *fmt, ...) LD_PRINTF(4, 5);
static bool fp_tensor_fail(gguf_reader *r, uint64_t i, const fp_tensor *t, const char *fmt, ...) {
    char what[512], quoted[4 * LD_MAX_NAME + 1] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (t->name_len == 0) {
        return ld_fail(r->e, "model fingerprint: %s: tensor %" PRIu64 " (info at offset 0x%" PRIx64 "): %s", r->path, i, t->at, what);
    }
    fp_quote(t->name, t->name_len, quoted);
    return ld_fail(r->e, "model fingerprint: %s: tensor %" PRIu64 " \"%s\" (info at offset 0x%" PRIx64 "): %s",
                   r->path, i, quoted, t->at, what);
}

/* fp_short_read puts "model fingerprint: reading tensor info i: " before
 * the reader's message (which names the file and the offset) and returns
 * false. */
static bool fp_short_read(gguf_reader *r, uint64_t i) {
    ld_wrap(r->e, "model fingerprint: reading tensor info %" PRIu64 ": ", i);
    return false;
}

/* fp_read_tensor reads tensor info i at the reader's position and checks it
 * as ggml's gguf reader and model.Parse do: a name of at most 63 bytes, 1
 * to 4 dimensions, none negative, ne[1..] not zero, an element count and a
 * byte size that fit an int64, a type this ggml knows, and rows of whole
 * blocks. It sets t->nbytes to the tensor's ggml_nbytes. */
static bool fp_read_tensor(gguf_reader *r, uint64_t i, fp_tensor *t) {
    memset(t, 0, sizeof *t);
    t->at = r->off;
    uint64_t len;
    if (!gr_u64(r, &len)) {
        return fp_short_read(r, i);
    }
    if (len > LD_MAX_NAME) {
        return fp_tensor_fail(r, i, t, "name is %" PRIu64 " bytes, longer than ggml's limit of %d", len, LD_MAX_NAME);
    }
    if (!gr_read(r, t->name, (size_t)len)) {
        return fp_short_read(r, i);
    }
    t->name_len = (size_t)len;
    t->name[len] = '\0';
    if (!gr_u32(r, &t->n_dims)) {
        return fp_short_read(r, i);
    }
    if (t->n_dims < 1 || t->n_dims > 4) {
        return fp_tensor_fail(r, i, t, "n_dims %" PRIu32 ", want 1 to 4", t->n_dims);
    }
    uint64_t elems = 1;
    for (uint32_t j = 0; j < t->n_dims; j++) {
        uint64_t v;
        if (!gr_u64(r, &v)) {
            return fp_short_read(r, i);
        }
        t->ne[j] = (int64_t)v;
        if (v > (uint64_t)INT64_MAX) {
            return fp_tensor_fail(r, i, t, "ne[%" PRIu32 "] = %" PRId64 " is negative", j, t->ne[j]);
        }
        if (v == 0 && j > 0) {
            return fp_tensor_fail(r, i, t, "ne[%" PRIu32 "] = 0: ggml's reader divides by it", j);
        }
        if (v != 0 && elems > (uint64_t)INT64_MAX / v) {
            return fp_tensor_fail(r, i, t, "the element count of its shape overflows int64");
        }
        elems *= v;
    }
    if (!gr_u32(r, &t->type)) {
        return fp_short_read(r, i);
    }
    if (t->type >= (uint32_t)GGML_TYPE_COUNT || ggml_blck_size((enum ggml_type)t->type) <= 0 ||
        ggml_type_size((enum ggml_type)t->type) == 0) {
        return fp_tensor_fail(r, i, t, "unknown tensor type %" PRIu32, t->type);
    }
    const uint64_t bs = (uint64_t)ggml_blck_size((enum ggml_type)t->type);
    const uint64_t ts = (uint64_t)ggml_type_size((enum ggml_type)t->type);
    const uint64_t ne0 = (uint64_t)t->ne[0];
    if (ne0 % bs != 0) {
        return fp_tensor_fail(r, i, t, "ne[0] = %" PRIu64 " values of type %s is not a multiple of the block size %" PRIu64,
                              ne0, ggml_type_name((enum ggml_type)t->type), bs);
    }
    t->nbytes = 0;
    if (ne0 != 0) {
        const uint64_t row = ne0 / bs * ts, rows = elems / ne0;
        if (row != 0 && rows > (uint64_t)INT64_MAX / row) {
            return fp_tensor_fail(r, i, t, "the byte size of its shape overflows int64");
        }
        t->nbytes = row * rows;
    }
    return gr_u64(r, &t->offset) || fp_short_read(r, i);
}

/* fp_put_u64 and fp_put_u32 hash v as 8 or 4 little-endian bytes. */
static void fp_put_u64(sha256_ctx *h, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(v >> (8 * i));
    }
    sha256_update(h, b, 8);
}

static void fp_put_u32(sha256_ctx *h, uint32_t v) {
    unsigned char b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = (unsigned char)(v >> (8 * i));
    }
    sha256_update(h, b, 4);
}

/* fp_hash_range hashes the n bytes of f at offset off, reading them into
 * buf (LD_FP_SAMPLE bytes) a piece at a time. */
static bool fp_hash_range(sha256_ctx *h, FILE *f, unsigned char *buf, uint64_t off, uint64_t n, ld_err *e) {
    if (!ld_seek(f, off)) {
        return ld_fail(e, "seeking to offset 0x%" PRIx64 ": %s", off, strerror(errno));
    }
    while (n > 0) {
        size_t k = n < LD_FP_SAMPLE ? (size_t)n : LD_FP_SAMPLE;
        size_t got = fread(buf, 1, k, f);
        if (got < k) {
            return ld_fail(e, "reading data at offset 0x%" PRIx64 ": %s", off + got,
                           ferror(f) ? strerror(errno) : "unexpected end of file");
        }
        sha256_update(h, buf, k);
        off += k;
        n -= k;
    }
    return true;
}

/* fp_tensors reads n_tensors tensor infos with r, checks that their data
 * follow one another from offset 0 of the data section (which starts at
 * file offset data_off), each at a multiple of align and padded to it (as
 * ggml requires), inside the file, and hashes into h every tensor's fields
 * and data samples, read from data (buf holds LD_FP_SAMPLE bytes). */
static bool fp_tensors(gguf_reader *r, uint64_t n_tensors, uint64_t align, uint64_t data_off,
                       sha256_ctx *h, FILE *data, unsigned char *buf) {
    uint64_t want = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        fp_tensor t;
        if (!fp_read_tensor(r, i, &t)) {
            return false;
        }
        if (t.offset % align != 0) {
            return fp_tensor_fail(r, i, &t, "data offset 0x%" PRIx64 " is not a multiple of the alignment %" PRIu64, t.offset, align);
        }
        if (t.offset != want) {
            return fp_tensor_fail(r, i, &t, "data offset 0x%" PRIx64 ", want 0x%" PRIx64 ": tensor data must follow in info order, each padded to the alignment %" PRIu64,
                                  t.offset, want, align);
        }
        const uint64_t size = r->size;
        if (data_off > size || t.offset > size - data_off || t.nbytes > size - data_off - t.offset) {
            return fp_tensor_fail(r, i, &t, "data [0x%" PRIx64 ", +%" PRIu64 ") beyond the end of the file (size 0x%" PRIx64 ")",
                                  data_off + t.offset, t.nbytes, size);
        }
        /* offset + nbytes <= size < 2^63: no wrap. */
        want = (t.offset + t.nbytes + align - 1) / align * align;
        fp_put_u64(h, t.name_len);
        sha256_update(h, t.name, t.name_len);
        fp_put_u32(h, t.type);
        fp_put_u32(h, t.n_dims);
        for (uint32_t j = 0; j < t.n_dims; j++) {
            fp_put_u64(h, (uint64_t)t.ne[j]);
        }
        fp_put_u64(h, t.nbytes);
        const uint64_t start = data_off + t.offset, s = LD_FP_SAMPLE;
        bool ok;
        if (t.nbytes <= 3 * s) {
            ok = fp_hash_range(h, data, buf, start, t.nbytes, r->e);
        } else {
            ok = fp_hash_range(h, data, buf, start, s, r->e) &&
                 fp_hash_range(h, data, buf, start + (t.nbytes - s) / 2, s, r->e) &&
                 fp_hash_range(h, data, buf, start + t.nbytes - s, s, r->e);
        }
        if (!ok) {
            char quoted[4 * LD_MAX_NAME + 1];
            fp_quote(t.name, t.name_len, quoted);
            ld_wrap(r->e, "model fingerprint: %s: tensor %" PRIu64 " \"%s\": ", r->path, i, quoted);
            return false;
        }
    }
    return true;
}

/* model_fingerprint computes reference.ModelFingerprint of the GGUF file at
 * path, of size bytes, whose metadata gguf_read_meta read into m: "v1:" and
 * the lowercase hex SHA-256, all integers little-endian, of
 *
 *   u64                the file size
 *   bytes [0, D)       the file before the data section (D, its offset, is
 *                      the end of the tensor infos rounded up to the
 *                      alignment; the file size if that is smaller)
 *   per tensor, in file order:
 *     u64 + bytes      name length and name
 *     u32              ggml type
 *     u32, n x i64     number of dimensions, ne[0..n)
 *     u64              data size in bytes (ggml_nbytes, without padding)
 *     bytes            the whole data if it is at most 3 x 4096 bytes, else
 *                      4096 bytes at each of the data offsets 0,
 *                      (size - 4096) / 2 and size - 4096
 *
 * into out (LD_FP_LEN bytes). It reads the tensor infos twice (once to find
 * D, then to check their data offsets and hash them) rather than keep them,
 * so its memory does not grow with the file; it reads at most 12 KiB of data
 * per tensor. A file that model.Parse rejects for a reason that matters
 * here (alignment, tensor names, shapes, types, data offsets, data past the
 * end) is an error naming the file, the tensor and the offset; m is not
 * trusted either (tensor count, where the infos start). */
static bool model_fingerprint(const char *path, const gguf_meta *m, uint64_t size, char out[LD_FP_LEN], ld_err *e) {
    uint64_t align = LD_DEFAULT_ALIGNMENT;
    if (m->n_alignment > 1) {
        return ld_fail(e, "model fingerprint: %s: %s appears %zu times", path, LD_KEY_ALIGNMENT, m->n_alignment);
    }
    if (m->n_alignment == 1) {
        const gguf_kv *kv = gguf_find(m, LD_KEY_ALIGNMENT);
        if (kv == NULL || kv->type != GV_UINT32) {
            /* Arrays are not kept in m: a general.alignment missing from it is one. */
            return ld_fail(e, "model fingerprint: %s: %s has type %s, want u32", path, LD_KEY_ALIGNMENT,
                           kv == NULL ? gv_name[GV_ARRAY] : gv_name[kv->type]);
        }
        if (kv->u == 0 || (kv->u & (kv->u - 1)) != 0) {
            return ld_fail(e, "model fingerprint: %s: %s %" PRIu64 " is not a power of two", path, LD_KEY_ALIGNMENT, kv->u);
        }
        align = kv->u;
    }
    if (size > (uint64_t)INT64_MAX || m->tensors_off > size) {
        return ld_fail(e, "model fingerprint: %s: the metadata end (0x%" PRIx64 ") or the size (%" PRIu64 ") is out of range",
                       path, m->tensors_off, size);
    }
    if (m->n_tensors > (size - m->tensors_off) / LD_MIN_TENSOR_INFO) {
        return ld_fail(e, "model fingerprint: %s: %" PRIu64 " tensors cannot fit in the %" PRIu64 " bytes after the metadata",
                       path, m->n_tensors, size - m->tensors_off);
    }
    gguf_reader r = {fopen(path, "rb"), path, m->tensors_off, size, e};
    if (r.f == NULL) {
        return ld_fail(e, "model fingerprint: opening %s: %s", path, strerror(errno));
    }
    FILE *data = fopen(path, "rb");
    if (data == NULL) {
        fclose(r.f);
        return ld_fail(e, "model fingerprint: opening %s: %s", path, strerror(errno));
    }
    unsigned char buf[LD_FP_SAMPLE];
    sha256_ctx h;
    bool ok = false;

    /* Pass 1: read and check the tensor infos, to find where they end. */
    if (!ld_seek(r.f, r.off)) {
        ld_fail(e, "model fingerprint: %s: seeking to offset 0x%" PRIx64 ": %s", path, r.off, strerror(errno));
        goto done;
    }
    for (uint64_t i = 0; i < m->n_tensors; i++) {
        fp_tensor t;
        if (!fp_read_tensor(&r, i, &t)) {
            goto done;
        }
    }
    const uint64_t data_off = (r.off + align - 1) / align * align;

    /* The size, then everything before the data section. */
    sha256_init(&h);
    fp_put_u64(&h, size);
    if (!fp_hash_range(&h, data, buf, 0, data_off < size ? data_off : size, e)) {
        ld_wrap(e, "model fingerprint: %s: reading the metadata: ", path);
        goto done;
    }

    /* Pass 2: the tensor infos again: their data offsets checked, hashed
     * with their data samples. */
    r.off = m->tensors_off;
    if (!ld_seek(r.f, r.off)) {
        ld_fail(e, "model fingerprint: %s: seeking to offset 0x%" PRIx64 ": %s", path, r.off, strerror(errno));
        goto done;
    }
    if (!fp_tensors(&r, m->n_tensors, align, data_off, &h, data, buf)) {
        goto done;
    }
    unsigned char digest[32];
    sha256_final(&h, digest);
    memcpy(out, LD_FP_VERSION ":", sizeof LD_FP_VERSION);
    hex_encode(digest, 32, out + sizeof LD_FP_VERSION);
    ok = true;
done:
    fclose(data);
    fclose(r.f);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Files and directories                                                     */
/* ------------------------------------------------------------------------ */

enum { FS_MISSING, FS_FILE, FS_DIR };

/* fs_kind tells whether path is missing, a directory or something else
 * (following symbolic links). */
static bool fs_kind(const char *path, int *kind, ld_err *e) {
#ifdef _WIN32
    DWORD a = GetFileAttributesA(path);
    if (a == INVALID_FILE_ATTRIBUTES) {
        DWORD err = GetLastError();
        if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) {
            *kind = FS_MISSING;
            return true;
        }
        return ld_fail(e, "%s: cannot read its attributes (error %lu)", path, (unsigned long)err);
    }
    *kind = (a & FILE_ATTRIBUTE_DIRECTORY) ? FS_DIR : FS_FILE;
    return true;
#else
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) {
            *kind = FS_MISSING;
            return true;
        }
        return ld_fail(e, "%s: %s", path, strerror(errno));
    }
    *kind = S_ISDIR(st.st_mode) ? FS_DIR : FS_FILE;
    return true;
#endif
}

/* fs_list calls fn for each entry of dir other than "." and "..", with
 * is_dir telling whether it is a real directory (not a link to one); fn
 * returns false to stop with an error. */
typedef bool (*fs_list_fn)(const char *dir, const char *name, bool is_dir, void *arg, ld_err *e);

static bool fs_list(const char *dir, fs_list_fn fn, void *arg, ld_err *e) {
#ifdef _WIN32
    char *pattern = ld_join(dir, "*", e);
    if (pattern == NULL) {
        return false;
    }
    WIN32_FIND_DATAA fd;
    HANDLE h = FindFirstFileA(pattern, &fd);
    free(pattern);
    if (h == INVALID_HANDLE_VALUE) {
        DWORD err = GetLastError();
        if (err == ERROR_FILE_NOT_FOUND) {
            return true;
        }
        return ld_fail(e, "listing %s: error %lu", dir, (unsigned long)err);
    }
    bool ok = true;
    do {
        if (strcmp(fd.cFileName, ".") == 0 || strcmp(fd.cFileName, "..") == 0) {
            continue;
        }
        bool is_dir = (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) && !(fd.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT);
        if (!fn(dir, fd.cFileName, is_dir, arg, e)) {
            ok = false;
            break;
        }
    } while (FindNextFileA(h, &fd));
    FindClose(h);
    return ok;
#else
    DIR *d = opendir(dir);
    if (d == NULL) {
        return ld_fail(e, "listing %s: %s", dir, strerror(errno));
    }
    bool ok = true;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        char *p = ld_join(dir, de->d_name, e);
        if (p == NULL) {
            ok = false;
            break;
        }
        struct stat st;
        bool is_dir = lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
        free(p);
        if (!fn(dir, de->d_name, is_dir, arg, e)) {
            ok = false;
            break;
        }
        errno = 0;
    }
    if (ok && errno != 0) {
        ok = ld_fail(e, "listing %s: %s", dir, strerror(errno));
    }
    closedir(d);
    return ok;
#endif
}

static bool count_entry(const char *dir, const char *name, bool is_dir, void *arg, ld_err *e) {
    (void)dir, (void)name, (void)is_dir, (void)e;
    (*(size_t *)arg)++;
    return true;
}

static bool fs_dir_empty(const char *dir, bool *empty, ld_err *e) {
    size_t n = 0;
    if (!fs_list(dir, count_entry, &n, e)) {
        return false;
    }
    *empty = n == 0;
    return true;
}

/* fs_mkdir creates one directory; it returns 0 or an errno value. */
static int fs_mkdir(const char *path) {
#ifdef _WIN32
    return _mkdir(path) == 0 ? 0 : errno;
#else
    return mkdir(path, 0777) == 0 ? 0 : errno;
#endif
}

static bool is_sep(char c) {
#ifdef _WIN32
    return c == '/' || c == '\\';
#else
    return c == '/';
#endif
}

/* fs_mkdir_all creates dir and its missing parents. */
static bool fs_mkdir_all(const char *dir, ld_err *e) {
    char *p = ld_strdup(dir, e);
    if (p == NULL) {
        return false;
    }
    size_t n = strlen(p);
    bool ok = true;
    for (size_t i = 1; i <= n && ok; i++) {
        if (i < n && !is_sep(p[i])) {
            continue;
        }
        if (i < n && is_sep(p[i - 1])) {
            continue; /* repeated separator */
        }
        char saved = p[i];
        p[i] = '\0';
        int kind;
        if (!fs_kind(p, &kind, e)) {
            ok = false;
        } else if (kind == FS_MISSING) {
            int err = fs_mkdir(p);
            if (err != 0 && err != EEXIST) {
                ok = ld_fail(e, "creating directory %s: %s", p, strerror(err));
            }
        } else if (kind == FS_FILE && i == n) {
            ok = ld_fail(e, "%s exists and is not a directory", p);
        }
        p[i] = saved;
    }
    free(p);
    return ok;
}

static bool fs_remove_tree(const char *path, ld_err *e);

static bool remove_entry(const char *dir, const char *name, bool is_dir, void *arg, ld_err *e) {
    (void)arg;
    char *p = ld_join(dir, name, e);
    if (p == NULL) {
        return false;
    }
    bool ok;
    if (is_dir) {
        ok = fs_remove_tree(p, e);
    } else {
        ok = remove(p) == 0 || ld_fail(e, "removing %s: %s", p, strerror(errno));
    }
    free(p);
    return ok;
}

/* fs_remove_tree removes a directory and everything in it, without
 * following links. */
static bool fs_remove_tree(const char *path, ld_err *e) {
    if (!fs_list(path, remove_entry, NULL, e)) {
        return false;
    }
#ifdef _WIN32
    if (!RemoveDirectoryA(path)) {
        return ld_fail(e, "removing directory %s: error %lu", path, (unsigned long)GetLastError());
    }
#else
    if (rmdir(path) != 0) {
        return ld_fail(e, "removing directory %s: %s", path, strerror(errno));
    }
#endif
    return true;
}

/* fs_sync flushes a file's data to the disk. */
static int fs_sync(FILE *f) {
    if (fflush(f) != 0) {
        return -1;
    }
#ifdef _WIN32
    return _commit(_fileno(f));
#else
    return fsync(fileno(f));
#endif
}

/* write_file_atomic writes the n parts to dir/name through the temporary
 * file dir/.name.tmp, synced and renamed into place. */
static bool write_file_atomic(const char *dir, const char *name, const void *const *parts, const size_t *lens, int n, ld_err *e) {
    char *path = ld_join(dir, name, e);
    size_t tlen = strlen(dir) + strlen(name) + 7;
    char *tmp = malloc(tlen);
    if (path == NULL || tmp == NULL) {
        free(path);
        free(tmp);
        return ld_fail(e, "out of memory building a path");
    }
    snprintf(tmp, tlen, "%s/.%s.tmp", dir, name);
    bool ok = false;
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        ld_fail(e, "creating %s: %s", tmp, strerror(errno));
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (lens[i] > 0 && fwrite(parts[i], 1, lens[i], f) != lens[i]) {
            ld_fail(e, "writing %s: %s", tmp, strerror(errno));
            fclose(f);
            remove(tmp);
            goto done;
        }
    }
    if (fs_sync(f) != 0) {
        ld_fail(e, "syncing %s: %s", tmp, strerror(errno));
        fclose(f);
        remove(tmp);
        goto done;
    }
    if (fclose(f) != 0) {
        ld_fail(e, "closing %s: %s", tmp, strerror(errno));
        remove(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        ld_fail(e, "renaming %s to %s: %s", tmp, path, strerror(errno));
        remove(tmp);
        goto done;
    }
    ok = true;
done:
    free(path);
    free(tmp);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* .npy files                                                                */
/* ------------------------------------------------------------------------ */

/* npy_shape fills shape with the numpy shape of a node of ggml shape ne:
 * trailing 1s of ne dropped (keeping one dimension), reversed. */
static int npy_shape(const int64_t ne[4], int64_t shape[4]) {
    int nd = 4;
    while (nd > 1 && ne[nd - 1] == 1) {
        nd--;
    }
    for (int i = 0; i < nd; i++) {
        shape[i] = ne[nd - 1 - i];
    }
    return nd;
}

/* npy_header builds a .npy header (version 1.0, or 2.0 if it does not fit)
 * padded to a multiple of 64 bytes, byte for byte as layerdiff writes it. */
static bool npy_header(const char *descr, const int64_t ne[4], sbuf *h) {
    int64_t shape[4];
    int nd = npy_shape(ne, shape);
    sbuf dict = {0};
    sb_printf(&dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < nd; i++) {
        sb_printf(&dict, i ? ", %" PRId64 : "%" PRId64, shape[i]);
    }
    sb_puts(&dict, nd == 1 ? ",), }" : "), }");
    if (dict.oom) {
        free(dict.p);
        return false;
    }
    for (int major = 1; major <= 2; major++) {
        size_t pre = major == 1 ? 10 : 12;
        size_t total = pre + dict.len + 1;
        size_t pad = (64 - total % 64) % 64;
        size_t hlen = dict.len + pad + 1;
        if (major == 1 && hlen > 65535) {
            continue;
        }
        unsigned char lead[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)major, 0};
        for (size_t i = 0; i < pre - 8; i++) {
            lead[8 + i] = (unsigned char)(hlen >> (8 * i)); /* little-endian length */
        }
        sb_putn(h, (const char *)lead, pre);
        sb_putn(h, dict.p, dict.len);
        for (size_t i = 0; i < pad; i++) {
            sb_putn(h, " ", 1);
        }
        sb_putn(h, "\n", 1);
        break;
    }
    free(dict.p);
    return !h->oom;
}

/* ------------------------------------------------------------------------ */
/* Progress                                                                  */
/* ------------------------------------------------------------------------ */

/* Progress is shown only on a terminal (stderr a TTY, no -v): one status
 * line rewritten in place with '\r' and erased (overwritten with spaces,
 * no escape sequences) before anything else is printed, so that neither a
 * terminal nor a redirected stderr is left with a progress line. Redirected
 * (a file, a pipe, a CI log) the tool prints only its result or its error.
 * The state is static: llama.cpp's log callback needs it too. */
static bool ld_progress_on;
static size_t ld_progress_len; /* characters of the status line shown, 0 = none */
static time_t ld_progress_last;

static bool stderr_is_tty(void) {
#ifdef _WIN32
    return _isatty(_fileno(stderr)) != 0;
#else
    if (!isatty(STDERR_FILENO)) {
        return false;
    }
    const char *term = getenv("TERM");
    return term == NULL || strcmp(term, "dumb") != 0;
#endif
}

/* progress_clear erases the status line, if one is shown. */
static void progress_clear(void) {
    if (ld_progress_len > 0) {
        fprintf(stderr, "\r%*s\r", (int)ld_progress_len, "");
        fflush(stderr);
        ld_progress_len = 0;
    }
}

/* progress_show replaces the status line by the formatted text (cut to one
 * 79-column line). With force false it does so at most every 2 seconds. */
static void progress_show(bool force, const char *fmt, ...) LD_PRINTF(2, 3);
static void progress_show(bool force, const char *fmt, ...) {
    if (!ld_progress_on) {
        return;
    }
    time_t now = time(NULL);
    if (!force && now - ld_progress_last < 2) {
        return;
    }
    ld_progress_last = now;
    char line[80];
    int n = snprintf(line, sizeof line, "layerdiff-dump: ");
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line) {
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    }
    va_end(ap);
    for (char *c = line; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            *c = '?'; /* a tensor name must not move the cursor */
        }
    }
    size_t len = strlen(line);
    fprintf(stderr, "\r%s", line);
    if (len < ld_progress_len) {
        fprintf(stderr, "%*s\r%s", (int)(ld_progress_len - len), "", line);
    }
    fflush(stderr);
    ld_progress_len = len > 0 ? len : 1;
}

/* load_progress is llama_model_params.progress_callback. Without one
 * llama.cpp prints a row of dots through its log while it loads the
 * weights; this shows the percentage on the status line instead. */
static bool load_progress(float progress, void *user_data) {
    int *last = user_data;
    int pct = (int)(progress * 100.0f);
    if (pct != *last) {
        *last = pct;
        progress_show(true, "loading the model, %d%%", pct);
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* The dump                                                                  */
/* ------------------------------------------------------------------------ */

/* dump_node is one manifest node. */
typedef struct {
    char *key, *name, *op, *type, *file, *view_src, *data_of;
    char *src[GGML_MAX_SRC];
    int n_src;
    int64_t ne[4];
    bool is_view;
    uint64_t view_offs;
    bool has_stats;
    double sum, min, max;
    int64_t nan, inf;
} dump_node;

/* options are the command-line settings. */
typedef struct {
    const char *model, *prompt, *tokens, *out, *fa, *kv_type;
    llama_token *token_ids; /* parsed from tokens */
    size_t n_token_ids;
    int ngl, threads;
    bool force, no_bos, verbose;
} options;

/* dumper is the state of one run, shared with the eval callback. */
typedef struct {
    const char *dir; /* temporary dump directory */
    dump_node *nodes;
    size_t n_nodes, cap_nodes;
    strmap name_count; /* node name -> occurrences so far */
    strmap used_keys;  /* keys handed out */
    strmap stored;     /* sha256(descr, bytes) -> index of the node holding them */
    size_t n_stored;
    bool saw_flash_attn;
    float *logits; /* values of the last result_output node */
    size_t n_logits, cap_logits;
    bool failed;
    ld_err err;
    /* scratch buffers reused from node to node */
    unsigned char *host;
    size_t cap_host;
    unsigned char *raw;
    size_t cap_raw;
    float *vals;
    size_t cap_vals;
    unsigned char *conv;
    size_t cap_conv;
} dumper;

static void dump_node_free(dump_node *n) {
    free(n->key);
    free(n->name);
    free(n->op);
    free(n->type);
    free(n->file);
    free(n->view_src);
    free(n->data_of);
    for (int i = 0; i < n->n_src; i++) {
        free(n->src[i]);
    }
}

static void dumper_free(dumper *d) {
    for (size_t i = 0; i < d->n_nodes; i++) {
        dump_node_free(&d->nodes[i]);
    }
    free(d->nodes);
    sm_free(&d->name_count);
    sm_free(&d->used_keys);
    sm_free(&d->stored);
    free(d->logits);
    free(d->host);
    free(d->raw);
    free(d->vals);
    free(d->conv);
}

/* node_file_name is the file name layerdiff gives node index with key: the
 * zero-padded index, the key with every character outside [A-Za-z0-9._-]
 * replaced by '_' (one '_' per UTF-8 character, or per invalid byte), cut at
 * 96 characters, and ".npy". */
static char *node_file_name(size_t index, const char *key, ld_err *e) {
    char clean[97];
    size_t n = 0, len = strlen(key);
    const unsigned char *p = (const unsigned char *)key;
    for (size_t i = 0; i < len && n < 96;) {
        unsigned char c = p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_') {
            clean[n++] = (char)c;
            i++;
            continue;
        }
        size_t k = utf8_rune_len(p + i, len - i);
        clean[n++] = '_';
        i += k ? k : 1;
    }
    clean[n] = '\0';
    char buf[160];
    snprintf(buf, sizeof buf, "%04zu-%s.npy", index, clean);
    return ld_strdup(buf, e);
}

/* make_key assigns the node's unique key in graph order: the name for its
 * first node, "name#N" for the N-th, and "@index" appended in the unlikely
 * case that this key is already taken (layerdiff's KeyMaker). */
static char *make_key(dumper *d, const char *name, size_t index, ld_err *e) {
    sm_entry *c = sm_put(&d->name_count, name, e);
    if (c == NULL) {
        return NULL;
    }
    c->val++;
    char buf[GGML_MAX_NAME + 64];
    if (c->val > 1) {
        snprintf(buf, sizeof buf, "%s#%ld", name, c->val);
    } else {
        snprintf(buf, sizeof buf, "%s", name);
    }
    if (sm_get(&d->used_keys, buf) != NULL) {
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof buf - l, "@%zu", index);
    }
    if (sm_put(&d->used_keys, buf, e) == NULL) {
        return NULL;
    }
    return ld_strdup(buf, e);
}

/* gather copies the node's elements, through its strides nb, out of data
 * (its nbytes bytes) into d->raw in ggml order (ne[0] fastest), so that
 * permuted and strided views are stored as the values they show; converts
 * them to floats in d->vals; and sets *out to the bytes to store and *descr
 * to their dtype: f32 as <f4, f16 as <f2, i32 as <i4, anything else
 * converted to <f4 (quantized types with ggml's to_float). */
static bool gather(dumper *d, const struct ggml_tensor *t, const unsigned char *data, size_t nbytes,
                   const unsigned char **out, size_t *out_len, size_t *numel, const char **descr) {
    ld_err *e = &d->err;
    const enum ggml_type type = t->type;
    if ((int)type < 0 || (int)type >= GGML_TYPE_COUNT) {
        return ld_fail(e, "unknown ggml type %d", (int)type);
    }
    const int64_t bs = ggml_blck_size(type);
    const size_t ts = ggml_type_size(type);
    if (bs <= 0 || ts == 0) {
        return ld_fail(e, "unknown ggml type %d", (int)type);
    }
    for (int i = 0; i < 4; i++) {
        if (t->ne[i] < 0) {
            return ld_fail(e, "negative dimension %" PRId64, t->ne[i]);
        }
    }
    if (t->ne[0] % bs != 0) {
        return ld_fail(e, "row of %" PRId64 " values is not a multiple of the %s block size %" PRId64, t->ne[0], ggml_type_name(type), bs);
    }
    size_t ne0 = (size_t)t->ne[0], row_bytes, nrows, total, n;
    if (!ld_mul((size_t)(t->ne[0] / bs), ts, &row_bytes) || !ld_mul((size_t)t->ne[1], (size_t)t->ne[2], &nrows) ||
        !ld_mul(nrows, (size_t)t->ne[3], &nrows) || !ld_mul(row_bytes, nrows, &total) || !ld_mul(ne0, nrows, &n)) {
        return ld_fail(e, "shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "] overflows", t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    }
    if (!ld_reserve((void **)&d->raw, &d->cap_raw, total, 1, e, "node data")) {
        return false;
    }
    const bool contiguous_row = bs > 1 || t->nb[0] == ts;
    unsigned char *dst = d->raw;
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++) {
        for (int64_t i2 = 0; i2 < t->ne[2]; i2++) {
            for (int64_t i1 = 0; i1 < t->ne[1]; i1++) {
                /* Offsets of elements of a tensor that ggml allocated are
                 * below nbytes, so these sums do not wrap for valid nodes;
                 * every access is checked against nbytes all the same. */
                size_t off = (size_t)i1 * t->nb[1] + (size_t)i2 * t->nb[2] + (size_t)i3 * t->nb[3];
                if (contiguous_row) {
                    if (off > nbytes || row_bytes > nbytes - off) {
                        return ld_fail(e, "row at byte %zu is past the %zu bytes of data", off, nbytes);
                    }
                    memcpy(dst, data + off, row_bytes);
                    dst += row_bytes;
                    continue;
                }
                for (size_t i0 = 0; i0 < ne0; i0++) {
                    size_t o = off + i0 * t->nb[0];
                    if (o > nbytes || ts > nbytes - o) {
                        return ld_fail(e, "element at byte %zu is past the %zu bytes of data", o, nbytes);
                    }
                    memcpy(dst, data + o, ts);
                    dst += ts;
                }
            }
        }
    }
    if (!ld_reserve((void **)&d->vals, &d->cap_vals, n, sizeof *d->vals, e, "node values")) {
        return false;
    }
    float *v = d->vals;
    const unsigned char *r = d->raw;
    *numel = n;
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(v, r, n * sizeof(float));
        to_little_endian(d->raw, n, 4);
        *out = d->raw, *out_len = total, *descr = "<f4";
        return true;
    case GGML_TYPE_F16:
        for (size_t i = 0; i < n; i++) {
            ggml_fp16_t h;
            memcpy(&h, r + 2 * i, 2);
            v[i] = ggml_fp16_to_fp32(h);
        }
        to_little_endian(d->raw, n, 2);
        *out = d->raw, *out_len = total, *descr = "<f2";
        return true;
    case GGML_TYPE_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t x;
            memcpy(&x, r + 4 * i, 4);
            v[i] = (float)x;
        }
        to_little_endian(d->raw, n, 4);
        *out = d->raw, *out_len = total, *descr = "<i4";
        return true;
    case GGML_TYPE_I8:
        for (size_t i = 0; i < n; i++) {
            v[i] = (float)(int8_t)r[i];
        }
        break;
    case GGML_TYPE_I16:
        for (size_t i = 0; i < n; i++) {
            int16_t x;
            memcpy(&x, r + 2 * i, 2);
            v[i] = (float)x;
        }
        break;
    case GGML_TYPE_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t x;
            memcpy(&x, r + 8 * i, 8);
            v[i] = (float)x;
        }
        break;
    case GGML_TYPE_F64:
        for (size_t i = 0; i < n; i++) {
            double x;
            memcpy(&x, r + 8 * i, 8);
            v[i] = (float)x;
        }
        break;
    default: {
        const struct ggml_type_traits *tt = ggml_get_type_traits(type);
        if (tt == NULL || tt->to_float == NULL) {
            return ld_fail(e, "ggml has no conversion of type %s to float", ggml_type_name(type));
        }
        for (size_t i = 0; i < nrows; i++) {
            tt->to_float(r + i * row_bytes, v + i * ne0, (int64_t)ne0);
        }
        break;
    }
    }
    /* Converted types are stored as <f4. */
    if (!ld_reserve((void **)&d->conv, &d->cap_conv, n * sizeof(float), 1, e, "converted node values")) {
        return false;
    }
    memcpy(d->conv, v, n * sizeof(float));
    to_little_endian(d->conv, n, 4);
    *out = d->conv, *out_len = n * sizeof(float), *descr = "<f4";
    return true;
}

/* compute_stats fills the node's statistics: the sum accumulated in a float
 * in ggml order, as llama.cpp's eval callback prints it; min and max
 * ignoring NaN (with -0 below +0, as Go's math.Min/Max); NaN and Inf counts. */
static void compute_stats(dump_node *nd, const float *v, size_t n) {
    float sum = 0.0f;
    double lo = INFINITY, hi = -INFINITY;
    int64_t nan = 0, inf = 0;
    for (size_t i = 0; i < n; i++) {
        const float x = v[i];
        sum += x;
        if (isnan(x)) {
            nan++;
            continue;
        }
        if (isinf(x)) {
            inf++;
        }
        const double f = x;
        if (f < lo || (f == 0 && lo == 0 && signbit(f))) {
            lo = f;
        }
        if (f > hi || (f == 0 && hi == 0 && !signbit(f))) {
            hi = f;
        }
    }
    if ((size_t)nan == n) {
        lo = hi = 0;
    }
    nd->has_stats = true;
    nd->sum = sum;
    nd->min = lo;
    nd->max = hi;
    nd->nan = nan;
    nd->inf = inf;
}

/* store_values computes the node's statistics and stores its values: as a
 * reference (data_of) to an earlier node with the same dtype and bytes, or
 * in a new .npy file. */
static bool store_values(dumper *d, dump_node *nd, const struct ggml_tensor *t, const unsigned char *data, size_t nbytes) {
    ld_err *e = &d->err;
    const unsigned char *out = NULL;
    size_t out_len = 0, numel = 0;
    const char *descr = "";
    if (!gather(d, t, data, nbytes, &out, &out_len, &numel, &descr)) {
        return false;
    }
    compute_stats(nd, d->vals, numel);

    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, descr, strlen(descr));
    sha256_update(&c, out, out_len);
    unsigned char digest[32];
    char hex[65];
    sha256_final(&c, digest);
    hex_encode(digest, 32, hex);
    sm_entry *prev = sm_get(&d->stored, hex);
    if (prev != NULL) {
        nd->data_of = ld_strdup(d->nodes[prev->val].key, e);
        return nd->data_of != NULL;
    }
    size_t index = (size_t)(nd - d->nodes);
    nd->file = node_file_name(index, nd->key, e);
    if (nd->file == NULL) {
        return false;
    }
    sbuf h = {0};
    if (!npy_header(descr, nd->ne, &h)) {
        free(h.p);
        return ld_fail(e, "out of memory building a .npy header");
    }
    const void *parts[2] = {h.p, out};
    const size_t lens[2] = {h.len, out_len};
    bool ok = write_file_atomic(d->dir, nd->file, parts, lens, 2, e);
    free(h.p);
    if (!ok) {
        return false;
    }
    sm_entry *s = sm_put(&d->stored, hex, e);
    if (s == NULL) {
        return false;
    }
    s->val = (long)index;
    d->n_stored++;
    return true;
}

/* record_node adds the computed node t to the manifest and stores its data. */
static bool record_node(dumper *d, const struct ggml_tensor *t) {
    ld_err *e = &d->err;
    if (!ld_reserve((void **)&d->nodes, &d->cap_nodes, d->n_nodes + 1, sizeof *d->nodes, e, "node list")) {
        return false;
    }
    size_t index = d->n_nodes;
    dump_node *nd = &d->nodes[index];
    memset(nd, 0, sizeof *nd);
    d->n_nodes++;

    const char *op = ggml_op_desc(t);
    if (t->op == GGML_OP_FLASH_ATTN_EXT) {
        d->saw_flash_attn = true;
    }
    nd->name = ld_strdup(t->name, e);
    nd->op = ld_strdup(op, e);
    nd->type = ld_strdup(ggml_type_name(t->type), e);
    nd->key = make_key(d, t->name, index, e);
    if (nd->name == NULL || nd->op == NULL || nd->type == NULL || nd->key == NULL) {
        return false;
    }
    for (int i = 0; i < GGML_MAX_SRC && t->src[i] != NULL; i++) {
        nd->src[i] = ld_strdup(t->src[i]->name, e);
        if (nd->src[i] == NULL) {
            return false;
        }
        nd->n_src = i + 1;
    }
    for (int i = 0; i < 4; i++) {
        nd->ne[i] = t->ne[i];
    }
    nd->is_view = t->view_src != NULL || t->op == GGML_OP_VIEW || t->op == GGML_OP_RESHAPE ||
                  t->op == GGML_OP_PERMUTE || t->op == GGML_OP_TRANSPOSE;
    if (t->view_src != NULL) {
        nd->view_src = ld_strdup(t->view_src->name, e);
        if (nd->view_src == NULL) {
            return false;
        }
    }
    nd->view_offs = t->view_offs;

    const size_t nbytes = ggml_nbytes(t);
    if (t->buffer == NULL || t->data == NULL || nbytes == 0) {
        return true; /* no values: listed without data */
    }
    const unsigned char *data;
    if (ggml_backend_buffer_is_host(t->buffer)) {
        data = t->data;
    } else {
        /* Device memory (CUDA, Metal, ...): copy it to the host. */
        if (!ld_reserve((void **)&d->host, &d->cap_host, nbytes, 1, e, "device copy")) {
            return false;
        }
        ggml_backend_tensor_get(t, d->host, 0, nbytes);
        data = d->host;
    }
    if (!store_values(d, nd, t, data, nbytes)) {
        return false;
    }
    if (strcmp(t->name, "result_output") == 0) {
        size_t n = (size_t)ggml_nelements(t);
        if (!ld_reserve((void **)&d->logits, &d->cap_logits, n, sizeof(float), e, "logits")) {
            return false;
        }
        memcpy(d->logits, d->vals, n * sizeof(float));
        d->n_logits = n;
    }
    return true;
}

/* eval_callback is llama.cpp's cb_eval. Asked (ask = true) whether a node
 * is wanted, it wants every node; told that a node is computed, it records
 * it. It stops the graph (returns false) after an error. */
static bool eval_callback(struct ggml_tensor *t, bool ask, void *user_data) {
    dumper *d = user_data;
    if (ask) {
        return !d->failed;
    }
    if (d->failed) {
        return false;
    }
    if (!record_node(d, t)) {
        ld_wrap(&d->err, "node %zu %s: ", d->n_nodes ? d->n_nodes - 1 : 0, t->name);
        d->failed = true;
        return false;
    }
    progress_show(false, "%zu nodes, at %s", d->n_nodes, t->name);
    return true;
}

/* ------------------------------------------------------------------------ */
/* The manifest                                                              */
/* ------------------------------------------------------------------------ */

/* sb_extra_bufts writes the manifest's extra_bufts: the names of the
 * extra buffer types of the CPU device, which llama.cpp (with its default
 * use_extra_bufts = true) tries, in this order, before the plain CPU buffer
 * for each weight it keeps on the CPU: "CPU_REPACK" (weights repacked for
 * ggml's interleaved kernels), "AMX", "CPU_KLEIDIAI"... It asks the CPU
 * backend as llama.cpp's make_cpu_buft_list does, through
 * ggml_backend_reg_get_proc_address; [] when there are none. */
static void sb_extra_bufts(sbuf *b) {
    sb_puts(b, "[");
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_reg_t reg = cpu != NULL ? ggml_backend_dev_backend_reg(cpu) : NULL;
    void *fn = reg != NULL ? ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts") : NULL;
    if (fn != NULL) {
        /* A function pointer returned as void *, as ggml's API does. */
        ggml_backend_dev_get_extra_bufts_t get;
        memcpy(&get, &fn, sizeof get);
        ggml_backend_buffer_type_t *bufts = get(cpu);
        for (size_t i = 0; bufts != NULL && bufts[i] != NULL; i++) {
            if (i) {
                sb_puts(b, ", ");
            }
            const char *name = ggml_backend_buft_name(bufts[i]);
            sb_json_str(b, name != NULL ? name : "");
        }
    }
    sb_puts(b, "]");
}

/* run_info are the manifest's run fields. */
typedef struct {
    const options *opt;
    const char *system_info, *sha256, *fingerprint, *arch, *flash_attn, *type_kv;
    size_t arch_len;
    uint64_t model_size;
    const gguf_meta *meta;
    const llama_token *tokens;
    size_t n_tokens;
    int threads, n_ctx;
} run_info;

static bool write_manifest(const dumper *d, const run_info *ri, ld_err *e) {
    sbuf b = {0};
    char created[32] = "";
    time_t now = time(NULL);
    struct tm *tm = gmtime(&now);
    if (tm != NULL) {
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", tm);
    }
    sb_printf(&b, "{\n  \"format\": \"%s\",\n  \"format_version\": %d,\n", LD_FORMAT_NAME, LD_FORMAT_VERSION);
    sb_puts(&b, "  \"layerdiff_version\": ");
    sb_json_str(&b, LD_TOOL_VERSION);
    if (created[0]) {
        sb_printf(&b, ",\n  \"created\": \"%s\"", created);
    }
    sb_puts(&b, ",\n  \"llamacpp_commit\": ");
    sb_json_str(&b, LAYERDIFF_LLAMACPP_COMMIT);
    sb_puts(&b, ",\n  \"llamacpp_source\": ");
    sb_json_str(&b, LAYERDIFF_LLAMACPP_SOURCE);
    sb_puts(&b, ",\n  \"system_info\": ");
    sb_json_str(&b, ri->system_info);
    sb_puts(&b, ",\n  \"extra_bufts\": ");
    sb_extra_bufts(&b);
    sb_puts(&b, ",\n  \"model\": {\n    \"path\": ");
    sb_json_str(&b, ri->opt->model);
    sb_printf(&b, ",\n    \"size\": %" PRIu64 ",\n    \"sha256\": \"%s\",\n    \"fingerprint\": \"%s\",\n    \"architecture\": ",
              ri->model_size, ri->sha256, ri->fingerprint);
    sb_json_strn(&b, ri->arch, ri->arch_len);
    sb_puts(&b, ",\n    \"hparams\": ");
    if (!sb_json_hparams(&b, ri->meta, ri->arch, ri->arch_len, e)) {
        free(b.p);
        return false;
    }
    sb_puts(&b, "\n  },\n  \"prompt\": ");
    sb_json_str(&b, ri->opt->tokens ? "" : ri->opt->prompt);
    sb_puts(&b, ",\n  \"tokens\": [");
    for (size_t i = 0; i < ri->n_tokens; i++) {
        sb_printf(&b, i ? ", %" PRId32 : "%" PRId32, (int32_t)ri->tokens[i]);
    }
    sb_printf(&b, "],\n  \"threads\": %d,\n  \"flash_attn_requested\": ", ri->threads);
    sb_json_str(&b, ri->opt->fa);
    sb_puts(&b, ",\n  \"flash_attn\": ");
    sb_json_str(&b, ri->flash_attn);
    sb_printf(&b, ",\n  \"type_k\": \"%s\",\n  \"type_v\": \"%s\",\n", ri->type_kv, ri->type_kv);
    sb_printf(&b, "  \"n_ctx\": %d,\n  \"n_batch\": %zu,\n  \"n_ubatch\": %zu,\n  \"output_all\": true,\n  \"nodes\": [",
              ri->n_ctx, ri->n_tokens, ri->n_tokens);
    for (size_t i = 0; i < d->n_nodes; i++) {
        const dump_node *n = &d->nodes[i];
        sb_printf(&b, "%s\n    {\"index\": %zu, \"key\": ", i ? "," : "", i);
        sb_json_str(&b, n->key);
        sb_puts(&b, ", \"name\": ");
        sb_json_str(&b, n->name);
        sb_puts(&b, ", \"op\": ");
        sb_json_str(&b, n->op);
        sb_puts(&b, ", \"src\": [");
        for (int j = 0; j < n->n_src; j++) {
            if (j) {
                sb_puts(&b, ", ");
            }
            sb_json_str(&b, n->src[j]);
        }
        sb_printf(&b, "], \"type\": \"%s\", \"ne\": [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "], \"file\": ",
                  n->type, n->ne[0], n->ne[1], n->ne[2], n->ne[3]);
        sb_json_str(&b, n->file ? n->file : "");
        sb_printf(&b, ", \"is_view\": %s", n->is_view ? "true" : "false");
        if (n->view_src != NULL && n->view_src[0] != '\0') {
            sb_puts(&b, ", \"view_src\": ");
            sb_json_str(&b, n->view_src);
        }
        if (n->view_offs != 0) {
            sb_printf(&b, ", \"view_offs\": %" PRIu64, n->view_offs);
        }
        if (n->data_of != NULL) {
            sb_puts(&b, ", \"data_of\": ");
            sb_json_str(&b, n->data_of);
        }
        if (n->has_stats) {
            sb_puts(&b, ",\n     \"stats\": {\"sum\": ");
            sb_json_f64(&b, n->sum);
            sb_puts(&b, ", \"min\": ");
            sb_json_f64(&b, n->min);
            sb_puts(&b, ", \"max\": ");
            sb_json_f64(&b, n->max);
            sb_printf(&b, ", \"nan\": %" PRId64 ", \"inf\": %" PRId64 "}", n->nan, n->inf);
        }
        sb_puts(&b, "}");
    }
    sb_puts(&b, "\n  ]\n}\n");
    if (b.oom) {
        free(b.p);
        return ld_fail(e, "out of memory building the manifest");
    }
    const void *parts[1] = {b.p};
    const size_t lens[1] = {b.len};
    bool ok = write_file_atomic(d->dir, LD_MANIFEST, parts, lens, 1, e);
    free(b.p);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Output directory                                                          */
/* ------------------------------------------------------------------------ */

/* check_out refuses an existing file, or an existing non-empty directory
 * unless force is set. */
static bool check_out(const char *out, bool force, ld_err *e) {
    int kind;
    if (!fs_kind(out, &kind, e)) {
        return false;
    }
    if (kind == FS_MISSING) {
        return true;
    }
    if (kind != FS_DIR) {
        return ld_fail(e, "%s exists and is not a directory; refusing to replace it", out);
    }
    bool empty;
    if (!fs_dir_empty(out, &empty, e)) {
        return false;
    }
    if (!empty && !force) {
        return ld_fail(e, "%s exists and is not empty; use --force to replace it", out);
    }
    return true;
}

/* make_temp_dir creates a new directory ".<base>.partial-N" beside out and
 * returns its path. */
static char *make_temp_dir(const char *out, ld_err *e) {
    size_t n = strlen(out);
    size_t base = n;
    while (base > 0 && !is_sep(out[base - 1])) {
        base--;
    }
    char parent[4096];
    if (base == 0) {
        snprintf(parent, sizeof parent, ".");
    } else if (base >= sizeof parent) {
        ld_fail(e, "output path %s is too long", out);
        return NULL;
    } else {
        memcpy(parent, out, base - 1);
        parent[base - 1] = '\0';
        if (parent[0] == '\0') {
            snprintf(parent, sizeof parent, "%c", out[0]); /* the root directory */
        }
#ifdef _WIN32
        if (strlen(parent) == 2 && parent[1] == ':') {
            parent[2] = '\\', parent[3] = '\0'; /* "C:" is a drive's current directory, "C:\\" its root */
        }
#endif
    }
    if (!fs_mkdir_all(parent, e)) {
        return NULL;
    }
    size_t len = strlen(parent) + (n - base) + 48;
    char *tmp = malloc(len);
    if (tmp == NULL) {
        ld_fail(e, "out of memory building a path");
        return NULL;
    }
    unsigned long seed = (unsigned long)time(NULL) ^ (unsigned long)clock();
    for (unsigned long i = 0; i < 10000; i++) {
        snprintf(tmp, len, "%s/.%s.partial-%lu", parent, out + base, (seed + i) % 1000000UL);
        int err = fs_mkdir(tmp);
        if (err == 0) {
            return tmp;
        }
        if (err != EEXIST) {
            ld_fail(e, "creating %s: %s", tmp, strerror(err));
            free(tmp);
            return NULL;
        }
    }
    ld_fail(e, "cannot find a free temporary name beside %s", out);
    free(tmp);
    return NULL;
}

/* replace_out renames the complete dump tmp to out. An existing out (empty,
 * or non-empty under force) is first moved aside and removed only once the
 * new dump is in place. */
static bool replace_out(const char *tmp, const char *out, bool force, ld_err *e) {
    int kind;
    if (!fs_kind(out, &kind, e)) {
        return false;
    }
    if (kind == FS_MISSING) {
        if (rename(tmp, out) != 0) {
            return ld_fail(e, "renaming %s to %s: %s", tmp, out, strerror(errno));
        }
        return true;
    }
    if (!check_out(out, force, e)) {
        return false;
    }
    size_t len = strlen(tmp) + 5;
    char *old = malloc(len);
    if (old == NULL) {
        return ld_fail(e, "out of memory building a path");
    }
    snprintf(old, len, "%s.old", tmp);
    bool ok = false;
    if (rename(out, old) != 0) {
        ld_fail(e, "moving the old %s aside: %s", out, strerror(errno));
    } else if (rename(tmp, out) != 0) {
        ld_fail(e, "renaming %s to %s: %s", tmp, out, strerror(errno));
        rename(old, out);
    } else {
        ok = fs_remove_tree(old, e);
        if (!ok) {
            ld_wrap(e, "the dump is in %s, but the old one could not be removed: ", out);
        }
    }
    free(old);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Running llama.cpp                                                         */
/* ------------------------------------------------------------------------ */

/* Log verbosity: only llama.cpp's errors are shown unless -v is given. The
 * callback must outlive main (llama.cpp keeps it), hence static state. */
static bool ld_log_verbose;
static bool ld_log_last_shown;

static void log_callback(enum ggml_log_level level, const char *text, void *user_data) {
    (void)user_data;
    bool show = ld_log_verbose || level == GGML_LOG_LEVEL_ERROR ||
                (level == GGML_LOG_LEVEL_CONT && ld_log_last_shown);
    if (level != GGML_LOG_LEVEL_CONT) {
        ld_log_last_shown = show;
    }
    if (show) {
        progress_clear();
        fputs(text, stderr);
    }
}

static int cpu_count(void) {
#ifdef _WIN32
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return si.dwNumberOfProcessors > 0 ? (int)si.dwNumberOfProcessors : 4;
#elif defined(_SC_NPROCESSORS_ONLN)
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 4096 ? (int)n : 4;
#else
    return 4;
#endif
}

/* parse_tokens parses comma-separated token ids. */
static bool parse_tokens(const char *s, llama_token **out, size_t *n, ld_err *e) {
    size_t cap = 1;
    for (const char *p = s; *p; p++) {
        cap += *p == ',';
    }
    llama_token *t = malloc(cap * sizeof *t);
    if (t == NULL) {
        return ld_fail(e, "out of memory reading token ids");
    }
    size_t k = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ') {
            p++;
        }
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno != 0 || v < INT32_MIN || v > INT32_MAX) {
            free(t);
            return ld_fail(e, "--tokens: %s is not a comma-separated list of token ids (at \"%s\")", s, p);
        }
        t[k++] = (llama_token)v;
        p = end;
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        if (*p != ',') {
            free(t);
            return ld_fail(e, "--tokens: %s is not a comma-separated list of token ids (at \"%s\")", s, p);
        }
        p++;
    }
    *out = t;
    *n = k;
    return true;
}

/* tokenize runs llama.cpp's tokenizer on the prompt. */
static bool tokenize(const struct llama_vocab *vocab, const char *text, bool add_special, llama_token **out, size_t *n, ld_err *e) {
    size_t len = strlen(text);
    if (len > INT32_MAX - 16) {
        return ld_fail(e, "the prompt is too long (%zu bytes)", len);
    }
    int32_t cap = (int32_t)len + 8;
    for (int tries = 0; tries < 2; tries++) {
        llama_token *t = malloc((size_t)cap * sizeof *t);
        if (t == NULL) {
            return ld_fail(e, "out of memory tokenizing the prompt");
        }
        int32_t got = llama_tokenize(vocab, text, (int32_t)len, t, cap, add_special, false);
        if (got >= 0) {
            *out = t;
            *n = (size_t)got;
            return true;
        }
        free(t);
        if (got == INT32_MIN) {
            break;
        }
        cap = -got;
    }
    return ld_fail(e, "llama_tokenize failed on the prompt");
}

/* run performs the dump described by o. */
static bool run(const options *o, ld_err *e) {
    bool ok = false;
    struct llama_model *model = NULL;
    struct llama_context *ctx = NULL;
    llama_token *tokens = NULL;
    size_t n_tokens = 0;
    char *tmp = NULL;
    gguf_meta meta = {0};
    dumper d;
    memset(&d, 0, sizeof d);
    struct llama_batch batch;
    bool have_batch = false;

    if (!check_out(o->out, o->force, e)) {
        return false;
    }
    enum ggml_type kv_type = strcmp(o->kv_type, "f32") == 0 ? GGML_TYPE_F32 : GGML_TYPE_F16;
    int threads = o->threads > 0 ? o->threads : cpu_count();

    /* Hyperparameters and fingerprint: cheap, and read before llama.cpp
     * loads the model so that a damaged file gets a precise message. */
    uint64_t size = 0;
    char fingerprint[LD_FP_LEN];
    if (!ld_file_size(o->model, &size, e) || !gguf_read_meta(o->model, size, &meta, e) ||
        !model_fingerprint(o->model, &meta, size, fingerprint, e)) {
        goto done;
    }

    /* Only fields that every supported llama.cpp has are set. How the file
     * is read stays llama.cpp's default, which maps it: use_mmap = true until
     * llama.cpp PR #20834 (2026) replaced use_mmap, use_mlock and
     * use_direct_io by enum llama_load_mode load_mode, whose default is
     * LLAMA_LOAD_MODE_MMAP (LLAMA_LOAD_MODE_AUTO since #26081: mmap unless
     * a device cannot use it). C cannot test for a struct member, and the
     * values are the same. use_extra_bufts stays true (see sb_extra_bufts). */
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = o->ngl;
    int load_pct = -1;
    mp.progress_callback = load_progress;
    mp.progress_callback_user_data = &load_pct;
    progress_show(true, "loading the model");
    model = llama_model_load_from_file(o->model, mp);
    progress_clear();
    if (model == NULL) {
        ld_fail(e, "llama.cpp could not load the model %s (run with -v to see why)", o->model);
        goto done;
    }

    /* The exact identity, once llama.cpp has accepted the model. */
    char sha[65];
    uint64_t hashed = 0;
    if (!file_sha256(o->model, sha, &hashed, e)) {
        goto done;
    }
    if (hashed != size) {
        ld_fail(e, "%s changed while it was read (%" PRIu64 " bytes, then %" PRIu64 ")", o->model, size, hashed);
        goto done;
    }
    const gguf_kv *arch_kv = gguf_find(&meta, "general.architecture");
    const bool have_arch = arch_kv != NULL && arch_kv->type == GV_STRING;
    const char *arch = have_arch ? arch_kv->s : "";
    const size_t arch_len = have_arch ? arch_kv->s_len : 0;

    /* Tokens. */
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);
    if (o->token_ids != NULL) {
        tokens = malloc(o->n_token_ids * sizeof *tokens);
        if (tokens == NULL) {
            ld_fail(e, "out of memory copying the token ids");
            goto done;
        }
        memcpy(tokens, o->token_ids, o->n_token_ids * sizeof *tokens);
        n_tokens = o->n_token_ids;
    } else {
        if (!tokenize(vocab, o->prompt, !o->no_bos, &tokens, &n_tokens, e)) {
            goto done;
        }
        if (n_tokens == 0) {
            ld_fail(e, "the prompt gives no tokens");
            goto done;
        }
    }
    for (size_t i = 0; i < n_tokens; i++) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab) {
            ld_fail(e, "token %" PRId32 " at position %zu is outside the vocabulary (0..%" PRId32 ")", (int32_t)tokens[i], i, n_vocab - 1);
            goto done;
        }
    }
    if (n_tokens > (size_t)INT32_MAX - 256) {
        ld_fail(e, "too many tokens (%zu)", n_tokens);
        goto done;
    }
    size_t n_logits;
    if (!ld_mul(n_tokens, (size_t)n_vocab, &n_logits)) {
        ld_fail(e, "%zu tokens x %" PRId32 " logits do not fit in memory", n_tokens, n_vocab);
        goto done;
    }

    /* Context: one batch holding every token, every position an output. */
    const int n_ctx = (int)((n_tokens + 255) / 256 * 256);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)n_tokens;
    cp.n_ubatch = (uint32_t)n_tokens;
    cp.n_seq_max = 1;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.no_perf = true;
    cp.type_k = kv_type;
    cp.type_v = kv_type;
    cp.flash_attn_type = strcmp(o->fa, "on") == 0    ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                         : strcmp(o->fa, "off") == 0 ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                                     : LLAMA_FLASH_ATTN_TYPE_AUTO;
    cp.cb_eval = eval_callback;
    cp.cb_eval_user_data = &d;
    ctx = llama_init_from_model(model, cp);
    if (ctx == NULL) {
        ld_fail(e, "llama.cpp could not create a context (run with -v to see why)");
        goto done;
    }

    tmp = make_temp_dir(o->out, e);
    if (tmp == NULL) {
        goto done;
    }
    d.dir = tmp;

    batch = llama_batch_init((int32_t)n_tokens, 0, 1);
    have_batch = true;
    batch.n_tokens = (int32_t)n_tokens;
    for (size_t i = 0; i < n_tokens; i++) {
        batch.token[i] = tokens[i];
        batch.pos[i] = (llama_pos)i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    progress_show(true, "evaluating %zu tokens", n_tokens);
    int32_t rc = llama_decode(ctx, batch);
    progress_clear();
    if (d.failed) {
        ld_fail(e, "%s", d.err.msg);
        goto done;
    }
    if (rc != 0) {
        ld_fail(e, "llama_decode returned %" PRId32, rc);
        goto done;
    }

    /* Cross-check: the result_output rows must be llama.cpp's logits. */
    if (d.logits != NULL) {
        if (d.n_logits != n_logits) {
            ld_fail(e, "result_output has %zu values, want %zu tokens x %" PRId32, d.n_logits, n_tokens, n_vocab);
            goto done;
        }
        for (size_t i = 0; i < n_tokens; i++) {
            const float *lg = llama_get_logits_ith(ctx, (int32_t)i);
            if (lg == NULL) {
                ld_fail(e, "llama_get_logits_ith(%zu) returned no logits", i);
                goto done;
            }
            if (memcmp(lg, d.logits + i * (size_t)n_vocab, (size_t)n_vocab * sizeof(float)) != 0) {
                ld_fail(e, "result_output of token %zu differs from llama_get_logits_ith", i);
                goto done;
            }
        }
    }

    run_info ri = {
        .opt = o,
        .system_info = llama_print_system_info(),
        .sha256 = sha,
        .fingerprint = fingerprint,
        .arch = arch,
        .arch_len = arch_len,
        .flash_attn = d.saw_flash_attn ? "on" : "off",
        .type_kv = ggml_type_name(kv_type),
        .model_size = size,
        .meta = &meta,
        .tokens = tokens,
        .n_tokens = n_tokens,
        .threads = threads,
        .n_ctx = n_ctx,
    };
    progress_show(true, "writing the manifest");
    bool written = write_manifest(&d, &ri, e) && replace_out(tmp, o->out, o->force, e);
    progress_clear();
    if (!written) {
        goto done;
    }
    free(tmp);
    tmp = NULL;
    fprintf(stderr, "layerdiff-dump: %zu nodes (%zu stored) -> %s\n", d.n_nodes, d.n_stored, o->out);
    ok = true;

done:
    if (tmp != NULL) {
        ld_err ignored = {{0}};
        int kind;
        if (fs_kind(tmp, &kind, &ignored) && kind == FS_DIR) {
            fs_remove_tree(tmp, &ignored);
        }
        free(tmp);
    }
    if (have_batch) {
        llama_batch_free(batch);
    }
    if (ctx != NULL) {
        llama_free(ctx);
    }
    if (model != NULL) {
        llama_model_free(model);
    }
    free(tokens);
    gguf_meta_free(&meta);
    dumper_free(&d);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */
/* ------------------------------------------------------------------------ */

static const char usage_text[] =
    "usage: layerdiff-dump -m MODEL.gguf (-p PROMPT | -t ID,ID,...) -o DIR [options]\n"
    "\n"
    "Runs llama.cpp on a prompt and writes every graph node it computes into DIR\n"
    "as a layerdiff dump: manifest.json and one .npy file per node (format:\n"
    "docs/dump-format.md in the layerdiff repository). Every position is requested\n"
    "as an output, so the last layer and the logits keep all rows. The dump is built\n"
    "in a temporary directory beside DIR and renamed into place when complete.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE          GGUF model\n"
    "  -p, --prompt TEXT         text to tokenize (BOS/EOS added as the model's\n"
    "                            vocabulary says, unless --no-bos)\n"
    "  -t, --tokens IDS          comma-separated token ids instead of a prompt\n"
    "                            (note: -t is not threads here; see --threads)\n"
    "  -o, --out DIR             dump directory to create\n"
    "  -fa, --fa, --flash-attn on|off|auto\n"
    "                            flash attention (default: auto)\n"
    "  --kv-type f16|f32         K and V cache type (default: f16)\n"
    "  -ngl, --n-gpu-layers N    layers to offload to a GPU (default: 0)\n"
    "  --threads N               CPU threads (default: all cores)\n"
    "  --force                   replace DIR if it exists and is not empty\n"
    "  --no-bos                  do not add BOS/EOS when tokenizing the prompt\n"
    "  -v, --verbose             show llama.cpp's log (errors are always shown)\n"
    "  -h, --help                show this help\n"
    "\n"
    "Exit status: 0 dump written, 1 failure (nothing is left behind), 2 bad usage.\n";

/* parse_int parses a whole decimal int in [lo, hi]. */
static bool parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < lo || v > hi) {
        return false;
    }
    *out = (int)v;
    return true;
}

/* parse_args fills o from argv; it returns 0 to run, 1 after --help, or 2
 * (with a message in e) on bad usage. */
static int parse_args(int argc, char **argv, options *o, ld_err *e) {
    memset(o, 0, sizeof *o);
    o->fa = "auto";
    o->kv_type = "f16";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        /* Split "--opt=value". */
        char name[64];
        const char *val = NULL;
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq != NULL && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
#define IS(s) (strcmp(name, s) == 0)
        bool flag = IS("--force") || IS("--no-bos") || IS("-v") || IS("--verbose") || IS("-h") || IS("--help");
        if (flag) {
            if (val != NULL) {
                ld_fail(e, "%s takes no value", name);
                return 2;
            }
            if (IS("-h") || IS("--help")) {
                return 1;
            }
            if (IS("--force")) {
                o->force = true;
            } else if (IS("--no-bos")) {
                o->no_bos = true;
            } else {
                o->verbose = true;
            }
            continue;
        }
        bool known = IS("-m") || IS("--model") || IS("-p") || IS("--prompt") || IS("-t") || IS("--tokens") ||
                     IS("-o") || IS("--out") || IS("-fa") || IS("--fa") || IS("--flash-attn") || IS("--kv-type") ||
                     IS("-ngl") || IS("--n-gpu-layers") || IS("--gpu-layers") || IS("--threads");
        if (!known) {
            ld_fail(e, "unknown option %s", a);
            return 2;
        }
        if (val == NULL) {
            if (i + 1 >= argc) {
                ld_fail(e, "%s needs a value", name);
                return 2;
            }
            val = argv[++i];
        }
        if (IS("-m") || IS("--model")) {
            o->model = val;
        } else if (IS("-p") || IS("--prompt")) {
            o->prompt = val;
        } else if (IS("-t") || IS("--tokens")) {
            o->tokens = val;
        } else if (IS("-o") || IS("--out")) {
            o->out = val;
        } else if (IS("-fa") || IS("--fa") || IS("--flash-attn")) {
            if (strcmp(val, "on") != 0 && strcmp(val, "off") != 0 && strcmp(val, "auto") != 0) {
                ld_fail(e, "%s must be on, off or auto, not \"%s\"", name, val);
                return 2;
            }
            o->fa = val;
        } else if (IS("--kv-type")) {
            if (strcmp(val, "f16") != 0 && strcmp(val, "f32") != 0) {
                ld_fail(e, "--kv-type must be f16 or f32, not \"%s\"", val);
                return 2;
            }
            o->kv_type = val;
        } else if (IS("-ngl") || IS("--n-gpu-layers") || IS("--gpu-layers")) {
            if (!parse_int(val, -1, 100000, &o->ngl)) {
                ld_fail(e, "%s needs a number of layers, not \"%s\"", name, val);
                return 2;
            }
        } else {
            if (!parse_int(val, 1, 4096, &o->threads)) {
                ld_fail(e, "--threads needs a number from 1 to 4096, not \"%s\"", val);
                return 2;
            }
        }
#undef IS
    }
    if (o->model == NULL || o->out == NULL) {
        ld_fail(e, "a model (-m) and an output directory (-o) are required");
        return 2;
    }
    if ((o->prompt == NULL) == (o->tokens == NULL)) {
        ld_fail(e, "give either a prompt (-p) or token ids (-t), not %s", o->prompt ? "both" : "neither");
        return 2;
    }
    if (o->tokens != NULL && !parse_tokens(o->tokens, &o->token_ids, &o->n_token_ids, e)) {
        return 2;
    }
    if (o->out[0] == '\0') {
        ld_fail(e, "the output directory name is empty");
        return 2;
    }
    /* The dump is renamed into place, so DIR must name a new entry. */
    size_t n = strlen(o->out);
    while (n > 1 && is_sep(o->out[n - 1])) {
        n--;
    }
    size_t base = n;
    while (base > 0 && !is_sep(o->out[base - 1])) {
        base--;
    }
    if (n - base == 0 || (n - base == 1 && o->out[base] == '.') || (n - base == 2 && strncmp(o->out + base, "..", 2) == 0)) {
        ld_fail(e, "-o %s: name the dump directory itself (not /, . or ..)", o->out);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    options o;
    ld_err e = {{0}};
    int pa = parse_args(argc, argv, &o, &e);
    if (pa != 0) {
        free(o.token_ids);
    }
    if (pa == 1) {
        fputs(usage_text, stdout);
        fflush(stdout);
        return 0;
    }
    if (pa == 2) {
        fprintf(stderr, "layerdiff-dump: %s\n\n%s", e.msg, usage_text);
        return 2;
    }
    /* Drop trailing separators of DIR ("out/" -> "out") so that the
     * temporary directory is created beside it. */
    size_t n = strlen(o.out);
    char *out = ld_strdup(o.out, &e);
    if (out == NULL) {
        fprintf(stderr, "layerdiff-dump: %s\n", e.msg);
        free(o.token_ids);
        return 1;
    }
    while (n > 1 && is_sep(out[n - 1])) {
        out[--n] = '\0';
    }
    o.out = out;

    ld_log_verbose = o.verbose;
    ld_log_last_shown = false;
    ld_progress_on = !o.verbose && stderr_is_tty();
    ld_progress_len = 0;
    ld_progress_last = 0;
    llama_log_set(log_callback, NULL);
    /* Builds with dynamically loaded backends (GGML_BACKEND_DL) start with
     * none registered; others register theirs at startup. */
    if (ggml_backend_dev_count() == 0) {
        ggml_backend_load_all();
    }
    llama_backend_init();
    bool ok = run(&o, &e);
    progress_clear();
    llama_backend_free();
    free(out);
    free(o.token_ids);
    if (!ok) {
        fprintf(stderr, "layerdiff-dump: %s\n", e.msg);
        return 1;
    }
    return 0;
}
