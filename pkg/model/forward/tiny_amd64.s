//go:build amd64 && !purego

#include "textflag.h"

// llamafile's tinyBLAS<8, __m256> for one weight row (a) and four
// activation columns (b[0..3]) of n elements (n a multiple of 8; the
// caller drops the rest, as tinyBLAS requires k % 8 == 0): column c's
// lane i accumulates fma(a[l+i], b[c][l+i]) over steps of 8 into acc[c],
// exactly dotF32Tiny, dotF16Tiny and dotBF16Tiny per column (the caller
// adds the lanes with hsum8). Four independent accumulators keep the FMA
// units busy where one column's chain would wait on each FMA. The F16 and
// BF16 kernels take the weight row in its type and the columns already
// converted to float32 (exact, done once per matmul, not once per row).


// Eight weights as float32 into dst, from float32, float16 or bfloat16.
#define LOADF32(src, dst) VMOVUPS src, dst
#define LOADF16(src, dst) VCVTPH2PS src, dst
#define LOADBF16(src, dst) VPMOVZXWD src, dst; VPSLLD $16, dst, dst

// X4ENTRY loads the arguments of a four-column kernel (n, a, b, acc):
// CX = n/8, SI = a, R8/R10/R12/R13 = the columns, R9 = acc, Y0-Y3 = 0.
#define X4ENTRY \
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
	XORQ AX, AX; \
	XORQ BX, BX; \
	SHRQ $3, CX

// X4STEP is one step of eight values: row a (LOAD at AX) times the four
// float32 columns (at BX) into Y0-Y3.
#define X4STEP(LOAD) \
	LOAD((SI)(AX*1), Y4); \
	VFMADD231PS (R8)(BX*1), Y4, Y0; \
	VFMADD231PS (R10)(BX*1), Y4, Y1; \
	VFMADD231PS (R12)(BX*1), Y4, Y2; \
	VFMADD231PS (R13)(BX*1), Y4, Y3

// X4EXIT stores Y0-Y3 to acc.
#define X4EXIT \
	VMOVUPS Y0, 0(R9); \
	VMOVUPS Y1, 32(R9); \
	VMOVUPS Y2, 64(R9); \
	VMOVUPS Y3, 96(R9); \
	VZEROUPPER

// X2X4ENTRY is X4ENTRY for (n, a0, a1, b, acc): SI = a0, DI = a1, Y0-Y7 = 0.
#define X2X4ENTRY \
	MOVQ n+0(FP), CX; \
	MOVQ a0+8(FP), SI; \
	MOVQ a1+16(FP), DI; \
	MOVQ b+24(FP), R11; \
	MOVQ acc+32(FP), R9; \
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
	SHRQ $3, CX

// X2X4STEP: rows a0 (into Y0-Y3) and a1 (into Y4-Y7) times the columns.
#define X2X4STEP(LOAD) \
	LOAD((SI)(AX*1), Y8); \
	LOAD((DI)(AX*1), Y9); \
	VMOVUPS (R8)(BX*1), Y10; \
	VFMADD231PS Y10, Y8, Y0; \
	VFMADD231PS Y10, Y9, Y4; \
	VMOVUPS (R10)(BX*1), Y11; \
	VFMADD231PS Y11, Y8, Y1; \
	VFMADD231PS Y11, Y9, Y5; \
	VMOVUPS (R12)(BX*1), Y12; \
	VFMADD231PS Y12, Y8, Y2; \
	VFMADD231PS Y12, Y9, Y6; \
	VMOVUPS (R13)(BX*1), Y13; \
	VFMADD231PS Y13, Y8, Y3; \
	VFMADD231PS Y13, Y9, Y7

// X2X4EXIT stores Y0-Y7 to acc.
#define X2X4EXIT \
	VMOVUPS Y0, 0(R9); \
	VMOVUPS Y1, 32(R9); \
	VMOVUPS Y2, 64(R9); \
	VMOVUPS Y3, 96(R9); \
	VMOVUPS Y4, 128(R9); \
	VMOVUPS Y5, 160(R9); \
	VMOVUPS Y6, 192(R9); \
	VMOVUPS Y7, 224(R9); \
	VZEROUPPER

// func tinyF32x4AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[4][8]float32)
TEXT ·tinyF32x4AVX2(SB), NOSPLIT, $0-32
	X4ENTRY
	JZ   f32x4done
f32x4loop:
	X4STEP(LOADF32)
	ADDQ $32, AX
	ADDQ $32, BX
	DECQ CX
	JNZ  f32x4loop
