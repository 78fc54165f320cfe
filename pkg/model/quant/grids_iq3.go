package quant

// Read-only access to the ggml tables that the IQ3_XXS, IQ3_S and MXFP4
// dot products of pkg/model/forward need (the same tables as the
// dequantizers here; iqtables.go is generated from ggml-common.h).

// IQ3XXSGrid is iq3xxs_grid[i]: four magnitudes of an IQ3_XXS group, one
// per byte, element 0 in the low byte.
func IQ3XXSGrid(i uint8) uint32 { return iq3xxsGrid[i] }

// IQ3SGrid is iq3s_grid[i & 511]: four magnitudes of an IQ3_S group, one
// per byte, element 0 in the low byte.
func IQ3SGrid(i int) uint32 { return iq3sGrid[i&511] }

// KSignsIQ2XS is ksigns_iq2xs[i & 127]: 7 stored sign bits expanded to 8
// with even parity (bit j set: element j of a group of 8 is negative).
func KSignsIQ2XS(i uint32) uint8 { return ksignsIQ2XS[i&127] }

// KValuesMXFP4 is kvalues_mxfp4[i & 15]: the E2M1 value of code i, doubled.
func KValuesMXFP4(i uint8) int8 { return kvaluesMXFP4[i&15] }

// E8M0ToFP32Half is ggml_e8m0_to_fp32_half: 2^(x-128) as a float32, the
// MXFP4 block scale halved (x < 2 gives the subnormals 2^-128 and 2^-127).
func E8M0ToFP32Half(x uint8) float32 { return dqE8M0Half(x) }
