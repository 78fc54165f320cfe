//go:build amd64 && !purego

#include "textflag.h"

// vdpbf16ps (AVX512_BF16) computed with AVX2, for the x86-avx512 profile:
// a __m512 lane j takes bfloat16 elements 2j and 2j+1 of a 32-value step
// and adds their products to its float32 accumulator, the odd one first,
// each addition rounded, with bfloat16 subnormals read as zero and
// subnormal results flushed (vdpbf16ps's DAZ/FTZ, whatever MXCSR says).
// Here a ymm dword holds one such pair: its high half, masked, is the odd
// element as float32 and its low half shifted up the even one; MXCSR's
// DAZ and FTZ are set for the loop and restored after it. The products of
// two bfloat16 values are exact in float32 (8-bit significands), so
// VMULPS then VADDPS is dpbf16 (avx512.go) lane for lane.

// DPSTEP adds one 16-value half-step (a and b at OFF) to ACC.
#define DPSTEP(OFF, ACC) \
	VMOVDQU OFF(SI)(AX*1), Y8; \
	VMOVDQU OFF(DI)(AX*1), Y9; \
	VPAND   Y15, Y8, Y10; \
	VPAND   Y15, Y9, Y11; \
	VMULPS  Y11, Y10, Y10; \
	VADDPS  Y10, ACC, ACC; \
	VPSLLD  $16, Y8, Y8; \
	VPSLLD  $16, Y9, Y9; \
	VMULPS  Y9, Y8, Y8; \
	VADDPS  Y8, ACC, ACC

// DPENTRY: CX = n, SI = a, DI = b, R9 = acc, Y0-Y3 = 0, Y15 = 0xffff0000
// in every dword; MXCSR saved and DAZ|FTZ set.
#define DPENTRY \
	MOVQ n+0(FP), CX; \
	MOVQ a+8(FP), SI; \
	MOVQ b+16(FP), DI; \
	MOVQ acc+24(FP), R9; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VPCMPEQD Y15, Y15, Y15; \
	VPSLLD $16, Y15, Y15; \
	STMXCSR old-8(SP); \
	MOVL old-8(SP), DX; \
	ORL $0x8040, DX; \
	MOVL DX, new-4(SP); \
	LDMXCSR new-4(SP); \
	XORQ AX, AX

// func dpbf16x32AVX2(n int, a, b *uint16, acc *[2][8]float32)
//
// tinyBLAS<32, __m512, __m512bh> for one row and one column: n a multiple
// of 32; acc[0] holds lanes 0-7, acc[1] lanes 8-15.
TEXT ·dpbf16x32AVX2(SB), NOSPLIT, $8-32
	DPENTRY
	SHRQ $5, CX
	JZ   x32done
x32loop:
	DPSTEP(0, Y0)
	DPSTEP(32, Y1)
	ADDQ $64, AX
	DECQ CX
	JNZ  x32loop
x32done:
	LDMXCSR old-8(SP)
	VMOVUPS Y0, 0(R9)
	VMOVUPS Y1, 32(R9)
	VZEROUPPER
	RET

// func dpbf16x64AVX2(n int, a, b *uint16, acc *[4][8]float32)
//
// ggml_vec_dot_bf16's AVX512_BF16 main loop: n a multiple of 64; two
// accumulators, c1 over values i..i+31 of each 64 (acc[0], acc[1]) and c2
// over i+32..i+63 (acc[2], acc[3]).
TEXT ·dpbf16x64AVX2(SB), NOSPLIT, $8-32
	DPENTRY
	SHRQ $6, CX
	JZ   x64done
x64loop:
	DPSTEP(0, Y0)
	DPSTEP(32, Y1)
	DPSTEP(64, Y2)
	DPSTEP(96, Y3)
	ADDQ $128, AX
	DECQ CX
	JNZ  x64loop
x64done:
	LDMXCSR old-8(SP)
	VMOVUPS Y0, 0(R9)
	VMOVUPS Y1, 32(R9)
	VMOVUPS Y2, 64(R9)
	VMOVUPS Y3, 96(R9)
	VZEROUPPER
	RET

// DPX4COL adds one 16-value half of column COL (at OFF) times the split
// weights (Y8 odd, Y9 even) to ACC; DPX4HALF splits the weights at OFF and
// does it for the four columns (R8, R10, R12, R13) into A0-A3.
#define DPX4COL(COL, OFF, ACC) \
	VMOVDQU OFF(COL)(AX*1), Y12; \
	VPAND   Y15, Y12, Y13; \
	VMULPS  Y13, Y8, Y13; \
	VADDPS  Y13, ACC, ACC; \
	VPSLLD  $16, Y12, Y12; \
	VMULPS  Y12, Y9, Y12; \
	VADDPS  Y12, ACC, ACC

#define DPX4HALF(OFF, A0, A1, A2, A3) \
	VMOVDQU OFF(SI)(AX*1), Y9; \
	VPAND   Y15, Y9, Y8; \
	VPSLLD  $16, Y9, Y9; \
	DPX4COL(R8, OFF, A0); \
	DPX4COL(R10, OFF, A1); \
	DPX4COL(R12, OFF, A2); \
	DPX4COL(R13, OFF, A3)

// func dpbf16x32x4AVX2(n int, a *uint16, b *[4]unsafe.Pointer, acc *[8][8]float32)
//
// tinyBLAS<32, __m512, __m512bh> for one row and four bfloat16 columns, n
// a multiple of 32: column c's lanes 0-7 in acc[2c], 8-15 in acc[2c+1].
// Eight independent accumulators instead of two keep the adds from
// waiting on each other.
TEXT ·dpbf16x32x4AVX2(SB), NOSPLIT, $8-32
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
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VPCMPEQD Y15, Y15, Y15
	VPSLLD $16, Y15, Y15
	STMXCSR old-8(SP)
	MOVL old-8(SP), DX
	ORL $0x8040, DX
	MOVL DX, new-4(SP)
	LDMXCSR new-4(SP)
	XORQ AX, AX
	SHRQ $5, CX
	JZ   x4done
x4loop:
	DPX4HALF(0, Y0, Y2, Y4, Y6)
	DPX4HALF(32, Y1, Y3, Y5, Y7)
	ADDQ $64, AX
	DECQ CX
	JNZ  x4loop
x4done:
	LDMXCSR old-8(SP)
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
