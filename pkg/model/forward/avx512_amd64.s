//go:build amd64 && !purego

#include "textflag.h"

// The 16-lane kernels of the x86-avx512 profile, computed with AVX2: a
// __m512 lane i is lane i%8 of one of two ymm registers (lo: 0-7, hi:
// 8-15). Every lane is the same fused multiply-add as on AVX-512.

#define L16F32(src, dst) VMOVUPS src, dst
#define L16F16(src, dst) VCVTPH2PS src, dst
#define L16BF16(src, dst) VPMOVZXWD src, dst; VPSLLD $16, dst, dst

// L16ENTRY: CX = n/16, SI = a, R8/R10/R12/R13 = the columns, R9 = acc,
// Y0-Y7 = 0 (column c: Y(2c) lanes 0-7, Y(2c+1) lanes 8-15).
#define L16ENTRY \
	MOVQ n+0(FP), CX; \
	MOVQ a+8(FP), SI; \
	MOVQ b+16(FP), R11; \
	MOVQ acc+24(FP), R9; \
	MOVQ 0(R11), R8; \
	MOVQ 8(R11), R10; \
	MOVQ 16(R11), R12; \
	MOVQ 24(R11), R13; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7; \
	XORQ AX, AX; \
	XORQ BX, BX; \
	SHRQ $4, CX

// L16STEP: sixteen values of row a (the lo half at AX, the hi half at
// AX+HI) times the four float32 columns (at BX) into Y0-Y7.
#define L16STEP(LOAD, HI) \
	LOAD((SI)(AX*1), Y8); \
	LOAD(HI(SI)(AX*1), Y9); \
	VFMADD231PS (R8)(BX*1), Y8, Y0; \
	VFMADD231PS 32(R8)(BX*1), Y9, Y1; \
	VFMADD231PS (R10)(BX*1), Y8, Y2; \
	VFMADD231PS 32(R10)(BX*1), Y9, Y3; \
	VFMADD231PS (R12)(BX*1), Y8, Y4; \
	VFMADD231PS 32(R12)(BX*1), Y9, Y5; \
	VFMADD231PS (R13)(BX*1), Y8, Y6; \
	VFMADD231PS 32(R13)(BX*1), Y9, Y7

#define L16EXIT \
	VMOVUPS Y0, 0(R9); \
	VMOVUPS Y1, 32(R9); \
	VMOVUPS Y2, 64(R9); \
	VMOVUPS Y3, 96(R9); \
	VMOVUPS Y4, 128(R9); \
	VMOVUPS Y5, 160(R9); \
	VMOVUPS Y6, 192(R9); \
	VMOVUPS Y7, 224(R9); \
	VZEROUPPER

// func tinyF32x4L16AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)
//
// tinyBLAS<16, __m512> for float32: one weight row, four columns, n a
// multiple of 16.
TEXT ·tinyF32x4L16AVX2(SB), NOSPLIT, $0-32
	L16ENTRY
	JZ   f32l16done
f32l16loop:
	L16STEP(L16F32, 32)
	ADDQ $64, AX
	ADDQ $64, BX
	DECQ CX
	JNZ  f32l16loop
f32l16done:
	L16EXIT
	RET

// func tinyF16x4L16AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)
TEXT ·tinyF16x4L16AVX2(SB), NOSPLIT, $0-32
	L16ENTRY
	JZ   f16l16done
f16l16loop:
	L16STEP(L16F16, 16)
	ADDQ $32, AX
	ADDQ $64, BX
	DECQ CX
	JNZ  f16l16loop
f16l16done:
	L16EXIT
	RET

// func tinyBF16x4L16AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)
//
// tinyBLAS<16, __m512> for bfloat16 without AVX512_BF16.
TEXT ·tinyBF16x4L16AVX2(SB), NOSPLIT, $0-32
	L16ENTRY
	JZ   bf16l16done
bf16l16loop:
	L16STEP(L16BF16, 16)
	ADDQ $32, AX
	ADDQ $64, BX
	DECQ CX
	JNZ  bf16l16loop
bf16l16done:
	L16EXIT
	RET

// func dotF16Acc16AVX2(n int, a, b *uint16, acc *[8][8]float32)
//
// ggml_vec_dot_f16's AVX-512 main loop: n a multiple of 64, four 16-lane
// accumulators (acc[2j], acc[2j+1]) = fma(a[i+16j..], b[i+16j..], ·),
// starting from zero.
TEXT ·dotF16Acc16AVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ acc+24(FP), R9
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	SHRQ $6, CX
	JZ   d16done
d16loop:
	VCVTPH2PS (SI), Y8
	VCVTPH2PS (DI), Y9
	VFMADD231PS Y9, Y8, Y0
	VCVTPH2PS 16(SI), Y10
	VCVTPH2PS 16(DI), Y11
	VFMADD231PS Y11, Y10, Y1
	VCVTPH2PS 32(SI), Y12
	VCVTPH2PS 32(DI), Y13
	VFMADD231PS Y13, Y12, Y2
	VCVTPH2PS 48(SI), Y14
	VCVTPH2PS 48(DI), Y15
	VFMADD231PS Y15, Y14, Y3
	VCVTPH2PS 64(SI), Y8
	VCVTPH2PS 64(DI), Y9
	VFMADD231PS Y9, Y8, Y4
	VCVTPH2PS 80(SI), Y10
	VCVTPH2PS 80(DI), Y11
	VFMADD231PS Y11, Y10, Y5
	VCVTPH2PS 96(SI), Y12
	VCVTPH2PS 96(DI), Y13
	VFMADD231PS Y13, Y12, Y6
	VCVTPH2PS 112(SI), Y14
	VCVTPH2PS 112(DI), Y15
	VFMADD231PS Y15, Y14, Y7
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  d16loop
d16done:
	VMOVUPS Y0, 0(R9)
	VMOVUPS Y1, 32(R9)
	VMOVUPS Y2, 64(R9)
	VMOVUPS Y3, 96(R9)
	VMOVUPS Y4, 128(R9)
	VMOVUPS Y5, 160(R9)
	VMOVUPS Y6, 192(R9)
	VMOVUPS Y7, 224(R9)
	VZEROUPPER
	RET
