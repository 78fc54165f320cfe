//go:build amd64 && !purego

#include "textflag.h"

// func cpuidAVX2() bool
// AVX2, FMA and OS support for the YMM state (OSXSAVE, XCR0 bits 1 and 2).
TEXT ·cpuidAVX2(SB), NOSPLIT, $0-1
	MOVB $0, ret+0(FP)
	MOVL $0, AX
	CPUID
	CMPL AX, $7
	JLT  no
	MOVL $1, AX
	MOVL $0, CX
	CPUID
	// FMA (bit 12), OSXSAVE (27), AVX (28), F16C (29)
	MOVL CX, BX
	ANDL $0x38001000, BX
	CMPL BX, $0x38001000
	JNE  no
	MOVL $0, CX
	XGETBV
	ANDL $6, AX
	CMPL AX, $6
	JNE  no
	MOVL $7, AX
	MOVL $0, CX
	CPUID
	// AVX2 (EBX bit 5)
	ANDL $0x20, BX
	JZ   no
	MOVB $1, ret+0(FP)
no:
	RET

// func dotQ8_0AVX2(nb int, x, y *byte, tab *[65536]float32, acc *[8]float32) bool
//
// acc = for each of nb blocks of 34 bytes: fma(f16(x.d)*f16(y.d),
// float(lane), acc), lane l the exact sum of the products of bytes
// 4l..4l+3, as ggml's mul_sum_i8_pairs_float: VPMADDUBSW(|x|, sign(y, x))
// then VPMADDWD by ones. With x the weight and y the activation this is
// exact unless y holds -128 (negating it wraps): the kernel then returns
// false and the caller uses the portable kernel. Valid Q8_0 activations
// (from quantize_row_q8_0) never hold -128; weights may.
TEXT ·dotQ8_0AVX2(SB), NOSPLIT, $0-41
	MOVQ nb+0(FP), CX
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ tab+24(FP), R8
	MOVQ acc+32(FP), R9
	VXORPS Y0, Y0, Y0
	VPXOR Y10, Y10, Y10
	MOVL $0x00010001, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x80808080, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	TESTQ CX, CX
	JLE  q8done
q8loop:
	MOVWLZX (SI), AX
	MOVWLZX (DI), DX
	VMOVSS (R8)(AX*4), X1
	VMULSS (R8)(DX*4), X1, X1
	VBROADCASTSS X1, Y1
	VMOVDQU 2(SI), Y2
	VMOVDQU 2(DI), Y3
	VPCMPEQB Y14, Y3, Y4
	VPOR Y4, Y10, Y10
	VPSIGNB Y2, Y3, Y3
	VPABSB Y2, Y2
	VPMADDUBSW Y3, Y2, Y2
	VPMADDWD Y15, Y2, Y2
	VCVTDQ2PS Y2, Y2
	VFMADD231PS Y2, Y1, Y0
	ADDQ $34, SI
	ADDQ $34, DI
	DECQ CX
	JNZ  q8loop
q8done:
	VMOVUPS Y0, (R9)
	VPTEST Y10, Y10
	SETEQ ret+40(FP)
	VZEROUPPER
	RET

// func q4KAccAVX2(qs, q8 *byte, scales *[8]int16, acc *[8]float32, d float32, mins *[4]int32, accm *[4]float32, dmin float32)
//
// One Q4_K super-block of ggml_vec_dot_q4_K_q8_K. The integer lanes:
// lane[l] = Σ_j scales[2j]*Σ lo(qs[32j+b])*q8[64j+b] + scales[2j+1]*Σ
// hi(qs[32j+b])*q8[64j+32+b], b over 4l..4l+3 (nibbles are 0..15, so
// VPMADDUBSW never saturates and every sum is exact); then acc =
// fma(d, float(lane), acc) and accm = fma(dmin, float(mins), accm).
TEXT ·q4KAccAVX2(SB), NOSPLIT, $0-60
	MOVQ qs+0(FP), SI
	MOVQ q8+8(FP), DI
	MOVQ scales+16(FP), R8
	MOVQ acc+24(FP), R9
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	VPXOR Y0, Y0, Y0
	MOVQ $4, CX