f32x4done:
	X4EXIT
	RET

// func tinyF16x4AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[4][8]float32)
TEXT ·tinyF16x4AVX2(SB), NOSPLIT, $0-32
	X4ENTRY
	JZ   f16x4done
f16x4loop:
	X4STEP(LOADF16)
	ADDQ $16, AX
	ADDQ $32, BX
	DECQ CX
	JNZ  f16x4loop
f16x4done:
	X4EXIT
	RET

// func tinyBF16x4AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[4][8]float32)
TEXT ·tinyBF16x4AVX2(SB), NOSPLIT, $0-32
	X4ENTRY
	JZ   bf16x4done
bf16x4loop:
	X4STEP(LOADBF16)
	ADDQ $16, AX
	ADDQ $32, BX
	DECQ CX
	JNZ  bf16x4loop
bf16x4done:
	X4EXIT
	RET

// The same for two weight rows (a0, a1) at once: acc[0..3] are row 0's
// columns, acc[4..7] row 1's. Each activation load serves both rows, which
// halves the activation traffic per FMA (the columns come from L2).

// func tinyF32x2x4AVX2(n int, a0, a1 unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)
TEXT ·tinyF32x2x4AVX2(SB), NOSPLIT, $0-40
	X2X4ENTRY
	JZ   f32x2done
f32x2loop:
	X2X4STEP(LOADF32)
	ADDQ $32, AX
	ADDQ $32, BX
	DECQ CX
	JNZ  f32x2loop
f32x2done:
	X2X4EXIT
	RET

// func tinyF16x2x4AVX2(n int, a0, a1 unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)
TEXT ·tinyF16x2x4AVX2(SB), NOSPLIT, $0-40
	X2X4ENTRY
	JZ   f16x2done
f16x2loop:
	X2X4STEP(LOADF16)
	ADDQ $16, AX
	ADDQ $32, BX
	DECQ CX
	JNZ  f16x2loop
f16x2done:
	X2X4EXIT
	RET

// func tinyBF16x2x4AVX2(n int, a0, a1 unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)
TEXT ·tinyBF16x2x4AVX2(SB), NOSPLIT, $0-40
	X2X4ENTRY
	JZ   bf16x2done
bf16x2loop:
	X2X4STEP(LOADBF16)
	ADDQ $16, AX
	ADDQ $32, BX
	DECQ CX
	JNZ  bf16x2loop
bf16x2done:
	X2X4EXIT
	RET

// tinyBLAS<16, __m512> of the x86-avx512 profile, computed with AVX2: a
// __m512 lane i is lane i%8 of one of two ymm registers (lo: 0-7, hi:
// 8-15), every lane the same fused multiply-add as on AVX-512. One weight
// row, four columns, n a multiple of 16; acc[2c] holds column c's lanes
// 0-7, acc[2c+1] its lanes 8-15.

// L16ENTRY is X4ENTRY with Y4-Y7 zeroed too and CX = n/16.
#define L16ENTRY \
	X4ENTRY; \
	VXORPS Y4, Y4, Y4; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7; \
	SHRQ $1, CX

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

// func tinyF32x4L16AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)
TEXT ·tinyF32x4L16AVX2(SB), NOSPLIT, $0-32
	L16ENTRY
	JZ   f32l16done
f32l16loop:
	L16STEP(LOADF32, 32)
	ADDQ $64, AX
	ADDQ $64, BX
	DECQ CX
	JNZ  f32l16loop
f32l16done:
	X2X4EXIT
	RET

// func tinyF16x4L16AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)
TEXT ·tinyF16x4L16AVX2(SB), NOSPLIT, $0-32
	L16ENTRY
	JZ   f16l16done
f16l16loop:
	L16STEP(LOADF16, 16)
	ADDQ $32, AX
	ADDQ $64, BX
	DECQ CX
	JNZ  f16l16loop
f16l16done:
	X2X4EXIT
	RET

// func tinyBF16x4L16AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[8][8]float32)
//
// The same for bfloat16 without AVX512_BF16.
TEXT ·tinyBF16x4L16AVX2(SB), NOSPLIT, $0-32
	L16ENTRY
	JZ   bf16l16done
bf16l16loop:
	L16STEP(LOADBF16, 16)
	ADDQ $32, AX
	ADDQ $64, BX
	DECQ CX
	JNZ  bf16l16loop
bf16l16done:
	X2X4EXIT
	RET
