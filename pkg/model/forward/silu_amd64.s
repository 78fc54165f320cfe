//go:build amd64 && !purego

#include "textflag.h"

// func swigluAVX2(n int, y, x, gate *float32, consts *[15][8]uint32)
//
// ggml_vec_swiglu_f32's AVX2 loop on n (a multiple of 8) elements: y =
// ggml_v_silu(x)·g, ggml_v_silu(x) = x / (1 + ggml_v_expf(0 − x)), with
// ggml_v_expf's instructions (vec.h) one for one. Both of ggml_v_expf's
// results are computed and blended per lane (ggml branches only to skip
// the blend when no lane needs it: the lanes come out the same). consts holds
// the constants, broadcast (swigluConsts).
TEXT ·swigluAVX2(SB), NOSPLIT, $0-40
	MOVQ n+0(FP), CX
	MOVQ y+8(FP), DI
	MOVQ x+16(FP), SI
	MOVQ gate+24(FP), DX
	MOVQ consts+32(FP), R8
	SHRQ $3, CX
	JZ   swdone

swloop:
	VMOVUPS (SI), Y0             // x
	VXORPS Y2, Y2, Y2
	VSUBPS Y0, Y2, Y2            // X = 0 - x
	VMOVAPS Y2, Y3
	VMOVUPS 32(R8), Y4
	VFMADD213PS 0(R8), Y4, Y3    // z = X·log2e + r
	VSUBPS 0(R8), Y3, Y4         // n = z - r
	VMOVAPS Y2, Y5
	VFNMADD231PS 64(R8), Y4, Y5  // X - n·C1
	VFNMADD231PS 96(R8), Y4, Y5  // b = (X - n·C1) - n·C2
	VPSLLD $23, Y3, Y6           // e
	VPADDD 128(R8), Y6, Y7       // k = e + bits(1)
	VANDPS 160(R8), Y4, Y8
	VCMPPS $0x1e, 192(R8), Y8, Y8 // c = |n| > 126
	VMULPS Y5, Y5, Y9            // u = b·b
	VMOVUPS 224(R8), Y10
	VFMADD213PS 256(R8), Y5, Y10 // P0·b + P1
	VMOVUPS 288(R8), Y11
	VFMADD213PS 320(R8), Y5, Y11 // P2·b + P3
	VFMADD213PS Y11, Y9, Y10     // (P0·b + P1)·u + (P2·b + P3)
	VMULPS 352(R8), Y5, Y12      // P4·b
	VFMADD213PS Y12, Y9, Y10     // j
	VMOVAPS Y7, Y11
	VFMADD213PS Y7, Y10, Y11     // k·j + k
	VXORPS Y12, Y12, Y12
	VCMPPS $0x12, Y12, Y4, Y13   // n <= 0
	VANDPS 384(R8), Y13, Y13     // g
	VPADDD 416(R8), Y13, Y12     // s1 = g + 0x7f000000
	VPSUBD Y13, Y6, Y14          // s2 = e - g
	VMOVAPS Y14, Y15
	VFMADD213PS Y14, Y10, Y15    // s2·j + s2
	VMULPS Y12, Y15, Y15         // (s2·j + s2)·s1
	VANDPS 160(R8), Y4, Y13
	VCMPPS $0x1e, 448(R8), Y13, Y13 // d = |n| > 192
	VMULPS Y12, Y12, Y12         // s1·s1
	VBLENDVPS Y8, Y15, Y11, Y11  // c ? (s2·j + s2)·s1 : k·j + k
	VBLENDVPS Y13, Y12, Y11, Y11 // d ? s1·s1 : …  = expf(-x)
	VADDPS 128(R8), Y11, Y11     // 1 + expf(-x)
	VDIVPS Y11, Y0, Y11          // silu = x / (1 + expf(-x))
	VMULPS (DX), Y11, Y11        // · g
	VMOVUPS Y11, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ  swloop

swdone:
	VZEROUPPER
	RET
