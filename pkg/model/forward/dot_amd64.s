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

// func q4KRowAVX2(nb int, qs *byte, meta *q4KBlockMeta, ncol int, y *[4]*byte, acc *[4][8]float32, accm *[4][4]float32)
//
// ggml_vec_dot_q4_K_q8_K for one weight row and ncol (1..4) activation
// columns: the nibbles of each super-block (qs: the row's first block's
// quants, stride 144) are split once and used for every column; each column
// c (block_q8_K rows y[c], stride 292) keeps its own accumulators acc[c]
// and accm[c], so its float arithmetic is exactly ggml's. Per block and
// column, the integer lanes lane[l] = Σ_j scales[2j]*Σ lo(qs[32j+b])*
// q8[64j+b] + scales[2j+1]*Σ hi(qs[32j+b])*q8[64j+32+b], b over 4l..4l+3
// (nibbles 0..15: VPMADDUBSW never saturates, every sum is exact), then
// acc = fma(y.d*x.d, float(lane), acc); the mins pm[k] = Σ over the four
// Q8_K sums b of sub-blocks 2k, 2k+1 of min*b (VPMADDWD by each min stored
// twice, then VPHADDD: exact), accm = fma(y.d*(-x.dmin), float(pm), accm).
// meta holds the row's decoded scales (q4KBlockMeta, 296 bytes a block).
TEXT ·q4KRowAVX2(SB), NOSPLIT, $0-56
	MOVQ nb+0(FP), CX
	MOVQ qs+8(FP), SI
	MOVQ meta+16(FP), R8
	MOVQ ncol+24(FP), DX
	MOVQ y+32(FP), R11
	MOVQ acc+40(FP), R9
	MOVQ accm+48(FP), R10
	XORQ BX, BX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	TESTQ CX, CX
	JLE  rdone
	TESTQ DX, DX
	JLE  rdone
rblock:
	VMOVDQU 0(SI), Y7
	VPSRLW $4, Y7, Y8
	VPAND Y15, Y7, Y7
	VPAND Y15, Y8, Y8
	VMOVDQU 32(SI), Y9
	VPSRLW $4, Y9, Y10
	VPAND Y15, Y9, Y9
	VPAND Y15, Y10, Y10
	VMOVDQU 64(SI), Y11
	VPSRLW $4, Y11, Y12
	VPAND Y15, Y11, Y11
	VPAND Y15, Y12, Y12
	VMOVDQU 96(SI), Y13
	VPSRLW $4, Y13, Y14
	VPAND Y15, Y13, Y13
	VPAND Y15, Y14, Y14
	XORQ R12, R12