q4loop:
	VMOVDQU (SI), Y1
	VPSRLW $4, Y1, Y2
	VPAND Y15, Y1, Y1
	VPAND Y15, Y2, Y2
	VPMADDUBSW (DI), Y1, Y1
	VPMADDUBSW 32(DI), Y2, Y2
	VPBROADCASTW (R8), Y3
	VPBROADCASTW 2(R8), Y4
	VPMADDWD Y3, Y1, Y1
	VPMADDWD Y4, Y2, Y2
	VPADDD Y1, Y0, Y0
	VPADDD Y2, Y0, Y0
	ADDQ $32, SI
	ADDQ $64, DI
	ADDQ $4, R8
	DECQ CX
	JNZ  q4loop
	VCVTDQ2PS Y0, Y0
	VBROADCASTSS d+32(FP), Y1
	VMOVUPS (R9), Y2
	VFMADD231PS Y0, Y1, Y2
	VMOVUPS Y2, (R9)
	MOVQ mins+40(FP), SI
	MOVQ accm+48(FP), R9
	VCVTDQ2PS (SI), X0
	VBROADCASTSS dmin+56(FP), X1
	VMOVUPS (R9), X2
	VFMADD231PS X0, X1, X2
	VMOVUPS X2, (R9)
	VZEROUPPER
	RET

// Q6CHUNK adds to Y0 the lanes of one 32-value chunk of 6-bit quants q
// (0..63): (q-32)*q8 in pairs (VPMADDUBSW of q and of 32, subtracted: exact,
// |pair| <= 8192), times the scale of each 16 values (low 128 bits: the
// first, high: the second), in eight int32 lanes.
#define Q6CHUNK(q, q8off, sc0, sc1) \
	VPMADDUBSW q8off(DI), q, Y6; \
	VPMADDUBSW q8off(DI), Y13, Y7; \
	VPSUBW Y7, Y6, Y6; \
	VPBROADCASTW sc0(R8), X8; \
	VPBROADCASTW sc1(R8), X9; \
	VINSERTI128 $1, X9, Y8, Y8; \
	VPMADDWD Y8, Y6, Y6; \
	VPADDD Y6, Y0, Y0

// func q6KAccAVX2(ql, qh, q8 *byte, scales *[16]int16, acc *[8]float32, d float32)
//
// One Q6_K super-block of ggml_vec_dot_q6_K_q8_K: int32 lane l sums
// scale*Σ (q6-32)*q8 over bytes 4l..4l+3 of each 32-value chunk (exact);
// then acc = fma(d, float(lane), acc).
TEXT ·q6KAccAVX2(SB), NOSPLIT, $0-44
	MOVQ ql+0(FP), SI
	MOVQ qh+8(FP), BX
	MOVQ q8+16(FP), DI
	MOVQ scales+24(FP), R8
	MOVQ acc+32(FP), R9
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x03030303, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	MOVL $0x20202020, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13
	VPXOR Y0, Y0, Y0
	MOVQ $2, CX
