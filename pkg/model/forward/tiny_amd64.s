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

// func tinyF32x4AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[4][8]float32)
TEXT ·tinyF32x4AVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), R11
	MOVQ acc+24(FP), R9
	MOVQ 0(R11), R8
	MOVQ 8(R11), R10
	MOVQ 16(R11), R12
	MOVQ 24(R11), R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ AX, AX
	SHRQ $3, CX
	JZ   tinyF32x4AVX2done
tinyF32x4AVX2loop:
	VMOVUPS (SI)(AX*1), Y4
	VMOVUPS (R8)(AX*1), Y5
	VFMADD231PS Y5, Y4, Y0
	VMOVUPS (R10)(AX*1), Y6
	VFMADD231PS Y6, Y4, Y1
	VMOVUPS (R12)(AX*1), Y7
	VFMADD231PS Y7, Y4, Y2
	VMOVUPS (R13)(AX*1), Y8
	VFMADD231PS Y8, Y4, Y3
	ADDQ $32, AX
	DECQ CX
	JNZ  tinyF32x4AVX2loop
tinyF32x4AVX2done:
	VMOVUPS Y0, 0(R9)
	VMOVUPS Y1, 32(R9)
	VMOVUPS Y2, 64(R9)
	VMOVUPS Y3, 96(R9)
	VZEROUPPER
	RET

// func tinyF16x4AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[4][8]float32)
TEXT ·tinyF16x4AVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), R11
	MOVQ acc+24(FP), R9
	MOVQ 0(R11), R8
	MOVQ 8(R11), R10
	MOVQ 16(R11), R12
	MOVQ 24(R11), R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ AX, AX
	XORQ BX, BX
	SHRQ $3, CX
	JZ   tinyF16x4AVX2done
tinyF16x4AVX2loop:
	VCVTPH2PS (SI)(AX*1), Y4
	VFMADD231PS (R8)(BX*1), Y4, Y0
	VFMADD231PS (R10)(BX*1), Y4, Y1
	VFMADD231PS (R12)(BX*1), Y4, Y2
	VFMADD231PS (R13)(BX*1), Y4, Y3
	ADDQ $16, AX
	ADDQ $32, BX
	DECQ CX
	JNZ  tinyF16x4AVX2loop
tinyF16x4AVX2done:
	VMOVUPS Y0, 0(R9)
	VMOVUPS Y1, 32(R9)
	VMOVUPS Y2, 64(R9)
	VMOVUPS Y3, 96(R9)
	VZEROUPPER
	RET

// func tinyBF16x4AVX2(n int, a unsafe.Pointer, b *[4]unsafe.Pointer, acc *[4][8]float32)
TEXT ·tinyBF16x4AVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), R11
	MOVQ acc+24(FP), R9
	MOVQ 0(R11), R8
	MOVQ 8(R11), R10
	MOVQ 16(R11), R12
	MOVQ 24(R11), R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ AX, AX
	XORQ BX, BX
	SHRQ $3, CX
	JZ   tinyBF16x4AVX2done
tinyBF16x4AVX2loop:
	VPMOVZXWD (SI)(AX*1), Y4
	VPSLLD $16, Y4, Y4
	VFMADD231PS (R8)(BX*1), Y4, Y0
	VFMADD231PS (R10)(BX*1), Y4, Y1
	VFMADD231PS (R12)(BX*1), Y4, Y2
	VFMADD231PS (R13)(BX*1), Y4, Y3
	ADDQ $16, AX
	ADDQ $32, BX
	DECQ CX
	JNZ  tinyBF16x4AVX2loop
tinyBF16x4AVX2done:
	VMOVUPS Y0, 0(R9)
	VMOVUPS Y1, 32(R9)
	VMOVUPS Y2, 64(R9)
	VMOVUPS Y3, 96(R9)
	VZEROUPPER
	RET
