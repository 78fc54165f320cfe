//go:build amd64 && !purego

#include "textflag.h"

// 32-bit lane order of the four 16-value sums after the two VPHADDDs
DATA repackPerm<>+0(SB)/4, $0
DATA repackPerm<>+4(SB)/4, $4
DATA repackPerm<>+8(SB)/4, $1
DATA repackPerm<>+12(SB)/4, $5
DATA repackPerm<>+16(SB)/4, $2
DATA repackPerm<>+20(SB)/4, $6
DATA repackPerm<>+24(SB)/4, $3
DATA repackPerm<>+28(SB)/4, $7
GLOBL repackPerm<>(SB), RODATA|NOPTR, $32

// func sums16AVX2(n64 int, w, y *int8, out *int32)
//
// out[i] = Σ_{j<16} w[16i+j]·y[16i+j] exactly, for 4·n64 groups of 16:
// VPMADDUBSW(|w|, sign(y, w)) then VPMADDWD by ones, then two VPHADDDs.
// Exact when no y is -128 (negating it wraps; the caller checks) and the
// pair sums fit int16 (|w| <= 127).
TEXT ·sums16AVX2(SB), NOSPLIT, $0-32
	MOVQ n64+0(FP), CX
	MOVQ w+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ out+24(FP), DX
	MOVL $0x00010001, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	VMOVDQU repackPerm<>(SB), Y14
	TESTQ CX, CX
	JLE  s16done
s16loop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VMOVDQU (DI), Y2
	VMOVDQU 32(DI), Y3
	VPSIGNB Y0, Y2, Y2
	VPSIGNB Y1, Y3, Y3
	VPABSB Y0, Y0
	VPABSB Y1, Y1
	VPMADDUBSW Y2, Y0, Y0
	VPMADDUBSW Y3, Y1, Y1
	VPMADDWD Y15, Y0, Y0
	VPMADDWD Y15, Y1, Y1
	VPHADDD Y1, Y0, Y0
	VPHADDD Y0, Y0, Y0
	VPERMD Y0, Y14, Y0
	VMOVDQU X0, (DX)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $16, DX
	DECQ CX
	JNZ  s16loop
s16done:
	VZEROUPPER
	RET
