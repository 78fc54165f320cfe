//go:build amd64 && !purego

#include "textflag.h"

// Float16 vector kernels of ggml-cpu (vec.h/vec.cpp) for flash attention,
// with AVX2, FMA and F16C: VCVTPH2PS loads, VFMADD231PS, VCVTPS2PH $0
// (round to nearest even) stores. Each lane is one fused or one plain
// float32 operation, as in ggml.

// func dotF16AccAVX2(n int, a, b *uint16, acc *[4][8]float32)
//
// ggml_vec_dot_f16's main loop: for n (a multiple of 32) elements, four
// 8-lane accumulators, acc[j] = fma(a[i+8j..], b[i+8j..], acc[j]), starting
// from zero. The caller reduces them (reduceF32x8) and adds leftovers.
TEXT ·dotF16AccAVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ acc+24(FP), R8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	SHRQ $5, CX
	JZ   dotdone

dotloop:
	VCVTPH2PS (SI), Y4
	VCVTPH2PS (DI), Y5
	VFMADD231PS Y5, Y4, Y0
	VCVTPH2PS 16(SI), Y6
	VCVTPH2PS 16(DI), Y7
	VFMADD231PS Y7, Y6, Y1
	VCVTPH2PS 32(SI), Y8
	VCVTPH2PS 32(DI), Y9
	VFMADD231PS Y9, Y8, Y2
	VCVTPH2PS 48(SI), Y10
	VCVTPH2PS 48(DI), Y11
	VFMADD231PS Y11, Y10, Y3
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  dotloop

dotdone:
	VMOVUPS Y0, (R8)
	VMOVUPS Y1, 32(R8)
	VMOVUPS Y2, 64(R8)
	VMOVUPS Y3, 96(R8)
	VZEROUPPER
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

// func madF16AVX2(n int, y, x *uint16, v float32)
//
// ggml_vec_mad_f16 on n (a multiple of 8) elements: y[i] = f16(fma(x[i], v,
// y[i])).
TEXT ·madF16AVX2(SB), NOSPLIT, $0-28
	MOVQ n+0(FP), CX
	MOVQ y+8(FP), DI
	MOVQ x+16(FP), SI
	VBROADCASTSS v+24(FP), Y15
	SHRQ $3, CX
	JZ   maddone

madloop:
	VCVTPH2PS (DI), Y0
	VCVTPH2PS (SI), Y1
	VFMADD231PS Y15, Y1, Y0
	VCVTPS2PH $0, Y0, (DI)
	ADDQ $16, SI
	ADDQ $16, DI
	DECQ CX
	JNZ  madloop

maddone:
	VZEROUPPER
	RET

// func scaleF16AVX2(n int, y *uint16, v float32)
//
// ggml_vec_scale_f16 on n (a multiple of 8) elements: y[i] = f16(y[i]*v).
TEXT ·scaleF16AVX2(SB), NOSPLIT, $0-20
	MOVQ n+0(FP), CX
	MOVQ y+8(FP), DI
	VBROADCASTSS v+16(FP), Y15
	SHRQ $3, CX
	JZ   scaledone

scaleloop:
	VCVTPH2PS (DI), Y0
	VMULPS Y15, Y0, Y0
	VCVTPS2PH $0, Y0, (DI)
	ADDQ $16, DI
	DECQ CX
	JNZ  scaleloop

scaledone:
	VZEROUPPER
	RET

// func toF16AVX2(n int, dst *uint16, src *float32)
//
// GGML_CPU_FP32_TO_FP16 on n (a multiple of 8) elements.
TEXT ·toF16AVX2(SB), NOSPLIT, $0-24
	MOVQ n+0(FP), CX
	MOVQ dst+8(FP), DI
	MOVQ src+16(FP), SI
	SHRQ $3, CX
	JZ   cvtdone

cvtloop:
	VMOVUPS (SI), Y0
	VCVTPS2PH $0, Y0, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	DECQ CX
	JNZ  cvtloop

cvtdone:
	VZEROUPPER
	RET

// func fromF16AVX2(n int, dst *float32, src *uint16)
//
// GGML_CPU_FP16_TO_FP32 (exact; a NaN keeps sign and payload and is made
// quiet) on n (a multiple of 8) elements.
TEXT ·fromF16AVX2(SB), NOSPLIT, $0-24
	MOVQ n+0(FP), CX
	MOVQ dst+8(FP), DI
	MOVQ src+16(FP), SI
	SHRQ $3, CX
	JZ   fromdone

fromloop:
	VCVTPH2PS (SI), Y0
	VMOVUPS Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  fromloop

fromdone:
	VZEROUPPER
	RET