rcol:
	MOVQ (R11)(R12*8), DI
	ADDQ BX, DI
	VPXOR Y0, Y0, Y0
	VPMADDUBSW 4(DI), Y7, Y1
	VPMADDWD 0(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VPMADDUBSW 36(DI), Y8, Y1
	VPMADDWD 32(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VPMADDUBSW 68(DI), Y9, Y1
	VPMADDWD 64(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VPMADDUBSW 100(DI), Y10, Y1
	VPMADDWD 96(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VPMADDUBSW 132(DI), Y11, Y1
	VPMADDWD 128(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VPMADDUBSW 164(DI), Y12, Y1
	VPMADDWD 160(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VPMADDUBSW 196(DI), Y13, Y1
	VPMADDWD 192(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VPMADDUBSW 228(DI), Y14, Y1
	VPMADDWD 224(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VCVTDQ2PS Y0, Y0
	VMOVSS (DI), X3
	VMULSS 288(R8), X3, X4
	VBROADCASTSS X4, Y4
	MOVQ R12, AX
	SHLQ $5, AX
	VMOVUPS (R9)(AX*1), Y5
	VFMADD231PS Y0, Y4, Y5
	VMOVUPS Y5, (R9)(AX*1)
	VMOVDQU 260(DI), Y1
	VPMADDWD 256(R8), Y1, Y1
	VEXTRACTI128 $1, Y1, X2
	VPHADDD X2, X1, X1
	VCVTDQ2PS X1, X1
	VMULSS 292(R8), X3, X4
	VBROADCASTSS X4, X4
	MOVQ R12, AX
	SHLQ $4, AX
	VMOVUPS (R10)(AX*1), X5
	VFMADD231PS X1, X4, X5
	VMOVUPS X5, (R10)(AX*1)
	INCQ R12
	CMPQ R12, DX
	JLT  rcol
	ADDQ $144, SI
	ADDQ $296, R8
	ADDQ $292, BX
	DECQ CX
	JNZ  rblock
rdone:
	VZEROUPPER
	RET

// func q6KRowAVX2(nb int, x *byte, meta *q6KBlockMeta, ncol int, y *[4]*byte, acc *[4][8]float32)
//
// ggml_vec_dot_q6_K_q8_K for one weight row (x, stride 210) and ncol
// (1..4) activation columns (block_q8_K rows y[c], stride 292): each
// super-block's 6-bit quants are assembled once (eight 32-value chunks in
// Y8-Y15) and used for every column; each column keeps its own acc[c], so
// its float arithmetic is exactly ggml's. Per block and column, int32 lane
// l sums scale*Σ (q6-32)*q8 over bytes 4l..4l+3 of each chunk: q6*q8 and
// 32*q8 in pairs (VPMADDUBSW, subtracted: exact, |pair| < 2^15), times the
// chunk's two 16-value scales (q6KBlockMeta.sv, pre-broadcast; 264 bytes a
// block), then acc = fma(y.d*x.d, float(lane), acc).
TEXT ·q6KRowAVX2(SB), NOSPLIT, $0-48
	MOVQ nb+0(FP), CX
	MOVQ x+8(FP), SI
	MOVQ meta+16(FP), R8
	MOVQ ncol+24(FP), DX
	MOVQ y+32(FP), R11
	MOVQ acc+40(FP), R9
	XORQ BX, BX
	MOVL $0x20202020, AX
	VMOVD AX, X7
	VPBROADCASTD X7, Y7
	TESTQ CX, CX
	JLE  q6rdone
	TESTQ DX, DX
	JLE  q6rdone
q6rblock:
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X0
	VPBROADCASTD X0, Y0
	MOVL $0x03030303, AX
	VMOVD AX, X1
	VPBROADCASTD X1, Y1
	VMOVDQU 0(SI), Y2
	VMOVDQU 32(SI), Y3
	VMOVDQU 128(SI), Y4
	VPAND Y0, Y2, Y8
	VPAND Y1, Y4, Y5
	VPSLLW $4, Y5, Y5
	VPOR Y5, Y8, Y8
	VPAND Y0, Y3, Y9
	VPSRLW $2, Y4, Y5
	VPAND Y1, Y5, Y5
	VPSLLW $4, Y5, Y5
	VPOR Y5, Y9, Y9
	VPSRLW $4, Y2, Y10
	VPAND Y0, Y10, Y10
	VPSRLW $4, Y4, Y5
	VPAND Y1, Y5, Y5
	VPSLLW $4, Y5, Y5
	VPOR Y5, Y10, Y10
	VPSRLW $4, Y3, Y11
	VPAND Y0, Y11, Y11
	VPSRLW $6, Y4, Y5
	VPAND Y1, Y5, Y5
	VPSLLW $4, Y5, Y5
	VPOR Y5, Y11, Y11
	VMOVDQU 64(SI), Y2
	VMOVDQU 96(SI), Y3
	VMOVDQU 160(SI), Y4
	VPAND Y0, Y2, Y12
	VPAND Y1, Y4, Y5
	VPSLLW $4, Y5, Y5
	VPOR Y5, Y12, Y12
	VPAND Y0, Y3, Y13
	VPSRLW $2, Y4, Y5
	VPAND Y1, Y5, Y5
	VPSLLW $4, Y5, Y5
	VPOR Y5, Y13, Y13
	VPSRLW $4, Y2, Y14
	VPAND Y0, Y14, Y14
	VPSRLW $4, Y4, Y5
	VPAND Y1, Y5, Y5
	VPSLLW $4, Y5, Y5
	VPOR Y5, Y14, Y14
	VPSRLW $4, Y3, Y15
	VPAND Y0, Y15, Y15
	VPSRLW $6, Y4, Y5
	VPAND Y1, Y5, Y5
	VPSLLW $4, Y5, Y5
	VPOR Y5, Y15, Y15
	XORQ R12, R12
q6rcol:
	MOVQ (R11)(R12*8), DI
	ADDQ BX, DI
	VPXOR Y6, Y6, Y6
	VPMADDUBSW 4(DI), Y8, Y1
	VPMADDUBSW 4(DI), Y7, Y2
	VPSUBW Y2, Y1, Y1
	VPMADDWD 0(R8), Y1, Y1
	VPADDD Y1, Y6, Y6
	VPMADDUBSW 36(DI), Y9, Y1
	VPMADDUBSW 36(DI), Y7, Y2
	VPSUBW Y2, Y1, Y1
	VPMADDWD 32(R8), Y1, Y1
	VPADDD Y1, Y6, Y6
	VPMADDUBSW 68(DI), Y10, Y1
	VPMADDUBSW 68(DI), Y7, Y2
	VPSUBW Y2, Y1, Y1
	VPMADDWD 64(R8), Y1, Y1
	VPADDD Y1, Y6, Y6
	VPMADDUBSW 100(DI), Y11, Y1
	VPMADDUBSW 100(DI), Y7, Y2
	VPSUBW Y2, Y1, Y1
	VPMADDWD 96(R8), Y1, Y1
	VPADDD Y1, Y6, Y6
	VPMADDUBSW 132(DI), Y12, Y1
	VPMADDUBSW 132(DI), Y7, Y2
	VPSUBW Y2, Y1, Y1
	VPMADDWD 128(R8), Y1, Y1
	VPADDD Y1, Y6, Y6
	VPMADDUBSW 164(DI), Y13, Y1
	VPMADDUBSW 164(DI), Y7, Y2
	VPSUBW Y2, Y1, Y1
	VPMADDWD 160(R8), Y1, Y1
	VPADDD Y1, Y6, Y6
	VPMADDUBSW 196(DI), Y14, Y1
	VPMADDUBSW 196(DI), Y7, Y2
	VPSUBW Y2, Y1, Y1
	VPMADDWD 192(R8), Y1, Y1
	VPADDD Y1, Y6, Y6
	VPMADDUBSW 228(DI), Y15, Y1
	VPMADDUBSW 228(DI), Y7, Y2
	VPSUBW Y2, Y1, Y1
	VPMADDWD 224(R8), Y1, Y1
	VPADDD Y1, Y6, Y6
	VCVTDQ2PS Y6, Y6
	VMOVSS (DI), X3
	VMULSS 256(R8), X3, X4
	VBROADCASTSS X4, Y4
	MOVQ R12, AX
	SHLQ $5, AX
	VMOVUPS (R9)(AX*1), Y5
	VFMADD231PS Y6, Y4, Y5
	VMOVUPS Y5, (R9)(AX*1)
	INCQ R12
	CMPQ R12, DX
	JLT  q6rcol
	ADDQ $210, SI
	ADDQ $264, R8
	ADDQ $292, BX
	DECQ CX
	JNZ  q6rblock
q6rdone:
	VZEROUPPER
	RET

// func k8RowAVX2(nb int, meta *k8BlockMeta, ncol int, y *[4]*byte, acc *[4][8]float32, mins int)
//
// The lanes of ggml_vec_dot_iq4_xs_q8_K, ggml_vec_dot_q3_K_q8_K and
// ggml_vec_dot_q5_K_q8_K (without Q5_K's mins, added in Go) for one weight
// row decoded into k8BlockMeta (256 int8 values, per-chunk scales in
// int16 lanes, x.d; 552 bytes a block), and ncol (1..4) activation columns
// (block_q8_K rows y[c], stride 292; never -128). Per 32-value sub-block and
// column, as ggml's mul_add_epi8: |q| (VPABSB, once per block for every
// column) times y with q's sign (VPSIGNB) in pairs (VPMADDUBSW), times the
// scale (VPMADDWD); int32 lane l sums bytes 4l..4l+3 of every sub-block,
// then acc = fma(x.d*y.d, float(lane), acc). With mins != 0
// (ggml_vec_dot_q2_K_q8_K) each block and column first does acc =
// fma(-y.d*x.dmin, float(lane), acc) with int32 lane l = m[2l]*bsum[2l] +
// m[2l+1]*bsum[2l+1] (VPMADDWD of the sixteen mins at offset 520 with the
// Q8_K block sums; -x.dmin at 516). With mins == 2 (ggml_vec_dot_tq1_0_q8_K,
// _tq2_0_q8_K: unsigned values 0..2, every scale 1) the int32 lane l loses
// m[2l]*bsum[2l] + m[2l+1]*bsum[2l+1] (the sixteen mins all 1) before the
// conversion: ggml's sumi - ysum, madd with ones.
TEXT ·k8RowAVX2(SB), NOSPLIT, $0-48
	MOVQ nb+0(FP), CX
	MOVQ meta+8(FP), R8
	MOVQ ncol+16(FP), DX
	MOVQ y+24(FP), R11
	MOVQ acc+32(FP), R9
	MOVQ mins+40(FP), R13
	XORQ BX, BX
	TESTQ CX, CX
	JLE  iqrdone
	TESTQ DX, DX
	JLE  iqrdone
iqrblock:
	VMOVDQU 0(R8), Y7
	VPABSB Y7, Y7
	VMOVDQU 32(R8), Y8
	VPABSB Y8, Y8
	VMOVDQU 64(R8), Y9
	VPABSB Y9, Y9
	VMOVDQU 96(R8), Y10
	VPABSB Y10, Y10
	VMOVDQU 128(R8), Y11
	VPABSB Y11, Y11
	VMOVDQU 160(R8), Y12
	VPABSB Y12, Y12
	VMOVDQU 192(R8), Y13
	VPABSB Y13, Y13
	VMOVDQU 224(R8), Y14
	VPABSB Y14, Y14
	XORQ R12, R12
iqrcol:
	MOVQ (R11)(R12*8), DI
	ADDQ BX, DI
	CMPQ R13, $1
	JNE  iqrlanes
	// Q2_K: acc = fma(y.d * -x.dmin, float(mins · bsums pairs), acc) first.
	VMOVDQU 260(DI), Y1
	VPMADDWD 520(R8), Y1, Y1
	VCVTDQ2PS Y1, Y1
	VMOVSS (DI), X3
	VMULSS 516(R8), X3, X4
	VBROADCASTSS X4, Y4
	MOVQ R12, AX
	SHLQ $5, AX
	VMOVUPS (R9)(AX*1), Y5
	VFMADD231PS Y1, Y4, Y5
	VMOVUPS Y5, (R9)(AX*1)
iqrlanes:
	VPXOR Y0, Y0, Y0
	VMOVDQU 4(DI), Y1
	VPSIGNB 0(R8), Y1, Y1
	VPMADDUBSW Y1, Y7, Y1
	VPMADDWD 256(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VMOVDQU 36(DI), Y1
	VPSIGNB 32(R8), Y1, Y1
	VPMADDUBSW Y1, Y8, Y1
	VPMADDWD 288(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VMOVDQU 68(DI), Y1
	VPSIGNB 64(R8), Y1, Y1
	VPMADDUBSW Y1, Y9, Y1
	VPMADDWD 320(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VMOVDQU 100(DI), Y1
	VPSIGNB 96(R8), Y1, Y1
	VPMADDUBSW Y1, Y10, Y1
	VPMADDWD 352(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VMOVDQU 132(DI), Y1
	VPSIGNB 128(R8), Y1, Y1
	VPMADDUBSW Y1, Y11, Y1
	VPMADDWD 384(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VMOVDQU 164(DI), Y1
	VPSIGNB 160(R8), Y1, Y1
	VPMADDUBSW Y1, Y12, Y1
	VPMADDWD 416(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VMOVDQU 196(DI), Y1
	VPSIGNB 192(R8), Y1, Y1
	VPMADDUBSW Y1, Y13, Y1
	VPMADDWD 448(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	VMOVDQU 228(DI), Y1
	VPSIGNB 224(R8), Y1, Y1
	VPMADDUBSW Y1, Y14, Y1
	VPMADDWD 480(R8), Y1, Y1
	VPADDD Y1, Y0, Y0
	CMPQ R13, $2
	JNE  iqrcvt
	// TQ1_0, TQ2_0: lane -= bsum[2l] + bsum[2l+1] (mins all 1).
	VMOVDQU 260(DI), Y1
	VPMADDWD 520(R8), Y1, Y1
	VPSUBD Y1, Y0, Y0
iqrcvt:
	VCVTDQ2PS Y0, Y0
	VMOVSS (DI), X3
	VMULSS 512(R8), X3, X4
	VBROADCASTSS X4, Y4
	MOVQ R12, AX
	SHLQ $5, AX
	VMOVUPS (R9)(AX*1), Y5
	VFMADD231PS Y0, Y4, Y5
	VMOVUPS Y5, (R9)(AX*1)
	INCQ R12
	CMPQ R12, DX
	JLT  iqrcol
	ADDQ $552, R8
	ADDQ $292, BX
	DECQ CX
	JNZ  iqrblock
iqrdone:
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

// Q8P8COL adds one packed activation block (32 quants at qaddr) to acc,
// with the product of the block's two scales at saddr, |x| in Y2 and x in
// Y3: the arithmetic of Q8COL, without its -128 check.
#define Q8P8COL(saddr, qaddr, acc) \
	VBROADCASTSS saddr, Y8; \
	VMOVDQU qaddr, Y9; \
	VPSIGNB Y3, Y9, Y9; \
	VPMADDUBSW Y9, Y2, Y9; \
	VPMADDWD Y15, Y9, Y9; \
	VCVTDQ2PS Y9, Y9; \
	VFMADD231PS Y9, Y8, acc

// func dotQ8_0x8PAVX2(nb int, x *byte, q *byte, qstride int, s *float32, sstride int, tab *[65536]float32, acc *[8][8]float32)
//
// One Q8_0 weight row x (nb blocks of 34 bytes) against eight packed
// activation columns (see q8Packed): quants of column c, block b at
// q + c·qstride + 32·b; their float32 scales at s + b·sstride + 4·c. Per
// block the eight scale products f16(x.d)·d_c are one VMULPS (each the
// float32 product dotQ8_0AVX2 forms), then every column's accumulator
// gets exactly dotQ8_0AVX2's operations. No activation may hold -128
// (q8_0Clean).
TEXT ·dotQ8_0x8PAVX2(SB), NOSPLIT, $32-64
	MOVQ nb+0(FP), CX
	MOVQ x+8(FP), SI
	MOVQ q+16(FP), R10
	MOVQ qstride+24(FP), R11
	MOVQ s+32(FP), DX
	MOVQ sstride+40(FP), BX
	MOVQ tab+48(FP), R8
	LEAQ (R11)(R11*2), R12      // 3·qstride
	LEAQ (R11)(R11*4), R13      // 5·qstride
	LEAQ (R12)(R11*4), R14      // 7·qstride
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	MOVL $0x00010001, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	TESTQ CX, CX
	JLE  p8done
p8loop:
	MOVWLZX (SI), AX
	VBROADCASTSS (R8)(AX*4), Y1
	VMULPS (DX), Y1, Y0
	VMOVUPS Y0, 0(SP)
	VMOVDQU 2(SI), Y3
	VPABSB Y3, Y2
	Q8P8COL(0(SP), (R10), Y4)
	Q8P8COL(4(SP), (R10)(R11*1), Y5)
	Q8P8COL(8(SP), (R10)(R11*2), Y6)
	Q8P8COL(12(SP), (R10)(R12*1), Y7)
	Q8P8COL(16(SP), (R10)(R11*4), Y10)
	Q8P8COL(20(SP), (R10)(R13*1), Y11)
	Q8P8COL(24(SP), (R10)(R12*2), Y12)
	Q8P8COL(28(SP), (R10)(R14*1), Y13)
	ADDQ $34, SI
	ADDQ $32, R10
	ADDQ BX, DX
	DECQ CX
	JNZ  p8loop
p8done:
	MOVQ acc+56(FP), R9
	VMOVUPS Y4, 0(R9)
	VMOVUPS Y5, 32(R9)
	VMOVUPS Y6, 64(R9)
	VMOVUPS Y7, 96(R9)
	VMOVUPS Y10, 128(R9)
	VMOVUPS Y11, 160(R9)
	VMOVUPS Y12, 192(R9)
	VMOVUPS Y13, 224(R9)
	VZEROUPPER
	RET

// func summs8AVX2(nb int, m, s *float32, stride int, out *[8]float32)
//
// summsQ1 for eight columns at once: lane c is column c's chain summs =
// fma(m[b], s[b][c], summs) over the nb blocks (s: eight floats per block,
// stride bytes apart).
TEXT ·summs8AVX2(SB), NOSPLIT, $0-40
	MOVQ nb+0(FP), CX
	MOVQ m+8(FP), SI
	MOVQ s+16(FP), DI
	MOVQ stride+24(FP), DX
	MOVQ out+32(FP), R9
	VXORPS Y0, Y0, Y0
	TESTQ CX, CX
	JLE  summsdone
summsloop:
	VBROADCASTSS (SI), Y1
	VFMADD231PS (DI), Y1, Y0
	ADDQ $4, SI
	ADDQ DX, DI
	DECQ CX
	JNZ  summsloop
summsdone:
	VMOVUPS Y0, (R9)
	VZEROUPPER
	RET
