package forward

import "math"

// YaRN RoPE scaling (rope.scaling.type "yarn"): ggml's rope_yarn, with the
// correction dimensions of ggml_rope_yarn_corr_dims and the attention factor
// llama_context computes (llama-context.cpp). Every a*b+c that GCC contracts
// on an FMA machine is a math.FMA here; every other operation is rounded to
// float32 as C evaluates it.

// yarnCorrDim is ggml_rope_yarn_corr_dim: the dimension whose wavelength
// turns nRot times over nCtxOrig positions.
func yarnCorrDim(nDims, nCtxOrig int32, nRot, base float32) float32 {
	r := float32(nCtxOrig) / float32(float32(nRot*2)*float32(math.Pi))
	return float32(float32(nDims)*Logf(r)) / float32(2*Logf(base))
}

// yarnCorrDims is ggml_rope_yarn_corr_dims: the first and last dimensions
// of the ramp between extrapolation and interpolation.
func yarnCorrDims(nDims, nCtxOrig int32, freqBase, betaFast, betaSlow float32) [2]float32 {
	start := float32(math.Floor(float64(yarnCorrDim(nDims, nCtxOrig, betaFast, freqBase))))
	end := float32(math.Ceil(float64(yarnCorrDim(nDims, nCtxOrig, betaSlow, freqBase))))
	return [2]float32{max(0, start), min(float32(nDims-1), end)}
}

// yarnRamp is rope_yarn_ramp: 1 below the first correction dimension, 0
// above the last, linear between (pair index i0/2).
func yarnRamp(low, high float32, i0 int64) float32 {
	y := (float32(i0/2) - low) / max(0.001, high-low)
	return 1 - min(1, max(0, y))
}

// yarnTheta is rope_yarn's angle: the interpolated angle
// freqScale·thetaExtrap mixed with the extrapolated one by the ramp.
func yarnTheta(thetaExtrap, freqScale float32, corr [2]float32, i0 int64, extFactor float32) float32 {
	thetaInterp := freqScale * thetaExtrap
	if extFactor == 0 {
		return thetaInterp
	}
	mix := yarnRamp(corr[0], corr[1], i0) * extFactor
	return fma32(thetaInterp, 1-mix, thetaExtrap*mix)
}

// yarnMscale is rope_yarn's magnitude: attnFactor·(1 + 0.1·ln(1/freqScale))
// when YaRN extrapolates (extFactor ≠ 0), attnFactor otherwise.
func yarnMscale(attnFactor, freqScale, extFactor float32) float32 {
	if extFactor == 0 {
		return attnFactor
	}
	return attnFactor * fma32(0.1, Logf(1/freqScale), 1)
}

// yarnAttnFactor is llama_context's yarn_attn_factor for a YaRN model
// whose RoPE scale is freqScale (1/factor), before rope_attn_factor:
// get_mscale(factor, 1) / (1 + 0.1·ln(factor)), which rope_yarn's own
// magnitude then restores.
func yarnAttnFactor(freqScale float32) float32 {
	factor := 1 / freqScale
	mscale := float32(1)
	if factor > 1 {
		mscale = fma32(0.1, Logf(factor), 1)
	}
	return mscale * (1 / fma32(0.1, Logf(factor), 1))
}