q6loop:
	VMOVDQU (SI), Y1
	VMOVDQU 32(SI), Y2
	VMOVDQU (BX), Y3
	// chunk 0: low nibbles of ql[0:32], qh bits 0-1
	VPAND Y15, Y1, Y4
	VPAND Y14, Y3, Y5
	VPSLLW $4, Y5, Y5
	VPOR Y5, Y4, Y4
	Q6CHUNK(Y4, 0, 0, 2)
	// chunk 1: low nibbles of ql[32:64], qh bits 2-3
	VPAND Y15, Y2, Y4
	VPSRLW $2, Y3, Y5
	VPAND Y14, Y5, Y5
	VPSLLW $4, Y5, Y5
	VPOR Y5, Y4, Y4
	Q6CHUNK(Y4, 32, 4, 6)
	// chunk 2: high nibbles of ql[0:32], qh bits 4-5
	VPSRLW $4, Y1, Y4
	VPAND Y15, Y4, Y4
	VPSRLW $4, Y3, Y5
	VPAND Y14, Y5, Y5
	VPSLLW $4, Y5, Y5
	VPOR Y5, Y4, Y4
	Q6CHUNK(Y4, 64, 8, 10)
	// chunk 3: high nibbles of ql[32:64], qh bits 6-7
	VPSRLW $4, Y2, Y4
	VPAND Y15, Y4, Y4
	VPSRLW $6, Y3, Y5
	VPAND Y14, Y5, Y5
	VPSLLW $4, Y5, Y5
	VPOR Y5, Y4, Y4
	Q6CHUNK(Y4, 96, 12, 14)
	ADDQ $64, SI
	ADDQ $32, BX
	ADDQ $128, DI
	ADDQ $16, R8
	DECQ CX
	JNZ  q6loop
	VCVTDQ2PS Y0, Y0
	VBROADCASTSS d+40(FP), Y1
	VMOVUPS (R9), Y2
	VFMADD231PS Y0, Y1, Y2
	VMOVUPS Y2, (R9)
	VZEROUPPER
	RET

// Q8COL adds one Q8_0 block of the activation column at ptr to acc, with
// the weight block's scale in X1, |x| in Y2 and x in Y3 (as dotQ8_0AVX2).
#define Q8COL(ptr, acc) \
	MOVWLZX (ptr), AX; \
	VMULSS (R8)(AX*4), X1, X8; \
	VBROADCASTSS X8, Y8; \
	VMOVDQU 2(ptr), Y9; \
	VPCMPEQB Y14, Y9, Y11; \
	VPOR Y11, Y10, Y10; \
	VPSIGNB Y3, Y9, Y9; \
	VPMADDUBSW Y9, Y2, Y9; \
	VPMADDWD Y15, Y9, Y9; \
	VCVTDQ2PS Y9, Y9; \
	VFMADD231PS Y9, Y8, acc; \
	ADDQ $34, ptr

// func dotQ8_0x4AVX2(nb int, x *byte, y *[4]*byte, tab *[65536]float32, acc *[4][8]float32) bool
//
// dotQ8_0AVX2 for one weight row and four activation columns at once: the
// weight block is loaded once and each column keeps its own accumulator, so
// each column's arithmetic is exactly dotQ8_0AVX2's.
TEXT ·dotQ8_0x4AVX2(SB), NOSPLIT, $0-41
	MOVQ nb+0(FP), CX
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ tab+24(FP), R8
	MOVQ acc+32(FP), R9
	MOVQ 0(DI), R10
	MOVQ 8(DI), R11
	MOVQ 16(DI), R12
	MOVQ 24(DI), R13
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VPXOR Y10, Y10, Y10
	MOVL $0x00010001, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x80808080, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	TESTQ CX, CX
	JLE  x4done
x4loop:
	MOVWLZX (SI), AX
	VMOVSS (R8)(AX*4), X1
	VMOVDQU 2(SI), Y3
	VPABSB Y3, Y2
	Q8COL(R10, Y4)
	Q8COL(R11, Y5)
	Q8COL(R12, Y6)
	Q8COL(R13, Y7)
	ADDQ $34, SI
	DECQ CX
	JNZ  x4loop
x4done:
	VMOVUPS Y4, 0(R9)
	VMOVUPS Y5, 32(R9)
	VMOVUPS Y6, 64(R9)
	VMOVUPS Y7, 96(R9)
	VPTEST Y10, Y10
	SETEQ ret+40(FP)
	VZEROUPPER
	RET
