package model

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// quantQ8KFMA is quantQ8_K's CPU variant before its fast path: every quant
// through fma32(iscale, x, 1.5·2^23) and the bit trick, as ggml's AVX2
// code computes it.
func quantQ8KFMA(src []float32, dst []byte) {
	for i := 0; i < len(src)/256; i++ {
		x := src[256*i : 256*i+256]
		y := dst[292*i : 292*i+292]
		qs := y[4:260]
		var maxv, amax float32
		for _, xv := range x {
			if ax := float32(math.Abs(float64(xv))); ax > amax {
				amax, maxv = ax, xv
			}
		}
		if amax == 0 {
			clear(y)
			continue
		}
		iscale := -127 / maxv
		for j, xv := range x {
			q := int32(math.Float32bits(fma32(iscale, xv, 12582912))&0x007fffff) - 0x00400000
			if q > 127 {
				q = 127
			}
			qs[j] = byte(int8(q))
		}
		for j := 0; j < 16; j++ {
			var sum int16
			for _, q := range qs[16*j : 16*j+16] {
				sum += int16(int8(q))
			}
			binary.LittleEndian.PutUint16(y[260+2*j:], uint16(sum))
		}
		binary.LittleEndian.PutUint32(y, math.Float32bits(1/iscale))
	}
}

// TestQuantQ8KFastPathExact checks quantQ8_K's rounding shortcut against
// the fma32 formulation it replaces, on random rows, rows full of exact
// ties (x chosen so that iscale·x is k + 1/2), and rows with NaN and ±Inf.
func TestQuantQ8KFastPathExact(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 3000; trial++ {
		x := make([]float32, 512)
		switch trial % 4 {
		case 0:
			for i := range x {
				x[i] = float32(r.NormFloat64() * math.Exp(3*r.NormFloat64()))
			}
		case 1: // ties: maxv = -127 makes iscale = 1, so x = k + 0.5 is a tie
			for i := range x {
				x[i] = float32(r.IntN(253)-126) + 0.5
			}
			x[r.IntN(256)], x[256+r.IntN(256)] = -127, -127
		case 2: // ties at other scales: maxv = -127·2^e
			e := float32(math.Ldexp(1, r.IntN(40)-20))
			for i := range x {
				x[i] = (float32(r.IntN(253)-126) + 0.5) * e
			}
			x[r.IntN(256)], x[256+r.IntN(256)] = -127*e, -127*e
		case 3:
			for i := range x {
				x[i] = float32(r.NormFloat64())
				switch r.IntN(50) {
				case 0:
					x[i] = float32(math.NaN())
				case 1:
					x[i] = float32(math.Inf(1 - 2*r.IntN(2)))
				case 2:
					x[i] = math.Float32frombits(r.Uint32())
				}
			}
		}
		got := make([]byte, 2*292)
		want := make([]byte, 2*292)
		quantQ8_K(x, got, QuantCPU)
		quantQ8KFMA(x, want)
		if !bytes.Equal(got, want) {
			t.Fatalf("trial %d (kind %d): fast path differs from fma32", trial, trial%4)
		}
	}
}
