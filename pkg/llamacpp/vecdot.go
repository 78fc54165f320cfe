//go:build llamacpp

package llamacpp

/*
#include <stdlib.h>
#include "ggml.h"
#include "ggml-cpu.h"

// ld_vec_dot runs ggml-cpu's type_traits_cpu[type].vec_dot on one weight
// row x and one activation row y (already in the vec_dot_type).
static int ld_vec_dot(int type, int n, const void *x, const void *y, float *s) {
    const struct ggml_type_traits_cpu *tr = ggml_get_type_traits_cpu((enum ggml_type)type);
    if (tr == NULL || tr->vec_dot == NULL) return -1;
    tr->vec_dot(n, s, 0, x, 0, y, 0, 1);
    return 0;
}
*/
import "C"

import "fmt"

// VecDot is ggml-cpu's vec_dot for weight type t (type_traits_cpu[t]):
// the dot product of n values, x one row of type t and y one row of its
// vec_dot_type (VecDotType), the kernel MUL_MAT runs for each output when
// neither llamafile nor a repack buffer takes the product.
func VecDot(t, n int, x, y []byte) (float32, error) {
	Init()
	cpuInit()
	vdt := VecDotType(t)
	if n <= 0 || BlockSize(t) <= 0 || n%BlockSize(t) != 0 || vdt < 0 || n%BlockSize(vdt) != 0 {
		return 0, fmt.Errorf("vec_dot %s: %d values are not whole blocks", TypeName(t), n)
	}
	if len(x) != n/BlockSize(t)*TypeSize(t) || len(y) != n/BlockSize(vdt)*TypeSize(vdt) {
		return 0, fmt.Errorf("vec_dot %s: rows of %d and %d bytes for %d values", TypeName(t), len(x), len(y), n)
	}
	cx, cy := C.CBytes(x), C.CBytes(y)
	defer C.free(cx)
	defer C.free(cy)
	var s C.float
	if C.ld_vec_dot(C.int(t), C.int(n), cx, cy, &s) != 0 {
		return 0, fmt.Errorf("vec_dot: type %s has none", TypeName(t))
	}
	return float32(s), nil
}
